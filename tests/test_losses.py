"""Losses against naive references (CS336 style: seeded inputs, a loop a student could write)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from alignlab import losses


def naive_nll(logits, labels, mask):
    """Σ over masked (b, t) of −log softmax(logits[b, t])[labels[b, t]], and how many there were."""
    total, count = 0.0, 0
    B, T, _ = logits.shape
    for b in range(B):
        for t in range(T):
            if mask[b, t]:
                z = logits[b, t].double()
                total = total - (z[labels[b, t]] - torch.logsumexp(z, -1))
                count += 1
    return total, count


def random_batch(seed, B=3, T=5, V=7):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g) * 3
    labels = torch.randint(0, V, (B, T), generator=g)
    mask = (torch.rand(B, T, generator=g) > 0.4).long()
    mask[-1] = 0  # an all-padding row contributes nothing
    return logits, labels, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nll_loss_matches_a_naive_loop(seed):
    logits, labels, mask = random_batch(seed)
    total, count = naive_nll(logits, labels, mask)
    assert count > 0
    loss, metrics = losses.nll_loss(logits, labels, mask)
    assert loss.shape == () and loss.dtype == torch.float32
    assert loss.item() == pytest.approx(float(total) / count, abs=1e-5)
    assert metrics["tokens"].item() == count
    assert metrics["nll"].item() == pytest.approx(float(total) / count, abs=1e-5)
    # with the token count of a whole optimizer step, the sum is divided by that instead
    loss_n, metrics_n = losses.nll_loss(logits, labels, mask, num_tokens=torch.tensor(25.0))
    assert loss_n.item() == pytest.approx(float(total) / 25, abs=1e-5)
    assert metrics_n["nll"].item() == pytest.approx(float(total) / count, abs=1e-5)  # per token


def test_nll_metrics_are_detached_and_gradient_matches_the_naive_loop():
    logits, labels, mask = random_batch(3)
    x = logits.clone().requires_grad_(True)
    loss, metrics = losses.nll_loss(x, labels, mask, num_tokens=11.0)
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in metrics.values())
    loss.backward()
    ref = logits.double().clone().requires_grad_(True)
    (naive_nll(ref, labels, mask)[0] / 11.0).backward()
    assert torch.allclose(x.grad.double(), ref.grad, atol=1e-6)
    assert x.grad[-1].abs().sum() == 0 and x.grad[mask == 0].abs().sum() == 0  # masked: no gradient


def test_nll_loss_ignores_hf_padding_labels():
    logits = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(4))
    labels = torch.tensor([[1, 2, -100, -100], [3, 4, 5, -100]])
    loss, _ = losses.nll_loss(logits, labels, (labels >= 0).long())
    ref = F.cross_entropy(logits.view(-1, 6), labels.view(-1), ignore_index=-100)
    assert torch.isfinite(loss) and torch.allclose(loss, ref, atol=1e-6)


def random_q(g, shape):
    q = torch.softmax(torch.randn(*shape, generator=g) * 2, -1)
    q = q * (torch.rand(*shape, generator=g) > 0.3)  # exact zeros: 0 · log 0 must count as 0
    q[..., 0] += 1e-3  # no row entirely zero
    return q / q.sum(-1, keepdim=True)


def test_cross_entropy_is_kl_plus_entropy():
    g = torch.Generator().manual_seed(5)
    q, logits = random_q(g, (2, 4, 9)), torch.randn(2, 4, 9, generator=g) * 3
    assert (q == 0).any()
    parts = losses.cross_entropy_decomposition(q, logits)
    assert all(v.shape == (2, 4) and torch.isfinite(v).all() for v in parts.values())
    assert torch.allclose(parts["cross_entropy"], parts["kl"] + parts["entropy"], atol=1e-5)
    assert (parts["kl"] >= -1e-6).all() and (parts["entropy"] >= 0).all()
    # naive: sums over v with 0 · log 0 = 0
    logp = torch.log_softmax(logits.double(), -1)
    qd = q.double()
    for i in range(2):
        for j in range(4):
            ent = -sum(p * math.log(p) for p in qd[i, j].tolist() if p > 0)
            ce = -sum(p * lp for p, lp in zip(qd[i, j].tolist(), logp[i, j].tolist()))
            assert parts["entropy"][i, j].item() == pytest.approx(ent, abs=1e-5)
            assert parts["cross_entropy"][i, j].item() == pytest.approx(ce, abs=1e-5)


def test_cross_entropy_decomposition_matches_torch():
    g = torch.Generator().manual_seed(6)
    q, logits = random_q(g, (5, 11)), torch.randn(5, 11, generator=g)
    parts = losses.cross_entropy_decomposition(q, logits)
    ref_ce = F.cross_entropy(logits, q, reduction="none")  # probability targets
    ref_kl = F.kl_div(F.log_softmax(logits, -1), q, reduction="none").sum(-1)
    assert torch.allclose(parts["cross_entropy"], ref_ce, atol=1e-5)
    assert torch.allclose(parts["kl"], ref_kl, atol=1e-5)


def test_kl_is_zero_only_when_the_model_matches_the_data():
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(4, 9, generator=g)
    same = losses.cross_entropy_decomposition(torch.softmax(logits, -1), logits)
    assert torch.allclose(same["kl"], torch.zeros(4), atol=1e-6)
    assert torch.allclose(same["cross_entropy"], same["entropy"], atol=1e-6)
    q = torch.softmax(logits + torch.randn(4, 9, generator=g), -1)
    other = losses.cross_entropy_decomposition(q, logits)
    assert (other["kl"] > 1e-3).all()


# --- gradients reach only what is trained -------------------------------------------------------
# A loss that let gradient into a frozen quantity (the reference's log-probs, the rollout's old
# log-probs, advantages or returns) would train the reference, or chase its own targets, whenever a
# caller passed tensors still attached to a graph. Each row: the loss as a function of named inputs
# (all leaves that require grad), the input the method trains, and the ones it must leave alone.

def _leaves(B=4, T=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.arange(T)[None, :] < torch.tensor([5, 3, 1, 4])[:B, None]).float()
    x = {k: torch.randn(B, T, generator=g) for k in ("logp", "old", "adv", "values", "returns", "ref_tok")}
    x |= {k: -torch.rand(B, generator=g) * 10 for k in ("pc", "pr", "rc", "rr")}
    x |= {"scores": torch.randn(B, generator=g)}
    return {k: v.requires_grad_(True) for k, v in x.items()}, mask


FROZEN = [  # (name, loss of the leaves, trained inputs, frozen inputs)
    *[(f"dpo-{t}", lambda x, m, t=t: losses.dpo_loss(x["pc"], x["pr"], x["rc"], x["rr"], 0.3, t)[0],
       ("pc", "pr"), ("rc", "rr")) for t in ("sigmoid", "hinge", "ipo")],
    ("kto", lambda x, m: losses.kto_loss(x["pc"], x["rc"], torch.tensor([1, 0, 1, 0]), x["scores"].mean())[0],
     ("pc",), ("rc", "scores")),
    ("ppo_clip", lambda x, m: losses.ppo_clip_loss(x["logp"], x["old"], x["adv"], m)[0], ("logp",), ("old", "adv")),
    ("value", lambda x, m: losses.value_loss(x["values"], x["old"], x["returns"], m)[0], ("values",),
     ("old", "returns")),
    ("kl_penalized_rewards", lambda x, m: losses.kl_penalized_rewards(x["scores"], x["logp"], x["ref_tok"], m,
                                                                      0.1).sum(), (), ("scores", "logp", "ref_tok")),
    ("gae", lambda x, m: sum(t.sum() for t in losses.gae(x["adv"], x["values"], 1.0, 0.95, m)), (),
     ("adv", "values")),
]


@pytest.mark.parametrize("name, loss_fn, trained, frozen", FROZEN, ids=[r[0] for r in FROZEN])
def test_gradient_reaches_only_the_trained_inputs(name, loss_fn, trained, frozen):
    x, mask = _leaves()
    loss = loss_fn(x, mask)
    if not trained:  # a target computed without gradient: nothing to backpropagate into
        assert not loss.requires_grad
        return
    loss.backward()
    assert all(x[k].grad is not None and x[k].grad.abs().sum() > 0 for k in trained)
    assert all(x[k].grad is None for k in frozen), {k: x[k].grad for k in frozen}


@pytest.mark.parametrize("name, loss_fn, trained, frozen", FROZEN, ids=[r[0] for r in FROZEN])
def test_float64_inputs_give_float64_outputs(name, loss_fn, trained, frozen):
    x, mask = _leaves()
    x = {k: v.detach().double() for k, v in x.items()}
    assert loss_fn(x, mask.double()).dtype == torch.float64
