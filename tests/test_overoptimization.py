"""Best-of-N from one pool, its KL, and Gao et al.'s fits."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from alignlab import overoptimization as oo


def test_best_of_n_equals_enumerating_every_subset():
    rng = np.random.default_rng(0)
    proxy, gold = rng.normal(size=7), rng.normal(size=7)
    for n in (1, 2, 4, 7):
        subsets = list(itertools.combinations(range(7), n))
        best = [max(s, key=lambda i: proxy[i]) for s in subsets]
        want = (np.mean(proxy[best]), np.mean(gold[best]))
        assert oo.best_of_n(proxy, gold, n) == pytest.approx(want)
    assert oo.bon_weights(7, 3).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="pool size"):
        oo.bon_weights(3, 4)


def test_kl_of_best_of_n_matches_the_formula_without_ties_and_falls_below_it_with_ties():
    distinct = np.arange(2000, dtype=float)
    for n in (1, 2, 8, 64):
        assert oo.bon_kl_estimate(distinct, n) == pytest.approx(float(oo.bon_kl_bound(n)), abs=5e-3)
    tied = np.repeat([0.0, 1.0, 2.0], [600, 300, 100])
    assert oo.bon_kl_estimate(tied, 8) < float(oo.bon_kl_bound(8)) - 0.1


@pytest.mark.parametrize("form", ["bon", "rl"])
def test_fit_gao_recovers_its_coefficients(form):
    d = np.linspace(0.1, 4, 40)
    r = oo.gao_curve(d, 1.3, 0.4, form) + np.random.default_rng(1).normal(scale=1e-3, size=40)
    fit = oo.fit_gao(d, r, form)
    assert fit["alpha"] == pytest.approx(1.3, abs=0.01) and fit["beta"] == pytest.approx(0.4, abs=0.01)
    assert 0 < fit["alpha_se"] < 0.01
    with pytest.raises(ValueError, match="form"):
        oo.fit_gao(d, r, "linear")


def test_bon_curve_starts_at_the_pool_mean_and_rises_in_proxy():
    rng = np.random.default_rng(2)
    proxy, gold = rng.normal(size=(5, 16)), rng.normal(size=(5, 16))
    c = oo.bon_curve(proxy, gold, [1, 2, 4, 16])
    assert c["proxy"][0] == pytest.approx(proxy.mean()) and c["gold"][0] == pytest.approx(gold.mean())
    assert np.all(np.diff(c["proxy"]) > 0) and c["kl_bound"][0] == 0
    assert c["proxy"][-1] == pytest.approx(proxy.max(1).mean())


def test_agreement_at_the_top_finds_the_proxys_error_where_selection_reads_it():
    gold = np.array([[0.0, 1.0, 2.0, 3.0]])
    assert oo.agreement_at_the_top(gold.copy(), gold) == {"all": (1.0, 6), "top": (1.0, 3)}
    proxy = np.array([[9.0, 1.0, 2.0, 3.0]])     # right on every pair but those with sample 0, its top pick
    got = oo.agreement_at_the_top(proxy, gold)
    assert got["top"] == (0.0, 3) and got["all"] == (0.5, 6)
    tied = oo.agreement_at_the_top(np.zeros((1, 4)), gold)
    assert tied["all"] == (0.5, 6)


def test_gao_points_start_each_series_at_its_initial_value_and_take_the_root_of_kl():
    history = [{"step": 0, "score": 1.0, "kl": 0.0},
               {"step": 5, "score": 1.5, "kl": 0.25, "heldout_gold": 0.2, "heldout_gain": 0.05},
               {"step": 10, "score": 2.0, "kl": -0.01, "heldout_gold": 0.1, "heldout_gain": -0.02}]
    bon = {"kl_bound": np.array([0.0, 0.193]), "gold": np.array([0.3, 0.2]), "proxy": np.array([0.1, 0.6])}
    pts = oo.gao_points(history, bon)
    assert list(pts) == [label for label, _ in oo.GAO_SERIES]
    d, r, form = pts["PPO proxy"]
    assert np.allclose(d, [0.5, 0.0]) and np.allclose(r, [0.5, 1.0]) and form == "rl"   # KL < 0 is clipped
    assert np.allclose(pts["PPO gold"][1], [0.05, -0.02])
    assert np.allclose(pts["BoN gold"][1], [0.0, -0.1]) and np.allclose(pts["BoN proxy"][0], [0, np.sqrt(0.193)])
    fits = oo.fit_gao_points(pts)
    assert set(fits) == set(pts) and all({"alpha", "beta"} <= set(f) for f in fits.values())
