"""One small training loop on `accelerate`, used by every method in the book.

A method contributes two things: a *batch function* `batch_fn(i) -> dict of tensors` that
returns global micro-batch number i (deterministic in i, so a resumed run sees exactly the data
it would have seen), and a *loss function* `loss_fn(model, batch, num_tokens) -> (loss, metrics)`
from `alignlab.losses`. The loop owns the rest: AdamW, warmup + cosine schedule, gradient
accumulation (the loss is normalised by the token count of the whole optimizer step, so 8×1
equals 1×8), gradient clipping, bf16 autocast and `torch.compile` on a GPU, progress bars, a
loss history a notebook can plot, and atomic checkpoints that a rerun resumes from.

Runs unchanged under `accelerate launch --num_processes N`: process r takes micro-batches
r, r+N, r+2N, … and gradients are averaged by DDP.

The plumbing every loop shares is public here, and `alignlab.online` (the on-policy loop of PPO
and GRPO) uses it too: `accelerator`, `make_optimizer`, `resume` / `checkpoint` (atomic, with
every process's random state, so a resumed run draws the same numbers as an uninterrupted one)
and `progress_bar`.
"""
from __future__ import annotations

import atexit
import contextlib
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import gather_object, set_seed
from tqdm.auto import tqdm

from . import cache
from .losses import Metrics, nll_loss

Batch = dict[str, torch.Tensor]
BatchFn = Callable[[int], Batch]
LossFn = Callable[[torch.nn.Module, Batch, torch.Tensor], tuple[torch.Tensor, Metrics]]
STATE_FILE = "train_state.pt"


@dataclass
class TrainConfig:
    """Optimisation settings shared by every method."""

    steps: int = field(metadata={"help": "Optimizer steps."})
    lr: float = field(default=1e-3, metadata={"help": "Peak learning rate."})
    grad_accum: int = field(default=1, metadata={"help": "Micro-batches per optimizer step (per process)."})
    warmup_steps: int | None = field(default=None, metadata={"help": "Linear warmup; None = 5% of steps."})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "Cosine decays to this fraction of lr."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW decay on matrices only."})
    betas: tuple[float, float] = field(default=(0.9, 0.95), metadata={"help": "AdamW betas."})
    max_grad_norm: float | None = field(default=1.0, metadata={"help": "Clip gradients to this norm."})
    seed: int = field(default=0, metadata={"help": "Seed of torch's generators."})
    mixed_precision: str = field(default="auto", metadata={"help": "'no', 'bf16', or 'auto' (bf16 on GPU)."})
    compile: bool | None = field(default=None, metadata={"help": "torch.compile the model; None = on GPU."})
    log_every: int = field(default=10, metadata={"help": "Record the history every this many steps."})
    checkpoint_dir: str | None = field(default=None, metadata={"help": "Save/resume training state here."})
    checkpoint_every: int = field(default=100, metadata={"help": "Steps between checkpoints."})
    desc: str = field(default="train", metadata={"help": "Label of the progress bar."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})


def lr_lambda(config: TrainConfig) -> Callable[[int], float]:
    """Linear warmup, then cosine decay to min_lr_ratio (the schedule of most LM papers)."""
    warm = config.warmup_steps if config.warmup_steps is not None else max(1, config.steps // 20)

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, config.steps - warm))
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on vectors (norms, biases), as in nanoGPT."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def batch_weight(batch: Batch) -> torch.Tensor:
    """What one micro-batch contributes to the step's normaliser: its `count` (e.g. the pairs of
    a reward-model batch) if it says, else its masked tokens, else its rows."""
    if "count" in batch:
        return batch["count"].float()
    if "mask" in batch:
        return batch["mask"].sum().float()
    return torch.tensor(float(len(next(iter(batch.values())))))


