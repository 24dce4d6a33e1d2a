"""Tokenizer and model round trips, and that HF tools (TRL) load our checkpoints."""
from __future__ import annotations

import random

import pytest
import torch

from alignlab import models, world

from conftest import TINY


def test_prompt_and_response_encode_like_their_concatenation(tok):
    """The layout every method relies on: ids(prompt) + ids(response) == ids(prompt + response)."""
    rng = random.Random(0)
    for p in world.eval_prompts(n=100):
        for _ in range(3):
            r = world.sample_response(p, rng)[1]
            ids, n_prompt = models.encode_dialog(tok, p, r)
            assert ids[:-1] == tok.encode(world.chat_prompt(p) + r, add_special_tokens=False), (p, r)
            assert ids[-1] == tok.eos_token_id and tok.eos_token_id not in ids[:-1]
            assert tok.decode(ids[n_prompt:-1]) == r
            assert n_prompt == len(models.encode_prompts(tok, [p])[0])


@pytest.mark.parametrize("text, pieces", [
    (" 95", [" 9", "5"]),
    ("What is 407 + 18?", None),
])
def test_every_digit_is_its_own_token(tok, text, pieces):
    decoded = [tok.decode([i]) for i in tok.encode(text, add_special_tokens=False)]
    if pieces is not None:
        assert decoded == pieces
    digits = [d for d in decoded if any(c.isdigit() for c in d)]
    assert digits and all(len(d.strip()) == 1 for d in digits)  # one digit (and its space) each
    assert "".join(decoded) == text


@pytest.mark.parametrize("text", ["User: hi\nAssistant: ok", "  two  spaces\t tab", "émoji 🙂 ünïcode",
                                  "<eos> is text here", ""])
def test_decode_inverts_encode(tok, text):
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_save_load_round_trip(tmp_path, tok, tiny_model):
    path = models.save(tiny_model, tok, tmp_path / "m")
    model, tok2 = models.load(path, device="cpu")
    assert not model.training and next(model.parameters()).dtype == torch.float32
    rng = random.Random(1)
    texts = [world.chat_prompt(p) + world.sample_response(p, rng)[1] for p in world.eval_prompts(n=5)]
    for t in texts:
        assert tok2.encode(t, add_special_tokens=False) == tok.encode(t, add_special_tokens=False)
    assert (tok2.pad_token_id, tok2.eos_token_id, len(tok2)) == (tok.pad_token_id, tok.eos_token_id, len(tok))
    ids = torch.tensor([tok.encode(texts[0], add_special_tokens=False)])
    with torch.no_grad():
        assert torch.equal(tiny_model.eval()(ids).logits, model(ids).logits)
    assert model.lm_head.weight is model.model.embed_tokens.weight  # still tied after loading


def test_param_count_counts_tied_weights_once(tok):
    m = models.build_model(TINY, tok)
    assert m.lm_head.weight is m.model.embed_tokens.weight
    every = dict(m.named_parameters(remove_duplicate=False))
    emb = m.model.embed_tokens.weight.numel()
    others = sum(p.numel() for n, p in every.items() if "embed_tokens" not in n and "lm_head" not in n)
    assert "lm_head.weight" in every  # a naive sum would count the shared matrix twice
    assert models.n_params(m) == emb + others < sum(p.numel() for p in every.values())
    assert models.pick_dtype("cpu") == torch.float32


def test_build_model_is_seeded(tok):
    a, b, c = (models.build_model(TINY, tok, seed=s) for s in (0, 0, 1))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)


def test_data_next_token_distribution(tok):
    q = models.data_next_token_distribution(tok, world.eval_prompts("harmful", n=1)[0], n=200)
    assert q.shape == (len(tok),) and torch.isclose(q.sum(), torch.tensor(1.0)) and (q > 0).sum() >= 2


@pytest.mark.slow
def test_checkpoint_trains_in_trl_sft_trainer(tmp_path, tok, tiny_model, monkeypatch):
    """A saved directory is an ordinary HF checkpoint: TRL's SFTTrainer loads and trains it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets
    from trl import SFTConfig, SFTTrainer

    path = models.save(tiny_model, tok, tmp_path / "m")
    data = datasets.Dataset.from_dict({"text": world.pretraining_corpus(200)[:64]})
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=2,
                     report_to=[], use_cpu=True, save_strategy="no", logging_steps=1,
                     dataset_text_field="text", max_length=64)
    trainer = SFTTrainer(model=str(path), args=args, train_dataset=data, processing_class=tok)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    out = trainer.train()
    assert out.global_step == 2 and torch.isfinite(torch.tensor(out.training_loss))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(0 < x < 20 for x in losses)  # ~log(512) ≈ 6.2 at init
    assert any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters())
