"""PPO's losses against naive per-token loops, GAE identities, and the KL estimators' means."""
from __future__ import annotations

import math

import pytest
import torch

from alignlab import losses


def rand_batch(B=3, T=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = [T, T - 2, 1][:B]
    mask = torch.zeros(B, T)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
    r = lambda: torch.randn(B, T, generator=g)  # noqa: E731
    return mask, r


def naive_gae(rewards, values, gamma, lam, mask):
    B, T = rewards.shape
    adv = torch.zeros(B, T)
    for b in range(B):
        n = int(mask[b].sum())
        for t in range(n):
            total = 0.0
            for l in range(n - t):
                v_next = values[b, t + l + 1].item() if t + l + 1 < n else 0.0
                delta = rewards[b, t + l].item() + gamma * v_next - values[b, t + l].item()
                total += (gamma * lam) ** l * delta
            adv[b, t] = total
    return adv, (adv + values) * mask


@pytest.mark.parametrize("gamma, lam", [(1.0, 1.0), (0.99, 0.95), (1.0, 0.0), (0.9, 0.5)])
def test_gae_matches_the_definition(gamma, lam):
    mask, r = rand_batch()
    rewards, values = r() * mask, r()
    adv, ret = losses.gae(rewards, values, gamma, lam, mask)
    want_adv, want_ret = naive_gae(rewards, values, gamma, lam, mask)
    assert torch.allclose(adv, want_adv, atol=1e-5) and torch.allclose(ret, want_ret, atol=1e-5)
    assert (adv[mask == 0] == 0).all() and (ret[mask == 0] == 0).all()


def test_gae_with_lambda_and_gamma_one_is_reward_to_go_minus_value():
    mask, r = rand_batch(seed=1)
    rewards, values = r() * mask, r()
    adv, ret = losses.gae(rewards, values, 1.0, 1.0, mask)
    to_go = torch.flip(torch.cumsum(torch.flip(rewards, [1]), 1), [1]) * mask
    assert torch.allclose(adv, (to_go - values) * mask, atol=1e-5)
    assert torch.allclose(ret, to_go, atol=1e-5)


def test_ppo_clip_loss_matches_a_naive_loop():
    mask, r = rand_batch(seed=2)
    logp, old, adv = r() * 0.3, r() * 0.3, r()
    loss, m = losses.ppo_clip_loss(logp, old, adv, mask, clip_eps=0.2)
    total, clipped, kl, n = 0.0, 0, 0.0, int(mask.sum())
    for b, t in mask.nonzero().tolist():
        rho = math.exp(logp[b, t] - old[b, t])
        a = adv[b, t].item()
        total += max(-a * rho, -a * min(max(rho, 0.8), 1.2))
        clipped += abs(rho - 1) > 0.2
        kl += (rho - 1) - math.log(rho)
    assert loss.item() == pytest.approx(total / n, rel=1e-5)
    assert m["clip_frac"].item() == pytest.approx(clipped / n) and m["approx_kl"].item() == pytest.approx(kl / n, rel=1e-4)
    assert losses.ppo_clip_loss(logp, old, adv, mask, num_tokens=2 * n)[0].item() == pytest.approx(total / n / 2, rel=1e-5)


def test_ppo_gradient_vanishes_where_the_ratio_is_clipped_in_the_advantage_direction():
    logp = torch.tensor([[0.5, -0.5]], requires_grad=True)  # ρ = e^{±0.5}: outside [0.8, 1.2]
    losses.ppo_clip_loss(logp, torch.zeros(1, 2), torch.tensor([[1.0, -1.0]]), torch.ones(1, 2))[0].backward()
    assert torch.equal(logp.grad, torch.zeros(1, 2))


@pytest.mark.parametrize("clip_eps", [0.2, None])
def test_value_loss_matches_a_naive_loop(clip_eps):
    mask, r = rand_batch(seed=3)
    v, old, ret = r(), r(), r()
    loss, _ = losses.value_loss(v, old, ret, mask, clip_eps=clip_eps)
    total = 0.0
    for b, t in mask.nonzero().tolist():
        err = (v[b, t] - ret[b, t]).item() ** 2
        if clip_eps is not None:
            vc = old[b, t].item() + min(max((v[b, t] - old[b, t]).item(), -clip_eps), clip_eps)
            err = max(err, (vc - ret[b, t].item()) ** 2)
        total += err
    assert loss.item() == pytest.approx(0.5 * total / mask.sum().item(), rel=1e-5)


def test_kl_estimators_match_the_exact_kl_of_a_small_categorical():
    g = torch.Generator().manual_seed(4)
    logits_p, logits_q = torch.randn(6, generator=g), torch.randn(6, generator=g)
    p, q = torch.softmax(logits_p, -1), torch.softmax(logits_q, -1)
    exact = float((p * (p.log() - q.log())).sum())
    x = torch.multinomial(p, 400_000, replacement=True, generator=g)
    est = losses.kl_estimators(p.log()[x], q.log()[x])
    for k in ("k1", "k3"):  # unbiased
        mean, se = est[k].mean().item(), est[k].std().item() / math.sqrt(len(x))
        assert abs(mean - exact) < 4 * se + 1e-4, (k, mean, exact)
    assert (est["k3"] >= 0).all() and (est["k1"] < 0).any()  # k1 goes negative, k3 never
    assert est["k2"].mean().item() == pytest.approx(exact, rel=0.5)  # biased but close when π ≈ π_ref


def test_kl_penalized_rewards_put_the_score_on_the_last_token():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.float32)
    logp, ref = torch.full((3, 4), -1.0), torch.full((3, 4), -1.5)
    r = losses.kl_penalized_rewards(torch.tensor([2.0, -1.0, 5.0]), logp, ref, mask, beta=0.1)
    want = torch.tensor([[-0.05, -0.05, 1.95, 0], [-1.05, 0, 0, 0], [0, 0, 0, 0]])
    assert torch.allclose(r, want, atol=1e-6)
    same = losses.kl_penalized_rewards(torch.tensor([2.0, -1.0, 5.0]), logp, ref, mask, torch.tensor(0.1))
    assert torch.allclose(same, r)
