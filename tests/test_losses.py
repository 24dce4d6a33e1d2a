"""Losses against naive references (CS336 style: seeded inputs, a loop a student could write)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from alignlab import losses


def naive_nll(logits, labels, mask):
    total, count = 0.0, 0.0
    B, T, _ = logits.shape
    for b in range(B):
        for t in range(T):
            if mask[b, t]:
                probs = torch.softmax(logits[b, t].double(), -1)
                total += -math.log(probs[labels[b, t]].item())
                count += 1
    return total, count


def test_nll_loss_matches_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=g)
    labels = torch.randint(0, 7, (3, 5), generator=g)
    mask = (torch.rand(3, 5, generator=g) > 0.4).long()
    mask[2] = 0  # an all-padding row contributes nothing
    total, count = naive_nll(logits, labels, mask)
    loss, metrics = losses.nll_loss(logits, labels, mask)
    assert torch.allclose(loss, torch.tensor(total / count, dtype=loss.dtype), atol=1e-5)
    assert metrics["tokens"].item() == count and not metrics["nll"].requires_grad
    loss_n, _ = losses.nll_loss(logits, labels, mask, num_tokens=torch.tensor(10.0))
    assert torch.allclose(loss_n, torch.tensor(total / 10, dtype=loss.dtype), atol=1e-5)


def test_nll_loss_gradient_flows_and_ignores_hf_padding_labels():
    logits = torch.randn(2, 4, 6, requires_grad=True)
    labels = torch.tensor([[1, 2, -100, -100], [3, 4, 5, -100]])
    mask = (labels >= 0).long()
    loss, _ = losses.nll_loss(logits, labels, mask)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad[0, 2:].abs().sum() == 0
    ref = F.cross_entropy(logits.detach().view(-1, 6), labels.view(-1), ignore_index=-100)
    assert torch.allclose(loss.detach(), ref, atol=1e-6)


def test_cross_entropy_decomposition():
    g = torch.Generator().manual_seed(1)
    q = torch.softmax(torch.randn(4, 9, generator=g), -1)
    q[0, :3] = 0
    q = q / q.sum(-1, keepdim=True)
    logits = torch.randn(4, 9, generator=g)
    parts = losses.cross_entropy_decomposition(q, logits)
    assert torch.allclose(parts["cross_entropy"], parts["kl"] + parts["entropy"], atol=1e-6)
    assert (parts["kl"] >= -1e-7).all()
    ref_ce = F.cross_entropy(logits, q, reduction="none")
    ref_kl = F.kl_div(F.log_softmax(logits, -1), q, reduction="none").sum(-1)
    assert torch.allclose(parts["cross_entropy"], ref_ce, atol=1e-5)
    assert torch.allclose(parts["kl"], ref_kl, atol=1e-5)
    same = losses.cross_entropy_decomposition(torch.softmax(logits, -1), logits)
    assert torch.allclose(same["kl"], torch.zeros(4), atol=1e-6)
