"""Pretraining throughput: `alignlab.train` vs TRL's `SFTTrainer` (packing on), one run.

    python bench/train_throughput.py [--profile ci|cpu|gpu] [--steps N]

Both train the same architecture from the same initial weights on the same world corpus, with
the same batch size, sequence length and learning rate, for the same number of optimizer steps.
TRL packs with `packing_strategy="wrapped"` by default (concatenate and cut: alignlab's layout);
`--trl-packing bfd` measures TRL's default best-fit packing, which is padding-free and built for
FlashAttention — without it, each packed batch becomes one long sequence.
Throughput counts the tokens each trainer actually fed the model (TRL's packing can leave rows a
little short; its `num_input_tokens_seen` counts them) after the first WARMUP steps, so one-off
costs (allocation, dataset tokenisation, compilation) are excluded for both. Prints one JSON
line. Nothing is timed in a test; record results in bench/RESULTS.md with the machine and date.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

from alignlab import models, profiles, train, world  # noqa: E402

WARMUP = 3


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or "cpu"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"cpu: {cpu}, {torch.get_num_threads()} threads"


def run_alignlab(path: str, docs: list[str], prof, steps: int) -> dict:
    model, tok = models.load(path, dtype=torch.float32)
    rows = train.pack(tok, docs, prof.model.max_length)
    batches, stamps = train.packed_batches(rows, prof.pretrain_batch), {}

    def timed(i: int):
        stamps.setdefault(i, time.perf_counter())
        return batches(i)
    cfg = train.TrainConfig(steps=steps, lr=prof.pretrain_lr, progress=False, log_every=1)
    hist = train.train(model, timed, train.lm_loss, cfg)
    seconds = time.perf_counter() - stamps[WARMUP]
    tokens = (steps - WARMUP) * prof.pretrain_batch * prof.model.max_length
    return {"tokens_per_s": tokens / seconds, "final_loss": hist[-1]["loss"]}


def run_trl(path: str, docs: list[str], prof, steps: int, out_dir: str, packing: str) -> dict:
    import datasets
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class Clock(TrainerCallback):
        def __init__(self):
            self.t0 = self.tok0 = None

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == WARMUP:
                self.t0, self.tok0 = time.perf_counter(), state.num_input_tokens_seen

    cuda = torch.cuda.is_available()
    args = SFTConfig(
        output_dir=out_dir, max_steps=steps, per_device_train_batch_size=prof.pretrain_batch,
        learning_rate=prof.pretrain_lr, lr_scheduler_type="cosine", warmup_steps=max(1, steps // 20),
        max_length=prof.model.max_length, packing=True, packing_strategy=packing, dataset_text_field="text",
        report_to=[], save_strategy="no", logging_steps=1, use_cpu=not cuda, bf16=cuda,
        include_num_input_tokens_seen=True, disable_tqdm=True, seed=0, dataloader_num_workers=0)
    data = datasets.Dataset.from_dict({"text": docs})
    clock = Clock()
    trainer = SFTTrainer(model=path, args=args, train_dataset=data,
                         processing_class=models.load_tokenizer(path), callbacks=[clock])
    trainer.remove_callback(PrinterCallback)  # keep stdout to our one JSON line
    trainer.train()
    seconds = time.perf_counter() - clock.t0
    tokens = trainer.state.num_input_tokens_seen - clock.tok0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"tokens_per_s": tokens / seconds, "final_loss": losses[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, choices=list(profiles.PROFILES))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--trl-packing", default="wrapped", choices=["wrapped", "bfd"],
                        help="wrapped = concatenate and cut, the layout alignlab uses; bfd = TRL's "
                             "default best-fit packing, padding-free (meant for FlashAttention)")
    args = parser.parse_args()
    prof = profiles.get_profile(args.profile)
    docs = world.pretraining_corpus(prof.corpus_dialogs)
    tok = models.train_tokenizer(docs)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(models.save(models.build_model(prof.model, tok, seed=0), tok, f"{tmp}/init"))
        ours = run_alignlab(path, docs, prof, args.steps)
        trl_ = run_trl(path, docs, prof, args.steps, f"{tmp}/trl", args.trl_packing)
    import transformers
    import trl
    print(json.dumps({
        "bench": "train_throughput", "profile": prof.name, "device": device_name(),
        "date": datetime.date.today().isoformat(), "n_params": models.n_params(models.build_model(prof.model, tok)),
        "seq_len": prof.model.max_length, "batch": prof.pretrain_batch, "steps": args.steps,
        "trl_packing": args.trl_packing,
        "alignlab_tokens_per_s": round(ours["tokens_per_s"]), "trl_tokens_per_s": round(trl_["tokens_per_s"]),
        "ratio": round(ours["tokens_per_s"] / trl_["tokens_per_s"], 3),
        "alignlab_final_loss": round(ours["final_loss"], 4), "trl_final_loss": round(trl_["final_loss"], 4),
        "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}))


if __name__ == "__main__":
    main()
