"""Run by tests/test_distributed.py: a few steps of `alignlab.train`, in one process or under a
multi-process launcher, saving the final parameters. Not a test module itself."""
from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

import torch

from alignlab import models, train, world
from alignlab.profiles import ModelSize

TINY = ModelSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_length=96)


def record_exit_state(out: str) -> None:
    """Registered first, so it runs last at exit: by then alignlab must have left the process
    group (a group left to interpreter shutdown can abort the process under gloo)."""
    rank = os.environ.get("RANK", "0")
    Path(f"{out}.exit-{rank}").write_text(f"still in group: {torch.distributed.is_initialized()}")


def main(out: str, grad_accum: int) -> None:
    torch.set_num_threads(1)
    atexit.register(record_exit_state, out)
    tok = models.train_tokenizer(world.pretraining_corpus(300), 512)
    pairs = world.sft_demonstrations(16, seed=3)
    batches = train.sft_batches(tok, pairs, 2, 96, seed=0)
    model = models.build_model(TINY, tok, seed=4)
    cfg = train.TrainConfig(steps=3, lr=1e-2, grad_accum=grad_accum, progress=False, log_every=1)
    hist = train.train(model, batches, train.lm_loss, cfg)
    from accelerate import PartialState
    state = PartialState()
    if state.is_main_process:
        torch.save({"params": [p.detach().cpu() for p in model.parameters()], "history": hist,
                    "world_size": state.num_processes}, out)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
