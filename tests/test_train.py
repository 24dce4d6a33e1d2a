"""The training loop: it learns, accumulation equals a big batch, an interrupted run resumes
exactly, a damaged checkpoint is kept aside; and the LM batch builders."""
from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch

from alignlab import models, train, world

from conftest import TINY


def quiet(**kw) -> train.TrainConfig:
    return train.TrainConfig(progress=False, log_every=1, **kw)


@pytest.fixture(scope="module")
def rows(tok):
    return train.pack(tok, world.pretraining_corpus(300), 32)


def test_pack_rows_are_the_corpus_cut_into_length_plus_one(tok):
    docs = world.pretraining_corpus(50)
    rows = train.pack(tok, docs, 32)
    assert rows.ndim == 2 and rows.shape[1] == 33 and len(rows) > 1
    stream = [i for d in docs for i in tok.encode(d, add_special_tokens=False) + [tok.eos_token_id]]
    assert rows.flatten().tolist() == stream[: rows.numel()]  # eos separates the documents
    assert (rows == tok.eos_token_id).sum() >= len(rows) // 2


def test_packed_batches_are_shifted_and_deterministic(rows):
    fn = train.packed_batches(rows, 4, seed=0)
    b = fn(3)
    assert b["input_ids"].shape == b["labels"].shape == (4, 32)
    assert torch.equal(b["input_ids"][:, 1:], b["labels"][:, :-1]) and b["mask"].all()
    assert all(torch.equal(b[k], fn(3)[k]) for k in b)  # a resumed run sees the same data


def test_loss_falls_on_a_fixed_batch(tiny_model, rows):
    fixed = train.packed_batches(rows[:8], 8)
    hist = train.train(tiny_model, fixed, train.lm_loss, quiet(steps=30, lr=3e-3, warmup_steps=1))
    assert [h["step"] for h in hist] == list(range(1, 31))
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in hist)
    assert hist[-1]["loss"] < 0.7 * hist[0]["loss"]
    assert not tiny_model.training  # handed back in eval mode


def _uneven_batches(tok):
    """One step's 8 SFT rows of different lengths, and its 4 micro-batches of 2 (exact slices)."""
    pairs = world.sft_demonstrations(8, seed=3)
    full = train.sft_batches(tok, pairs, 8, 96)(0)
    return full, [{k: v[i * 2:(i + 1) * 2] for k, v in full.items()} for i in range(4)]


def test_gradient_accumulation_equals_one_big_batch(tok):
    full, micro = _uneven_batches(tok)
    assert len({int(m["mask"].sum()) for m in micro}) > 1  # per-micro-batch means would differ
    init = models.build_model(TINY, tok, seed=1)
    a, b, wrong = copy.deepcopy(init), copy.deepcopy(init), copy.deepcopy(init)
    cfg = dict(steps=3, lr=1e-2, warmup_steps=1)
    train.train(a, lambda i: full, train.lm_loss, quiet(grad_accum=1, **cfg))
    train.train(b, lambda i: micro[i % 4], train.lm_loss, quiet(grad_accum=4, **cfg))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5)

    def mean_per_micro_batch(model, batch, num_tokens):  # the classic mistake
        loss, metrics = train.lm_loss(model, batch, None)
        return loss / 4, metrics
    train.train(wrong, lambda i: micro[i % 4], mean_per_micro_batch, quiet(grad_accum=4, **cfg))
    assert max((pa - pw).abs().max() for pa, pw in zip(a.parameters(), wrong.parameters())) > 1e-4


def test_interrupted_run_resumes_exactly(tmp_path, tok, rows, capsys):
    init = models.build_model(TINY, tok, seed=2)
    batches = train.packed_batches(rows, 4)
    whole = copy.deepcopy(init)
    ref = train.train(whole, batches, train.lm_loss, quiet(steps=10, lr=3e-3))

    def crashing(i):
        if i == 6:
            raise KeyboardInterrupt("student pressed stop")
        return batches(i)
    cfg = quiet(steps=10, lr=3e-3, checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every=5)
    first = copy.deepcopy(init)
    with pytest.raises(KeyboardInterrupt):
        train.train(first, crashing, train.lm_loss, cfg)
    assert torch.load(tmp_path / "ckpt" / train.STATE_FILE, weights_only=False)["step"] == 5
    resumed = copy.deepcopy(init)  # a fresh process: the model starts from its initialisation
    hist = train.train(resumed, batches, train.lm_loss, cfg)
    assert "from its checkpoint at step 5/10" in capsys.readouterr().out
    assert [h["step"] for h in hist] == list(range(1, 11))  # history continues across the stop
    assert [h["loss"] for h in hist] == pytest.approx([h["loss"] for h in ref], rel=1e-5)
    for pa, pb in zip(whole.parameters(), resumed.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)


