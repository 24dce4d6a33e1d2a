"""The evaluation protocol: statistics, scoring, KL, caching of zoo evaluations."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from alignlab import evaluate, world


def test_mean_se():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    m, se = evaluate.mean_se(x)
    assert m == pytest.approx(3.5) and se == pytest.approx(x.std(ddof=1) / 2)
    assert math.isnan(evaluate.mean_se([1.0])[1])


def test_win_rate_counts_ties_half():
    rate, _ = evaluate.win_rate([1, 2, 3, 0], [0, 2, 4, -1])
    assert rate == pytest.approx((1 + 0.5 + 0 + 1) / 4)


def test_score_demonstrations_beat_bad_responses():
    import random
    prompts = world.eval_prompts(n=50)
    rng = random.Random(0)
    good = evaluate.score(prompts, [world.demonstration(p) for p in prompts])
    bad = evaluate.score(prompts, [world.sample_response(p, rng, p_good=0)[1] for p in prompts])
    assert good.mean > bad.mean
    assert set(good.by_family()) == set(world.FAMILIES)
    rates = bad.rates()
    assert set(rates) == set(world.BEHAVIOURS) and all(0 <= r[0] <= 1 for r in rates.values() if r[2])
    back = evaluate.EvalResult.from_dict(json.loads(json.dumps(bad.to_dict())))
    assert back.mean == bad.mean and back.rates() == rates


def test_gold_eval_and_kl_on_a_tiny_model(tok, tiny_model, tiny_profile):
    prompts = world.eval_prompts(n=5)
    res = evaluate.gold_eval(tiny_model, tok, prompts, samples_per_prompt=2, profile=tiny_profile)
    assert res.n == 10 and set(res.by_family()) == set(world.FAMILIES)
    ro = evaluate.sample(tiny_model, tok, prompts, 2, profile=tiny_profile)
    kl = evaluate.sequence_kl(tiny_model, tiny_model, tok, ro)
    assert kl.shape == (10,) and kl.abs().max() == 0


def test_evaluate_entry_is_cached(alignlab_home, tiny_profile):
    first = evaluate.evaluate_entry("sft", tiny_profile)
    assert first.n == tiny_profile.eval_prompts_per_family * len(world.FAMILIES) * tiny_profile.eval_samples_per_prompt
    assert list((alignlab_home / "runs" / "ci").glob("eval-sft-*.json"))
    again = evaluate.evaluate_entry("sft", tiny_profile)
    assert again.responses == first.responses
    room = evaluate.headroom("base", "sft", tiny_profile)
    for row in room.values():
        assert set(row) == {"base", "policy", "best_of_n", "n", "closed"}
        expected = (row["policy"] - row["base"]) / (row["best_of_n"] - row["base"])
        assert row["closed"] == pytest.approx(expected, nan_ok=True)
