"""Chapter 7's entries: GRPO from the SFT model against verifiers on the arithmetic family.

    sft ─┬─► grpo            exact-match verifier, DeepSeekMath's loss (norm "grpo", ÷ group std)
         ├─► grpo_sloppy     the sloppy verifier (the answer anywhere in the text), `rlvr.hack_steps`
         ├─► grpo_lenient    a verifier that lets through unreadable answers, `rlvr.hack_steps`
         ├─► grpo_dr         Dr. GRPO: norm "dr_grpo", advantages not ÷ std (length, §6)
         ├─► ppo_arithmetic  chapter 3's PPO against chapter 2's reward model, on the same prompts
         └─► rlvr_pools      samples per held-out problem from each model above (pass@k, KL)

Every run logs the same held-out evaluation (`rlvr_eval.held_out`: pass@1, sloppy reward, length,
worked steps) every `rlvr.eval_every` iterations, so the chapter plots them on one axis.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Callable

import torch

from .. import grpo, models, rlvr_eval, verifiers, world
from ..profiles import Profile
from ..zoo import Job, Recipe
from .rlhf import MAIN_PPO_FIELDS, train_ppo_run

CHAPTER = "07_rlvr"
FAMILY = "arithmetic"
POOL_FILE = "pools.json"
GRPO_FIELDS = ("rlvr.steps", "rlvr.prompts", "rlvr.group_size", "rlvr.minibatch", "rlvr.epochs", "rlvr.lr",
               "rlvr.beta", "rlvr.eval_every", "rlvr.eval_problems", "sampling.max_new_tokens", "sampling.batch")
POOL_MODELS = ("sft", "grpo", "grpo_sloppy", "grpo_dr", "ppo_arithmetic")
PASS_AT_K = ("sft", "grpo")
"""The pool models whose pass@k curves the chapter draws; the others get `rlvr.pool_others` samples."""


def eval_problems(profile: Profile) -> list[str]:
    """The held-out arithmetic problems of every run's pass@1 curve."""
    return list(dict.fromkeys(world.eval_prompts(FAMILY, n=profile.rlvr.eval_problems, seed=7)))


def pool_problems(profile: Profile) -> list[str]:
    """The held-out problems of the pass@k pools (another shuffle than the curve's)."""
    return list(dict.fromkeys(world.eval_prompts(FAMILY, n=profile.rlvr.pool_problems, seed=8)))


def held_out(policy, tok, profile: Profile, steps: int, every: int | None = None) -> tuple[dict, Callable]:
    """The start's held-out evaluation and a callback repeating it every `every` iterations
    (default `rlvr.eval_every`) and at the last: same problems, same seed (common random numbers)."""
    every = every or profile.rlvr.eval_every
    evaluate = lambda pol: rlvr_eval.held_out(pol, tok, eval_problems(profile), profile.sampling.max_new_tokens,
                                              batch_size=profile.sampling.batch)
    start = evaluate(policy)

    def callback(step: int, pol) -> dict:
        if step % every and step != steps:
            return {}
        return {f"heldout_{k}": v for k, v in evaluate(pol).items()}
    return start, callback


