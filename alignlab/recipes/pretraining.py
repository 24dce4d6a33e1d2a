"""Chapter 1's entries: world → tokenizer → base (pretraining) → sft.

Each build takes the zoo's `Job` (where to save, the profile's declared fields, the entries it
depends on, a checkpoint folder) and returns what it records in the entry's meta.json. Bump a
row's `version` when you change what its build makes.
"""
from __future__ import annotations

import torch

from .. import models, train, world
from ..zoo import Job, Recipe

CHAPTER = "01_sft_as_kl"
VOCAB_SIZE = 1024


def tokenizer(job: Job) -> dict:
    tok = models.train_tokenizer(world.pretraining_corpus(job.profile.pretrain.corpus_dialogs), VOCAB_SIZE)
    tok.save_pretrained(job.out)
    return {"vocab_size": len(tok)}


def train_lm(job: Job, model, tok, batch_fn, config: train.TrainConfig) -> dict:
    """Next-token training (resumable from `config.checkpoint_dir`), then save in HF format."""
    history = train.train(model, batch_fn, train.lm_loss, config)
    models.save(model, tok, job.out)
    return {"history": history, "n_params": models.n_params(model), "train": vars(config)}


def base(job: Job) -> dict:
    profile, tok = job.profile, job.deps["tokenizer"].tokenizer()
    rows = train.pack(tok, world.pretraining_corpus(profile.pretrain.corpus_dialogs), profile.policy.max_length)
    model = models.build_model(profile.policy, tok).to(models.pick_device())
    config = train.TrainConfig(steps=profile.pretrain.steps, lr=profile.pretrain.lr,
                               desc=f"pretrain base ({profile.name})",
                               checkpoint_every=max(1, profile.pretrain.steps // 6),
                               checkpoint_dir=str(job.checkpoint_dir))
    meta = train_lm(job, model, tok, train.packed_batches(rows, profile.pretrain.batch), config)
    return meta | {"corpus_rows": len(rows)}


def sft_setup(profile, tok, pairs: list[tuple[str, str]], what: str = "SFT",
              checkpoint_dir: str | None = None) -> tuple[train.BatchFn, train.TrainConfig]:
    """The batches and training config of fine-tuning on (prompt, response) pairs with the
    profile's SFT settings (a zoo build checkpoints into `checkpoint_dir`; a benchmark need not)."""
    steps = max(1, profile.sft.epochs * len(pairs) // profile.sft.batch)
    config = train.TrainConfig(steps=steps, lr=profile.sft.lr, warmup_steps=max(1, steps // 10),
                               desc=f"{what} ({profile.name})", checkpoint_every=max(1, steps // 3),
                               checkpoint_dir=checkpoint_dir)
    return train.sft_batches(tok, pairs, profile.sft.batch, profile.policy.max_length), config


def sft_on(job: Job, pairs: list[tuple[str, str]], what: str = "SFT") -> dict:
    """Fine-tune the base model on (prompt, response) pairs with the profile's SFT settings."""
    model, tok = job.deps["base"].load(dtype=torch.float32)  # fp32 master weights; autocast does bf16
    batches, config = sft_setup(job.profile, tok, pairs, what, str(job.checkpoint_dir))
    return train_lm(job, model, tok, batches, config) | {"demos": len(pairs)}


def sft(job: Job) -> dict:
    return sft_on(job, world.sft_demonstrations(job.profile.sft.demos))


RUNS = [
    Recipe("tokenizer", tokenizer, fields=("pretrain.corpus_dialogs",),
           why="byte-level BPE trained on the world's corpus"),
    Recipe("base", base, sized=True, deps=("tokenizer",),
           fields=("policy", "pretrain.corpus_dialogs", "pretrain.steps", "pretrain.batch", "pretrain.lr"),
           why="pretraining on the world's corpus: capable but uncontrolled"),
    Recipe("sft", sft, sized=True, deps=("base",), fields=("policy", "sft.demos", "sft.epochs", "sft.batch", "sft.lr"),
           why="supervised fine-tuning on the world's few demonstrations"),
]
