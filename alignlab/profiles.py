"""Profiles: one preset of sizes and budgets per kind of machine.

`ci` runs every notebook in under a minute on two CPU cores, `cpu` is a student's laptop (each
chapter in 10-15 minutes), `gpu` is one GPU (each chapter in about two minutes). A chapter asks
`get_profile()` for its sizes and never hard-codes them, so the same notebook runs everywhere.

Chosen by the environment variable ALIGNLAB_PROFILE, else `gpu` when CUDA is present, else `cpu`.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

PROFILE_ENV = "ALIGNLAB_PROFILE"


@dataclass(frozen=True)
class ModelSize:
    """Shape of a tiny Llama-style decoder (see `alignlab.models.build_model`)."""

    hidden_size: int = field(metadata={"help": "Width of the residual stream."})
    num_layers: int = field(metadata={"help": "Number of transformer blocks."})
    num_heads: int = field(metadata={"help": "Attention heads (also key/value heads)."})
    intermediate_size: int = field(metadata={"help": "Width of the SwiGLU MLP."})
    max_length: int = field(default=160, metadata={"help": "Context length in tokens."})


@dataclass(frozen=True)
class Profile:
    """Every size and budget a chapter needs, for one kind of machine."""

    name: str = field(metadata={"help": "`ci`, `cpu` or `gpu`."})
    model: ModelSize = field(metadata={"help": "Policy / base model shape."})
    corpus_dialogs: int = field(metadata={"help": "Dialogs in the pretraining corpus."})
    pretrain_steps: int = field(metadata={"help": "Optimizer steps of pretraining."})
    pretrain_batch: int = field(metadata={"help": "Packed sequences per pretraining step."})
    pretrain_lr: float = field(metadata={"help": "Peak learning rate of pretraining."})
    sft_demos: int = field(metadata={"help": "SFT demonstrations (few, partial coverage)."})
    sft_epochs: int = field(metadata={"help": "Passes over the demonstrations."})
    sft_batch: int = field(metadata={"help": "Demonstrations per SFT step."})
    sft_lr: float = field(metadata={"help": "Peak learning rate of SFT."})
    eval_prompts_per_family: int = field(metadata={"help": "Held-out prompts per family."})
    eval_samples_per_prompt: int = field(metadata={"help": "Samples per prompt when evaluating."})
    best_of_n: int = field(metadata={"help": "N for the best-of-N headroom measurement."})
    headroom_prompts_per_family: int = field(metadata={"help": "Prompts per family for best-of-N."})
    labeler_pairs: int = field(metadata={"help": "Comparisons used to measure labeler agreement."})
    rm_prompts: int = field(default=600, metadata={"help": "Training prompts with ranked responses for the reward model."})
    rm_k: int = field(default=8, metadata={"help": "Responses ranked per prompt (InstructGPT: 4-9)."})
    rm_eval_prompts: int = field(default=200, metadata={"help": "Held-out prompts for reward-model accuracy."})
    rm_epochs: int = field(default=2, metadata={"help": "Passes over the ranked groups."})
    rm_batch: int = field(default=8, metadata={"help": "Prompts (groups of K responses) per reward-model step."})
    rm_lr: float = field(default=1e-3, metadata={"help": "Peak learning rate of reward-model training."})
    rm_curve: tuple[int, ...] = field(default=(100, 300, 1000, 4000),
                                      metadata={"help": "Comparison counts of the accuracy-vs-data curve."})
    rm_curve_seeds: int = field(default=2, metadata={"help": "Reward models per point of that curve."})
    ppo_steps: int = field(default=60, metadata={"help": "PPO iterations of a chapter-3 run."})
    ppo_batch: int = field(default=64, metadata={"help": "Prompts per PPO rollout."})
    ppo_minibatch: int = field(default=16, metadata={"help": "Sequences per PPO gradient step."})
    ppo_lr: float = field(default=1e-4, metadata={"help": "Learning rate of PPO (policy and value)."})
    ppo_beta: float = field(default=0.05, metadata={"help": "KL coefficient of the main PPO runs."})
    ppo_target_kl: float = field(default=2.0, metadata={"help": "Sequence KL (nats) the main PPO run's adaptive β aims at."})
    ppo_betas: tuple[float, ...] = field(default=(0.02, 0.2), metadata={"help": "Fixed-β sweep of chapter 3."})
    ppo_sweep_steps: int = field(default=40, metadata={"help": "PPO iterations of each β-sweep run."})
    ppo_eval_every: int = field(default=10, metadata={"help": "Held-out gold evaluation every this many iterations."})
    ppo_kl_horizon: int = field(default=3, metadata={
        "help": "Adaptive β's horizon in PPO batches (Ziegler et al.): β moves by at most ±20% per this "
                "many iterations, fast enough to catch a KL jump within a short run."})
    ppo_ptx_coef: float = field(default=1.0, metadata={
        "help": "PPO-ptx (InstructGPT eq. 2): weight of the next-token loss on the SFT demonstrations mixed "
                "into every update of chapter 3's main run and β sweep (the length-biased run stays plain PPO, "
                "to show hacking at its clearest); 0 = plain PPO."})
    dpo_steps: int = field(default=150, metadata={"help": "Optimizer steps of each chapter-4 preference run."})
    dpo_batch: int = field(default=16, metadata={"help": "Preference pairs per step."})
    dpo_lr: float = field(default=1e-4, metadata={"help": "Learning rate of DPO and its family."})
    dpo_betas: tuple[float, ...] = field(default=(0.03, 0.1, 0.3), metadata={"help": "DPO's β sweep (the frontier)."})
    dpo_seeds: int = field(default=3, metadata={
        "help": "Seeds of the DPO runs that compare far-apart and all pairs."})
    dpo_min_gap: int = field(default=4, metadata={
        "help": "Train on pairs at least this many places apart in the labeler's ranking (its most reliable labels)."})
    max_new_tokens: int = field(default=64, metadata={"help": "Response length cap."})
    gen_batch: int = field(default=256, metadata={"help": "Sequences per generation batch."})

    def replace(self, **changes) -> "Profile":
        """A copy with some fields changed (e.g. `profile.replace(pretrain_steps=10)`)."""
        return dataclasses.replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "ci": Profile(
        name="ci",
        model=ModelSize(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=176),
        corpus_dialogs=6_000, pretrain_steps=150, pretrain_batch=16, pretrain_lr=3e-3,
        sft_demos=300, sft_epochs=2, sft_batch=16, sft_lr=1e-3,
        eval_prompts_per_family=8, eval_samples_per_prompt=2, best_of_n=8,
        headroom_prompts_per_family=4, labeler_pairs=1000,
        rm_prompts=150, rm_k=4, rm_eval_prompts=40, rm_epochs=2, rm_batch=8, rm_lr=1e-3,
        rm_curve=(50, 300), rm_curve_seeds=2,
        ppo_steps=4, ppo_batch=16, ppo_minibatch=8, ppo_lr=1e-4, ppo_beta=0.05, ppo_target_kl=1.0,
        ppo_betas=(0.02, 0.2), ppo_sweep_steps=3, dpo_steps=6, dpo_batch=8, dpo_lr=1e-4, dpo_betas=(0.1, 0.3),
        dpo_min_gap=2, dpo_seeds=2,
        ppo_eval_every=2,
        max_new_tokens=64, gen_batch=128,
    ),
    "cpu": Profile(
        name="cpu",
        model=ModelSize(hidden_size=192, num_layers=4, num_heads=6, intermediate_size=512),
        corpus_dialogs=40_000, pretrain_steps=600, pretrain_batch=24, pretrain_lr=3e-3,
        sft_demos=600, sft_epochs=3, sft_batch=16, sft_lr=5e-4,
        eval_prompts_per_family=40, eval_samples_per_prompt=4, best_of_n=64,
        headroom_prompts_per_family=12, labeler_pairs=3000,
        rm_prompts=600, rm_k=8, rm_eval_prompts=200, rm_epochs=2, rm_batch=8, rm_lr=1e-3,
        rm_curve=(100, 300, 1000, 4000), rm_curve_seeds=2,
        ppo_steps=60, ppo_batch=64, ppo_minibatch=16, ppo_lr=1e-4, ppo_beta=0.05, ppo_target_kl=2.0,
        ppo_betas=(0.02, 0.2), ppo_sweep_steps=30, dpo_steps=150, dpo_batch=16, dpo_lr=1e-4,
        dpo_betas=(0.03, 0.1, 0.3),
        ppo_eval_every=10,
        max_new_tokens=64, gen_batch=256,
    ),
    "gpu": Profile(
        name="gpu",
        model=ModelSize(hidden_size=512, num_layers=8, num_heads=8, intermediate_size=1376),
        corpus_dialogs=200_000, pretrain_steps=3000, pretrain_batch=64, pretrain_lr=1e-3,
        sft_demos=1200, sft_epochs=3, sft_batch=32, sft_lr=2e-4,
        eval_prompts_per_family=100, eval_samples_per_prompt=8, best_of_n=64,
        headroom_prompts_per_family=40, labeler_pairs=10000,
        rm_prompts=2000, rm_k=8, rm_eval_prompts=500, rm_epochs=1, rm_batch=16, rm_lr=1e-4,
        rm_curve=(100, 300, 1000, 3000, 10000), rm_curve_seeds=3,
        ppo_steps=200, ppo_batch=256, ppo_minibatch=64, ppo_lr=3e-5, ppo_beta=0.05, ppo_target_kl=4.0,
        ppo_betas=(0.01, 0.05, 0.2), ppo_sweep_steps=100, dpo_steps=600, dpo_batch=32, dpo_lr=3e-5,
        dpo_betas=(0.03, 0.1, 0.3),
        ppo_eval_every=20,
        max_new_tokens=64, gen_batch=512,
    ),
}


def profile_name() -> str:
    """The active profile's name: ALIGNLAB_PROFILE, else `gpu` with CUDA, else `cpu`."""
    name = os.environ.get(PROFILE_ENV, "").strip().lower()
    if name:
        if name not in PROFILES:
            raise ValueError(
                f"{PROFILE_ENV}={name!r} is not a profile; choose one of {sorted(PROFILES)}."
            )
        return name
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def get_profile(name: str | None = None) -> Profile:
    """The named profile, or the active one when `name` is None."""
    name = name or profile_name()
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}; choose one of {sorted(PROFILES)}.")
    return PROFILES[name]


