"""PPO for language models: InstructGPT's third stage (Ouyang et al., 2022; Ziegler et al., 2019).

Four models: the policy π_θ (trained, from SFT), a value model V_ψ (trained, from the reward
model, as InstructGPT did), the frozen reference π_ref (the SFT model) and the frozen reward
model. One iteration:

    1. rollout      sample a response per prompt from π_θ                        (B prompts)
    2. score        s = r_φ(x, y) (or the gold reward, for the "true reward" baseline)
    3. shape        r_t = −β (log π_θ − log π_ref)(y_t), plus s on the last token
    4. advantages   GAE over the shaped rewards with V_ψ; whitened over the batch
    5. update       `ppo_epochs` passes of minibatches: clipped surrogate + value loss
                    (+ PPO-ptx: the pretraining loss mixed in)
    6. control β    towards a target KL (Ziegler et al.'s adaptive controller), or keep it fixed

Steps 1-4 make the experience, step 5 is its loss and step 6 its end-of-iteration hook: `PPO`
is this method plugged into the on-policy loop of `alignlab.online`, which owns prompts, seeding,
the minibatch epochs, logging, checkpoints and resuming; `train_ppo` is the entry point.

Runs unchanged under `accelerate launch --num_processes N`: each process samples its own prompts,
gradients are averaged by DDP, batch statistics (advantage whitening, logged means) are global.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import torch
from accelerate import Accelerator
from transformers import LlamaForTokenClassification

from . import losses
from .online import Method, Models, OnlineConfig, train_online, update
from .rollout import Rollout, generate, left_pad, positions, sequence_kl

RewardFn = Callable[[list[str], list[str]], torch.Tensor]


@dataclass
class PPOConfig(OnlineConfig):
    """Settings of a PPO run (defaults: a small model, a few minutes on a CPU); the loop's own
    (steps, batch_size, minibatch_size, grad_accum, ppo_epochs, lr, max_grad_norm, seed,
    log_every, checkpoint_dir, checkpoint_every, progress) are `online.OnlineConfig`'s."""

    clip_eps: float = field(default=0.2, metadata={"help": "PPO's ratio clip ε."})
    vf_clip_eps: float | None = field(default=0.2, metadata={"help": "Value clip; None = unclipped."})
    vf_coef: float = field(default=0.5, metadata={"help": "Weight of the value loss."})
    gamma: float = field(default=1.0, metadata={"help": "Discount (1: the episode is one response)."})
    lam: float = field(default=0.95, metadata={"help": "GAE λ."})
    beta: float = field(default=0.02, metadata={"help": "KL coefficient (initial, if adaptive); InstructGPT: 0.02."})
    target_kl: float | None = field(
        default=None, metadata={"help": "Sequence KL target (nats) of the adaptive controller; None = fixed β."})
    kl_horizon: int = field(
        default=10_000, metadata={"help": "Adaptive controller's horizon in samples (Ziegler et al.)."})
    ptx_coef: float = field(default=0.0, metadata={"help": "PPO-ptx: weight of the pretraining loss (0 = off)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of rollouts."})
    max_new_tokens: int = field(default=64, metadata={"help": "Response length cap."})
    static_decode: bool = field(default=False, metadata={
        "help": "Sample with `static_decode` (CUDA graphs on a GPU; not the default until measured on one)."})
    whiten_advantages: bool = field(default=True, metadata={"help": "Normalise advantages over the batch."})


@dataclass(frozen=True)
class Objectives:
    """The pieces of PPO a caller may swap (a lab plugs in a student's own); defaults are
    `alignlab.losses`', with the same signatures."""

    kl_penalized_rewards: Callable = losses.kl_penalized_rewards
    gae: Callable = losses.gae
    ppo_clip_loss: Callable = losses.ppo_clip_loss


