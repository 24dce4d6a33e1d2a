"""Chapter 3's entries: PPO from the SFT model against chapter 2's reward models.

`ppo` is the chapter's run (PPO-ptx, β adapted to a target KL), `ppo_no_ptx` its twin without
ptx, `ppo_length_biased` the reward-hacking run, `ppo_beta…` the fixed-β sweep (chapter 4's
frontier reuses it). Seeds 1+ of the two main runs and the zero-reward control `ppo_ptx_only`
are never built by `alignlab zoo build`, only when bench/ppo_seeds.py asks for them.
"""
from __future__ import annotations

from dataclasses import asdict
from functools import partial
from typing import Callable

import torch

from .. import evaluate, models, ppo, reward, train, world
from ..profiles import Profile
from ..zoo import Job, Recipe

CHAPTER = "03_ppo_kl"
PPO_DEPS = ("sft", "rm", "rm_data")
PTX_FIELDS = ("ppo.ptx_coef", "sft.demos", "policy")
PPO_FIELDS = ("ppo.steps", "ppo.batch", "ppo.minibatch", "ppo.lr", "ppo.eval_every", "sampling.max_new_tokens",
              "eval.prompts_per_family", "sampling.batch")
MAIN_PPO_FIELDS = PPO_FIELDS + ("ppo.beta", "ppo.target_kl", "ppo.kl_horizon", "rm.prompts")
PPO_SEEDS = 3
"""Seeds of chapter 3's main run and its no-ptx twin that bench/ppo_seeds.py compares (seed 0 is
the chapter's own run; the others are built only when asked for)."""


def seed_name(name: str, seed: int) -> str:
    """Zoo name of run `name` retrained with another seed (seed 0: the run itself)."""
    return name + (f"_seed{seed}" if seed else "")


def ppo_beta_name(beta: float) -> str:
    """Zoo name of chapter 3's fixed-β PPO run (the β sweep; chapter 4's frontier reuses them)."""
    return f"ppo_beta{beta:g}"


def held_out_gold(policy, tok, profile: Profile, steps: int) -> tuple[dict, Callable]:
    """The starting policy's held-out gold (R(0) of the run, with its standard error) and a PPO
    callback that evaluates the policy every `ppo.eval_every` steps and at the last, paired with
    the start (common random numbers: one sample per prompt, the same seed every time)."""
    prompts = world.eval_prompts(n=profile.eval.prompts_per_family * len(world.FAMILIES), seed=7)

    def held_out(pol) -> evaluate.EvalResult:
        return evaluate.gold_eval(pol, tok, prompts, samples_per_prompt=1, seed=0,
                                  max_new_tokens=profile.sampling.max_new_tokens, profile=profile)
    start = held_out(policy)

    def callback(step: int, pol) -> dict:
        if step % profile.ppo.eval_every and step != steps:
            return {}
        res = held_out(pol)
        gain, gain_se = evaluate.paired_difference(res, start)
        return {"heldout_gold": res.mean, "heldout_gold_se": res.se, "heldout_gain": gain, "heldout_gain_se": gain_se}
    return {"heldout_gold": start.mean, "heldout_gold_se": start.se}, callback


