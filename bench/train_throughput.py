"""Pretraining throughput: `alignlab.train` vs TRL's `SFTTrainer` (packing on), side by side in one run.

    python bench/train_throughput.py [--profile ci|cpu|gpu] [--steps N] [--device auto|cpu|cuda]

What is held equal. Both trainers start from the same weights (`models.build_model(profile.policy,
tok, seed=0)`, saved once with `models.save`; TRL gets the directory, as an in-memory model with
no name_or_path makes it reach for the Hub) and read the same data: the world's pretraining corpus
as a `datasets.Dataset` with a "text" column. TRL 1.16 appends the eos *string* to each text and
tokenises it, then (packing_strategy="wrapped", the default here) concatenates and cuts rows of
max_length: alignlab's `train.pack` layout. The script checks this instead of trusting it: TRL's
packed tokens must be ours plus at most the tail that `pack` drops, with one eos per document and
no bos. Each optimizer step is batch × seq_len tokens for both (profile.pretrain.batch rows of
profile.policy.max_length; a short TRL row, one per 1000 documents, is padded to full length and
still costs the model a full row), no gradient accumulation, AdamW with betas (0.9, 0.95), weight
decay 0.01, clipping at 1.0, linear warmup over 5% of the steps and cosine decay to 10% of the
profile's lr. fp32 weights; bf16 autocast on CUDA for both (`bf16=True` for TRL), none on CPU.

What is not. TRL defaults `gradient_checkpointing` to True; it is turned off here so both do the
same arithmetic (`--trl-activation-checkpointing` measures TRL's default). On a GPU alignlab
`torch.compile`s and TRL does not (each trainer's default; `--compile on|off` sets both). TRL also
computes token entropy and accuracy every step: that is part of its cost and stays in. Each logs
its loss every step (`log_every=1`, `logging_steps=1`) so the final losses are single-step losses.
The two shuffle the rows differently, so final losses differ by data order as well as by noise.

Timing. One-off costs (tokenisation, packing, building the trainer, allocator warmup, compiling)
are excluded by timing from the end of optimizer step W (`--warmup`, default 3) to the end of step
N, on the clock after a CUDA synchronize: for alignlab, when `train` asks its batch function for
batch W (the loop fetches batch i at the start of step i+1) until `train` returns; for TRL, from
the `on_step_end` callback of step W to that of step N. Both windows hold N - W steps with their
logging. Tokens = (N - W) × batch × seq_len; for TRL the script checks this against the Trainer's
own `num_input_tokens_seen` (with `--trl-packing bfd`, TRL's padding-free default, the batch is one
long sequence of the documents that fit, and its own count is used). The two run one after the
other (alignlab first) on one machine, so a busy machine skews the ratio: `load_avg_1m` is
recorded next to the result. Threads are torch's default (the "device" field says how many); set
OMP_NUM_THREADS=1 on a shared machine: on two busy cores, two threads ran ten times slower than
one and the ratio swung from 0.2 to 2 between runs, while one thread gave the same ratio twice.
Prints one JSON line on stdout (all else goes to stderr). No test asserts a time; record results
in bench/RESULTS.md with the machine and date.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import sys
import tempfile
import time

import offline  # noqa: E402,F401  (first: the Hugging Face offline variables, before transformers loads)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, choices=["ci", "cpu", "gpu"],
                        help="sizes to measure at (default: the active profile)")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimizer steps per trainer (default: 30; 100 on the gpu profile)")
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the timing")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                        help="torch.compile: auto = each trainer's default (alignlab on GPU, TRL never)")
    parser.add_argument("--trl-packing", default="wrapped", choices=["wrapped", "bfd"],
                        help="wrapped = concatenate and cut, alignlab's layout; bfd = TRL's default "
                             "best-fit packing, padding-free (meant for FlashAttention)")
    parser.add_argument("--trl-activation-checkpointing", action="store_true",
                        help="keep TRL's default gradient checkpointing (recomputes the forward)")
    return parser.parse_args(argv)


def hide_cuda_if_asked(argv: list[str]) -> None:
    """`--device cpu` must hide CUDA before torch is imported: `alignlab.train` takes any visible GPU."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--device", default="auto")
    if pre.parse_known_args(argv)[0].device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


if __name__ == "__main__":
    hide_cuda_if_asked(sys.argv[1:])

import torch  # noqa: E402

from alignlab import models, profiles, train, world  # noqa: E402


def now() -> float:
    """Wall-clock seconds, after the GPU has finished the work queued so far."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError, StopIteration):
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    return f"cpu: {cpu}, {torch.get_num_threads()} threads"


def run_alignlab(path: str, rows: torch.Tensor, prof, steps: int, warmup: int, compile_: bool | None) -> dict:
    """`train.train` + `packed_batches` + `lm_loss`, timed from batch `warmup`'s fetch to the return."""
    model, _ = models.load(path, dtype=torch.float32)  # fp32 master weights; autocast does bf16 on GPU
    batches, clock = train.packed_batches(rows, prof.pretrain.batch), {}

    def timed(i: int) -> train.Batch:
        if i == warmup:  # steps 0..warmup-1 are done (one process, no accumulation: batch i = step i)
            clock["t0"] = now()
        return batches(i)
    config = train.TrainConfig(steps=steps, lr=prof.pretrain.lr, log_every=1, progress=False,
                               compile=compile_, desc="bench alignlab")
    history = train.train(model, timed, train.lm_loss, config)
    seconds = now() - clock["t0"]
    return {"seconds": seconds, "tokens": (steps - warmup) * prof.pretrain.batch * prof.policy.max_length,
            "final_loss": history[-1]["loss"]}


