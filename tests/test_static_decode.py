"""The static-shape decoder (the GPU path) samples exactly what `rollout.generate` samples."""
from __future__ import annotations

import pytest
import torch

from alignlab import models, rollout, world
from alignlab.static_decode import generate_static

from conftest import TINY


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_static_decoder_matches_rollout_generate(tok, temperature):
    model = models.build_model(TINY, tok, seed=2).eval()
    prompts = world.eval_prompts(n=12, seed=4)  # different lengths: left padding is exercised
    a = rollout.generate(model, tok, prompts, max_new_tokens=20, temperature=temperature, seed=9)
    b = generate_static(model, tok, prompts, max_new_tokens=20, temperature=temperature, seed=9, cuda_graph=False)
    assert torch.equal(a.mask, b.mask) and torch.equal(a.tokens, b.tokens)
    assert torch.allclose(a.logprobs, b.logprobs, atol=1e-4)
    assert a.texts == b.texts and torch.equal(a.finished, b.finished)


def test_static_decoder_handles_grouped_query_attention(tok):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(3)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
                                         max_position_embeddings=96, pad_token_id=tok.pad_token_id,
                                         eos_token_id=tok.eos_token_id, tie_word_embeddings=True)).eval()
    prompts = world.eval_prompts(n=4, seed=1)
    a = rollout.generate(model, tok, prompts, max_new_tokens=8, seed=1)
    b = generate_static(model, tok, prompts, max_new_tokens=8, seed=1, cuda_graph=False)
    assert torch.equal(a.tokens, b.tokens) and torch.allclose(a.logprobs, b.logprobs, atol=1e-4)
