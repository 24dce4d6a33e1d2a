"""The on-policy loop, written once: rollout → score → advantages → K epochs of minibatch updates.

Offline methods (SFT, reward models, DPO) train on a fixed data set with `train.train`; on-policy
methods train on samples of the policy being trained, so each iteration first makes its own data:

    1. prompts      `batch_size` prompts per process, drawn afresh each iteration      (B prompts)
    2. experience   sample responses, score them, turn scores into advantages (no gradients)
    3. update       `ppo_epochs` passes over the experience in shuffled minibatches of
                    `minibatch_size` sequences, `grad_accum` of them per optimizer step
    4. log          one history row (globally averaged statistics), a callback, a checkpoint

The loop owns everything that does not depend on the method: seeding (global and per iteration),
the `Accelerator`, AdamW over the trained modules, gradient accumulation and clipping, the
history, the progress bar, and checkpoints that a rerun resumes from (with the random state).
It lives beside `train.py`, not in it, because train.py already holds the offline loop and its
batch builders; both loops take their plumbing from there (`accelerator`, `make_optimizer`,
`resume`, `checkpoint`, `progress_bar`).

What a method provides, by subclassing `Method` (PPO: `ppo.PPO`, ~50 lines):
  - `models()`: the trained modules by name, the policy under "policy" (checkpoints use the names);
  - `experience(acc, models, prompts, seed)`: step 2 for B prompts → an object with `len()` = its
    rows N (B for PPO; G·B for GRPO's groups) and a `mask` (N, T) of the tokens the loss counts;
  - `loss(acc, models, exp, idx, num_tokens, step)`: the loss of rows `idx`, a sum over tokens
    divided by `num_tokens` (the whole optimizer step's, so accumulation equals one big batch);
  - `stats(acc, exp)`: the history row's entries (0-dim tensors are averaged over processes);
  - optionally `end_iteration(acc, row)` (PPO adapts β) and `state_dict` / `load_state_dict` for
    what a resumed run needs besides the weights (PPO's β).
GRPO (chapter 7, `grpo.GRPO`) fits in the same frame with no value model: `models()` is
{"policy": policy}; `experience` samples G responses per prompt and turns each group's rewards
into advantages; `loss` is the clipped surrogate plus β times a KL estimate to the reference;
`stats` logs the reward. tests/test_online.py plugs in a policy-only REINFORCE in 30 lines.

Runs unchanged under `accelerate launch --num_processes N`: each process draws its own prompts
and samples, DDP averages gradients, and the logged statistics are global means.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from .train import TrainConfig, accelerator, checkpoint, make_optimizer, progress_bar, resume

Models = dict[str, torch.nn.Module]
LossFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]]


@dataclass
class OnlineConfig:
    """Settings of the on-policy loop (a method's config extends it: `ppo.PPOConfig`)."""

    steps: int = field(default=40, metadata={"help": "Iterations (rollout + update)."})
    batch_size: int = field(default=64, metadata={"help": "Prompts per rollout, per process."})
    minibatch_size: int = field(default=16, metadata={"help": "Sequences per gradient step."})
    grad_accum: int = field(default=1, metadata={"help": "Minibatches accumulated per optimizer step."})
    ppo_epochs: int = field(default=2, metadata={"help": "Passes over each rollout (PPO's K epochs, GRPO's μ)."})
    lr: float = field(default=5e-5, metadata={"help": "Learning rate of every trained module."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping."})
    seed: int = field(default=0, metadata={"help": "Seed of prompts, sampling and dropout."})
    log_every: int = field(default=1, metadata={"help": "Record the history every this many iterations."})
    checkpoint_dir: str | None = field(default=None, metadata={"help": "Save/resume the run's state here."})
    checkpoint_every: int = field(default=10, metadata={"help": "Iterations between checkpoints."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})


class Method:
    """What an on-policy method plugs into `train_online` (see the module doc); subclass it."""

    name: str = "online"
    """Label of the progress bar and of the resume message."""

    def models(self) -> Models:
        """The trained modules by name, the policy under "policy"; the loop prepares them."""
        raise NotImplementedError

    def experience(self, acc: Accelerator, models: Models, prompts: list[str], seed: int) -> Any:
        """Sample (with `seed`), score and compute advantages for B prompts, without gradients.
        Returns an object with `len()` = N rows and `mask` (N, T) of the tokens that count."""
        raise NotImplementedError

    def loss(self, acc: Accelerator, models: Models, exp: Any, idx: torch.Tensor, num_tokens: torch.Tensor,
             step: int) -> tuple[torch.Tensor, dict]:
        """(loss, metrics) of the rows idx (b,) of `exp`: token sums divided by num_tokens ()."""
        raise NotImplementedError

    def stats(self, acc: Accelerator, exp: Any) -> dict[str, torch.Tensor | float]:
        """History entries of this iteration: 0-dim tensors (averaged over processes) or floats."""
        raise NotImplementedError

    def end_iteration(self, acc: Accelerator, row: dict) -> None:
        """Called with each iteration's row, before the callback (PPO's β controller)."""

    def state_dict(self) -> dict:
        """What a resumed run needs besides the modules' weights and the optimizer."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()`'s output."""


def prompt_batch(prompts: list[str], n: int, step: int, rank: int, seed: int) -> list[str]:
    """n prompts drawn with replacement, deterministic in (seed, step, process rank)."""
    g = torch.Generator().manual_seed(seed * 7919 + step * 104_729 + rank)
    return [prompts[i] for i in torch.randint(len(prompts), (n,), generator=g).tolist()]


def update(acc: Accelerator, optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], exp: Any,
           loss_fn: LossFn, config: OnlineConfig, step: int) -> dict[str, float]:
    """Step 3: `ppo_epochs` passes over the experience in shuffled minibatches; `loss_fn(idx,
    num_tokens)` gives the loss of rows idx. Returns the metrics averaged over optimizer steps."""
    B, sums, n = len(exp), {}, 0
    per_step = config.minibatch_size * config.grad_accum
    g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    for _ in range(config.ppo_epochs):
        perm = torch.randperm(B, generator=g)
        for start in range(0, B - per_step + 1, per_step):
            chunk = perm[start:start + per_step].to(acc.device)
            num_tokens = exp.mask[chunk].sum()  # normalise by the whole step's tokens
            for micro in chunk.split(config.minibatch_size):
                with acc.autocast():
                    loss, metrics = loss_fn(micro, num_tokens)
                acc.backward(loss)
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + float(v) / config.grad_accum
            acc.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            n += 1
    return {k: v / max(1, n) for k, v in sums.items()}


def global_stats(acc: Accelerator, stats: dict[str, torch.Tensor | float]) -> dict[str, float]:
    """`Method.stats` → floats: tensors averaged over processes (one reduction), floats as they are."""
    names = [k for k, v in stats.items() if torch.is_tensor(v)]
    if names:
        means = acc.reduce(torch.stack([stats[k] for k in names]), reduction="mean").tolist()
        stats = {**stats, **dict(zip(names, means))}
    return {k: float(v) for k, v in stats.items()}


def _start(method: Method, config: OnlineConfig) -> tuple[Accelerator, Models, torch.optim.Optimizer, list, int]:
    """Seed, make the accelerator and AdamW (no weight decay), resume from a checkpoint if there
    is one, and prepare: → (acc, prepared models, optimizer, history so far, first iteration)."""
    set_seed(config.seed)
    acc = accelerator()
    models = method.models()
    optimizer = make_optimizer(torch.nn.ModuleDict(models),
                               TrainConfig(steps=config.steps, lr=config.lr, weight_decay=0.0))
    history, start = [], 0
    state = resume(acc, config.checkpoint_dir, method.name, config.steps)
    if state is not None:  # an interrupted run continues where it stopped
        for name, module in models.items():
            module.load_state_dict(state[name])
        optimizer.load_state_dict(state["optimizer"])
        method.load_state_dict(state["method"])
        history, start = state["history"], state["step"]
    *prepared, optimizer = acc.prepare(*models.values(), optimizer)  # one DDP wrapper per module
    return acc, dict(zip(models, prepared)), optimizer, history, start


def train_online(method: Method, prompts: list[str], config: OnlineConfig,
                 callback: Callable[[int, torch.nn.Module], dict] | None = None) -> list[dict]:
    """Train `method.models()` in place on `prompts`; returns one history row per logged
    iteration: "step", `method.stats`, the loss metrics, "seconds", and whatever
    `callback(step, policy)` returns (it runs every iteration)."""
    acc, models, optimizer, history, start = _start(method, config)
    params = [p for module in models.values() for p in module.parameters()]
    bar = progress_bar(acc, start, config.steps, method.name, config.progress)
    t0 = time.time()
    for step in bar:
        batch = prompt_batch(prompts, config.batch_size, step, acc.process_index, config.seed)
        for module in models.values():
            module.eval()  # sampling, old log-probs and values: without dropout
        exp = method.experience(acc, models, batch, seed=config.seed * 1_000_003 + step * 1009 + acc.process_index)
        for module in models.values():
            module.train()
        metrics = update(acc, optimizer, params, exp, partial(method.loss, acc, models, exp, step=step), config, step)
        stats = global_stats(acc, method.stats(acc, exp))
        row = {"step": step + 1, **stats, **metrics, "seconds": time.time() - t0}
        method.end_iteration(acc, row)
        if callback is not None:
            row.update(callback(step + 1, acc.unwrap_model(models["policy"])))
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            history.append(row)
        bar.set_postfix({k: f"{v:.2f}" for k, v in stats.items()})
        checkpoint(acc, config.checkpoint_dir, step + 1, config.steps, config.checkpoint_every, lambda: {
            "step": step + 1, **{k: acc.unwrap_model(m).state_dict() for k, m in models.items()},
            "optimizer": optimizer.state_dict(), "method": method.state_dict(), "history": history})
    bar.close()
    acc.wait_for_everyone()
    for module in models.values():
        acc.unwrap_model(module).eval()
    return history
