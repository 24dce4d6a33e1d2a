"""Profiles: one preset of sizes and budgets per kind of machine.

`ci` runs every notebook in under a minute on two CPU cores, `cpu` is a student's laptop (each
chapter in 10-15 minutes), `gpu` is one GPU (each chapter in about two minutes). A chapter asks
`get_profile()` for its sizes and never hard-codes them, so the same notebook runs everywhere.

A profile holds one small section per stage of the book (`profile.pretrain.steps`,
`profile.rm.epochs`, `profile.ppo.beta`, …) and named model sizes: `policy`, the model every
chapter trains, and a `ladder` of sizes (`small`, `policy`, `large`) that chapters 8-9 train with
the same recipes (`zoo.get("sft@small")`). A new chapter adds a section of its own (in
`alignlab.sections`), so its settings never enter the cache keys of earlier chapters' checkpoints.

Chosen by the environment variable ALIGNLAB_PROFILE, else `gpu` when CUDA is present, else `cpu`.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from .sections import (CAI, DPO, PPO, PRM, RLVR, RM, SFT, W2S, Eval, Pretrain,  # noqa: F401  (profiles.RLVR …)
                       Sampling, documented)

PROFILE_ENV = "ALIGNLAB_PROFILE"


@dataclass(frozen=True)
class ModelSize:
    """Shape of a tiny Llama-style decoder (see `alignlab.models.build_model`)."""

    hidden_size: int = documented("Width of the residual stream.")
    num_layers: int = documented("Number of transformer blocks.")
    num_heads: int = documented("Attention heads (also key/value heads).")
    intermediate_size: int = documented("Width of the SwiGLU MLP.")
    max_length: int = documented("Context length in tokens.", 160)

    def n_params(self, vocab_size: int) -> int:
        """Parameters of `build_model` at this size: tied embedding, attention, SwiGLU, RMSNorms."""
        h, i = self.hidden_size, self.intermediate_size
        per_layer = 4 * h * h + 3 * h * i + 2 * h
        return vocab_size * h + self.num_layers * per_layer + h


SECTIONS = {"pretrain": Pretrain, "sft": SFT, "sampling": Sampling, "eval": Eval, "rm": RM, "ppo": PPO, "dpo": DPO,
            "cai": CAI, "prm": PRM, "rlvr": RLVR, "w2s": W2S}
"""Section name → its settings class; a chapter adds its own here."""


@dataclass(frozen=True)
class Profile:
    """Every size and budget a chapter needs, for one kind of machine."""

    name: str = documented("`ci`, `cpu` or `gpu`.")
    policy: ModelSize = documented("The model every chapter pretrains, fine-tunes and aligns.")
    ladder: dict[str, ModelSize] = documented(
        "Named sizes for chapters 8-9 (`zoo.get('sft@small')`): `small` (at most a quarter of the policy's "
        "parameters in cpu, an eighth in gpu), `policy` itself, `large` above it.")
    pretrain: Pretrain = documented("Chapter 1: corpus and pretraining.")
    sft: SFT = documented("Chapter 1: supervised fine-tuning.")
    sampling: Sampling = documented("How responses are sampled.")
    eval: Eval = documented("The shared evaluation protocol.")
    rm: RM = documented("Chapter 2: comparisons and reward models.")
    ppo: PPO = documented("Chapter 3: PPO.")
    dpo: DPO = documented("Chapter 4: DPO and its family.")
    cai: CAI = documented("Chapter 5: Constitutional AI.")
    prm: PRM = documented("Chapter 6: process rewards and search.")
    rlvr: RLVR = documented("Chapter 7: RL with verifiable rewards (GRPO).")
    w2s: W2S = documented("Chapter 8: weak-to-strong generalization.")

    def replace(self, **changes) -> "Profile":
        """A copy with some settings changed: a whole value (`policy=ModelSize(...)`) or, for a
        section, only the named fields (`ppo={"steps": 10}`)."""
        for section, value in list(changes.items()):
            if section in SECTIONS and isinstance(value, dict):
                changes[section] = dataclasses.replace(getattr(self, section), **value)
        return dataclasses.replace(self, **changes)

    def size(self, rung: str) -> ModelSize:
        """The model size named `rung` (`policy` or a rung of the ladder)."""
        if rung == "policy":
            return self.policy
        if rung not in self.ladder:
            raise KeyError(f"profile {self.name!r} has no model size {rung!r}; its sizes are {sorted(self.ladder)}")
        return self.ladder[rung]

    def at(self, rung: str) -> "Profile":
        """This profile with the policy replaced by the size `rung`: what `name@rung` entries train."""
        return self if rung == "policy" else self.replace(policy=self.size(rung))


def _ladder(small: ModelSize, policy: ModelSize, large: ModelSize) -> dict[str, ModelSize]:
    return {"small": small, "policy": policy, "large": large}


_CI_POLICY = ModelSize(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=176)
_CPU_POLICY = ModelSize(hidden_size=192, num_layers=4, num_heads=6, intermediate_size=512)
_GPU_POLICY = ModelSize(hidden_size=512, num_layers=8, num_heads=8, intermediate_size=1376)

PROFILES: dict[str, Profile] = {
    "ci": Profile(
        name="ci", policy=_CI_POLICY,
        ladder=_ladder(ModelSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=88), _CI_POLICY,
                       ModelSize(hidden_size=96, num_layers=3, num_heads=4, intermediate_size=256)),
        pretrain=Pretrain(corpus_dialogs=8_400, steps=210, batch=16, lr=3e-3),
        sft=SFT(demos=338, epochs=3, batch=16, lr=5e-4),
        sampling=Sampling(max_new_tokens=64, batch=128),
        eval=Eval(prompts_per_family=8, samples_per_prompt=2, best_of_n=8, headroom_prompts_per_family=4,
                  labeler_pairs=1000),
        rm=RM(prompts=150, k=4, eval_prompts=40, epochs=2, batch=8, lr=1e-3, curve=(50, 300), curve_seeds=2),
        ppo=PPO(steps=8, batch=16, minibatch=8, lr=1e-4, beta=0.05, target_kl=1.0, betas=(0.02, 1.0),
                sweep_steps=20, hack_steps=16, eval_every=4),
        dpo=DPO(steps=6, batch=8, lr=1e-4, betas=(0.1, 0.3), min_gap=2, seeds=2),
        cai=CAI(samples=1, rounds=2, helpful=120, comparisons=2, steps=6, lr=1e-4, batch=8, hard_steps=12,
                feedback_prompts=6),
        prm=PRM(problems=8, samples=8, train_problems=40, train_samples=4, auto_solutions=40, rollouts=2, epochs=1,
                batch=8, beam_width=2, expansions=2, search_problems=4),
        rlvr=RLVR(steps=4, prompts=4, group_size=4, minibatch=16, hack_steps=6, ppo_steps=4, eval_every=2, eval_problems=16, pool_problems=8,
                  pool_samples=8),
        w2s=W2S(train_examples=400, test_examples=200, epochs=1, seeds=1, evals=4),
    ),
    "cpu": Profile(
        name="cpu", policy=_CPU_POLICY,
        ladder=_ladder(ModelSize(hidden_size=96, num_layers=2, num_heads=3, intermediate_size=256), _CPU_POLICY,
                       ModelSize(hidden_size=256, num_layers=4, num_heads=8, intermediate_size=688)),
        pretrain=Pretrain(corpus_dialogs=56_000, steps=840, batch=24, lr=3e-3),
        sft=SFT(demos=675, epochs=3, batch=16, lr=5e-4),
        sampling=Sampling(max_new_tokens=64, batch=256),
        eval=Eval(prompts_per_family=40, samples_per_prompt=4, best_of_n=64, headroom_prompts_per_family=12,
                  labeler_pairs=3000),
        rm=RM(prompts=600, k=8, eval_prompts=200, epochs=2, batch=8, lr=1e-3, curve=(100, 300, 1000, 4000),
              curve_seeds=2),
        ppo=PPO(steps=60, batch=64, minibatch=16, lr=1e-4, beta=0.05, target_kl=1.0, betas=(0.02, 0.2),
                sweep_steps=30, hack_steps=120, eval_every=10),
        dpo=DPO(steps=150, batch=16, lr=3e-5, betas=(0.03, 0.1, 0.3, 1.0)),
        cai=CAI(),
        prm=PRM(),
        rlvr=RLVR(),
        w2s=W2S(),
    ),
    "gpu": Profile(
        name="gpu", policy=_GPU_POLICY,
        ladder=_ladder(ModelSize(hidden_size=160, num_layers=4, num_heads=5, intermediate_size=432), _GPU_POLICY,
                       ModelSize(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=2048)),
        pretrain=Pretrain(corpus_dialogs=280_000, steps=4200, batch=64, lr=1e-3),
        sft=SFT(demos=1350, epochs=3, batch=32, lr=2e-4),
        sampling=Sampling(max_new_tokens=64, batch=512),
        eval=Eval(prompts_per_family=100, samples_per_prompt=8, best_of_n=64, headroom_prompts_per_family=40,
                  labeler_pairs=10000),
        rm=RM(prompts=2000, k=8, eval_prompts=500, epochs=1, batch=16, lr=1e-4,
              curve=(100, 300, 1000, 3000, 10000), curve_seeds=3),
        ppo=PPO(steps=200, batch=256, minibatch=64, lr=3e-5, beta=0.05, target_kl=4.0, betas=(0.01, 0.05, 0.2),
                sweep_steps=100, hack_steps=400, eval_every=20),
        dpo=DPO(steps=600, batch=32, lr=3e-5, betas=(0.03, 0.1, 0.3, 1.0)),
        cai=CAI(samples=8, helpful=1350, comparisons=8, steps=600, batch=32, hard_steps=1800, feedback_prompts=100),
        prm=PRM(problems=500, samples=256, train_problems=2000, train_samples=16, auto_solutions=4000, rollouts=8,
                batch=32, lr=1e-4, beam_width=8, expansions=8, search_problems=100),
        rlvr=RLVR(steps=200, prompts=64, group_size=16, minibatch=256, lr=3e-5, hack_steps=400, ppo_steps=200, eval_every=20, eval_problems=500,
                  pool_problems=300, pool_samples=256),
        w2s=W2S(train_examples=10000, test_examples=3000, tune="all", epochs=2, lr=5e-5, alpha=0.5, warmup_frac=0.1,
                seeds=3),
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


# --- views: what a cached reader may read -------------------------------------------------------


class ProfileView:
    """The settings of a profile that one reader declared, and only those. Whatever caches its
    result under a key (a zoo recipe, a cached evaluation) reads the profile through one of these,
    so it cannot read a setting its key does not cover: a change to that setting would otherwise
    leave a stale result silently reused. Settings are named by path: `ppo.steps` (one field),
    `ppo` (a whole section), `policy`. `name` is always readable."""

    def __init__(self, profile, fields: tuple[str, ...] | None, reader: str, fix: str = "",
                 prefix: str = "") -> None:
        self._profile, self._fields, self._reader, self._fix, self._prefix = profile, fields, reader, fix, prefix

    def __getattr__(self, attr: str):
        path = self._prefix + attr
        value = getattr(self._profile, attr)
        if (attr == "name" and not self._prefix) or self._fields is None or path in self._fields:
            return value
        if any(f.startswith(path + ".") for f in self._fields):  # part of a section: a narrower view
            return ProfileView(value, self._fields, self._reader, self._fix, path + ".")
        raise AttributeError(f"{self._reader} reads profile.{path} but declares only {self._fields}; "
                             f"{self._fix or 'declare it'} so the key covers it")

    def __repr__(self) -> str:
        return f"ProfileView({self._prefix or 'profile'}, fields={self._fields}, reader={self._reader!r})"


def resolve(profile: "Profile | ProfileView | str | None") -> "Profile | ProfileView":
    """A profile (or a view of one) as it is; a name, or None for the active profile, looked up."""
    return get_profile(profile) if profile is None or isinstance(profile, str) else profile


def whole(profile: "Profile | ProfileView | str | None") -> Profile:
    """The whole profile behind any views: only for hashing the keys of entries a reader depends
    on (each entry's key covers its own fields), never for reading settings."""
    profile = resolve(profile)
    while isinstance(profile, ProfileView):
        profile = profile._profile
    return profile


def read(profile: "Profile | ProfileView", fields: tuple[str, ...]) -> dict:
    """{path: value} of settings named by path (`ppo.steps`, `policy`), as plain JSON-able values:
    the part of a cache key that covers what a reader reads."""
    out = {}
    for path in fields:
        value = profile
        for attr in path.split("."):
            value = getattr(value, attr)
        out[path] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return out


def describe() -> str:
    """A table of the profiles' main sizes, for the book's first chapter."""
    rows = ["profile  width layers  ctx  pretrain steps×batch  SFT demos  eval samples  best-of-N"]
    for p in PROFILES.values():
        n_eval = p.eval.prompts_per_family * p.eval.samples_per_prompt
        rows.append(f"{p.name:8} {p.policy.hidden_size:5} {p.policy.num_layers:6} {p.policy.max_length:4} "
                    f"{p.pretrain.steps:>11}×{p.pretrain.batch:<8} {p.sft.demos:9} "
                    f"{n_eval:>9}/family {p.eval.best_of_n:9}")
    return "\n".join(rows)
