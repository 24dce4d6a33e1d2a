"""Chapter 4's entries: DPO and its family from the SFT model, on the typical labeler's rankings.

`dpo_beta…` is the β sweep (the KL/reward frontier), `dpo_all_pairs` and the `_seed…` runs ask
which pairs to train on and how much one run varies, `ipo`/`simpo`/`orpo`/`kto` are the family.
Every run stores its evaluation (`evaluate.policy_report`) in its meta.json.
"""
from __future__ import annotations

from functools import partial

import torch

from .. import dpo, evaluate, models, reward, train, world
from ..zoo import Job, Recipe
from .rlhf import seed_name

CHAPTER = "04_dpo"
DEPS = ("sft", "rm_data")
DPO_FIELDS = ("dpo.steps", "dpo.batch", "dpo.lr", "dpo.min_gap", "eval.prompts_per_family",
              "eval.samples_per_prompt", "sampling.max_new_tokens", "sampling.batch")
FAMILY = {"ipo": {"beta": 0.1}, "simpo": {"beta": 2.0, "gamma": 1.0}, "orpo": {"beta": 0.1}, "kto": {"beta": 0.1}}
"""Chapter 4's family runs and their hyperparameters (β is IPO's τ and ORPO's λ)."""
SYMBOLS = {"ipo": {"beta": "τ"}, "orpo": {"beta": "λ"}}
"""The symbol chapter 0's notation gives a FAMILY hyperparameter where it is not β (or γ)."""


def family_label(method: str) -> str:
    """'IPO (τ = 0.1)': a family run's method and hyperparameters in chapter 0's notation."""
    names = {"beta": "β", "gamma": "γ"} | SYMBOLS.get(method, {})
    return f"{method.upper()} (" + ", ".join(f"{names[k]} = {v:g}" for k, v in FAMILY[method].items()) + ")"


def dpo_beta_name(beta: float) -> str:
    """Zoo name of chapter 4's DPO run with this β."""
    return f"dpo_beta{beta:g}"


def pair_choice_names(seed: int) -> dict[str, str]:
    """Zoo names of chapter 4's DPO (β = 0.1) runs with this seed: on the profile's far-apart pairs
    (`far`; seed 0 is the β sweep's own run) and on all pairs (`all`)."""
    return {"far": seed_name(dpo_beta_name(0.1), seed), "all": seed_name("dpo_all_pairs", seed)}


def train_preference_run(job: Job, method: str, min_gap: int | None = None, seed: int = 0, **kw) -> dict:
    """A run from the SFT model on the typical labeler's rankings of rm_data, on pairs at least
    `min_gap` (default: the profile's `dpo.min_gap`) places apart in each ranking; `seed` picks
    the subset of pairs and their order; `kw` are the method's hyperparameters."""
    profile, deps = job.profile, job.deps
    min_gap = profile.dpo.min_gap if min_gap is None else min_gap
    (policy, tok), (ref, _) = deps["sft"].load(dtype=torch.float32), deps["sft"].load(dtype=torch.float32)
    # only pairs far apart in the ranking: their labels agree with gold far more often (chapter 4, §5)
    pairs = dpo.preference_pairs(reward.rank_groups(reward.load_groups(deps["rm_data"].path)["train"],
                                                    world.Labeler(seed=0)), min_gap=min_gap)
    # one pass over a random subset as large as the run uses: the reference pass costs as much
    # as training, so it is spent only on pairs the run will see
    pairs = dpo.subset(pairs, min(len(pairs), profile.dpo.steps * profile.dpo.batch), seed)
    ref_lp = dpo.reference_logps(ref, tok, pairs, with_mismatched=method == "kto")
    config = train.TrainConfig(steps=profile.dpo.steps, lr=profile.dpo.lr, warmup_steps=max(1, profile.dpo.steps // 10),
                               desc=f"{job.name} ({profile.name})", checkpoint_every=max(1, profile.dpo.steps // 3),
                               checkpoint_dir=str(job.checkpoint_dir), log_every=5, seed=seed)
    history = dpo.train_preferences(policy, tok, pairs, ref_lp, config, method=method,
                                    batch_size=profile.dpo.batch, **kw)
    models.save(policy, tok, job.out)
    # at another rung the baseline is this rung's SFT model, evaluated here: the zoo's plain `sft`
    # is the policy size's (cached, shared by every run at that size)
    baseline = evaluate.gold_eval(ref, tok, profile=profile) if "@" in job.name else None
    return {"history": history, "method": method, "hyper": kw, "pairs": len(pairs), "min_gap": min_gap, "seed": seed,
            "report": evaluate.policy_report(policy, ref, tok, profile, baseline)}


def beta_run(name: str, beta: float) -> Recipe:
    """A row of the DPO β sweep; a profile's chapters use it when β is in its `dpo.betas`."""
    if name != dpo_beta_name(beta):
        raise ValueError(f"{name!r} is not the name of the β = {beta:g} run ({dpo_beta_name(beta)!r})")
    return Recipe(name, partial(train_preference_run, method="dpo", beta=beta), sized=True, deps=DEPS, version="2",
                  fields=DPO_FIELDS, why=f"DPO with β = {beta:g}", used_by=lambda p: beta in p.dpo.betas)


def pair_choice_run(name: str, seed: int, all_pairs: bool) -> Recipe:
    """A row of the which-pairs runs (DPO, β = 0.1): all C(K, 2) pairs of each ranking, or the
    far-apart ones with another seed; a profile's chapters use seeds below its `dpo.seeds`."""
    if name != pair_choice_names(seed)["all" if all_pairs else "far"]:
        raise ValueError(f"{name!r} is not a pair-choice run name for seed {seed} ({pair_choice_names(seed)})")
    return Recipe(name, partial(train_preference_run, method="dpo", min_gap=1 if all_pairs else None, seed=seed,
                                beta=0.1),
                  sized=True, deps=DEPS, version="1", fields=DPO_FIELDS,
                  why=f"DPO with β = 0.1, {'all C(K, 2)' if all_pairs else 'far-apart'} pairs, seed {seed} "
                      "(chapter 4: which pairs, and how much one run varies)",
                  used_by=lambda p: seed < p.dpo.seeds)


def family_run(method: str) -> Recipe:
    """A row of the DPO family: `method` with its hyperparameters from FAMILY."""
    return Recipe(method, partial(train_preference_run, method=method, **FAMILY[method]), sized=True, deps=DEPS, version="2",
                  fields=DPO_FIELDS, why=f"{method.upper()} (chapter 4)")


RUNS = [
    beta_run("dpo_beta0.03", 0.03),
    beta_run("dpo_beta0.1", 0.1),
    beta_run("dpo_beta0.3", 0.3),
    beta_run("dpo_beta1", 1.0),
    pair_choice_run("dpo_all_pairs", seed=0, all_pairs=True),
    pair_choice_run("dpo_beta0.1_seed1", seed=1, all_pairs=False),
    pair_choice_run("dpo_all_pairs_seed1", seed=1, all_pairs=True),
    pair_choice_run("dpo_beta0.1_seed2", seed=2, all_pairs=False),
    pair_choice_run("dpo_all_pairs_seed2", seed=2, all_pairs=True),
    family_run("ipo"),
    family_run("simpo"),
    family_run("orpo"),
    family_run("kto"),
]
