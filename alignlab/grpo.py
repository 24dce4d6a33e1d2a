"""GRPO: RL from verifiable rewards without a value model (Shao et al., 2024, DeepSeekMath §4;
DeepSeek-AI, 2025, DeepSeek-R1).

Two models in memory, not PPO's four: the policy π_θ (trained) and, only when β > 0, the frozen
reference π_ref. The reward is a program (`alignlab.verifiers`), and the baseline a value model
would learn is replaced by the other samples of the same prompt. One iteration:

    1. rollout      G samples per prompt from π_θ                          (B prompts → B·G rows)
    2. score        r_i = verifier(x, y_i), one number per completion
    3. advantages   Â_i = (r_i − mean_group r) / (std_group r + ε), every token of y_i gets Â_i
                    (`losses.grpo_advantages`; Dr. GRPO: no ÷ std)
    4. update       `ppo_epochs` (GRPO's μ) passes of minibatches of `losses.grpo_loss`:
                    the clipped ratio, plus β · k3 KL to π_ref per token, aggregated by `norm`

`GRPO` is this method plugged into the on-policy loop of `alignlab.online` (prompts, seeding,
minibatch epochs, logging, checkpoints, resuming); `train_grpo` is the entry point. A group whose
G rewards are equal (all right or all wrong) has advantage 0 and teaches nothing: the share of
such groups (`flat_groups`) is the first thing to watch in a GRPO run.

With one pass and one optimizer step per rollout (`ppo_epochs=1`, every row in one step) the
policy at update time is the one that sampled, so ρ = 1 and the old log-probs are the current
ones detached: that forward is skipped, as TRL's GRPOTrainer does. And the G rows of a group share
their prompt, so every log-prob forward (the loss's, the old and the reference ones) runs each
distinct prompt once and hands its keys and values to the group (`group_logprobs`): a fifth less
work per update in the cpu profile (bench/RESULTS.md). `grpo_trl` runs the same config on TRL.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from accelerate import Accelerator

from . import losses
from .online import Method, Models, OnlineConfig, train_online
from .ppo import full_sequences, response_logprobs_values
from .rollout import CACHE_KW, Rollout, generate, positions

RewardFn = Callable[[list[str], list[str]], torch.Tensor]
Verifier = Callable[[str, str], float]


@dataclass
class GRPOConfig(OnlineConfig):
    """Settings of a GRPO run; the loop's own (steps, batch_size = prompts per rollout,
    minibatch_size = completions per gradient step, grad_accum, ppo_epochs = μ, lr, …) are
    `online.OnlineConfig`'s. A rollout has batch_size × group_size rows."""

    group_size: int = field(default=8, metadata={"help": "G: completions per prompt (DeepSeekMath: 64)."})
    clip_eps: float = field(default=0.2, metadata={"help": "Ratio clip ε (acts only after a first optimizer step on the rollout: ppo_epochs > 1, or several steps per rollout)."})
    beta: float = field(default=0.0, metadata={
        "help": "Weight of the k3 KL to the reference in the loss (DeepSeekMath: 0.04; TRL's default 0: no reference)."})
    norm: str = field(default="grpo", metadata={
        "help": "How token losses are averaged: 'grpo' (per completion, then over completions), 'dapo' "
                "(over every token) or 'dr_grpo' (÷ rows × max_new_tokens); see losses.grpo_loss."})
    scale: str | None = field(default="group", metadata={
        "help": "Advantages ÷ the group's std ('group') or only centred (None, Dr. GRPO)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of rollouts."})
    max_new_tokens: int = field(default=64, metadata={"help": "Completion length cap (T of dr_grpo's ÷ B × T)."})
    static_decode: bool = field(default=False, metadata={"help": "Sample with `static_decode` (CUDA graphs)."})


@dataclass(frozen=True)
class GRPOObjectives:
    """The pieces of GRPO a caller may swap (lab 7 plugs in a student's); `alignlab.losses`' by default."""

    grpo_advantages: Callable = losses.grpo_advantages
    grpo_loss: Callable = losses.grpo_loss


@dataclass
class GroupExperience:
    """One rollout of B prompts × G completions, groups consecutive; tensors (N, T), N = B·G."""

    prompts: list[str]  # (N,) each prompt repeated G times
    texts: list[str]
    ids: torch.Tensor  # (N, L + T) prompt + completion ids
    attn: torch.Tensor  # (N, L + T)
    L: int  # prompt columns
    tokens: torch.Tensor
    mask: torch.Tensor
    old_logprobs: torch.Tensor | None  # None: one step per rollout, so π_old = π_θ (ρ = 1)
    ref_logprobs: torch.Tensor | None  # None when β = 0
    rewards: torch.Tensor  # (N,)
    advantages: torch.Tensor  # (N,)

    def __len__(self) -> int:
        return len(self.prompts)