def save_state(path: Path, state: dict) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with cache.replacing(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(checkpoint_dir: str | None) -> dict | None:
    """The training state saved in `checkpoint_dir`, or None; a damaged one is set aside."""
    if not checkpoint_dir or not (Path(checkpoint_dir) / STATE_FILE).exists():
        return None
    path = Path(checkpoint_dir) / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a damaged checkpoint is set aside, never deleted
        aside = cache.set_aside(path)
        print(f"[alignlab] training checkpoint {path} could not be read ({err}); "
              f"kept it as {aside.name} and starting this run from step 0.")
        return None


def rng_state() -> dict:
    """This process's random generators: python `random`, numpy, torch CPU (and CUDA if present)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()  # the current device: one per process
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def resume(acc: Accelerator, checkpoint_dir: str | None, desc: str, steps: int) -> dict | None:
    """The state a `checkpoint` left in `checkpoint_dir` (None: start afresh), with this
    process's random generators restored from it. Call it after seeding, before drawing."""
    state = load_checkpoint(checkpoint_dir)
    if state is None:
        return None
    rng = state.get("rng") or []
    if acc.process_index < len(rng):
        set_rng_state(rng[acc.process_index])
    acc.print(f"[alignlab] resuming '{desc}' from its checkpoint at step {state['step']}/{steps}")
    return state


def checkpoint(acc: Accelerator, checkpoint_dir: str | None, done: int, steps: int, every: int,
               state: Callable[[], dict]) -> None:
    """After `done` of `steps` steps, every `every` (not at the end): save `state()` (it must hold
    "step": done) and the random state of every process. All processes must call it."""
    if not checkpoint_dir or done % every or done >= steps:
        return
    rng = gather_object([rng_state()])  # (num_processes,) list, in process order
    if acc.is_main_process:
        save_state(Path(checkpoint_dir) / STATE_FILE, {**state(), "rng": rng})
    acc.wait_for_everyone()


def accelerator(mixed_precision: str = "auto") -> Accelerator:
    """A fresh `Accelerator`: bf16 autocast on a GPU that has it when "auto", CPU otherwise."""
    if mixed_precision == "auto":
        mixed_precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # Another trainer in this process (TRL's, an earlier run) may have fixed the global
    # precision state; start ours afresh. The process group (PartialState) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    acc = Accelerator(mixed_precision=mixed_precision, cpu=not torch.cuda.is_available())
    if acc.num_processes > 1:
        atexit.unregister(_leave_process_group)  # once, however many runs
        atexit.register(_leave_process_group)
    return acc


def _leave_process_group() -> None:
    """Under a multi-process launcher, leave the process group before the interpreter shuts down:
    gloo's worker threads, torn down during finalisation instead, can abort the process
    ("terminate called without an active exception") after the script itself succeeded."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def progress_bar(acc: Accelerator, start: int, steps: int, desc: str, show: bool) -> tqdm:
    """Steps start..steps-1 behind a bar on the main process (a resumed run's bar starts part-full)."""
    return tqdm(range(start, steps), desc=desc, initial=start, total=steps,
                disable=not (show and acc.is_main_process), leave=False)


def _step(acc: Accelerator, model, fwd, micro: list[Batch], loss_fn: LossFn) -> tuple[torch.Tensor, Metrics]:
    """Forward/backward over one step's micro-batches; returns the step loss and mean metrics."""
    n = acc.reduce(sum(batch_weight(b) for b in micro).to(acc.device), reduction="sum")
    total, sums = torch.zeros((), device=acc.device), {}
    for i, batch in enumerate(micro):
        batch = {k: v.to(acc.device) for k, v in batch.items()}
        sync = contextlib.nullcontext() if i == len(micro) - 1 else acc.no_sync(model)
        with sync, acc.autocast():
            loss, metrics = loss_fn(fwd, batch, n)
            # DDP averages gradients over processes; the loss is already a global mean.
            acc.backward(loss * acc.num_processes)
        total += loss.detach()
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + v.detach().float() / len(micro)
    return acc.reduce(total, reduction="sum"), sums


def train(model: torch.nn.Module, batch_fn: BatchFn, loss_fn: LossFn, config: TrainConfig,
          evaluate: Callable[[torch.nn.Module], dict] | None = None) -> list[dict]:
    """Train `model` in place; returns the history (one dict per logged step). `evaluate(model)`,
    if given, runs without gradients at every logged step and its numbers join that row."""
    set_seed(config.seed)
    acc = accelerator(config.mixed_precision)
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config))
    state, history, start = resume(acc, config.checkpoint_dir, config.desc, config.steps), [], 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, start = state["history"], state["step"]
    model.train()
    model, optimizer = acc.prepare(model, optimizer)
    use_compile = config.compile if config.compile is not None else torch.cuda.is_available()
    fwd = torch.compile(model) if use_compile else model
    bar = progress_bar(acc, start, config.steps, config.desc, config.progress)
    t0, W, r = time.time(), acc.num_processes, acc.process_index
    for step in bar:
        micro = [batch_fn((step * config.grad_accum + i) * W + r) for i in range(config.grad_accum)]
        loss, metrics = _step(acc, model, fwd, micro, loss_fn)
        grad_norm = acc.clip_grad_norm_(model.parameters(), config.max_grad_norm or float("inf"))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            row = {"step": step + 1, "loss": loss.item(), "lr": scheduler.get_last_lr()[0],
                   "grad_norm": float(grad_norm), "seconds": time.time() - t0,
                   **{k: float(v) for k, v in metrics.items()}}
            if evaluate is not None:
                with torch.no_grad():
                    row.update(evaluate(acc.unwrap_model(model)))
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.3f}")
        checkpoint(acc, config.checkpoint_dir, step + 1, config.steps, config.checkpoint_every, lambda: {
            "step": step + 1, "model": acc.unwrap_model(model).state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "history": history, "config": asdict(config)})
    bar.close()
    acc.wait_for_everyone()
    acc.unwrap_model(model, keep_fp32_wrapper=False).eval()
    return history


