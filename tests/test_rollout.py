"""Sampling: the KV cache agrees with a naive loop, padding changes nothing, log-probs agree
with teacher forcing, seeds are honoured, the inverse-CDF sampler has the right distribution."""
from __future__ import annotations

import pytest
import torch

from alignlab import models, rollout, world

PROMPTS = world.eval_prompts(n=6)
SHORT = "What is 12 + 34?"
LONG = " ".join(["I think the capital of Velmora is Quell, and I am sure of it."] * 4) + " Am I right?"


@pytest.fixture(scope="module")
def eos_model(model, tok):
    """The tiny model with a bias towards eos, so rows end at many different lengths (an
    untrained model almost never says eos, which would leave the row-dropping path untested)."""
    import copy
    m = copy.deepcopy(model)
    head = torch.nn.Linear(m.config.hidden_size, len(tok), bias=True)
    with torch.no_grad():
        head.weight.copy_(m.model.embed_tokens.weight)
        head.bias.zero_()
        head.bias[tok.eos_token_id] = 5.0  # p(eos) ≈ e^5 / (e^5 + V) ≈ 0.2 per step
    m.lm_head = head
    return m.eval()


def naive_greedy(model, tok, prompt: str, n: int) -> list[int]:
    """Greedy decoding the slow way: the full model on the growing sequence, no cache, no padding."""
    ids = torch.tensor(models.encode_prompts(tok, [prompt]))  # (1, L)
    out = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(ids).logits[0, -1].argmax())
            out.append(nxt)
            if nxt == tok.eos_token_id:
                break
            ids = torch.cat([ids, torch.tensor([[nxt]])], 1)
    return out


def test_greedy_matches_a_loop_without_cache(model, tok):
    ro = rollout.generate(model, tok, PROMPTS[:3] + [LONG], temperature=0, max_new_tokens=12)
    for b, p in enumerate(ro.prompts):
        n = int(ro.mask[b].sum())
        assert ro.tokens[b, :n].tolist() == naive_greedy(model, tok, p, 12)


def test_left_padding_changes_nothing(model, tok):
    assert len(models.encode_prompts(tok, [LONG])[0]) > 3 * len(models.encode_prompts(tok, [SHORT])[0])
    for temperature in (0.0, 1.0):  # same seed: row 0 draws the same uniforms alone and batched
        alone = rollout.generate(model, tok, [SHORT], temperature=temperature, max_new_tokens=10, seed=4)
        batched = rollout.generate(model, tok, [SHORT, LONG], temperature=temperature, max_new_tokens=10,
                                   seed=4)
        n = int(alone.mask[0].sum())
        assert alone.tokens[0, :n].tolist() == batched.tokens[0, :n].tolist()
        assert torch.allclose(alone.logprobs[0, :n], batched.logprobs[0, :n], atol=1e-5)
    resp = alone.texts[0]
    lp1, m1 = rollout.sequence_logprobs(model, tok, [SHORT], [resp])
    lp2, m2 = rollout.sequence_logprobs(model, tok, [SHORT, LONG], [resp, " No."])
    assert torch.equal(m1[0], m2[0, : m1.shape[1]])
    assert torch.allclose(lp1[0], lp2[0, : lp1.shape[1]], atol=1e-5)


@pytest.mark.parametrize("which", ["model", "eos_model"])
def test_rollout_logprobs_equal_teacher_forcing(which, request, tok):
    model = request.getfixturevalue(which)
    ro = rollout.generate(model, tok, (PROMPTS + [LONG]) * 2, max_new_tokens=16, seed=3, batch_size=8)
    lp, mask = rollout.sequence_logprobs(model, tok, ro.prompts, response_ids=ro.tokens, mask=ro.mask,
                                         batch_size=5)
    assert lp.dtype == ro.logprobs.dtype == torch.float32
    assert torch.equal(mask, ro.mask)
    assert torch.allclose(lp, ro.logprobs, atol=1e-4)
    assert (ro.logprobs[ro.mask == 0] == 0).all() and (ro.logprobs[ro.mask == 1] < 0).all()
    # Teacher-force the *ids*, not the text: an untrained model's samples need not be the
    # tokenizer's canonical encoding of their own text.


def test_text_responses_are_encoded_with_eos(model, tok):
    prompts, responses = PROMPTS[:2], [world.demonstration(p) for p in PROMPTS[:2]]
    lp, mask = rollout.sequence_logprobs(model, tok, prompts, responses)
    for b, r in enumerate(responses):
        ids = tok.encode(r, add_special_tokens=False) + [tok.eos_token_id]
        assert int(mask[b].sum()) == len(ids)
        by_ids, _ = rollout.sequence_logprobs(model, tok, [prompts[b]], response_ids=torch.tensor([ids]),
                                              mask=torch.ones(1, len(ids), dtype=torch.long))
        assert torch.allclose(lp[b, : len(ids)], by_ids[0], atol=1e-5)


def test_mask_texts_and_finished_flags(eos_model, tok):
    ro = rollout.generate(eos_model, tok, PROMPTS * 4, max_new_tokens=8, seed=1)
    lengths = set(ro.mask.sum(-1).tolist())
    assert ro.finished.any() and not ro.finished.all() and len(lengths) > 3  # the test tests something
    assert ro.tokens.shape[1] <= 8 and len(ro) == len(PROMPTS) * 4 and ro.tokens.dtype == torch.long
    for b in range(len(ro)):
        m = ro.mask[b].tolist()
        n = sum(m)
        assert m == [1] * n + [0] * (len(m) - n)  # contiguous from the first token
        assert (ro.tokens[b, n:] == tok.pad_token_id).all()
        row = ro.tokens[b, :n].tolist()
        assert tok.eos_token_id not in row[:-1]  # the eos, if any, is the last masked token
        assert bool(ro.finished[b]) == (row[-1] == tok.eos_token_id)
        assert bool(ro.finished[b]) or n == 8  # unfinished rows ran to max_new_tokens
        body = row[:-1] if ro.finished[b] else row
        assert ro.texts[b] == tok.decode(body) and tok.eos_token not in ro.texts[b]