def verifier_reward(verifier: Verifier) -> RewardFn:
    """A (prompt, response) → float verifier as a batched RewardFn."""
    return lambda prompts, responses: torch.tensor([verifier(p, r) for p, r in zip(prompts, responses)])


def check_config(config: GRPOConfig) -> None:
    """Refuse, before any sampling, a config the loop would run wrong without a word: a group of one
    (no baseline), or optimizer steps that do not tile the rollout (`online.update` runs whole
    steps only, so a step larger than the rollout never runs and a remainder is dropped)."""
    if config.group_size < 2:
        raise ValueError(f"group_size must be at least 2, got {config.group_size}: each completion is compared with "
                         "the other completions of its prompt")
    rows, per_step = config.batch_size * config.group_size, config.minibatch_size * config.grad_accum
    if rows % per_step:
        raise ValueError(f"minibatch_size × grad_accum = {per_step} completions per optimizer step must divide the "
                         f"rollout's batch_size × group_size = {rows}: the loop runs whole steps only")


def single_step(config: GRPOConfig) -> bool:
    """True when each rollout is one optimizer step of one pass: π_old is the policy being updated."""
    rows = config.batch_size * config.group_size
    return config.ppo_epochs == 1 and config.minibatch_size * config.grad_accum == rows


def _sample(policy, tokenizer, prompts: list[str], config: GRPOConfig, seed: int) -> Rollout:
    if config.static_decode:
        from .static_decode import generate_static
        return generate_static(policy, tokenizer, prompts, max_new_tokens=config.max_new_tokens,
                               temperature=config.temperature, seed=seed)
    return generate(policy, tokenizer, prompts, max_new_tokens=config.max_new_tokens,
                    temperature=config.temperature, seed=seed, batch_size=len(prompts))


def group_logprobs(policy, ids: torch.Tensor, attn: torch.Tensor, L: int, tokens: torch.Tensor) -> torch.Tensor:
    """log π(y_t | x, y_<t) (b, T) of `ppo.response_logprobs_values`, with each distinct prompt run
    once: the G rows of a group share their prompt, so its keys and values are computed for the U
    distinct prompt rows and copied to the b rows, then the completions run on that cache. The
    prompt columns cost U/b of the work, forward and backward (a quarter of a cpu-profile
    arithmetic rollout's columns; bench/RESULTS.md). ids, attn (b, L + T); tokens (b, T)."""
    T, pos = tokens.shape[1], positions(attn)
    prefix, inv = torch.unique(ids[:, :L], dim=0, return_inverse=True)  # (U, L); row i's prompt: prefix[inv[i]]
    if len(prefix) == len(ids):  # nothing shared
        return response_logprobs_values(policy, None, ids, attn, L, tokens)[0]
    rows = torch.arange(len(ids), device=ids.device)
    first = torch.empty(len(prefix), dtype=torch.long, device=ids.device).scatter_(0, inv, rows)  # (U,) a row of each
    out = policy(input_ids=prefix, attention_mask=attn[first, :L], position_ids=pos[first, :L], use_cache=True,
                 logits_to_keep=1)
    logits = out.logits[inv]  # (b, 1, V): the last prompt column predicts y_0
    if T > 1:
        cache = getattr(out, CACHE_KW)
        cache.batch_select_indices(inv)  # every layer's keys and values (U, …) → (b, …)
        rest = policy(input_ids=ids[:, L:L + T - 1], attention_mask=attn[:, :L + T - 1],
                      position_ids=pos[:, L:L + T - 1], logits_to_keep=T - 1, **{CACHE_KW: cache}).logits
        logits = torch.cat([logits, rest], 1)  # (b, T, V)
    return losses.token_logprobs(logits, tokens)


@torch.no_grad()
def make_group_experience(acc: Accelerator, policy, ref, tokenizer, prompts: list[str], reward_fn: RewardFn,
                          config: GRPOConfig, seed: int,
                          objectives: GRPOObjectives = GRPOObjectives()) -> GroupExperience:
    """Steps 1-3 of the module doc for B prompts → B·G rows."""
    pol = acc.unwrap_model(policy)
    rows = [p for p in prompts for _ in range(config.group_size)]  # group g = rows g·G … g·G + G − 1
    ro = _sample(pol, tokenizer, rows, config, seed)
    ids, attn, L = full_sequences(ro.prompt_ids, ro.tokens, ro.mask, tokenizer.pad_token_id)
    ids, attn = ids.to(acc.device), attn.to(acc.device)
    tokens, mask = ro.tokens.to(acc.device), ro.mask.to(acc.device).float()
    old_logp = ref_logp = None
    with acc.autocast():
        if not single_step(config):  # recomputed, not the sampler's, so ρ = 1 exactly at first
            old_logp = group_logprobs(pol, ids, attn, L, tokens) * mask
        if config.beta > 0:
            ref_logp = group_logprobs(ref, ids, attn, L, tokens) * mask
    rewards = reward_fn(rows, ro.texts).to(acc.device).float()
    adv = objectives.grpo_advantages(rewards, config.group_size, scale=config.scale)
    return GroupExperience(rows, ro.texts, ids, attn, L, tokens, mask, old_logp, ref_logp, rewards, adv)