def value_model_from(path, device=None) -> LlamaForTokenClassification:
    """A per-token value model: a reward-model checkpoint read as token classification (the
    same `model.*` and `score` weights), so V starts from the reward model (InstructGPT)."""
    from transformers.utils import logging as hf_logging
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        # no dropout on the head (HF's default is 0.1): PPO's ratio and value targets assume the
        # same network computed them at rollout and at update time
        vm = LlamaForTokenClassification.from_pretrained(str(path), num_labels=1, dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(level)
    vm.dropout.p, vm.config.classifier_dropout = 0.0, 0.0
    return vm.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def full_sequences(prompt_ids: list[list[int]], tokens: torch.Tensor, mask: torch.Tensor,
                   pad_id: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Left-padded prompts joined to right-padded responses → (ids, attention) (B, L + T), and L:
    column L − 1 + t holds the state before response token t."""
    ids, attn = left_pad(prompt_ids, pad_id)
    return torch.cat([ids, tokens], 1), torch.cat([attn, mask.long()], 1), ids.shape[1]


def response_logprobs_values(policy, value_model, ids: torch.Tensor, attn: torch.Tensor, L: int,
                             tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log π(y_t | x, y_<t) and V(x, y_<t), both (B, T), from one forward of each model."""
    T, pos = tokens.shape[1], positions(attn)
    logits = policy(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=T + 1).logits
    logp = losses.token_logprobs(logits[:, :-1], tokens)  # (B, T)
    values = None
    if value_model is not None:
        values = value_model(input_ids=ids, attention_mask=attn, position_ids=pos).logits[:, L - 1:L - 1 + T, 0]
    return logp, values


def adaptive_beta(beta: float, kl: float, target: float, n_samples: int, horizon: int) -> float:
    """Ziegler et al. (2019, §2.2): β ← β (1 + clip((KL − target)/target, −0.2, 0.2) · n / horizon)."""
    error = max(-0.2, min(0.2, (kl - target) / target))
    return beta * (1 + error * n_samples / horizon)


def _global_whiten(x: torch.Tensor, mask: torch.Tensor, acc: Accelerator) -> torch.Tensor:
    """(x − mean) / std over the masked entries of every process's batch."""
    stats = acc.reduce(torch.stack([(x * mask).sum(), (x * x * mask).sum(), mask.sum()]), reduction="sum")
    mean = stats[0] / stats[2]
    var = stats[1] / stats[2] - mean ** 2
    return (x - mean) * torch.rsqrt(var.clamp(min=1e-8)) * mask


@dataclass
class Experience:
    """One rollout and everything the update needs; all tensors (B, T) unless noted."""

    prompts: list[str]
    texts: list[str]
    ids: torch.Tensor  # (B, L + T) prompt + response ids
    attn: torch.Tensor  # (B, L + T)
    L: int  # prompt columns
    tokens: torch.Tensor
    mask: torch.Tensor
    old_logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    rewards: torch.Tensor  # step 3's shaped reward: −β·(log π − log π_ref), plus the score on the last token
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    scores: torch.Tensor  # (B,)

    def __len__(self) -> int:
        return len(self.prompts)


@torch.no_grad()
def make_experience(acc: Accelerator, policy, value_model, ref, tokenizer, prompts: list[str],
                    reward_fn: RewardFn, beta: float, config: PPOConfig, seed: int,
                    objectives: Objectives = Objectives()) -> Experience:
    """Steps 1-4 of the module doc: sample, score, shape with the KL penalty, GAE."""
    pol, vm = acc.unwrap_model(policy), acc.unwrap_model(value_model)
    if config.static_decode:
        from .static_decode import generate_static
        ro: Rollout = generate_static(pol, tokenizer, prompts, max_new_tokens=config.max_new_tokens,
                                      temperature=config.temperature, seed=seed)
    else:
        ro = generate(pol, tokenizer, prompts, max_new_tokens=config.max_new_tokens,
                      temperature=config.temperature, seed=seed, batch_size=len(prompts))
    ids, attn, L = (x.to(acc.device) if torch.is_tensor(x) else x
                    for x in full_sequences(ro.prompt_ids, ro.tokens, ro.mask, tokenizer.pad_token_id))
    tokens, mask = ro.tokens.to(acc.device), ro.mask.to(acc.device).float()
    with acc.autocast():
        # recomputed rather than taken from the sampler, so ρ = 1 exactly at the first minibatch
        old_logp, old_v = response_logprobs_values(pol, vm, ids, attn, L, tokens)
        ref_logp, _ = response_logprobs_values(ref, None, ids, attn, L, tokens)
    old_logp, old_v, ref_logp = old_logp * mask, old_v.float() * mask, ref_logp * mask
    scores = reward_fn(prompts, ro.texts).to(acc.device).float()
    rewards = objectives.kl_penalized_rewards(scores, old_logp, ref_logp, mask, beta)
    adv, ret = objectives.gae(rewards, old_v, config.gamma, config.lam, mask)
    if config.whiten_advantages:
        adv = _global_whiten(adv, mask, acc)
    return Experience(list(prompts), ro.texts, ids, attn, L, tokens, mask, old_logp, ref_logp, rewards, old_v,
                      adv, ret, scores)


def _loss(acc: Accelerator, policy, value_model, exp: Experience, idx: torch.Tensor, num_tokens: torch.Tensor,
          config: PPOConfig, ptx_fn: Callable[[int], dict] | None, step: int,
          objectives: Objectives) -> tuple[torch.Tensor, dict]:
    """Step 5's loss on rows idx: clipped surrogate + vf_coef · value loss (+ ptx_coef · PPO-ptx)."""
    T = int(exp.mask[idx].sum(-1).max().item())  # drop columns that only hold padding
    ids, attn = exp.ids[idx, :exp.L + T], exp.attn[idx, :exp.L + T]
    sl = (idx, slice(0, T))
    logp, values = response_logprobs_values(policy, value_model, ids, attn, exp.L, exp.tokens[sl])
    pg, m1 = objectives.ppo_clip_loss(logp, exp.old_logprobs[sl], exp.advantages[sl], exp.mask[sl],
                                      config.clip_eps, num_tokens)
    vf, m2 = losses.value_loss(values, exp.old_values[sl], exp.returns[sl], exp.mask[sl],
                               config.vf_clip_eps, num_tokens)
    loss = pg + config.vf_coef * vf
    if ptx_fn is not None and config.ptx_coef > 0:
        loss = loss + config.ptx_coef * _ptx_loss(policy, ptx_fn(step), acc) / config.grad_accum
    return loss, {"pg_loss": pg.detach(), "vf_loss": vf.detach(), **m1, **m2}


def _ptx_loss(policy, batch: dict, acc: Accelerator) -> torch.Tensor:
    """PPO-ptx (InstructGPT eq. 2, second term): next-token NLL on a pretraining batch."""
    batch = {k: v.to(acc.device) for k, v in batch.items()}
    logits = policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return losses.nll_loss(logits, batch["labels"], batch["mask"])[0]


def ppo_update(acc: Accelerator, policy, value_model, optimizer, exp: Experience, config: PPOConfig,
               ptx_fn: Callable[[int], dict] | None = None, step: int = 0,
               objectives: Objectives = Objectives()) -> dict[str, float]:
    """Step 5: `ppo_epochs` passes over the rollout in shuffled minibatches (`online.update`
    with PPO's loss); returns mean metrics."""
    loss_fn = partial(_loss, acc, policy, value_model, exp, config=config, ptx_fn=ptx_fn, step=step,
                      objectives=objectives)
    return update(acc, optimizer, [*policy.parameters(), *value_model.parameters()], exp, loss_fn, config, step)


@dataclass
class PPO(Method):
    """PPO as an `online.Method`: trains the policy and the value model; the reference and the
    reward function stay fixed. Its state between iterations is β (adapted if `target_kl`)."""

    policy: torch.nn.Module
    value_model: torch.nn.Module
    ref: torch.nn.Module
    tokenizer: object
    reward_fn: RewardFn
    config: PPOConfig
    gold_fn: RewardFn | None = None  # logged, never optimised
    ptx_fn: Callable[[int], dict] | None = None  # PPO-ptx batches, by iteration
    objectives: Objectives = Objectives()
    name = "PPO"

    def __post_init__(self) -> None:
        self.beta = self.config.beta  # the KL coefficient of the next rollout; step 6 adapts it

    def models(self) -> Models:
        return {"policy": self.policy, "value": self.value_model}

    def experience(self, acc: Accelerator, models: Models, prompts: list[str], seed: int) -> Experience:
        return make_experience(acc, models["policy"], models["value"], self.ref, self.tokenizer, prompts,
                               self.reward_fn, self.beta, self.config, seed=seed, objectives=self.objectives)

    def loss(self, acc: Accelerator, models: Models, exp: Experience, idx: torch.Tensor,
             num_tokens: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        return _loss(acc, models["policy"], models["value"], exp, idx, num_tokens, self.config, self.ptx_fn,
                     step, self.objectives)

    def stats(self, acc: Accelerator, exp: Experience) -> dict[str, torch.Tensor | float]:
        """Proxy score, sequence KL, the β it was sampled with, response length, gold (if given)."""
        gold = {} if self.gold_fn is None else {
            "gold": self.gold_fn(exp.prompts, exp.texts).to(acc.device).float().mean()}
        return {"score": exp.scores.mean(), "kl": sequence_kl(exp.old_logprobs, exp.ref_logprobs, exp.mask).mean(),
                "beta": self.beta, "length": exp.mask.sum(-1).mean(), **gold}

    def end_iteration(self, acc: Accelerator, row: dict) -> None:
        """Step 6: β towards the target KL (Ziegler et al.), or left alone."""
        if self.config.target_kl is not None:
            self.beta = adaptive_beta(self.beta, row["kl"], self.config.target_kl,
                                      self.config.batch_size * acc.num_processes, self.config.kl_horizon)

    def state_dict(self) -> dict:
        return {"beta": self.beta}

    def load_state_dict(self, state: dict) -> None:
        self.beta = state["beta"]


def train_ppo(policy, ref, value_model, tokenizer, prompts: list[str], reward_fn: RewardFn,
              config: PPOConfig, gold_fn: RewardFn | None = None,
              ptx_fn: Callable[[int], dict] | None = None,
              callback: Callable[[int, torch.nn.Module], dict] | None = None,
              objectives: Objectives = Objectives()) -> list[dict]:
    """Train `policy` and `value_model` in place with PPO; returns one history row per logged
    iteration: proxy score, gold reward (if `gold_fn`), sequence KL, β, clip fraction, value
    loss, response length, seconds — plus whatever `callback(step, policy)` returns.
    `objectives` swaps the shaped reward, GAE or the clipped surrogate (the labs plug in a student's)."""
    ref.eval().requires_grad_(False)
    method = PPO(policy, value_model, ref, tokenizer, reward_fn, config, gold_fn, ptx_fn, objectives)
    return train_online(method, prompts, config, callback)


def rm_reward_fn(rm, tokenizer, normalise_on: tuple[list[str], list[str]] | None = None) -> RewardFn:
    """Reward-model scores as a RewardFn; with `normalise_on` = (prompts, responses), shifted and
    scaled so those responses score mean 0, std 1 (InstructGPT normalised its reward model so
    labeler demonstrations score 0; the scale makes β comparable across reward models)."""
    from .reward import rewards
    mean, std = 0.0, 1.0
    if normalise_on is not None:
        r = rewards(rm, tokenizer, *normalise_on)
        mean, std = float(r.mean()), float(r.std().clamp(min=1e-6))

    def fn(prompts: list[str], responses: list[str]) -> torch.Tensor:
        return (rewards(rm, tokenizer, prompts, responses) - mean) / std
    fn.mean, fn.std = mean, std
    return fn


def gold_reward_fn(prompts: list[str], responses: list[str]) -> torch.Tensor:
    """The world's gold reward as a RewardFn (the "true reward" baseline, and for logging)."""
    from .world import gold_reward
    return torch.tensor([gold_reward(p, r) for p, r in zip(prompts, responses)])
