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

Runs unchanged under `accelerate launch --num_processes N`: each process samples its own prompts,
gradients are averaged by DDP, batch statistics (advantage whitening, logged means) are global.
"""
from __future__ import annotations

import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import LlamaForTokenClassification

from . import losses
from .rollout import Rollout, generate, left_pad, positions
from .train import STATE_FILE, TrainConfig, _accelerator, _save_state, load_checkpoint, make_optimizer

RewardFn = Callable[[list[str], list[str]], torch.Tensor]


@dataclass
class PPOConfig:
    """Settings of a PPO run (defaults: a small model, a few minutes on a CPU)."""

    steps: int = field(default=40, metadata={"help": "PPO iterations (rollout + update)."})
    batch_size: int = field(default=64, metadata={"help": "Prompts per rollout, per process."})
    minibatch_size: int = field(default=16, metadata={"help": "Sequences per gradient step."})
    grad_accum: int = field(default=1, metadata={"help": "Minibatches accumulated per optimizer step."})
    ppo_epochs: int = field(default=2, metadata={"help": "Passes over each rollout."})
    lr: float = field(default=5e-5, metadata={"help": "Learning rate of policy and value model."})
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
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping."})
    whiten_advantages: bool = field(default=True, metadata={"help": "Normalise advantages over the batch."})
    seed: int = field(default=0, metadata={"help": "Seed of prompts, sampling and dropout."})
    log_every: int = field(default=1, metadata={"help": "Record the history every this many iterations."})
    checkpoint_dir: str | None = field(default=None, metadata={"help": "Save/resume the run's state here."})
    checkpoint_every: int = field(default=10, metadata={"help": "Iterations between checkpoints."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})


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


def _minibatch_loss(policy, value_model, exp: Experience, idx: torch.Tensor, num_tokens: torch.Tensor,
                    config: PPOConfig, objectives: Objectives = Objectives()) -> tuple[torch.Tensor, dict]:
    T = int(exp.mask[idx].sum(-1).max().item())  # drop columns that only hold padding
    ids, attn = exp.ids[idx, :exp.L + T], exp.attn[idx, :exp.L + T]
    sl = (idx, slice(0, T))
    logp, values = response_logprobs_values(policy, value_model, ids, attn, exp.L, exp.tokens[sl])
    pg, m1 = objectives.ppo_clip_loss(logp, exp.old_logprobs[sl], exp.advantages[sl], exp.mask[sl],
                                  config.clip_eps, num_tokens)
    vf, m2 = losses.value_loss(values, exp.old_values[sl], exp.returns[sl], exp.mask[sl],
                               config.vf_clip_eps, num_tokens)
    return pg + config.vf_coef * vf, {"pg_loss": pg.detach(), "vf_loss": vf.detach(), **m1, **m2}


def ppo_update(acc: Accelerator, policy, value_model, optimizer, exp: Experience, config: PPOConfig,
               ptx_fn: Callable[[int], dict] | None = None, step: int = 0,
               objectives: Objectives = Objectives()) -> dict[str, float]:
    """Step 5: `ppo_epochs` passes over the rollout in shuffled minibatches; returns mean metrics."""
    B, sums, n = len(exp), {}, 0
    per_step = config.minibatch_size * config.grad_accum
    g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    for _ in range(config.ppo_epochs):
        perm = torch.randperm(B, generator=g)
        for start in range(0, B - per_step + 1, per_step):
            chunk = perm[start:start + per_step].to(acc.device)
            num_tokens = exp.mask[chunk].sum()
            for micro in chunk.split(config.minibatch_size):
                with acc.autocast():
                    loss, metrics = _minibatch_loss(policy, value_model, exp, micro, num_tokens, config, objectives)
                    if ptx_fn is not None and config.ptx_coef > 0:
                        loss = loss + config.ptx_coef * _ptx_loss(policy, ptx_fn(step), acc) / config.grad_accum
                acc.backward(loss)
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + float(v) / config.grad_accum
            acc.clip_grad_norm_(list(policy.parameters()) + list(value_model.parameters()), config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            n += 1
    return {k: v / max(1, n) for k, v in sums.items()}


def _ptx_loss(policy, batch: dict, acc: Accelerator) -> torch.Tensor:
    """PPO-ptx (InstructGPT eq. 2, second term): next-token NLL on a pretraining batch."""
    batch = {k: v.to(acc.device) for k, v in batch.items()}
    logits = policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return losses.nll_loss(logits, batch["labels"], batch["mask"])[0]


def sequence_kl(exp: Experience) -> torch.Tensor:
    """(B,) the k1 estimate of KL(π ‖ π_ref) of each sampled response: Σ_t log π − log π_ref."""
    return ((exp.old_logprobs - exp.ref_logprobs) * exp.mask).sum(-1)


def _prompt_batch(prompts: list[str], n: int, step: int, rank: int, seed: int) -> list[str]:
    g = torch.Generator().manual_seed(seed * 7919 + step * 104_729 + rank)
    return [prompts[i] for i in torch.randint(len(prompts), (n,), generator=g).tolist()]


def train_ppo(policy, ref, value_model, tokenizer, prompts: list[str], reward_fn: RewardFn,
              config: PPOConfig, gold_fn: RewardFn | None = None,
              ptx_fn: Callable[[int], dict] | None = None,
              callback: Callable[[int, torch.nn.Module], dict] | None = None,
              objectives: Objectives = Objectives()) -> list[dict]:
    """Train `policy` and `value_model` in place with PPO; returns one history row per logged
    iteration: proxy score, gold reward (if `gold_fn`), sequence KL, β, clip fraction, value
    loss, response length, seconds — plus whatever `callback(step, policy)` returns.
    `objectives` swaps the shaped reward, GAE or the clipped surrogate (the labs plug in a student's)."""
    from tqdm.auto import tqdm
    set_seed(config.seed)
    acc = _accelerator(TrainConfig(steps=config.steps))
    ref.eval().requires_grad_(False)
    both = torch.nn.ModuleDict({"policy": policy, "value": value_model})
    optimizer = make_optimizer(both, TrainConfig(steps=config.steps, lr=config.lr, weight_decay=0.0))
    beta, history, start = config.beta, [], 0
    state = load_checkpoint(config.checkpoint_dir)
    if state is not None:  # an interrupted run continues where it stopped
        policy.load_state_dict(state["policy"]), value_model.load_state_dict(state["value"])
        optimizer.load_state_dict(state["optimizer"])
        beta, history, start = state["beta"], state["history"], state["step"]
        acc.print(f"[alignlab] resuming PPO from its checkpoint at iteration {start}/{config.steps}")
    policy, value_model, optimizer = acc.prepare(policy, value_model, optimizer)
    t0 = time.time()
    bar = tqdm(range(start, config.steps), desc="PPO", initial=start, total=config.steps,
               disable=not (config.progress and acc.is_main_process), leave=False)
    for step in bar:
        batch = _prompt_batch(prompts, config.batch_size, step, acc.process_index, config.seed)
        policy.eval(), value_model.eval()
        exp = make_experience(acc, policy, value_model, ref, tokenizer, batch, reward_fn, beta, config,
                              seed=config.seed * 1_000_003 + step * 1009 + acc.process_index,
                              objectives=objectives)
        policy.train(), value_model.train()
        metrics = ppo_update(acc, policy, value_model, optimizer, exp, config, ptx_fn, step, objectives)
        row_t = torch.stack([exp.scores.mean(), sequence_kl(exp).mean(), exp.mask.sum(-1).mean(),
                             (gold_fn(exp.prompts, exp.texts).to(acc.device).float().mean()
                              if gold_fn else torch.zeros((), device=acc.device))])
        score, kl, length, gold = (acc.reduce(row_t, reduction="mean")).tolist()
        row = {"step": step + 1, "score": score, "kl": kl, "beta": beta, "length": length,
               **({"gold": gold} if gold_fn else {}), **metrics, "seconds": time.time() - t0}
        if config.target_kl is not None:
            beta = adaptive_beta(beta, kl, config.target_kl, config.batch_size * acc.num_processes, config.kl_horizon)
        if callback is not None:
            row.update(callback(step + 1, acc.unwrap_model(policy)))
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            history.append(row)
        bar.set_postfix(score=f"{score:.2f}", kl=f"{kl:.2f}")
        if config.checkpoint_dir and (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
            if acc.is_main_process:
                _save_state(Path(config.checkpoint_dir) / STATE_FILE, {
                    "step": step + 1, "policy": acc.unwrap_model(policy).state_dict(),
                    "value": acc.unwrap_model(value_model).state_dict(), "optimizer": optimizer.state_dict(),
                    "beta": beta, "history": history})
            acc.wait_for_everyone()
    acc.wait_for_everyone()
    acc.unwrap_model(policy).eval(), acc.unwrap_model(value_model).eval()
    return history


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
