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
"""
from __future__ import annotations

import atexit
import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from tqdm.auto import tqdm

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


def _save_state(path: Path, state: dict) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_state(config: TrainConfig) -> dict | None:
    return load_checkpoint(config.checkpoint_dir)


def load_checkpoint(checkpoint_dir: str | None) -> dict | None:
    """The training state saved in `checkpoint_dir`, or None; a damaged one is set aside."""
    if not checkpoint_dir or not (Path(checkpoint_dir) / STATE_FILE).exists():
        return None
    path = Path(checkpoint_dir) / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a damaged checkpoint is set aside, never deleted
        aside = path.with_suffix(f".corrupt-{time.time_ns()}")
        os.replace(path, aside)
        print(f"[alignlab] training checkpoint {path} could not be read ({err}); "
              f"kept it as {aside.name} and starting this run from step 0.")
        return None


def _accelerator(config: TrainConfig) -> Accelerator:
    mp = config.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # Another trainer in this process (TRL's, an earlier run) may have fixed the global
    # precision state; start ours afresh. The process group (PartialState) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    acc = Accelerator(mixed_precision=mp, cpu=not torch.cuda.is_available())
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


def train(model: torch.nn.Module, batch_fn: BatchFn, loss_fn: LossFn, config: TrainConfig) -> list[dict]:
    """Train `model` in place; returns the history (one dict per logged step)."""
    set_seed(config.seed)
    acc = _accelerator(config)
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config))
    state, history, start = _load_state(config), [], 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, start = state["history"], state["step"]
        acc.print(f"[alignlab] resuming '{config.desc}' from its checkpoint at step {start}/{config.steps}")
    model.train()
    model, optimizer = acc.prepare(model, optimizer)
    use_compile = config.compile if config.compile is not None else torch.cuda.is_available()
    fwd = torch.compile(model) if use_compile else model
    bar = tqdm(range(start, config.steps), desc=config.desc, initial=start, total=config.steps,
               disable=not (config.progress and acc.is_main_process), leave=False)
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
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.3f}")
        if config.checkpoint_dir and (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
            if acc.is_main_process:
                _save_state(Path(config.checkpoint_dir) / STATE_FILE, {
                    "step": step + 1, "model": acc.unwrap_model(model).state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "history": history, "config": asdict(config)})
            acc.wait_for_everyone()
    bar.close()
    acc.wait_for_everyone()
    acc.unwrap_model(model, keep_fp32_wrapper=False).eval()
    return history


# --- the language-modelling objective (pretraining and SFT) and its batch builders ----------


def lm_loss(model: torch.nn.Module, batch: Batch, num_tokens: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
    """Next-token NLL on `batch` = {input_ids, attention_mask, labels, mask}, all (B, T)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return nll_loss(logits, batch["labels"], batch["mask"], num_tokens)


def _rows(i: int, batch_size: int, n_rows: int, seed: int) -> torch.Tensor:
    """Row indices of micro-batch i: consecutive slices of a fresh permutation every epoch."""
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
        x = rows[_rows(i, batch_size, len(rows), seed)]  # (B, L+1)
        ones = torch.ones_like(x[:, :-1])
        return {"input_ids": x[:, :-1], "attention_mask": ones, "labels": x[:, 1:], "mask": ones}
    return batch_fn


def sft_batches(tokenizer, pairs: list[tuple[str, str]], batch_size: int, max_length: int,
                seed: int = 0) -> BatchFn:
    """SFT batches from (prompt, response) pairs: right-padded; only response tokens (and the
    closing eos) are targets, so the model imitates answers, not questions."""
    from .models import encode_dialog, right_pad

    encoded = [encode_dialog(tokenizer, p, r) for p, r in pairs]
    encoded = [(ids[: max_length + 1], n) for ids, n in encoded]

    def batch_fn(i: int) -> Batch:
        chosen = [encoded[j] for j in _rows(i, batch_size, len(encoded), seed).tolist()]
        x, attn = right_pad([ids for ids, _ in chosen], tokenizer.pad_token_id)  # (B, T)
        m = attn.clone()
        for b, (_, n_prompt) in enumerate(chosen):
            m[b, :n_prompt] = 0  # targets: response tokens + eos only
        return {"input_ids": x[:, :-1], "attention_mask": attn[:, :-1], "labels": x[:, 1:], "mask": m[:, 1:]}
    return batch_fn