def test_seeds(model, tok):
    a = rollout.generate(model, tok, PROMPTS, max_new_tokens=8, seed=0)
    b = rollout.generate(model, tok, PROMPTS, max_new_tokens=8, seed=0)
    c = rollout.generate(model, tok, PROMPTS, max_new_tokens=8, seed=1)
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)
    tiny_p = rollout.generate(model, tok, PROMPTS, max_new_tokens=8, seed=5, top_p=1e-6)
    greedy = rollout.generate(model, tok, PROMPTS, max_new_tokens=8, temperature=0)
    greedy2 = rollout.generate(model, tok, PROMPTS, max_new_tokens=8, temperature=0, seed=9)
    assert torch.equal(tiny_p.tokens, greedy.tokens) and torch.equal(greedy.tokens, greedy2.tokens)


def test_chunking_and_dropping_finished_rows_change_nothing(eos_model, tok):
    """Chunks of one row (nothing to drop) and one chunk of all rows give the same samples."""
    together = rollout.generate(eos_model, tok, PROMPTS * 2, max_new_tokens=10, seed=7)
    one_by_one = rollout.generate(eos_model, tok, PROMPTS * 2, max_new_tokens=10, seed=7, batch_size=1)
    assert len(set(together.mask.sum(-1).tolist())) > 2  # rows did end at different steps
    assert together.texts == one_by_one.texts
    assert torch.allclose(together.logprobs, one_by_one.logprobs, atol=1e-5)


def test_training_flag_restored(model, tok):
    model.train()
    rollout.generate(model, tok, PROMPTS[:2], max_new_tokens=2)
    assert model.training
    model.eval()
    rollout.generate(model, tok, PROMPTS[:2], max_new_tokens=2)
    assert not model.training


def test_inverse_cdf_sampler():
    """Evenly spaced uniforms hit each token in proportion to its probability; top-p keeps only
    the nucleus; temperature 0 is argmax."""
    probs = torch.tensor([0.1, 0.4, 0.2, 0.3])
    logits = probs.log().expand(1000, 4)  # (1000, V)
    u = (torch.arange(1000) + 0.5) / 1000  # (1000,)
    counts = torch.bincount(rollout.sample_token(logits, u), minlength=4) / 1000
    assert torch.allclose(counts, probs, atol=2e-3)
    nucleus = rollout.sample_token(logits, u, top_p=0.6)  # 0.4 + 0.3 reach 0.6: tokens 1 and 3
    assert set(nucleus.tolist()) == {1, 3}
    edge = rollout.sample_token(logits[:2], torch.tensor([0.0, 1 - 1e-7]), top_p=0.6)
    assert edge.tolist() == [1, 3]  # never past the last kept token, even at u → 1
    assert (rollout.sample_token(logits, u, temperature=0) == 1).all()
    cold = rollout.sample_token(logits, u, temperature=0.05)  # sharpened: almost always the mode
    assert (cold == 1).float().mean() > 0.99


@pytest.mark.parametrize("top_p", [1.0, 0.9, 0.3])
def test_fast_sampler_equals_the_full_sort(top_p):
    """The top-k fast path picks exactly the token the full sort picks, for flat and peaked rows."""
    g = torch.Generator().manual_seed(0)
    sharpness = torch.tensor([0.1, 1.0, 3.0, 10.0]).repeat_interleave(500)[:, None]  # (2000, 1)
    logits = torch.randn(2000, 512, generator=g) * sharpness  # (2000, V)
    u = torch.rand(2000, generator=g)
    for temperature in (1.0, 0.7):
        fast = rollout.sample_token(logits, u, temperature, top_p)
        probs = torch.softmax(logits / temperature, -1)
        assert torch.equal(fast, rollout.sample_token_sorted(probs, u, top_p))


def test_bfloat16_model_gives_float32_logprobs(model, tok):
    """Dtype-agnostic: a bf16 model (as on a GPU) samples, and its log-probs come back in float32."""
    import copy
    half = copy.deepcopy(model).to(torch.bfloat16)
    ro = rollout.generate(half, tok, PROMPTS, max_new_tokens=8, seed=2)
    lp, _ = rollout.sequence_logprobs(half, tok, ro.prompts, response_ids=ro.tokens, mask=ro.mask)
    assert ro.logprobs.dtype == lp.dtype == torch.float32
    assert torch.allclose(lp, ro.logprobs, atol=1e-2)  # bf16 rounding differs between cached and full passes


def test_sequence_kl_sums_the_masked_log_ratio_of_each_row():
    torch.manual_seed(0)
    logp, ref_logp = torch.randn(3, 5), torch.randn(3, 5)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]).float()
    naive = torch.tensor([sum(float(logp[b, t] - ref_logp[b, t]) for t in range(5) if mask[b, t])
                          for b in range(3)])
    assert torch.allclose(rollout.sequence_kl(logp, ref_logp, mask), naive, atol=1e-6)
    assert torch.equal(rollout.sequence_kl(logp, logp, mask), torch.zeros(3))