class ProfileView:
    """The fields of a profile that one reader declared, and only those. Whatever caches its result
    under a key (a zoo recipe, a cached evaluation) reads the profile through one of these, so it
    cannot read a field its key does not cover: a change to that field would otherwise leave a
    stale result silently reused. `name` is always readable."""

    def __init__(self, profile: "Profile | ProfileView", fields: tuple[str, ...] | None, reader: str,
                 fix: str = "") -> None:
        self._profile, self._fields, self._reader, self._fix = profile, fields, reader, fix

    def __getattr__(self, field: str):
        if field != "name" and self._fields is not None and field not in self._fields:
            raise AttributeError(f"{self._reader} reads profile.{field} but declares only {self._fields}; "
                                 f"{self._fix or 'declare it'} so the key covers it")
        return getattr(self._profile, field)

    def __repr__(self) -> str:
        return f"ProfileView({self.name!r}, fields={self._fields}, reader={self._reader!r})"


def resolve(profile: "Profile | ProfileView | str | None") -> "Profile | ProfileView":
    """A profile (or a view of one) as it is; a name, or None for the active profile, looked up."""
    return get_profile(profile) if profile is None or isinstance(profile, str) else profile


def whole(profile: "Profile | ProfileView | str | None") -> Profile:
    """The whole profile behind any views: only for hashing the keys of entries a reader depends
    on (each entry's key covers its own fields), never for reading fields."""
    profile = resolve(profile)
    while isinstance(profile, ProfileView):
        profile = profile._profile
    return profile


def read(profile: "Profile | ProfileView", fields: tuple[str, ...]) -> dict:
    """{field: value} of `fields`: the part of a cache key that covers what a reader reads."""
    return {f: getattr(profile, f) for f in fields}


def describe() -> str:
    """A table of the profiles' main sizes, for the book's first chapter."""
    rows = ["profile  width layers  ctx  pretrain steps×batch  SFT demos  eval samples  best-of-N"]
    for p in PROFILES.values():
        n_eval = p.eval_prompts_per_family * p.eval_samples_per_prompt
        rows.append(f"{p.name:8} {p.model.hidden_size:5} {p.model.num_layers:6} {p.model.max_length:4} "
                    f"{p.pretrain_steps:>11}×{p.pretrain_batch:<8} {p.sft_demos:9} "
                    f"{n_eval:>9}/family {p.best_of_n:9}")
    return "\n".join(rows)