def step_weight(norm: str, mask: torch.Tensor, num_tokens: torch.Tensor, rows_per_step: int,
                max_new_tokens: int) -> torch.Tensor | float:
    """What turns `grpo_loss` on a minibatch (mask (b, T')) into its share of the optimizer step's
    loss, so accumulated minibatches add up to the loss of the whole step's rows: "dapo" ÷ the
    step's tokens, "grpo" ÷ its rows, "dr_grpo" ÷ rows × max_new_tokens (T' is trimmed padding)."""
    b, T = mask.shape
    return {"dapo": lambda: mask.sum() / num_tokens,
            "grpo": lambda: b / rows_per_step,
            "dr_grpo": lambda: b * T / (rows_per_step * max_new_tokens)}[norm]()


@dataclass
class GRPO(Method):
    """GRPO as an `online.Method`: trains the policy only; `ref` is used when β > 0."""

    policy: torch.nn.Module
    ref: torch.nn.Module | None
    tokenizer: object
    reward_fn: RewardFn
    config: GRPOConfig
    gold_fn: RewardFn | None = None  # logged, never optimised
    objectives: GRPOObjectives = GRPOObjectives()
    name = "GRPO"

    def models(self) -> Models:
        return {"policy": self.policy}

    def experience(self, acc: Accelerator, models: Models, prompts: list[str], seed: int) -> GroupExperience:
        return make_group_experience(acc, models["policy"], self.ref, self.tokenizer, prompts, self.reward_fn,
                                     self.config, seed, self.objectives)

    def loss(self, acc: Accelerator, models: Models, exp: GroupExperience, idx: torch.Tensor,
             num_tokens: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        c = self.config
        T = int(exp.mask[idx].sum(-1).max().item())  # drop columns that only hold padding
        sl = (idx, slice(0, T))
        logp = group_logprobs(models["policy"], exp.ids[idx, :exp.L + T], exp.attn[idx, :exp.L + T], exp.L,
                              exp.tokens[sl])
        old = logp.detach() if exp.old_logprobs is None else exp.old_logprobs[sl]
        ref = None if exp.ref_logprobs is None else exp.ref_logprobs[sl]
        loss, metrics = self.objectives.grpo_loss(logp, old, exp.advantages[idx], exp.mask[sl], c.clip_eps,
                                                  ref, c.beta, c.norm)
        weight = step_weight(c.norm, exp.mask[sl], num_tokens, c.minibatch_size * c.grad_accum, c.max_new_tokens)
        return loss * weight, {"pg_loss": loss.detach(), **metrics}

    def stats(self, acc: Accelerator, exp: GroupExperience) -> dict[str, torch.Tensor | float]:
        """Reward, flat groups (advantage 0), length, gold (if given); the KL is the loss's (k3, when β > 0)."""
        G = self.config.group_size
        r = exp.rewards.view(-1, G)
        out = {"reward": exp.rewards.mean(), "flat_groups": (r == r[:, :1]).all(-1).float().mean(),
               "length": exp.mask.sum(-1).mean()}
        if self.gold_fn is not None:
            out["gold"] = self.gold_fn(exp.prompts, exp.texts).to(acc.device).float().mean()
        return out


def train_grpo(policy, ref, tokenizer, prompts: list[str], reward_fn: RewardFn, config: GRPOConfig,
               gold_fn: RewardFn | None = None, callback: Callable[[int, torch.nn.Module], dict] | None = None,
               objectives: GRPOObjectives = GRPOObjectives()) -> list[dict]:
    """Train `policy` in place with GRPO on `prompts`; returns one history row per logged iteration:
    reward, flat_groups, length, clip_frac, ratio, kl (k3, when β > 0), gold (if `gold_fn`),
    seconds — plus whatever `callback(step, policy)` returns. `ref` may be None when β = 0.
    `objectives` swaps the advantages or the loss (lab 7 plugs in a student's)."""
    check_config(config)
    if config.beta > 0 and ref is None:
        raise ValueError(f"beta = {config.beta} > 0 needs a reference model (ref), e.g. a frozen copy of the SFT model")
    if ref is not None:
        ref.eval().requires_grad_(False)
    return train_online(GRPO(policy, ref, tokenizer, reward_fn, config, gold_fn, objectives), prompts, config, callback)
