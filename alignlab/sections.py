"""The settings sections of a profile: one small frozen dataclass per stage of the book.

`profile.pretrain.steps`, `profile.ppo.beta`, … : each chapter reads its own section, so a new
chapter's settings never enter the cache keys of earlier chapters' checkpoints. A field's help
string says what it sets (TRL's convention); `alignlab.profiles` holds the presets that fill them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


def documented(text: str, default=dataclasses.MISSING, **kw):
    """A dataclass field with its help string (TRL's convention)."""
    return field(default=default, metadata={"help": text}, **kw)


@dataclass(frozen=True)
class Pretrain:
    """Chapter 1: the world's corpus and the base model's pretraining."""

    corpus_dialogs: int = documented("Dialogs in the pretraining corpus.")
    steps: int = documented("Optimizer steps of pretraining.")
    batch: int = documented("Packed sequences per pretraining step.")
    lr: float = documented("Peak learning rate of pretraining.")


@dataclass(frozen=True)
class SFT:
    """Chapter 1: supervised fine-tuning on the world's demonstrations."""

    demos: int = documented("SFT demonstrations (few, partial coverage).")
    epochs: int = documented("Passes over the demonstrations.")
    batch: int = documented("Demonstrations per SFT step.")
    lr: float = documented("Peak learning rate of SFT.")


@dataclass(frozen=True)
class Sampling:
    """How every chapter samples responses (rollouts, comparisons, evaluation)."""

    max_new_tokens: int = documented("Response length cap.", 64)
    batch: int = documented("Sequences per generation batch.", 256)


@dataclass(frozen=True)
class Eval:
    """The evaluation protocol every chapter shares (`alignlab.evaluate`)."""

    prompts_per_family: int = documented("Held-out prompts per family.")
    samples_per_prompt: int = documented("Samples per prompt when evaluating.")
    best_of_n: int = documented("N for the best-of-N headroom measurement.")
    headroom_prompts_per_family: int = documented("Prompts per family for best-of-N.")
    labeler_pairs: int = documented("Comparisons used to measure labeler agreement (chapters 0 and 2).")


@dataclass(frozen=True)
class RM:
    """Chapter 2: comparisons and reward models."""

    prompts: int = documented("Training prompts with ranked responses for the reward model.", 600)
    k: int = documented("Responses ranked per prompt (InstructGPT: 4-9).", 8)
    eval_prompts: int = documented("Held-out prompts for reward-model accuracy.", 200)
    epochs: int = documented("Passes over the ranked groups.", 2)
    batch: int = documented("Prompts (groups of K responses) per reward-model step.", 8)
    lr: float = documented("Peak learning rate of reward-model training.", 1e-3)
    curve: tuple[int, ...] = documented("Comparison counts of the accuracy-vs-data curve.", (100, 300, 1000, 4000))
    curve_seeds: int = documented("Reward models per point of that curve.", 2)


@dataclass(frozen=True)
class PPO:
    """Chapter 3: PPO against the reward model."""

    steps: int = documented("PPO iterations of a chapter-3 run.", 60)
    batch: int = documented("Prompts per PPO rollout.", 64)
    minibatch: int = documented("Sequences per PPO gradient step.", 16)
    lr: float = documented("Learning rate of PPO (policy and value).", 1e-4)
    beta: float = documented("KL coefficient of the main PPO runs.", 0.05)
    target_kl: float = documented("Sequence KL (nats) the main PPO run's adaptive β aims at.", 2.0)
    betas: tuple[float, ...] = documented("Fixed-β sweep of chapter 3.", (0.02, 0.2))
    sweep_steps: int = documented("PPO iterations of each β-sweep run.", 40)
    hack_steps: int = documented("PPO iterations of the length-biased run: twice the main run's, since a hack "
                            "shows as gold falling while KL grows, and must fall past the evaluation's noise.", 120)
    eval_every: int = documented("Held-out gold evaluation every this many iterations.", 10)
    kl_horizon: int = documented(
        "Adaptive β's horizon in PPO batches (Ziegler et al.): β moves by at most ±20% per this many "
        "iterations, fast enough to catch a KL jump within a short run.", 3)
    ptx_coef: float = documented(
        "PPO-ptx (InstructGPT eq. 2): weight of the next-token loss on the SFT demonstrations mixed into "
        "every update of chapter 3's main run and β sweep (the length-biased run stays plain PPO, to show "
        "hacking at its clearest); 0 = plain PPO.", 1.0)


@dataclass(frozen=True)
class DPO:
    """Chapter 4: DPO and its family."""

    steps: int = documented("Optimizer steps of each chapter-4 preference run.", 150)
    batch: int = documented("Preference pairs per step.", 16)
    lr: float = documented("Learning rate of DPO and its family: offline pairs are overfitted fast, and past "
                      "a fraction of a nat of KL DPO's gold falls (chapter 4).", 3e-5)
    betas: tuple[float, ...] = documented("DPO's β sweep (the frontier).", (0.03, 0.1, 0.3, 1.0))
    seeds: int = documented("Seeds of the DPO runs that compare far-apart and all pairs.", 3)
    min_gap: int = documented("Train on pairs at least this many places apart in the labeler's ranking "
                         "(its most reliable labels).", 4)


@dataclass(frozen=True)
class CAI:
    """Chapter 5: Constitutional AI (Bai et al., 2022), from the helpful-only model to RL-CAI."""

    samples: int = documented("Helpful-only answers sampled per red-team prompt, each critiqued and revised.", 4)
    rounds: int = documented("Critique → revision rounds (the paper: up to 4).", 4)
    helpful: int = documented("Helpful-only samples on the other families' training prompts mixed into SL-CAI "
                         "(without them it forgets those families).", 675)
    comparisons: int = documented("Sampling rounds of two SL-CAI answers per red-team prompt for RL-CAI's AI "
                             "labels (identical pairs are dropped).", 6)
    beta: float = documented("DPO's β in RL-CAI.", 0.1)
    steps: int = documented("DPO steps of RL-CAI.", 150)
    lr: float = documented("DPO learning rate of RL-CAI.", 3e-5)
    batch: int = documented("Preference pairs per RL-CAI step.", 16)
    hard_beta: float = documented("β of the RL-CAI run pushed harder (Goodharting, §7).", 0.01)
    hard_steps: int = documented("Steps of the RL-CAI run pushed harder.", 450)
    feedback_prompts: int = documented("Held-out prompts per family whose two world responses each judge labels "
                                  "(AI feedback vs simulated humans, §4).", 40)


@dataclass(frozen=True)
class PRM:
    """Chapter 6: outcome and process reward models on the multistep family, and test-time search."""

    problems: int = documented("Held-out multistep problems in the pool every search method draws from.", 200)
    samples: int = documented("SFT samples per pool problem (best-of-N draws N of them; Lightman et al.: 1860).", 64)
    train_problems: int = documented("Training problems whose SFT samples the reward models learn from.", 400)
    train_samples: int = documented("SFT samples per training problem.", 8)
    auto_solutions: int = documented("Training solutions labelled automatically, Math-Shepherd style.", 1000)
    rollouts: int = documented("k: completions rolled out from each step prefix for an automatic label.", 4)
    epochs: int = documented("Passes of ORM and PRM training over their solutions.", 2)
    batch: int = documented("Solutions per ORM / PRM training step.", 16)
    lr: float = documented("Peak learning rate of ORM and PRM training.", 3e-4)
    beam_width: int = documented("Partial solutions kept per problem by PRM-guided beam search.", 4)
    expansions: int = documented("Next steps sampled from each kept partial solution.", 4)
    search_problems: int = documented("Pool problems the step-level searches (beam, reward-guided decoding) solve.", 40)
    guide_weight: float = documented("w of reward-guided decoding: logit + w · PRM probability.", 2.0)


@dataclass(frozen=True)
class RLVR:
    """Chapter 7: GRPO on the arithmetic family against a verifier (DeepSeekMath; DeepSeek-R1)."""

    steps: int = documented("GRPO iterations of each chapter-7 run.", 50)
    prompts: int = documented("Prompts per GRPO rollout (each sampled group_size times).", 16)
    group_size: int = documented("G: completions per prompt (DeepSeekMath: 64).", 8)
    minibatch: int = documented("Completions per GRPO gradient step.", 64)
    epochs: int = documented("μ: passes over each rollout; > 1, or the ratio is always 1 and the clip never acts.", 2)
    lr: float = documented("Learning rate of GRPO.", 1e-4)
    beta: float = documented("k3 KL weight to the SFT model in the loss (DeepSeekMath: 0.04).", 0.04)
    hack_steps: int = documented("Iterations of the runs against a loose verifier: longer than the others, since a "
                            "hack shows as gold falling while the verifier's reward still climbs.", 60)
    ppo_steps: int = documented("Iterations of chapter 3's PPO on the same prompts (§7).", 20)
    eval_every: int = documented("Held-out pass@1 every this many iterations.", 10)
    eval_problems: int = documented("Held-out arithmetic problems of the pass@1 curve (one sample each).", 200)
    pool_problems: int = documented("Held-out problems of the pass@k pools (one pool per model).", 80)
    pool_samples: int = documented("SFT's and GRPO's samples per pool problem: pass@k for k up to this.", 64)
    pool_others: int = documented("The other runs' samples per pool problem (their pass@1 and KL).", 8)


@dataclass(frozen=True)
class W2S:
    """Chapter 8: weak-to-strong generalization on the size ladder (Burns et al., 2023)."""

    tasks: tuple[str, ...] = documented("The grid's tasks (`w2s.TASKS`), chosen by the chapter's screen: their "
                                   "ceiling rises along the ladder.", ("sums", "totals", "preference"))
    screen: tuple[str, ...] = documented("Candidate tasks screened and left out of the grid (ceiling per rung only).",
                                    ("facts", "harmless", "polite", "step"))
    train_examples: int = documented("Training examples per task, split by prompt into the two halves "
                                "(weak supervisor's; ceiling's and student's).", 4000)
    test_examples: int = documented("Held-out test examples per task.", 2000)
    per_prompt: int = documented("Most examples drawn from one prompt (small families need several).", 4)
    tune: str = documented("What trains: 'all' (every block, Burns et al.), 'mlp' (the last block's MLP and the head "
                      "on cached features), 'head' (a linear probe).", "mlp")
    epochs: int = documented("Passes over a half (Burns et al.: 2; a head and one MLP on cached features need 4).", 4)
    batch: int = documented("Examples per step (Burns et al.: 32).", 32)
    lr: float = documented("Adam's learning rate, cosine-annealed to 0.", 3e-4)
    alpha: float = documented("The confidence loss's α after warm-up (Burns et al.'s code: 0.5; at `cpu` size a "
                         "student still near chance when α reaches 0.5 trains on its own noise, so 0.25).", 0.25)
    warmup_frac: float = documented("Fraction of training over which α warms up (their code: 0.1).", 0.5)
    seeds: int = documented("Seeds: each splits the prompts into halves anew and reorders the batches.", 2)
    evals: int = documented("Test evaluations along each student's training (the curves).", 10)