# --- the language-modelling objective (pretraining and SFT) and its batch builders ----------


def lm_loss(model: torch.nn.Module, batch: Batch, num_tokens: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
    """Next-token NLL on `batch` = {input_ids, attention_mask, labels, mask}, all (B, T)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return nll_loss(logits, batch["labels"], batch["mask"], num_tokens)


def batch_rows(i: int, batch_size: int, n_rows: int, seed: int) -> torch.Tensor:
    """Row indices (batch_size,) of micro-batch i of a data set of n_rows: consecutive slices of
    a fresh permutation every epoch (deterministic in i and seed, so a resumed run sees the same)."""
    start = i * batch_size
    epoch, offset = divmod(start, n_rows)
    out = []
    while len(out) < batch_size:
        perm = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        out += perm[offset:offset + batch_size - len(out)].tolist()
        epoch, offset = epoch + 1, 0
    return torch.tensor(out)




def pack(tokenizer, docs: list[str], length: int) -> torch.Tensor:
    """Concatenate ids(doc) + [eos] over all docs and cut into rows of length + 1.

    Returns (N, length + 1): each row gives inputs row[:-1] and next-token labels row[1:].
    """
    ids: list[int] = []
    for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids += enc + [tokenizer.eos_token_id]
    n = len(ids) // (length + 1)
    return torch.tensor(ids[: n * (length + 1)]).view(n, length + 1)  # (N, L+1)


def packed_batches(rows: torch.Tensor, batch_size: int, seed: int = 0) -> BatchFn:
    """Pretraining batches from `pack`'s rows: every token is a target."""
    def batch_fn(i: int) -> Batch:
        x = rows[batch_rows(i, batch_size, len(rows), seed)]  # (B, L+1)
        ones = torch.ones_like(x[:, :-1])
        return {"input_ids": x[:, :-1], "attention_mask": ones, "labels": x[:, 1:], "mask": ones}
    return batch_fn


def response_mask(attention_mask: torch.Tensor, prompt_lengths: torch.Tensor) -> torch.Tensor:
    """1 on a dialog's response tokens (and its closing eos), 0 on the prompt and on padding:
    attention_mask (B, T), prompt_lengths (B,) → (B, T), attention_mask's dtype."""
    t = torch.arange(attention_mask.shape[1], device=attention_mask.device)[None, :]  # (1, T)
    return ((t >= prompt_lengths[:, None]) & attention_mask.bool()).to(attention_mask.dtype)


def sft_batches(tokenizer, pairs: list[tuple[str, str]], batch_size: int, max_length: int,
                seed: int = 0, mask_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = response_mask
                ) -> BatchFn:
    """SFT batches from (prompt, response) pairs: right-padded; only response tokens (and the
    closing eos) are targets, so the model imitates answers, not questions. `mask_fn(attention_mask,
    prompt_lengths)` picks the targets on the whole dialog (B, T + 1) before the shift (lab 1
    plugs in the student's)."""
    from .models import encode_dialog, right_pad

    encoded = [encode_dialog(tokenizer, p, r) for p, r in pairs]
    encoded = [(ids[: max_length + 1], n) for ids, n in encoded]

    def batch_fn(i: int) -> Batch:
        chosen = [encoded[j] for j in batch_rows(i, batch_size, len(encoded), seed).tolist()]
        x, attn = right_pad([ids for ids, _ in chosen], tokenizer.pad_token_id)  # (B, T + 1)
        m = mask_fn(attn, torch.tensor([n for _, n in chosen]))  # (B, T + 1)
        return {"input_ids": x[:, :-1], "attention_mask": attn[:, :-1], "labels": x[:, 1:], "mask": m[:, 1:]}
    return batch_fn
