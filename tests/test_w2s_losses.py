"""Chapter 8's objectives: `losses.pgr` and `losses.confidence_loss` (Burns et al., 2023)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alignlab.losses import confidence_loss, pgr


def test_pgr_by_hand():
    assert pgr(0.6, 0.7, 0.8) == pytest.approx(0.5)
    assert pgr(0.6, 0.8, 0.8) == pytest.approx(1.0)
    assert pgr(0.6, 0.55, 0.8) == pytest.approx(-0.25)  # the student did worse than its supervisor
    assert isinstance(pgr(0.6, 0.7, 0.8), float)


def test_pgr_is_elementwise_on_arrays():
    out = pgr(np.array([0.6, 0.5]), np.array([0.7, 0.9]), np.array([0.8, 1.0]))
    np.testing.assert_allclose(out, [0.5, 0.8])
    np.testing.assert_allclose(pgr([0.6, 0.5], [0.7, 0.9], 1.0), [0.25, 0.8])  # broadcasts a shared ceiling


@pytest.mark.parametrize("ceiling", [0.6, 0.55, [0.8, 0.6], float("nan")])
def test_pgr_needs_a_gap(ceiling):
    with pytest.raises(ValueError, match="ceiling above the weak"):
        pgr(0.6, 0.7, ceiling)


def _naive_confidence_loss(logits, weak, alpha):
    """Row by row, the quantile by sorting (linear interpolation, as torch.quantile / numpy)."""
    probs = logits.softmax(-1).detach()
    p0 = sorted(probs[:, 0].tolist())
    q = weak[:, 1].mean().item() * (len(p0) - 1)
    lo = int(np.floor(q))
    thr = p0[lo] + (q - lo) * (p0[min(lo + 1, len(p0) - 1)] - p0[lo])
    total = 0.0
    for i in range(len(logits)):
        hard = [1.0, 0.0] if probs[i, 0] >= thr else [0.0, 1.0]
        logp = logits[i].log_softmax(-1)
        for c in range(2):
            total = total - ((1 - alpha) * weak[i, c] + alpha * hard[c]) * logp[c]
    return total / len(logits)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_confidence_loss_matches_a_naive_loop(alpha):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(9, 2, generator=g, dtype=torch.float64)
    p = torch.rand(9, generator=g, dtype=torch.float64)
    weak = torch.stack([1 - p, p], -1)
    loss, metrics = confidence_loss(logits, weak, alpha)
    assert loss.item() == pytest.approx(_naive_confidence_loss(logits, weak, alpha).item(), rel=1e-10)
    assert 0 <= metrics["hard_positive"] <= 1


def test_at_alpha_zero_it_is_cross_entropy_to_the_weak_labels():
    logits = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    weak = torch.rand(16, 1, generator=torch.Generator().manual_seed(2)).expand(16, 2).clone()
    weak[:, 0] = 1 - weak[:, 1]
    assert confidence_loss(logits, weak, 0.0)[0].item() == pytest.approx(F.cross_entropy(logits, weak).item())


def test_the_hardened_labels_keep_the_weak_labels_positive_share():
    """The threshold is the student's class-0 probability at the quantile of the weak positive
    share, so as many rows harden to positive as the weak labels hold (not a fixed 0.5 cut)."""
    logits = torch.stack([torch.zeros(10), torch.linspace(1, 3, 10)], -1)  # the student says positive for all
    weak = torch.tensor([[1.0, 0.0]] * 7 + [[0.0, 1.0]] * 3)  # the weak labels: 30% positive
    _, metrics = confidence_loss(logits, weak, 1.0)
    assert metrics["hard_positive"].item() == pytest.approx(0.3)  # a 0.5 cut would give 1.0


def test_the_hardened_targets_carry_no_gradient():
    """∂L/∂logits = (softmax − target) / B with the target a constant: a target with a path back
    into the logits would change the gradient."""
    logits = torch.randn(8, 2, generator=torch.Generator().manual_seed(3), requires_grad=True)
    weak = torch.tensor([[0.8, 0.2], [0.3, 0.7]] * 4)
    loss, _ = confidence_loss(logits, weak, 0.5)
    loss.backward()
    probs = logits.detach().softmax(-1)
    thr = torch.quantile(probs[:, 0], weak[:, 1].mean())
    hard = torch.stack([probs[:, 0] >= thr, probs[:, 0] < thr], -1).float()
    target = 0.5 * weak + 0.5 * hard
    torch.testing.assert_close(logits.grad, (probs - target) / 8)