def check_same_tokens(packed, rows: torch.Tensor, eos_id: int, n_docs: int, length: int) -> None:
    """TRL's packed rows must hold our token stream: `pack`'s rows plus at most the < length + 1
    tokens it drops at the end, with exactly one eos per document (and so no bos, no lost eos)."""
    flat = torch.tensor([t for ids in packed["input_ids"] for t in ids])
    size = int(max(flat.max(), rows.max())) + 1
    extra = torch.bincount(flat, minlength=size) - torch.bincount(rows.flatten(), minlength=size)
    problems = []
    if (extra < 0).any() or extra.sum() > length:
        problems.append(f"token counts differ ({len(flat)} TRL tokens vs {rows.numel()} in our rows)")
    if int((flat == eos_id).sum()) != n_docs:
        problems.append(f"{int((flat == eos_id).sum())} eos tokens for {n_docs} documents")
    if max(len(ids) for ids in packed["input_ids"]) > length:
        problems.append("a packed row is longer than max_length")
    if problems:
        raise SystemExit("TRL does not see the data alignlab sees: " + "; ".join(problems))


def trl_config(out_dir: str, prof, steps: int, args: argparse.Namespace, compile_: bool):
    from trl import SFTConfig

    cuda = torch.cuda.is_available()
    return SFTConfig(
        output_dir=out_dir, max_steps=steps, per_device_train_batch_size=prof.pretrain.batch,
        gradient_accumulation_steps=1, learning_rate=prof.pretrain.lr, adam_beta1=0.9, adam_beta2=0.95,
        weight_decay=0.01, max_grad_norm=1.0, warmup_steps=max(1, steps // 20),
        lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": 0.1},
        max_length=prof.policy.max_length, packing=True, packing_strategy=args.trl_packing,
        dataset_text_field="text", activation_checkpointing=args.trl_activation_checkpointing,
        torch_compile=compile_, bf16=cuda, use_cpu=not cuda, report_to=[], save_strategy="no",
        logging_steps=1, disable_tqdm=True, include_num_input_tokens_seen=True, seed=0,
        dataloader_num_workers=0)


def run_trl(path: str, docs: list[str], rows: torch.Tensor, prof, steps: int, out_dir: str,
            args: argparse.Namespace, compile_: bool) -> dict:
    """TRL's `SFTTrainer` with packing, timed by a callback from the end of step W to the end of step N."""
    import datasets
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTTrainer

    marks: dict[int, tuple[float, int]] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, targs, state, control, **kwargs):
            if state.global_step in (args.warmup, steps):
                marks[state.global_step] = (now(), state.num_input_tokens_seen)

    tok = models.load_tokenizer(path)
    trainer = SFTTrainer(model=path, args=trl_config(out_dir, prof, steps, args, compile_),
                         train_dataset=datasets.Dataset.from_dict({"text": docs}),
                         processing_class=tok, callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)  # stdout is for our one JSON line
    check_same_tokens(trainer.train_dataset, rows, tok.eos_token_id, len(docs), prof.policy.max_length)
    trainer.train()
    (t0, n0), (t1, n1) = marks[args.warmup], marks[steps]
    expected = (steps - args.warmup) * prof.pretrain.batch * prof.policy.max_length
    if args.trl_packing == "wrapped" and n1 - n0 != expected:
        raise SystemExit(f"TRL fed {n1 - n0} tokens in the timed steps, alignlab {expected}")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"seconds": t1 - t0, "tokens": n1 - n0, "final_loss": losses[-1]}


def quiet_libraries() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible")
    prof = profiles.get_profile(args.profile)
    steps = args.steps or (100 if prof.name == "gpu" else 30)
    if not 1 <= args.warmup < steps:
        raise SystemExit(f"need 1 <= --warmup < --steps (got {args.warmup}, {steps})")
    cuda = torch.cuda.is_available()
    ours_compile = {"auto": None, "on": True, "off": False}[args.compile]
    trl_compile = args.compile == "on"
    quiet_libraries()
    load = os.getloadavg()[0]
    docs = world.pretraining_corpus(prof.pretrain.corpus_dialogs)
    tok = models.train_tokenizer(docs)  # the zoo's tokenizer: same corpus, same vocabulary size
    rows = train.pack(tok, docs, prof.policy.max_length)  # (N, L+1)
    model = models.build_model(prof.policy, tok, seed=0)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        path = str(models.save(model, tok, f"{tmp}/init"))
        ours = run_alignlab(path, rows, prof, steps, args.warmup, ours_compile)
        theirs = run_trl(path, docs, rows, prof, steps, f"{tmp}/trl", args, trl_compile)
    import transformers
    import trl

    ours_tps, trl_tps = ours["tokens"] / ours["seconds"], theirs["tokens"] / theirs["seconds"]
    return {
        "bench": "train_throughput", "profile": prof.name, "device": device_name(),
        "date": datetime.date.today().isoformat(), "n_params": models.n_params(model),
        "seq_len": prof.policy.max_length, "batch": prof.pretrain.batch, "steps": steps,
        "warmup": args.warmup, "alignlab_tokens_per_s": round(ours_tps, 1),
        "trl_tokens_per_s": round(trl_tps, 1), "ratio": round(ours_tps / trl_tps, 3),
        "alignlab_final_loss": round(ours["final_loss"], 4), "trl_final_loss": round(theirs["final_loss"], 4),
        "trl_packing": args.trl_packing, "trl_activation_checkpointing": args.trl_activation_checkpointing,
        "alignlab_compile": cuda if ours_compile is None else ours_compile, "trl_compile": trl_compile,
        "bf16": cuda, "load_avg_1m": round(load, 2),
        "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
    }


if __name__ == "__main__":
    print(json.dumps(main()), flush=True)
