"""Bradley-Terry on counts, its choice-model relatives, and the personas on which it breaks.

Seeded simulations with tolerances of several standard errors, so a pass is not luck and a
broken estimator fails. The file runs in about a second.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from alignlab import bradley_terry as bt
from alignlab.world import gold_components, gold_reward, personas

CHI2_1DF_999 = 10.83  # χ²₁ quantile 0.999
CHI2_10DF_999 = 29.59  # χ²₁₀ quantile 0.999


def centred(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=float) - np.mean(x)


def prob_matrix(prob, prompt: str, responses: list[str]) -> np.ndarray:
    """(n, n) matrix of prob(prompt, a, b); 0.5 on the diagonal."""
    return np.array([[0.5 if i == j else prob(prompt, a, b) for j, b in enumerate(responses)]
                     for i, a in enumerate(responses)])


# ---------------------------------------------------------------- fitting

def test_fit_bt_recovers_scores_from_many_comparisons():
    rng = np.random.default_rng(0)
    true = rng.normal(0, 1, 6)
    fit = bt.fit_bt(bt.simulate_wins(true, 2000, rng))
    assert abs(fit.mean()) < 1e-12
    assert np.max(np.abs(fit - centred(true))) < 0.1


def test_fit_bt_is_exact_on_expected_counts():
    """Counts equal to their expectations make the true scores the exact (unpenalised) MLE."""
    true = np.array([1.3, -0.4, 0.2, -1.1, 0.0])
    wins = 1000 * bt.bt_probs(true)
    np.fill_diagonal(wins, 0)
    np.testing.assert_allclose(bt.fit_bt(wins, l2=0.0), centred(true), atol=1e-8)


def test_fit_bt_is_invariant_to_shifting_the_true_scores():
    true = np.random.default_rng(1).normal(0, 1, 5)
    fits = [bt.fit_bt(bt.simulate_wins(true + c, 500, np.random.default_rng(2))) for c in (0.0, 3.7, -12.0)]
    for fit in fits[1:]:
        np.testing.assert_allclose(fit, fits[0], atol=1e-8)


def test_log_likelihood_gradient_vanishes_at_the_fit():
    rng = np.random.default_rng(3)
    wins = bt.simulate_wins(rng.normal(0, 1, 4), 300, rng)
    fit = bt.fit_bt(wins)

    def grad(s: np.ndarray, h: float = 1e-6) -> np.ndarray:  # central differences
        ll = lambda x: bt.log_likelihood(wins, bt.bt_probs(x))  # noqa: E731
        return np.array([(ll(s + h * e) - ll(s - h * e)) / (2 * h) for e in np.eye(len(s))])

    assert np.max(np.abs(grad(fit))) < 1e-4
    assert np.max(np.abs(grad(fit + np.array([0.1, 0, 0, 0])))) > 1.0  # the check can fail


def test_fit_bt_is_finite_on_perfectly_separated_data():
    wins = bt.win_matrix([(0, 1)] * 3 + [(0, 2)] * 2 + [(1, 2)] * 4, 3)  # 0 > 1 > 2, never lost
    fit = bt.fit_bt(wins)
    assert np.all(np.isfinite(fit))
    assert fit[0] > fit[1] > fit[2]


def test_bt_fits_bt_data_as_well_as_the_saturated_model():
    rng = np.random.default_rng(4)
    wins = bt.simulate_wins(rng.normal(0, 1, 6), 400, rng)
    lr = 2 * (bt.log_likelihood(wins, bt.saturated_probs(wins))
              - bt.log_likelihood(wins, bt.bt_probs(bt.fit_bt(wins))))
    assert 0 <= lr < CHI2_10DF_999  # 15 pairs − 5 free scores = 10 degrees of freedom


def test_borda_and_saturated_probs_on_a_small_table():
    wins = bt.win_matrix([(0, 1), (0, 1), (1, 0), (2, 0)], 4)
    np.testing.assert_allclose(bt.borda(wins), [2 / 4, 1 / 3, 1.0, 0.5])
    sat = bt.saturated_probs(wins)
    assert sat[0, 1] == pytest.approx(2 / 3) and sat[1, 0] == pytest.approx(1 / 3)
    assert sat[1, 2] == 0.5 and sat[0, 2] == 0.0


@pytest.mark.parametrize("wins, match", [
    (np.zeros((2, 3)), "square"),
    (np.zeros(4), "square"),
    (np.array([[0.0, -1.0], [2.0, 0.0]]), "non-negative"),
    (np.array([[0.0, np.nan], [2.0, 0.0]]), "finite"),
    (np.array([[1.0, 1.0], [2.0, 0.0]]), "diagonal"),
])
def test_fit_bt_rejects_bad_counts(wins, match):
    with pytest.raises(ValueError, match=match):
        bt.fit_bt(wins)


def test_win_matrix_rejects_bad_comparisons():
    with pytest.raises(ValueError, match="two different items"):
        bt.win_matrix([(1, 1)], 3)
    with pytest.raises(ValueError, match="two different items"):
        bt.win_matrix([(0, 3)], 3)


# ---------------------------------------------------------------- choice models

def test_luce_pairwise_marginal_is_bt_and_ratios_ignore_the_rest():
    s = np.random.default_rng(5).normal(0, 1, 5)
    p = bt.bt_probs(s)
    for i, j in [(0, 1), (3, 2), (4, 0)]:
        assert bt.luce_choice_probs(s, [i, j])[0] == pytest.approx(p[i, j], abs=1e-12)
    ratios = [bt.luce_choice_probs(s, sub)[0] / bt.luce_choice_probs(s, sub)[1]
              for sub in ([0, 1], [0, 1, 2], [0, 1, 2, 3, 4], [0, 1, 4])]
    np.testing.assert_allclose(ratios, math.exp(s[0] - s[1]), rtol=1e-12)


def test_gumbel_argmax_is_logistic_for_two_and_softmax_for_four():
    rng, n = np.random.default_rng(6), 200_000
    u2 = np.array([0.7, -0.3])
    p2 = 1 / (1 + math.exp(-(u2[0] - u2[1])))
    assert abs(bt.gumbel_choice(u2, n, rng)[0] - p2) < 3 * math.sqrt(p2 * (1 - p2) / n)
    u4 = np.array([0.5, -1.0, 1.2, 0.0])
    soft = np.exp(u4) / np.exp(u4).sum()
    freq = bt.gumbel_choice(u4, n, rng)
    assert freq.shape == (4,) and freq.sum() == pytest.approx(1.0)
    assert np.all(np.abs(freq - soft) < 3 * np.sqrt(soft * (1 - soft) / n))


def test_find_cycle_finds_a_planted_cycle_and_none_in_bt():
    p = bt.bt_probs(np.array([0.0, 1.0, 2.0, 3.0]))
    for i, j in [(1, 2), (2, 3), (3, 1)]:  # plant 1 > 2 > 3 > 1
        p[i, j], p[j, i] = 0.6, 0.4
    i, j, k = bt.find_cycle(p)
    assert {i, j, k} == {1, 2, 3} and p[i, j] > 0.5 and p[j, k] > 0.5 and p[k, i] > 0.5
    for seed in range(5):
        assert bt.find_cycle(bt.bt_probs(np.random.default_rng(seed).normal(0, 1, 7))) is None


# ---------------------------------------------------------------- personas: Condorcet

def test_condorcet_example_is_a_majority_cycle_of_transitive_personas():
    start = time.perf_counter()
    prompt, responses = personas.condorcet_example()
    assert time.perf_counter() - start < 1.0
    assert personas.condorcet_example() == (prompt, responses)
    panel = prob_matrix(lambda *t: personas.panel_prob(personas.PANEL, *t), prompt, responses)
    assert panel[0, 1] > 0.6 and panel[1, 2] > 0.6 and panel[2, 0] > 0.6  # a > b > c > a
    assert bt.find_cycle(panel) is not None
    for persona in personas.PANEL:
        assert bt.find_cycle(prob_matrix(persona.prob_prefers, prompt, responses)) is None


def test_bt_fit_to_a_condorcet_panel_is_flat_and_misfits():
    prompt, responses = personas.condorcet_example()
    panel = prob_matrix(lambda *t: personas.panel_prob(personas.PANEL, *t), prompt, responses)
    # A persona drawn uniformly per comparison: each label is Bernoulli(mean of their probs).
    wins = bt.sample_wins(panel, 3000, np.random.default_rng(7))
    fit = bt.fit_bt(wins)
    assert np.ptp(fit) < 0.2
    gap = bt.log_likelihood(wins, bt.saturated_probs(wins)) - bt.log_likelihood(wins, bt.bt_probs(fit))
    assert gap / wins.sum() > 0.03  # nats per comparison that no scores can recover
    assert 2 * gap > CHI2_1DF_999  # 3 pairs − 2 free scores = 1 degree of freedom


def test_persona_rejects_unknown_components_and_ties_at_zero_temperature():
    with pytest.raises(ValueError, match="unknown components"):
        personas.Persona("typo", {"corect": 1.0})
    prompt, (a, b, _) = personas.condorcet_example()
    cold = personas.Persona("cold", {"correct": 1.0}, temperature=0.0)
    assert cold.prob_prefers(prompt, a, a) == 0.5 and cold.prob_prefers(prompt, b, a) == 1.0
    assert cold.compare(prompt, b, a) == 0


# ---------------------------------------------------------------- decoy

def test_decoy_example_has_the_promised_dominance_structure():
    prompt, target, competitor, decoy = personas.decoy_example()
    t, c, d = (gold_components(prompt, r) for r in (target, competitor, decoy))
    assert not personas.dominates(t, c) and not personas.dominates(c, t)
    assert personas.dominates(t, d) and not personas.dominates(c, d) and not personas.dominates(d, c)
    assert abs(gold_reward(prompt, target) - gold_reward(prompt, competitor)) < 0.1


def test_decoy_changes_the_ratio_which_no_luce_scores_can():
    prompt, target, competitor, decoy = personas.decoy_example()
    labeler = personas.DecoyLabeler()
    p2 = labeler.choice_probs(prompt, [target, competitor])
    p3 = labeler.choice_probs(prompt, [target, competitor, decoy])
    r2, r3 = p2[0] / p2[1], p3[0] / p3[1]
    assert abs(r3 / r2 - 1) > 0.2
    assert r3 / r2 == pytest.approx(math.exp(labeler.dominance_bonus / labeler.temperature))
    for seed in range(3):  # any scores s = (target, competitor, decoy): one ratio in both sets
        s = np.random.default_rng(seed).normal(0, 2, 3)
        l2, l3 = bt.luce_choice_probs(s, [0, 1]), bt.luce_choice_probs(s, [0, 1, 2])
        assert l2[0] / l2[1] == pytest.approx(l3[0] / l3[1], rel=1e-12)


def test_decoy_labeler_choices_follow_its_probabilities():
    prompt, *options = personas.decoy_example()
    labeler = personas.DecoyLabeler(seed=3)
    probs = labeler.choice_probs(prompt, options)
    n = 4000
    counts = np.bincount([labeler.choose(prompt, options) for _ in range(n)], minlength=3)
    se = np.sqrt(np.array(probs) * (1 - np.array(probs)) / n)
    assert np.all(np.abs(counts / n - probs) < 4 * se)


# ---------------------------------------------------------------- hidden context

def test_hidden_context_bt_ranks_by_borda_not_mean_utility():
    prompt, responses, pair = personas.hidden_context_example()
    assert personas.hidden_context_example() == (prompt, responses, pair)
    mean_utility = [np.mean([p.utility(prompt, r) for p in pair]) for r in responses]
    rng = np.random.default_rng(8)  # each persona labels half of each pair's comparisons
    wins = sum(bt.sample_wins(prob_matrix(p.prob_prefers, prompt, responses), 1500, rng) for p in pair)
    fit = bt.fit_bt(wins)
    assert np.argmax(fit) != np.argmax(mean_utility)
    assert np.argmax(fit) == np.argmax(bt.borda(wins))
    assert np.argsort(fit).tolist() == np.argsort(bt.borda(wins)).tolist()
