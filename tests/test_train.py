"""The training loop: it learns, accumulation equals a big batch, an interrupted run resumes
exactly, a damaged checkpoint is kept aside."""
from __future__ import annotations

import copy

import pytest
import torch

from alignlab import models, train, world

from conftest import TINY


def quiet(**kw) -> train.TrainConfig:
    return train.TrainConfig(progress=False, log_every=1, **kw)


@pytest.fixture(scope="module")
def rows(tok):
    return train.pack(tok, world.pretraining_corpus(300), 32)


def test_pack_rows_have_eos_separators(tok, rows):
    assert rows.shape[1] == 33 and (rows == tok.eos_token_id).any()


def test_loss_falls_on_a_fixed_batch(tiny_model, rows):
    fixed = train.packed_batches(rows[:8], 8)
    hist = train.train(tiny_model, fixed, train.lm_loss, quiet(steps=30, lr=3e-3, warmup_steps=1))
    assert hist[-1]["loss"] < 0.7 * hist[0]["loss"]
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in hist)


def _uneven_batches(tok):
    """8 SFT rows of different lengths (so token counts per micro-batch differ)."""
    pairs = world.sft_demonstrations(8, seed=3)
    full = train.sft_batches(tok, pairs, 8, 96)(0)
    return full, [{k: v[i * 2:(i + 1) * 2] for k, v in full.items()} for i in range(4)]


def test_gradient_accumulation_equals_one_big_batch(tok):
    full, micro = _uneven_batches(tok)
    assert len({int(m["mask"].sum()) for m in micro}) > 1
    a, b = models.build_model(TINY, tok, seed=1), models.build_model(TINY, tok, seed=1)
    train.train(a, lambda i: full, train.lm_loss, quiet(steps=3, lr=1e-2, grad_accum=1))
    train.train(b, lambda i: micro[i % 4], train.lm_loss, quiet(steps=3, lr=1e-2, grad_accum=4))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5)


def test_interrupted_run_resumes_exactly(tmp_path, tok, rows):
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
    resumed = copy.deepcopy(init)
    hist = train.train(resumed, batches, train.lm_loss, cfg)
    assert [h["step"] for h in hist] == list(range(1, 11))
    assert hist[-1]["loss"] == pytest.approx(ref[-1]["loss"], rel=1e-5)
    for pa, pb in zip(whole.parameters(), resumed.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_damaged_checkpoint_is_kept_aside(tmp_path, tok, rows, capsys):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / train.STATE_FILE).write_bytes(b"not a checkpoint")
    hist = train.train(models.build_model(TINY, tok), train.packed_batches(rows, 4), train.lm_loss,
                       quiet(steps=2, checkpoint_dir=str(ckpt)))
    assert hist[0]["step"] == 1
    assert list(ckpt.glob("*.corrupt-*")), "the damaged file must be kept, not deleted"
    assert "could not be read" in capsys.readouterr().out


def test_schedule_warms_up_then_decays():
    f = train.lr_lambda(train.TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1))
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(50) < f(10) and f(100) == pytest.approx(0.1)


def test_sft_batches_target_only_the_response(tok):
    pairs = world.sft_demonstrations(4)
    batch = train.sft_batches(tok, pairs, 4, 96)(0)
    for b in range(4):
        targets = batch["labels"][b][batch["mask"][b].bool()].tolist()
        assert targets[-1] == tok.eos_token_id
        assert tok.decode(targets[:-1]) in {r for _, r in pairs}
        n_real = int(batch["attention_mask"][b].sum())
        assert (batch["input_ids"][b, n_real:] == tok.pad_token_id).all()