def train_ppo_run(job: Job, rm_name: str, beta: float, steps: int | None = None, target_kl: float | None = None,
                  ptx_coef: float = 0.0, seed: int = 0, reward_weight: float = 1.0, prompts: list[str] | None = None,
                  held_out: Callable[..., tuple[dict, Callable]] = held_out_gold,
                  ptx_source: str = "demos") -> dict:
    """PPO from the SFT model against reward model `rm_name` (scores normalised on SFT-era
    samples of rm_data), the value model initialised from it; held-out gold every few steps.
    With `target_kl`, β adapts (Ziegler et al.) by up to ±20% per `ppo.kl_horizon` iterations. With
    `ptx_coef`, PPO-ptx: the next-token loss on the SFT demonstrations joins every update.
    `reward_weight` scales the reward model's score (0: a control with the KL penalty and ptx only).
    `prompts` (default: every family's preference prompts) and `held_out` (default: `held_out_gold`)
    let chapter 7 run the same PPO on one family with its own evaluation. `ptx_source` "corpus" mixes
    in pretraining text instead of the demonstrations, as InstructGPT did (chapter 9)."""
    profile, deps = job.profile, job.deps
    steps = steps or profile.ppo.steps
    (policy, tok), (ref, _) = deps["sft"].load(dtype=torch.float32), deps["sft"].load(dtype=torch.float32)
    rm, _ = reward.load_reward_model(deps[rm_name].path)
    groups = reward.load_groups(deps["rm_data"].path)["train"][:100]
    fn = ppo.rm_reward_fn(rm, tok, reward.flatten(groups))
    score_fn = fn if reward_weight == 1.0 else (lambda p, r: reward_weight * fn(p, r))
    start, callback = held_out(policy, tok, profile, steps)
    horizon = profile.ppo.kl_horizon * profile.ppo.batch if target_kl is not None else ppo.PPOConfig.kl_horizon
    config = ppo.PPOConfig(steps=steps, batch_size=profile.ppo.batch, minibatch_size=profile.ppo.minibatch,
                           lr=profile.ppo.lr, beta=beta, target_kl=target_kl, kl_horizon=horizon,
                           max_new_tokens=profile.sampling.max_new_tokens, checkpoint_dir=str(job.checkpoint_dir),
                           checkpoint_every=max(1, steps // 6), ptx_coef=ptx_coef, seed=seed)
    # InstructGPT mixed in pretraining text; the demonstrations are cheaper here and hold the
    # behaviour SFT taught, which is what a reward model's blind spots let PPO unlearn.
    ptx = ptx_batches(profile, tok, ptx_source) if ptx_coef > 0 else None
    history = ppo.train_ppo(policy, ref, ppo.value_model_from(deps[rm_name].path), tok,
                            prompts or world.preference_prompts(4 * profile.rm.prompts, seed=5), score_fn, config,
                            gold_fn=ppo.gold_reward_fn, ptx_fn=ptx, callback=callback)
    models.save(policy, tok, job.out)
    return {"history": history, "ppo": asdict(config), "reward_model": rm_name,
            "start": start,
            "rm_normalisation": {"mean": fn.mean, "std": fn.std}}


def ptx_batches(profile: Profile, tok, source: str) -> train.BatchFn:
    """PPO-ptx's batches: the SFT demonstrations ("demos") or the pretraining corpus ("corpus")."""
    if source == "demos":
        return train.sft_batches(tok, world.sft_demonstrations(profile.sft.demos), profile.ppo.minibatch,
                                 profile.policy.max_length, seed=1)
    if source == "corpus":
        rows = train.pack(tok, world.pretraining_corpus(profile.pretrain.corpus_dialogs), profile.policy.max_length)
        return train.packed_batches(rows, profile.ppo.minibatch, seed=1)
    raise ValueError(f"ptx_source must be 'demos' or 'corpus', not {source!r}")


def adaptive(job: Job, ptx: bool = True, seed: int = 0, reward_weight: float = 1.0) -> dict:
    """The chapter's run: β adapted to the profile's target KL, with or without ptx."""
    p = job.profile
    return train_ppo_run(job, "rm", p.ppo.beta, target_kl=p.ppo.target_kl,
                         ptx_coef=p.ppo.ptx_coef if ptx else 0.0, seed=seed, reward_weight=reward_weight)


def length_biased(job: Job) -> dict:
    return train_ppo_run(job, "rm_length_biased", job.profile.ppo.beta, steps=job.profile.ppo.hack_steps)


def fixed_beta(job: Job, beta: float) -> dict:
    return train_ppo_run(job, "rm", beta, steps=job.profile.ppo.sweep_steps, ptx_coef=job.profile.ppo.ptx_coef)


def never(profile: Profile) -> bool:
    """`used_by` of the runs only a benchmark asks for: no chapter uses them."""
    return False


def adaptive_run(name: str, ptx: bool, seed: int = 0) -> Recipe:
    """A row for `ppo` (with ptx) or `ppo_no_ptx`, or one of their other seeds."""
    if name != seed_name("ppo" if ptx else "ppo_no_ptx", seed):
        raise ValueError(f"{name!r} is not the name of the {'ptx' if ptx else 'no-ptx'} run with seed {seed}")
    version, why = (("3", "PPO-ptx against the chapter-2 reward model, β adapted to a target KL") if ptx else
                    ("1", "the same PPO run without ptx, to show what mixing in the demonstrations buys"))
    return Recipe(name, partial(adaptive, ptx=ptx, seed=seed), sized=True, deps=PPO_DEPS, version=version,
                  fields=MAIN_PPO_FIELDS + (PTX_FIELDS if ptx else ()),
                  why=why + (f", seed {seed} (bench/ppo_seeds.py)" if seed else ""), used_by=never if seed else None)


def beta_run(name: str, beta: float) -> Recipe:
    """A row of the fixed-β sweep; a profile's chapters use it when β is in its `ppo.betas`."""
    if name != ppo_beta_name(beta):
        raise ValueError(f"{name!r} is not the name of the β = {beta:g} run ({ppo_beta_name(beta)!r})")
    return Recipe(name, partial(fixed_beta, beta=beta), sized=True, deps=PPO_DEPS, version="3",
                  fields=PPO_FIELDS + PTX_FIELDS + ("rm.prompts", "ppo.sweep_steps"),
                  why=f"PPO-ptx against the reward model with β fixed at {beta:g} (the β sweep)",
                  used_by=lambda p: beta in p.ppo.betas)


RUNS = [
    adaptive_run("ppo", ptx=True),
    adaptive_run("ppo_seed1", ptx=True, seed=1),
    adaptive_run("ppo_seed2", ptx=True, seed=2),
    adaptive_run("ppo_no_ptx", ptx=False),
    adaptive_run("ppo_no_ptx_seed1", ptx=False, seed=1),
    adaptive_run("ppo_no_ptx_seed2", ptx=False, seed=2),
    Recipe("ppo_ptx_only", partial(adaptive, reward_weight=0.0), sized=True, deps=PPO_DEPS, version="1",
           fields=MAIN_PPO_FIELDS + PTX_FIELDS, used_by=never,
           why="the PPO-ptx run with the reward set to zero (bench/ppo_seeds.py: is the gain only more SFT?)"),
    Recipe("ppo_length_biased", length_biased, sized=True, deps=("sft", "rm_length_biased", "rm_data"), version="3",
           fields=PPO_FIELDS + ("ppo.beta", "ppo.hack_steps", "rm.prompts"),
           why="PPO against the length-biased reward model"),
    beta_run("ppo_beta0.01", 0.01),
    beta_run("ppo_beta0.02", 0.02),
    beta_run("ppo_beta0.05", 0.05),
    beta_run("ppo_beta0.2", 0.2),
    beta_run("ppo_beta1", 1.0),
]
