"""Profiles: one preset of sizes and budgets per kind of machine.

`ci` runs every notebook in under a minute on two CPU cores, `cpu` is a student's laptop (each
chapter in 10-15 minutes), `gpu` is one GPU (each chapter in about two minutes). A chapter asks
`get_profile()` for its sizes and never hard-codes them, so the same notebook runs everywhere.

A profile holds one small section per stage of the book (`profile.pretrain.steps`,
`profile.rm.epochs`, `profile.ppo.beta`, …) and named model sizes: `policy`, the model every
chapter trains, and a `ladder` of sizes (`small`, `policy`, `large`) that chapters 8-9 train with
the same recipes (`zoo.get("sft@small")`). A new chapter adds a section of its own, so its settings
never enter the cache keys of earlier chapters' checkpoints.

Chosen by the environment variable ALIGNLAB_PROFILE, else `gpu` when CUDA is present, else `cpu`.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

PROFILE_ENV = "ALIGNLAB_PROFILE"


def _help(text: str, default=dataclasses.MISSING, **kw):
    """A dataclass field with its help string (TRL's convention)."""
    return field(default=default, metadata={"help": text}, **kw)


@dataclass(frozen=True)
class ModelSize:
    """Shape of a tiny Llama-style decoder (see `alignlab.models.build_model`)."""

    hidden_size: int = _help("Width of the residual stream.")
    num_layers: int = _help("Number of transformer blocks.")
    num_heads: int = _help("Attention heads (also key/value heads).")
    intermediate_size: int = _help("Width of the SwiGLU MLP.")
    max_length: int = _help("Context length in tokens.", 160)

    def n_params(self, vocab_size: int) -> int:
        """Parameters of `build_model` at this size: tied embedding, attention, SwiGLU, RMSNorms."""
        h, i = self.hidden_size, self.intermediate_size
        per_layer = 4 * h * h + 3 * h * i + 2 * h
        return vocab_size * h + self.num_layers * per_layer + h


@dataclass(frozen=True)
class Pretrain:
    """Chapter 1: the world's corpus and the base model's pretraining."""

    corpus_dialogs: int = _help("Dialogs in the pretraining corpus.")
    steps: int = _help("Optimizer steps of pretraining.")
    batch: int = _help("Packed sequences per pretraining step.")
    lr: float = _help("Peak learning rate of pretraining.")


@dataclass(frozen=True)
class SFT:
    """Chapter 1: supervised fine-tuning on the world's demonstrations."""

    demos: int = _help("SFT demonstrations (few, partial coverage).")
    epochs: int = _help("Passes over the demonstrations.")
    batch: int = _help("Demonstrations per SFT step.")
    lr: float = _help("Peak learning rate of SFT.")


@dataclass(frozen=True)
class Sampling:
    """How every chapter samples responses (rollouts, comparisons, evaluation)."""

    max_new_tokens: int = _help("Response length cap.", 64)
    batch: int = _help("Sequences per generation batch.", 256)


@dataclass(frozen=True)
class Eval:
    """The evaluation protocol every chapter shares (`alignlab.evaluate`)."""

    prompts_per_family: int = _help("Held-out prompts per family.")
    samples_per_prompt: int = _help("Samples per prompt when evaluating.")
    best_of_n: int = _help("N for the best-of-N headroom measurement.")
    headroom_prompts_per_family: int = _help("Prompts per family for best-of-N.")
    labeler_pairs: int = _help("Comparisons used to measure labeler agreement (chapters 0 and 2).")


@dataclass(frozen=True)
class RM:
    """Chapter 2: comparisons and reward models."""

    prompts: int = _help("Training prompts with ranked responses for the reward model.", 600)
    k: int = _help("Responses ranked per prompt (InstructGPT: 4-9).", 8)
    eval_prompts: int = _help("Held-out prompts for reward-model accuracy.", 200)
    epochs: int = _help("Passes over the ranked groups.", 2)
    batch: int = _help("Prompts (groups of K responses) per reward-model step.", 8)
    lr: float = _help("Peak learning rate of reward-model training.", 1e-3)
    curve: tuple[int, ...] = _help("Comparison counts of the accuracy-vs-data curve.", (100, 300, 1000, 4000))
    curve_seeds: int = _help("Reward models per point of that curve.", 2)


@dataclass(frozen=True)
class PPO:
    """Chapter 3: PPO against the reward model."""

    steps: int = _help("PPO iterations of a chapter-3 run.", 60)
    batch: int = _help("Prompts per PPO rollout.", 64)
    minibatch: int = _help("Sequences per PPO gradient step.", 16)
    lr: float = _help("Learning rate of PPO (policy and value).", 1e-4)
    beta: float = _help("KL coefficient of the main PPO runs.", 0.05)
    target_kl: float = _help("Sequence KL (nats) the main PPO run's adaptive β aims at.", 2.0)
    betas: tuple[float, ...] = _help("Fixed-β sweep of chapter 3.", (0.02, 0.2))
    sweep_steps: int = _help("PPO iterations of each β-sweep run.", 40)
    hack_steps: int = _help("PPO iterations of the length-biased run: twice the main run's, since a hack "
                            "shows as gold falling while KL grows, and must fall past the evaluation's noise.", 120)
    eval_every: int = _help("Held-out gold evaluation every this many iterations.", 10)
    kl_horizon: int = _help(
        "Adaptive β's horizon in PPO batches (Ziegler et al.): β moves by at most ±20% per this many "
        "iterations, fast enough to catch a KL jump within a short run.", 3)
    ptx_coef: float = _help(
        "PPO-ptx (InstructGPT eq. 2): weight of the next-token loss on the SFT demonstrations mixed into "
        "every update of chapter 3's main run and β sweep (the length-biased run stays plain PPO, to show "
        "hacking at its clearest); 0 = plain PPO.", 1.0)


@dataclass(frozen=True)
class DPO:
    """Chapter 4: DPO and its family."""

    steps: int = _help("Optimizer steps of each chapter-4 preference run.", 150)
    batch: int = _help("Preference pairs per step.", 16)
    lr: float = _help("Learning rate of DPO and its family: offline pairs are overfitted fast, and past "
                      "a fraction of a nat of KL DPO's gold falls (chapter 4).", 3e-5)
    betas: tuple[float, ...] = _help("DPO's β sweep (the frontier).", (0.03, 0.1, 0.3, 1.0))
    seeds: int = _help("Seeds of the DPO runs that compare far-apart and all pairs.", 3)
    min_gap: int = _help("Train on pairs at least this many places apart in the labeler's ranking "
                         "(its most reliable labels).", 4)


@dataclass(frozen=True)
class CAI:
    """Chapter 5: Constitutional AI (Bai et al., 2022), from the helpful-only model to RL-CAI."""

    samples: int = _help("Helpful-only answers sampled per red-team prompt, each critiqued and revised.", 4)
    rounds: int = _help("Critique → revision rounds (the paper: up to 4).", 4)
    helpful: int = _help("Helpful-only samples on the other families' training prompts mixed into SL-CAI "
                         "(without them it forgets those families).", 675)
    comparisons: int = _help("Sampling rounds of two SL-CAI answers per red-team prompt for RL-CAI's AI "
                             "labels (identical pairs are dropped).", 6)
    beta: float = _help("DPO's β in RL-CAI.", 0.1)
    steps: int = _help("DPO steps of RL-CAI.", 150)
    lr: float = _help("DPO learning rate of RL-CAI.", 3e-5)
    batch: int = _help("Preference pairs per RL-CAI step.", 16)
    hard_beta: float = _help("β of the RL-CAI run pushed harder (Goodharting, §7).", 0.01)
    hard_steps: int = _help("Steps of the RL-CAI run pushed harder.", 450)
    feedback_prompts: int = _help("Held-out prompts per family whose two world responses each judge labels "
                                  "(AI feedback vs simulated humans, §4).", 40)


@dataclass(frozen=True)
class PRM:
    """Chapter 6: outcome and process reward models on the multistep family, and test-time search."""

    problems: int = _help("Held-out multistep problems in the pool every search method draws from.", 200)
    samples: int = _help("SFT samples per pool problem (best-of-N draws N of them; Lightman et al.: 1860).", 64)
    train_problems: int = _help("Training problems whose SFT samples the reward models learn from.", 400)
    train_samples: int = _help("SFT samples per training problem.", 8)
    auto_solutions: int = _help("Training solutions labelled automatically, Math-Shepherd style.", 1000)
    rollouts: int = _help("k: completions rolled out from each step prefix for an automatic label.", 4)
    epochs: int = _help("Passes of ORM and PRM training over their solutions.", 2)
    batch: int = _help("Solutions per ORM / PRM training step.", 16)
    lr: float = _help("Peak learning rate of ORM and PRM training.", 3e-4)
    beam_width: int = _help("Partial solutions kept per problem by PRM-guided beam search.", 4)
    expansions: int = _help("Next steps sampled from each kept partial solution.", 4)
    search_problems: int = _help("Pool problems the step-level searches (beam, reward-guided decoding) solve.", 40)
    guide_weight: float = _help("w of reward-guided decoding: logit + w · PRM probability.", 2.0)


@dataclass(frozen=True)
class RLVR:
    """Chapter 7: GRPO on the arithmetic family against a verifier (DeepSeekMath; DeepSeek-R1)."""

    steps: int = _help("GRPO iterations of each chapter-7 run.", 50)
    prompts: int = _help("Prompts per GRPO rollout (each sampled group_size times).", 16)
    group_size: int = _help("G: completions per prompt (DeepSeekMath: 64).", 8)
    minibatch: int = _help("Completions per GRPO gradient step.", 64)
    epochs: int = _help("μ: passes over each rollout; > 1, or the ratio is always 1 and the clip never acts.", 2)
    lr: float = _help("Learning rate of GRPO.", 1e-4)
    beta: float = _help("k3 KL weight to the SFT model in the loss (DeepSeekMath: 0.04).", 0.04)
    hack_steps: int = _help("Iterations of the runs against a loose verifier: longer than the others, since a "
                            "hack shows as gold falling while the verifier's reward still climbs.", 60)
    ppo_steps: int = _help("Iterations of chapter 3's PPO on the same prompts (§7).", 20)
    eval_every: int = _help("Held-out pass@1 every this many iterations.", 10)
    eval_problems: int = _help("Held-out arithmetic problems of the pass@1 curve (one sample each).", 200)
    pool_problems: int = _help("Held-out problems of the pass@k pools (one pool per model).", 80)
    pool_samples: int = _help("SFT's and GRPO's samples per pool problem: pass@k for k up to this.", 64)
    pool_others: int = _help("The other runs' samples per pool problem (their pass@1 and KL).", 8)


SECTIONS = {"pretrain": Pretrain, "sft": SFT, "sampling": Sampling, "eval": Eval, "rm": RM, "ppo": PPO, "dpo": DPO,
            "cai": CAI, "prm": PRM, "rlvr": RLVR}
"""Section name → its settings class; a chapter adds its own here."""


@dataclass(frozen=True)
class Profile:
    """Every size and budget a chapter needs, for one kind of machine."""

    name: str = _help("`ci`, `cpu` or `gpu`.")
    policy: ModelSize = _help("The model every chapter pretrains, fine-tunes and aligns.")
    ladder: dict[str, ModelSize] = _help(
        "Named sizes for chapters 8-9 (`zoo.get('sft@small')`): `small` (at most a quarter of the policy's "
        "parameters in cpu, an eighth in gpu), `policy` itself, `large` above it.")
    pretrain: Pretrain = _help("Chapter 1: corpus and pretraining.")
    sft: SFT = _help("Chapter 1: supervised fine-tuning.")
    sampling: Sampling = _help("How responses are sampled.")
    eval: Eval = _help("The shared evaluation protocol.")
    rm: RM = _help("Chapter 2: comparisons and reward models.")
    ppo: PPO = _help("Chapter 3: PPO.")
    dpo: DPO = _help("Chapter 4: DPO and its family.")
    cai: CAI = _help("Chapter 5: Constitutional AI.")
    prm: PRM = _help("Chapter 6: process rewards and search.")
    rlvr: RLVR = _help("Chapter 7: RL with verifiable rewards (GRPO).")

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
    ),
    "cpu": Profile(
        name="cpu", policy=_CPU_POLICY,
        ladder=_ladder(ModelSize(hidden_size=96, num_layers=2, num_heads=3, intermediate_size=256), _CPU_POLICY,
                       ModelSize(hidden_size=256, num_layers=6, num_heads=8, intermediate_size=688)),
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
