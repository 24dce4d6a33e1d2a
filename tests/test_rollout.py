"""Sampling: the KV cache agrees with a naive loop, padding changes nothing, log-probs agree
with teacher forcing, seeds are honoured."""
from __future__ import annotations

import pytest
import torch

from alignlab import rollout, world

PROMPTS = world.eval_prompts(n=6)


@pytest.fixture(scope="module")
def model(tok):
    from alignlab import models
    from conftest import TINY
    return models.build_model(TINY, tok, seed=0).eval()


def naive_greedy(model, tok, prompt, n):
    ids = torch.tensor([tok.encode(world.chat_prompt(prompt))])
    out = []
    for _ in range(n):
        nxt = int(model(ids).logits[0, -1].argmax())
        out.append(nxt)
        if nxt == tok.eos_token_id:
            break
        ids = torch.cat([ids, torch.tensor([[nxt]])], 1)
    return out


def test_greedy_matches_a_loop_without_cache(model, tok):
    ro = rollout.generate(model, tok, PROMPTS[:3], temperature=0, max_new_tokens=12)
    for b, p in enumerate(PROMPTS[:3]):
        n = int(ro.mask[b].sum())
        assert ro.tokens[b, :n].tolist() == naive_greedy(model, tok, p, 12)


def test_left_padding_changes_nothing(model, tok):
    short, long = "What is 12 + 34?", "I think the capital of " + "Velmora" + " is Quell. Am I right?"
    alone = rollout.generate(model, tok, [short], temperature=0, max_new_tokens=10)
    batched = rollout.generate(model, tok, [short, long], temperature=0, max_new_tokens=10)
    n = int(alone.mask[0].sum())
    assert alone.tokens[0, :n].tolist() == batched.tokens[0, :n].tolist()
    assert torch.allclose(alone.logprobs[0, :n], batched.logprobs[0, :n], atol=1e-5)
    lp1, _ = rollout.sequence_logprobs(model, tok, [short], [" Answer: 46."])
    lp2, _ = rollout.sequence_logprobs(model, tok, [short, long], [" Answer: 46.", " No."])
    assert torch.allclose(lp1[0], lp2[0, : lp1.shape[1]], atol=1e-5)


def test_rollout_logprobs_equal_teacher_forcing(model, tok):
    ro = rollout.generate(model, tok, PROMPTS, max_new_tokens=16, seed=3)
    lp, mask = rollout.sequence_logprobs(model, tok, ro.prompts, response_ids=ro.tokens, mask=ro.mask)
    assert torch.equal(mask, ro.mask)
    assert torch.allclose(lp, ro.logprobs, atol=1e-4)
    # (Teacher-force the *ids*, not the text: an untrained model's samples need not be the
    # tokenizer's canonical encoding of their own text.)


def test_mask_and_finished_flags(model, tok):
    ro = rollout.generate(model, tok, PROMPTS, max_new_tokens=8, seed=1)
    assert ro.tokens.shape[1] <= 8 and len(ro) == len(PROMPTS)
    for b in range(len(ro)):
        m = ro.mask[b].tolist()
        n = sum(m)
        assert m == [1] * n + [0] * (len(m) - n)  # contiguous
        ends_eos = ro.tokens[b, n - 1].item() == tok.eos_token_id
        assert bool(ro.finished[b]) == ends_eos
        assert tok.eos_token not in ro.texts[b]


def test_seeds(model, tok):
    a = rollout.generate(model, tok, PROMPTS, max_new_tokens=8, seed=0)
    b = rollout.generate(model, tok, PROMPTS, max_new_tokens=8, seed=0)
    c = rollout.generate(model, tok, PROMPTS, max_new_tokens=8, seed=1)
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)
    tiny_p = rollout.generate(model, tok, PROMPTS, max_new_tokens=8, seed=5, top_p=1e-6)
    greedy = rollout.generate(model, tok, PROMPTS, max_new_tokens=8, temperature=0)
    assert torch.equal(tiny_p.tokens, greedy.tokens)


def test_finished_rows_dropped_does_not_change_results(model, tok):
    """Chunks of one row (nothing to drop) and one chunk of six give the same samples."""
    together = rollout.generate(model, tok, PROMPTS, max_new_tokens=10, seed=7)
    one_by_one = rollout.generate(model, tok, PROMPTS, max_new_tokens=10, seed=7, batch_size=1)
    assert together.texts == one_by_one.texts