def grpo_run(job: Job, verifier: str = "exact", norm: str = "grpo", hack: bool = False) -> dict:
    """GRPO from the SFT model on the family's training prompts, rewarded by `verifier`; gold is
    exact-match correctness, logged and never optimised. `hack`: `rlvr.hack_steps` iterations."""
    profile, r = job.profile, job.profile.rlvr
    steps = r.hack_steps if hack else r.steps
    (policy, tok), (ref, _) = job.deps["sft"].load(dtype=torch.float32), job.deps["sft"].load(dtype=torch.float32)
    config = grpo.GRPOConfig(steps=steps, batch_size=r.prompts, group_size=r.group_size, minibatch_size=r.minibatch,
                             ppo_epochs=r.epochs, lr=r.lr, beta=r.beta, norm=norm,
                             scale=None if norm == "dr_grpo" else "group",
                             max_new_tokens=profile.sampling.max_new_tokens, checkpoint_dir=str(job.checkpoint_dir),
                             checkpoint_every=max(1, steps // 6))
    start, callback = held_out(policy, tok, profile, steps)
    history = grpo.train_grpo(policy, ref, tok, list(world.train_prompts(FAMILY)),
                              grpo.verifier_reward(verifiers.VERIFIERS[verifier]), config,
                              gold_fn=grpo.verifier_reward(verifiers.exact_match), callback=callback)
    models.save(policy, tok, job.out)
    return {"history": history, "grpo": asdict(config), "verifier": verifier, "start": start}


def ppo_arithmetic(job: Job) -> dict:
    """Chapter 3's main PPO (adaptive β, no ptx) against chapter 2's reward model for `rlvr.ppo_steps`
    iterations on the family's training prompts, evaluated like the GRPO runs."""
    p = job.profile
    return train_ppo_run(job, "rm", p.ppo.beta, steps=p.rlvr.ppo_steps, target_kl=p.ppo.target_kl,
                         prompts=list(world.train_prompts(FAMILY)), held_out=partial(held_out, every=p.ppo.eval_every))


def pools(job: Job) -> dict:
    """Samples per pool problem from each of POOL_MODELS — `rlvr.pool_samples` from SFT and GRPO
    (pass@k), `rlvr.pool_others` from the rest (pass@1, KL) — with each sample's KL to the SFT model."""
    profile = job.profile
    ref, tok = job.deps["sft"].load(dtype=torch.float32)
    problems, out, summary = pool_problems(profile), {}, {}
    for name in POOL_MODELS:
        policy = ref if name == "sft" else job.deps[name].load(dtype=torch.float32)[0]
        n = profile.rlvr.pool_samples if name in PASS_AT_K else profile.rlvr.pool_others
        out[name] = rlvr_eval.sample_pool(policy, ref, tok, problems, n,
                                          profile.sampling.max_new_tokens, seed=3, batch_size=profile.sampling.batch)
        summary[name] = float(rlvr_eval.pool_correct(problems, out[name]["responses"]).mean())
    (job.out / POOL_FILE).write_text(json.dumps({"problems": problems, **out}))
    return {"pass1": summary, "problems": len(problems), "samples": {name: len(out[name]["responses"][0]) for name in out}}


def load_pools(path: Path) -> dict:
    """`rlvr_pools`' data: problems (P,), and per model {responses, kl, length} (P, n)."""
    return json.loads((Path(path) / POOL_FILE).read_text())


def _grpo(name: str, why: str, **kw) -> Recipe:
    fields = GRPO_FIELDS + (("rlvr.hack_steps",) if kw.get("hack") else ())
    return Recipe(name, partial(grpo_run, **kw), sized=True, deps=("sft",), fields=fields, why=why)


RUNS = [
    _grpo("grpo", "GRPO against the exact-match verifier (DeepSeekMath's loss)"),
    _grpo("grpo_sloppy", "GRPO against a sloppy verifier that pays for the answer anywhere, trained longer",
          verifier="sloppy", hack=True),
    _grpo("grpo_lenient", "GRPO against a verifier that lets through answers it cannot read, trained longer",
          verifier="lenient", hack=True),
    _grpo("grpo_dr", "Dr. GRPO: a constant length normaliser, advantages not ÷ std", norm="dr_grpo"),
    Recipe("ppo_arithmetic", ppo_arithmetic, sized=True, deps=("sft", "rm", "rm_data"),
           fields=MAIN_PPO_FIELDS + ("rlvr.ppo_steps", "rlvr.eval_problems"),
           why="PPO against chapter 2's reward model on the arithmetic prompts (RLHF beside RLVR)"),
    Recipe("rlvr_pools", pools, sized=True, deps=POOL_MODELS,
           fields=("rlvr.pool_problems", "rlvr.pool_samples", "rlvr.pool_others", "sampling.max_new_tokens",
                   "sampling.batch"),
           why="pass@k pools: many samples per held-out problem from SFT and each chapter-7 run"),
]