def dropped_token_loss(model, batch, num_tokens):
    """lm_loss on a random 80% of the targets, drawn from the global torch, numpy and python
    generators: a run resumes exactly only if its checkpoint restores their states."""
    keep = (torch.rand(batch["mask"].shape) + float(np.random.rand()) * 0.01 + random.random() * 0.01) > 0.2
    return train.lm_loss(model, {**batch, "mask": batch["mask"] * keep}, None)


def test_a_resumed_run_draws_the_random_numbers_an_uninterrupted_one_would(tmp_path, tok, rows):
    init = models.build_model(TINY, tok, seed=2)
    batches = train.packed_batches(rows, 4)
    whole = copy.deepcopy(init)
    ref = train.train(whole, batches, dropped_token_loss, quiet(steps=6, lr=3e-3))

    def crashing(i):
        if i == 4:
            raise KeyboardInterrupt
        return batches(i)
    cfg = quiet(steps=6, lr=3e-3, checkpoint_dir=str(tmp_path), checkpoint_every=3)
    with pytest.raises(KeyboardInterrupt):
        train.train(copy.deepcopy(init), crashing, dropped_token_loss, cfg)
    assert len(torch.load(tmp_path / train.STATE_FILE, weights_only=False)["rng"]) == 1  # one per process
    resumed = copy.deepcopy(init)
    torch.manual_seed(9), np.random.seed(9), random.seed(9)  # whatever state the new process has
    hist = train.train(resumed, batches, dropped_token_loss, cfg)
    assert [h["loss"] for h in hist] == pytest.approx([h["loss"] for h in ref], rel=1e-6)
    for pa, pb in zip(whole.parameters(), resumed.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_rng_state_round_trips():
    state = train.rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    train.set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]


def test_damaged_checkpoint_is_kept_aside(tmp_path, tok, rows, capsys):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / train.STATE_FILE).write_bytes(b"not a checkpoint")
    hist = train.train(models.build_model(TINY, tok), train.packed_batches(rows, 4), train.lm_loss,
                       quiet(steps=2, checkpoint_dir=str(ckpt)))
    assert [h["step"] for h in hist] == [1, 2]  # started from 0
    aside = list(ckpt.glob("*.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"not a checkpoint"  # kept, not deleted
    out = capsys.readouterr().out
    assert "could not be read" in out and aside[0].name in out and "step 0" in out


def test_schedule_warms_up_then_decays_to_the_min_ratio():
    f = train.lr_lambda(train.TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1))
    warm = [f(s) for s in range(10)]
    assert warm == pytest.approx([(s + 1) / 10 for s in range(10)])
    decay = [f(s) for s in range(10, 101)]
    assert decay[0] == pytest.approx(1.0) and decay[-1] == pytest.approx(0.1)
    assert all(x >= y for x, y in zip(decay, decay[1:]))
    assert f(55) == pytest.approx(0.55)  # cosine halfway: (1 + 0.1) / 2
    default = train.lr_lambda(train.TrainConfig(steps=200))  # warmup defaults to 5% of steps
    assert default(9) == pytest.approx(1.0) and default(4) == pytest.approx(0.5)


def test_sft_batches_target_exactly_the_response_and_eos(tok):
    pairs = world.sft_demonstrations(6)
    batch = train.sft_batches(tok, pairs, 6, 96)(0)
    responses = {world.chat_prompt(p) + r: (p, r) for p, r in pairs}
    pad, eos = tok.pad_token_id, tok.eos_token_id
    assert torch.equal(batch["attention_mask"].bool(), batch["input_ids"] != pad)  # 0 on padding
    assert (batch["input_ids"] == pad).any()  # rows of different lengths, so there is padding
    for b in range(6):
        seq = [int(batch["input_ids"][b, 0])] + batch["labels"][b].tolist()  # the whole row
        end = seq.index(eos)
        prompt, response = responses[tok.decode(seq[:end])]
        assert seq[end + 1:] == [pad] * (len(seq) - end - 1)
        n_prompt = len(models.encode_prompts(tok, [prompt])[0])
        on = batch["mask"][b].nonzero().flatten().tolist()
        assert on == list(range(n_prompt - 1, end))  # label positions of response tokens + eos
        targets = batch["labels"][b, on].tolist()
        assert tok.decode(targets[:-1]) == response and targets[-1] == eos
