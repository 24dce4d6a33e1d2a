"""Shared fixtures: a fresh ALIGNLAB_HOME per test, a tiny tokenizer and a tiny profile."""
from __future__ import annotations

import os

import pytest
import torch

from alignlab import models, profiles, world
from alignlab.profiles import ModelSize

# pytest-xdist runs one worker per core: one thread each, or OpenMP's spinning threads of two
# workers fight over two cores and tiny models train a hundred times slower.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

TINY = ModelSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_length=96)


@pytest.fixture
def alignlab_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="session")
def tok():
    return models.train_tokenizer(world.pretraining_corpus(300), 512)


@pytest.fixture
def tiny_model(tok):
    return models.build_model(TINY, tok, seed=0)


@pytest.fixture(scope="session")
def tiny_profile():
    """The ci profile shrunk to seconds; entry keys hash it, so it never meets the real cache."""
    return profiles.get_profile("ci").replace(
        model=TINY, corpus_dialogs=300, pretrain_steps=6, pretrain_batch=4, sft_demos=20,
        sft_epochs=1, sft_batch=4, eval_prompts_per_family=2, eval_samples_per_prompt=2,
        best_of_n=2, headroom_prompts_per_family=1, max_new_tokens=24, gen_batch=32)
