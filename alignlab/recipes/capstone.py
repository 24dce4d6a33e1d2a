"""Chapter 9's entries: the whole pipeline on the ladder's small rung, and the capstone's own runs.

`small_pipeline` names the small rung's chain — pretraining, SFT, comparisons, reward model,
PPO-ptx, PPO without ptx, PPO-ptx on pretraining text, DPO, and PPO-ptx against the policy-size
reward model (`ppo_shared_rm`) — as its dependencies, so building it builds them all, and records
each stage's build time and last training numbers. `ppo_ptx_corpus` is
chapter 3's PPO-ptx with the ptx term on the pretraining corpus, as InstructGPT's was.
`rm_helpful` and `rm_harmless` are the two reward models of the multi-objective section.
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial

from ..multiobjective import ObjectiveLabeler
from ..zoo import Job, Recipe
from .reward_models import RM_FIELDS, reward_model
from .rlhf import MAIN_PPO_FIELDS, PPO_DEPS, never, train_ppo_run

CHAPTER = "09_capstone"
SMALL = "small"
"""The rung the capstone aligns end to end (InstructGPT's 1.3B beside 175B GPT-3)."""
STAGES = ("base", "sft", "rm_data", "rm", "ppo", "ppo_no_ptx", "ppo_ptx_corpus", "dpo_beta0.1")
"""The small rung's pipeline, in build order: each is `<stage>@small`."""


def small_name(stage: str) -> str:
    """`sft` → `sft@small`: a stage of the capstone's pipeline."""
    return f"{stage}@{SMALL}"


PIPELINE = {stage: small_name(stage) for stage in STAGES} | {"ppo_shared_rm": "ppo_shared_rm"}
"""What `small_pipeline` depends on and records: stage → zoo entry."""


def ppo_ptx_corpus(job: Job) -> dict:
    p = job.profile
    return train_ppo_run(job, "rm", p.ppo.beta, target_kl=p.ppo.target_kl, ptx_coef=p.ppo.ptx_coef,
                         ptx_source="corpus")


def ppo_shared_rm(job: Job) -> dict:
    """PPO-ptx for the small rung's SFT model against the policy-size reward model: InstructGPT trained
    every policy size against one 6B reward model (Ouyang et al., 2022, §3.5), not one per size."""
    p = job.profile
    deps = {"sft": job.deps[small_name("sft")], "rm": job.deps["rm"], "rm_data": job.deps["rm_data"]}
    return train_ppo_run(replace(job, deps=deps), "rm", p.ppo.beta, target_kl=p.ppo.target_kl,
                         ptx_coef=p.ppo.ptx_coef)


def _last(history: list[dict], keys: tuple[str, ...]) -> dict:
    row = history[-1] if history else {}
    return {k: row[k] for k in keys if k in row}


def small_pipeline(job: Job) -> dict:
    """Each stage's parameters and last training numbers (no training of its own)."""
    out = {}
    for stage, name in PIPELINE.items():
        meta = job.deps[name].meta
        out[stage] = {"n_params": meta.get("n_params"), "build_seconds": meta.get("build_seconds"),
                      **_last(meta.get("history", []), ("loss", "heldout_gold", "heldout_gain", "kl", "beta"))}
    return {"rung": SMALL, "stages": out}


def objective_rm(job: Job, objective: str) -> dict:
    """A reward model of one objective's labeler, on the harmful family's comparisons (harmful
    requests and their benign look-alikes), where the two objectives pull apart."""
    return reward_model(job, ObjectiveLabeler(objective=objective, seed=0), family="harmful")


RUNS = [
    Recipe("ppo_ptx_corpus", ppo_ptx_corpus, sized=True, deps=PPO_DEPS, version="1",
           fields=MAIN_PPO_FIELDS + ("ppo.ptx_coef", "pretrain.corpus_dialogs", "policy"),
           why="PPO-ptx whose ptx term is the pretraining corpus, as InstructGPT's (the alignment tax)"),
    Recipe("ppo_shared_rm", ppo_shared_rm, deps=(small_name("sft"), "rm", "rm_data"), version="1",
           fields=MAIN_PPO_FIELDS + ("ppo.ptx_coef", "sft.demos", "policy"), used_by=never,
           why="PPO-ptx of the small rung's SFT model against the policy-size reward model, as InstructGPT's "
               "one 6B reward model served every policy size"),
    Recipe("small_pipeline", small_pipeline, deps=tuple(PIPELINE.values()), version="1", fields=(),
           why="the whole pipeline at the ladder's small rung: pretraining → SFT → RM → PPO-ptx (and DPO)"),
    Recipe("rm_helpful", partial(objective_rm, objective="helpful"),
           sized=True, deps=("sft", "rm_data"), fields=RM_FIELDS,
           why="reward model of a helpful-only labeler, on the harmful family's comparisons"),
    Recipe("rm_harmless", partial(objective_rm, objective="harmless"),
           sized=True, deps=("sft", "rm_data"), fields=RM_FIELDS,
           why="reward model of a harmlessness labeler, on the harmful family's comparisons"),
]
