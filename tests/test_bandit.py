"""DPO's derivation, checked exactly on the bandit (float64, ≤ 1e-6)."""
from __future__ import annotations

import pytest
import torch

from alignlab import losses
from alignlab.bandit import Bandit


@pytest.mark.parametrize("beta", [0.25, 1.0, 4.0])
def test_numerical_maximisation_finds_the_closed_form_optimum(beta):
    b = Bandit.example()
    pi_star, pi_num = b.optimal_policy(beta), b.maximise(beta)
    assert torch.allclose(pi_num, pi_star, atol=1e-6)
    assert b.objective(pi_star, beta) >= b.objective(b.ref, beta)  # and it beats the reference


@pytest.mark.parametrize("beta", [0.25, 1.0])
def test_the_reward_is_recovered_from_the_optimal_policy(beta):
    b = Bandit.example()
    assert torch.allclose(b.implied_reward(b.optimal_policy(beta), beta), b.reward, atol=1e-10)


def test_log_partition_cancels_in_bradley_terry_and_shifts_leave_the_optimum():
    b, beta = Bandit.example(), 0.5
    pi = b.optimal_policy(beta)
    r_hat = b.implied_reward(pi, beta)
    for w, l in [(0, 2), (1, 3), (4, 0)]:
        with_z = r_hat[w] - r_hat[l]
        without = beta * ((pi[w].log() - b.ref[w].log()) - (pi[l].log() - b.ref[l].log()))
        assert float(with_z - without) == pytest.approx(0.0, abs=1e-12)
        dpo, _ = losses.dpo_loss(pi[w].log()[None], pi[l].log()[None], b.ref[w].log()[None],
                                 b.ref[l].log()[None], beta=beta)
        bt, _ = losses.bradley_terry_loss(b.reward[w][None], b.reward[l][None])
        assert dpo.item() == pytest.approx(bt.item(), abs=1e-6)  # DPO on π* is BT on r
    shifted = Bandit(b.ref, b.reward + 3.7, b.labels)  # r + f(x): the same optimal policy
    assert torch.allclose(shifted.optimal_policy(beta), pi, atol=1e-12)
