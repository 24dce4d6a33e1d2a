"""Tokenizer and model round trips, and that HF tools (TRL) load our checkpoints."""
from __future__ import annotations

import random

import pytest
import torch

from alignlab import models, world

from conftest import TINY


def test_prompt_and_response_encode_like_their_concatenation(tok):
    rng = random.Random(0)
    for p in world.eval_prompts(n=100):
        r = world.sample_response(p, rng)[1]
        ids, n_prompt = models.encode_dialog(tok, p, r)
        assert ids[:-1] == tok.encode(world.chat_prompt(p) + r, add_special_tokens=False)
        assert ids[-1] == tok.eos_token_id
        assert tok.decode(ids[:-1]) == world.chat_prompt(p) + r
        assert n_prompt == len(models.encode_prompts(tok, [p])[0])


def test_every_digit_is_its_own_token(tok):
    ids = tok.encode(" 95 + 1234", add_special_tokens=False)
    pieces = [tok.decode([i]) for i in ids]
    assert [p for p in pieces if any(c.isdigit() for c in p)] == [" 9", "5", " 1", "2", "3", "4"]


def test_save_load_round_trip(tmp_path, tok, tiny_model):
    path = models.save(tiny_model, tok, tmp_path / "m")
    model, tok2 = models.load(path, device="cpu")
    ids = torch.tensor([models.encode_prompts(tok, ["What is 12 + 34?"])[0]])
    with torch.no_grad():
        assert torch.equal(tiny_model.eval()(ids).logits, model(ids).logits)
    assert tok2.encode("What is 12 + 34?") == tok.encode("What is 12 + 34?")
    assert tok2.pad_token == models.PAD and tok2.eos_token == models.EOS


def test_param_count_and_dtype(tok):
    m = models.build_model(TINY, tok)
    assert m.lm_head.weight is m.model.embed_tokens.weight  # tied, so counted once:
    emb = m.model.embed_tokens.weight.numel()
    others = sum(p.numel() for n, p in m.named_parameters(remove_duplicate=False) if "embed" not in n and "lm_head" not in n)
    assert models.n_params(m) == emb + others
    assert models.pick_dtype("cpu") == torch.float32


def test_data_next_token_distribution(tok):
    q = models.data_next_token_distribution(tok, world.eval_prompts("harmful", n=1)[0], n=200)
    assert q.shape == (len(tok),) and torch.isclose(q.sum(), torch.tensor(1.0)) and (q > 0).sum() >= 2


@pytest.mark.slow
def test_checkpoint_trains_in_trl_sft_trainer(tmp_path, tok, tiny_model, monkeypatch):
    """A saved directory is an ordinary HF checkpoint: TRL's SFTTrainer loads and trains it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets
    from trl import SFTConfig, SFTTrainer

    path = models.save(tiny_model, tok, tmp_path / "m")
    data = datasets.Dataset.from_dict({"text": world.pretraining_corpus(200)[:64]})
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=2,
                     report_to=[], use_cpu=True, save_strategy="no", logging_steps=1,
                     dataset_text_field="text", max_length=64)
    trainer = SFTTrainer(model=str(path), args=args, train_dataset=data, processing_class=tok)
    out = trainer.train()
    assert torch.isfinite(torch.tensor(out.training_loss))
