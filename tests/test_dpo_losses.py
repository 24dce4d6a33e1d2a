"""DPO and its family against their papers' formulas, computed naively, one pair at a time."""
from __future__ import annotations

import math

import pytest
import torch

from alignlab import losses


def logps(seed=0, B=6):
    g = torch.Generator().manual_seed(seed)
    return [-(torch.rand(B, generator=g) * 20 + 1) for _ in range(4)]


def log_sigmoid(x):
    return -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))


@pytest.mark.parametrize("loss_type, per_pair", [
    ("sigmoid", lambda h, b: -log_sigmoid(b * h)),
    ("hinge", lambda h, b: max(0.0, 1 - b * h)),
    ("ipo", lambda h, b: (h - 1 / (2 * b)) ** 2),
])
def test_dpo_loss_matches_the_formula(loss_type, per_pair):
    pc, pr, rc, rr = logps()
    loss, m = losses.dpo_loss(pc, pr, rc, rr, beta=0.3, loss_type=loss_type)
    hs = [float((pc[i] - rc[i]) - (pr[i] - rr[i])) for i in range(6)]
    assert loss.item() == pytest.approx(sum(per_pair(h, 0.3) for h in hs) / 6, rel=1e-5)
    assert m["accuracy"].item() == pytest.approx(sum(h > 0 for h in hs) / 6)
    assert m["margin"].item() == pytest.approx(0.3 * sum(hs) / 6, rel=1e-5)
    assert m["chosen_reward"].item() == pytest.approx(0.3 * float((pc - rc).mean()), rel=1e-5)


def test_dpo_loss_rejects_an_unknown_type():
    with pytest.raises(ValueError, match="loss_type must be one of"):
        losses.dpo_loss(*logps(), loss_type="sigmod")


def test_dpo_gradient_is_weighted_by_how_wrong_the_implicit_reward_is():
    """∇_h of −log σ(βh) is −β σ(−βh): pairs the implicit reward already orders get little weight."""
    pc = torch.tensor([0.0, 0.0], requires_grad=True)
    losses.dpo_loss(pc, torch.tensor([-5.0, 5.0]), torch.zeros(2), torch.zeros(2), beta=1.0)[0].backward()
    expect = [-1.0 / 2 * torch.sigmoid(torch.tensor(-5.0)).item(), -1.0 / 2 * torch.sigmoid(torch.tensor(5.0)).item()]
    assert pc.grad.tolist() == pytest.approx(expect, rel=1e-5)


def test_simpo_matches_the_formula():
    g = torch.Generator().manual_seed(1)
    c, r = -torch.rand(5, generator=g) * 3, -torch.rand(5, generator=g) * 3
    loss, _ = losses.simpo_loss(c, r, beta=2.0, gamma=0.5)
    want = sum(-log_sigmoid(2.0 * float(c[i]) - 2.0 * float(r[i]) - 0.5) for i in range(5)) / 5
    assert loss.item() == pytest.approx(want, rel=1e-5)


def test_orpo_matches_the_formula():
    c, r, nll = torch.tensor([-0.2, -1.5]), torch.tensor([-0.9, -0.4]), torch.tensor(0.7)
    loss, m = losses.orpo_loss(c, r, nll, lam=0.25)
    odds = lambda a: math.log(math.exp(a) / (1 - math.exp(a)))  # noqa: E731
    ratios = [odds(-0.2) - odds(-0.9), odds(-1.5) - odds(-0.4)]
    want = 0.7 + 0.25 * sum(-log_sigmoid(x) for x in ratios) / 2
    assert loss.item() == pytest.approx(want, rel=1e-5) and m["accuracy"].item() == 0.5


def test_kto_matches_the_formula():
    pol, ref = torch.tensor([-3.0, -5.0, -2.0]), torch.tensor([-4.0, -4.5, -2.5])
    desirable = torch.tensor([True, False, True])
    loss, m = losses.kto_loss(pol, ref, desirable, reference_point=0.2, beta=0.5, lambda_d=1.0, lambda_u=1.5)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    r = [1.0, -0.5, 0.5]
    v = [1.0 * sig(0.5 * (r[0] - 0.2)), 1.5 * sig(0.5 * (0.2 - r[1])), 1.0 * sig(0.5 * (r[2] - 0.2))]
    want = ((1.0 - v[0]) + (1.5 - v[1]) + (1.0 - v[2])) / 3
    assert loss.item() == pytest.approx(want, rel=1e-6)
    assert m["desirable_reward"].item() == pytest.approx(0.5 * (1.0 + 0.5) / 2)


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo"])
def test_dpo_loss_gradients_pass_gradcheck(loss_type):
    g = torch.Generator().manual_seed(3)
    inputs = tuple(-(torch.rand(4, generator=g, dtype=torch.float64) * 5 + 0.1).requires_grad_(True) for _ in range(2))
    ref = tuple(-(torch.rand(4, generator=g, dtype=torch.float64) * 5 + 0.1) for _ in range(2))

    def f(c, r):
        h = (c - ref[0]) - (r - ref[1])  # the float32 cast inside dpo_loss is bypassed for float64 checking
        return losses._DPO_LOSSES[loss_type](h, 0.7).mean()
    assert torch.autograd.gradcheck(f, inputs)
    c, r = inputs  # and dpo_loss computes exactly that function
    assert losses.dpo_loss(c, r, *ref, beta=0.7, loss_type=loss_type)[0].item() == pytest.approx(f(c, r).item(), rel=1e-6)


@pytest.mark.parametrize("loss_type, per_pair", [
    ("sigmoid", lambda h, b: -log_sigmoid(b * h)),
    ("ipo", lambda h, b: (h - 1 / (2 * b)) ** 2),
])
def test_float64_inputs_stay_float64(loss_type, per_pair):
    """A pure loss upcasts half precision and keeps float64: a float64 reference (Python floats,
    one pair at a time) then agrees to 1e-10, where float32 would differ by ~1e-5 on IPO."""
    pc, pr, rc, rr = (x.double() for x in logps())
    loss, _ = losses.dpo_loss(pc, pr, rc, rr, beta=0.1, loss_type=loss_type)
    hs = [float((pc[i] - rc[i]) - (pr[i] - rr[i])) for i in range(6)]
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(sum(per_pair(h, 0.1) for h in hs) / 6, rel=1e-10, abs=1e-10)
    half, _ = losses.dpo_loss(*(x.bfloat16() for x in (pc, pr, rc, rr)), beta=0.1, loss_type=loss_type)
    assert half.dtype == torch.float32
