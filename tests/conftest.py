"""Shared fixtures: a fresh ALIGNLAB_HOME per test, a tiny tokenizer and a tiny profile."""
from __future__ import annotations

import pytest
import torch

from alignlab import models, profiles, world
from alignlab.profiles import ModelSize

# One intra-op thread. The test models are so small that a second thread buys nothing, and when
# anything else runs on the 2 cores (a second xdist worker, a notebook, a spawned process)
# OpenMP's spinning threads fight over them: the 30-step training test took 33 s with two
# threads on a loaded machine and 0.35 s with one.
torch.set_num_threads(1)

TINY = ModelSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_length=96)
"""A 2-layer Llama of ~40K parameters (half of them the tied 512 × 32 embedding)."""
TINY_SMALL = ModelSize(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_length=96)
"""The tiny profile's `small` rung, for the size-ladder tests."""


def tiny(**changes) -> profiles.Profile:
    """The ci profile shrunk to seconds. It keeps the name `ci`, but entry keys hash the whole
    profile, so its entries never meet (or reuse) those of the real ci profile."""
    base = profiles.get_profile("ci").replace(
        name="ci", policy=TINY, ladder={"small": TINY_SMALL, "policy": TINY},
        pretrain={"corpus_dialogs": 300, "steps": 6, "batch": 4},
        sft={"demos": 20, "epochs": 1, "batch": 4},
        eval={"prompts_per_family": 2, "samples_per_prompt": 2, "best_of_n": 2, "headroom_prompts_per_family": 1},
        sampling={"max_new_tokens": 24, "batch": 32},
        rm={"prompts": 12, "k": 3, "eval_prompts": 6, "batch": 4, "curve": (5, 10), "curve_seeds": 1})
    return base.replace(**changes)


@pytest.fixture
def alignlab_home(tmp_path, monkeypatch):
    """An empty cache for this test only (the zoo and cached runs live under it)."""
    monkeypatch.setenv("ALIGNLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="session")
def tok():
    return models.train_tokenizer(world.pretraining_corpus(300), 512)


@pytest.fixture
def tiny_model(tok):
    return models.build_model(TINY, tok, seed=0)


@pytest.fixture(scope="module")
def model(tok):
    """One untrained tiny model per test module, in eval mode (sampling and scoring tests)."""
    return models.build_model(TINY, tok, seed=0).eval()


@pytest.fixture(scope="session")
def tiny_profile():
    """Pass it to `zoo.get(name, tiny_profile)` (the zoo accepts a Profile object)."""
    return tiny()
