"""Test-time search: selection rules on hand-computed candidate sets, beam search against the
exhaustive tree, accuracy@N against its two closed-form ends, reward-guided decoding's limits."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from alignlab import search
from alignlab.world.common import render_steps


def test_final_answer_well_formed_missing_and_multiple():
    assert search.final_answer(render_steps([(23, "+", 8, 31), (31, "-", 5, 26)], 26)) == 26
    assert search.final_answer(" Answer: -4.") == -4
    assert search.final_answer(" Step: 1 + 2 = 3.") is None
    assert search.final_answer(" Answer: 5") is None  # no closing period: not the format
    assert search.final_answer(" Answer: 3. On second thought, Answer: 4.") == 4  # the last one


def test_best_of_n_takes_the_max_first_on_ties_and_ignores_nan():
    scores = np.array([[0.1, 0.9, 0.3],
                       [0.5, 0.2, 0.5],  # tie → lowest index
                       [np.nan, -1.0, -2.0],  # NaN is not the max
                       [-3.0, -1.0, np.nan]])
    assert search.best_of_n(scores).tolist() == [1, 0, 1, 1]


ANSWERS = [[3, 4, 4, 3, 5],  # 3 and 4 tie with two votes each
           [None, None, 7, 8, 8],  # two Nones must not beat the two 8s
           [None, None, None, None, None],  # nothing to vote on
           [2, 9, 9, 9, 2]]  # clear winner 9
SCORES = np.array([[0.1, 0.2, 0.3, 0.4, 0.9],
                   [0.0, 0.0, 0.9, 0.1, 0.2],
                   [0.5, 0.6, 0.7, 0.8, 0.9],
                   [0.9, 0.1, 0.3, 0.2, 0.0]])


def test_majority_vote_without_tie_break():
    # row 0: tie 3/4 → 3 appears first → its first response 0; row 1: 8 (first at 3); row 3: 9 at 1
    assert search.majority_vote(ANSWERS).tolist() == [0, 3, 0, 1]
    assert search.majority_vote(np.array(ANSWERS, dtype=object)).tolist() == [0, 3, 0, 1]


def test_majority_vote_with_tie_break():
    # row 0: 3's best is 0.4 (idx 3), 4's best 0.3 → 3, index 3; row 1: 8's best response is idx 4;
    # row 3: 9 wins on count although a 2 scores highest, its best response is idx 2
    assert search.majority_vote(ANSWERS, tie_break=SCORES).tolist() == [3, 4, 0, 2]
    flipped = SCORES.copy()
    flipped[0, 2] = 0.5  # now 4's best response beats 3's
    assert search.majority_vote(ANSWERS, tie_break=flipped)[0] == 2


def test_weighted_majority():
    # row 0: 3 → 0.5, 4 → 0.5, 5 → 0.9: one heavy vote beats two light ones
    # row 1: 7 → 0.9, 8 → 0.3 (the Nones' weight never counts); row 3: 2 → 0.9, 9 → 0.6
    assert search.weighted_majority(ANSWERS, SCORES).tolist() == [4, 2, 0, 0]
    w = np.ones_like(SCORES)
    w[:, 0] = 1.5  # with equal-ish weights it is the vote again, the heaviest carrier returned
    assert search.weighted_majority(ANSWERS, w).tolist() == [0, 3, 0, 1]


def test_selection_rules_are_not_reversed():
    """One row where argmin, the least common answer or a vote for None each give another index."""
    row = [[1, 2, 2, 2, None]]
    s = np.array([[0.0, 0.3, 0.8, 0.1, 1.0]])
    assert search.best_of_n(s)[0] == 4
    assert search.majority_vote(row)[0] == 1
    assert search.majority_vote(row, tie_break=s)[0] == 2
    assert search.weighted_majority(row, s)[0] == 2


@pytest.fixture
def pool():
    rng = np.random.default_rng(1)
    correct = rng.random((40, 8)) < rng.random((40, 1))  # per-problem difficulty
    scores = correct + rng.normal(0, 0.7, correct.shape)  # a noisy verifier
    return correct, scores


def test_accuracy_at_n_equals_the_whole_pool_at_n_equals_m(pool):
    correct, scores = pool
    seen = []

    def select(idx):
        seen.append(idx)
        return search.best_of_n(np.take_along_axis(scores, idx, 1))

    mean, lo, hi = search.accuracy_at_n(correct, select, n=8, draws=5, resample_problems=False)
    plain = correct[np.arange(40), search.best_of_n(scores)].mean()
    assert (mean, lo, hi) == pytest.approx((plain, plain, plain))
    assert len(seen) == 5 and seen[0].shape == (40, 8)
    mean, lo, hi = search.accuracy_at_n(correct, select, n=8, draws=400)  # the problems resampled too
    assert mean == pytest.approx(plain) and lo < plain < hi
    half = np.sqrt(plain * (1 - plain) / 40) * 1.96  # the band is about ± 1.96 binomial standard errors
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.35)


def test_accuracy_at_n_one_is_the_pool_mean(pool):
    correct, _ = pool
    mean, lo, hi = search.accuracy_at_n(correct, lambda idx: np.zeros(len(idx), int), n=1, draws=2000)
    assert mean == pytest.approx(correct.mean(), abs=0.01)
    assert lo < mean < hi


def test_accuracy_at_n_draws_distinct_responses_and_maps_positions(pool):
    """Oracle best-of-2: right iff either draw is right, so accuracy is 1 − C(wrong, 2)/C(M, 2) —
    wrong if responses were drawn with replacement or the position were read as a pool index."""
    correct, _ = pool

    def select(idx):
        assert all(len(set(r)) == idx.shape[1] for r in idx.tolist())
        return search.best_of_n(np.take_along_axis(correct.astype(float), idx, 1))

    mean, _, _ = search.accuracy_at_n(correct, select, n=2, draws=2000, seed=3)
    wrong = (~correct).sum(1)
    expected = np.mean([1 - math.comb(w, 2) / math.comb(8, 2) for w in wrong])
    assert mean == pytest.approx(expected, abs=0.01)


# The tree: states are digit strings, each step appends 0, 1 or 2, up to length 3.
def expand(states):
    return [[s + d for d in "012"] if len(s) < 3 else [] for s in states]


def digit_score(states):
    """A misleading PRM: partial solutions score their digit sum, full ones minus it, so the
    greedy path (always the biggest digit) ends at the worst kind of leaf."""
    return [sum(map(int, s)) * (1 if len(s) < 3 else -1) for s in states]


def test_beam_search_equals_exhaustive_when_wide_and_greedy_is_worse():
    best = search.exhaustive_best("", expand, digit_score, depth=3)
    assert best == "000"
    wide, n_wide = search.beam_search("", expand, digit_score, beam_width=27, depth=3)
    assert wide[0] == best and n_wide == 3 + 9 + 27
    assert sorted(wide) == ["".join(p) for p in itertools.product("012", repeat=3)]
    greedy, n_greedy = search.beam_search("", expand, digit_score, beam_width=1, depth=3)
    assert greedy == ["220"] and n_greedy == 3 + 3 + 3
    assert digit_score(greedy)[0] < digit_score([best])[0]
    two, n_two = search.beam_search("", expand, digit_score, beam_width=2, depth=3)
    assert len(two) == 2 and n_two == 3 + 6 + 6
    assert digit_score(two) == sorted(digit_score(two), reverse=True)  # best first


@pytest.mark.parametrize("seed", range(5))
def test_beam_search_equals_exhaustive_on_random_scores_with_finished_states(seed):
    rng = np.random.default_rng(seed)
    states = [""] + ["".join(p) for k in (1, 2, 3) for p in itertools.product("012", repeat=k)]
    table = dict(zip(states, rng.normal(size=len(states))))

    def expand_some(ss):  # strings ending in 2 are finished early
        return [[] if s.endswith("2") else k for s, k in zip(ss, expand(ss))]

    def score(ss):
        return [table[s] for s in ss]

    best = search.exhaustive_best("", expand_some, score, depth=3)
    beam, _ = search.beam_search("", expand_some, score, beam_width=27, depth=3)
    assert beam[0] == best
    assert score(beam) == sorted(score(beam), reverse=True)


def test_beam_search_carries_finished_states_without_rescoring():
    def expand_some(ss):
        return [[] if s == "2" else k for s, k in zip(ss, expand(ss))]

    calls = []

    def score(ss):
        calls.extend(ss)
        return [10.0 if s == "2" else float(len(s)) for s in ss]

    beam, n = search.beam_search("", expand_some, score, beam_width=1, depth=3)
    assert beam == ["2"]  # finished at level 1 with the best score: dropping it loses the search
    assert n == 3 + 0 + 0 and calls.count("2") == 1
    assert search.exhaustive_best("", expand_some, score, depth=3) == "2"
    assert search.beam_search("", expand, digit_score, beam_width=4, depth=0) == ([""], 1)


class FakeTokenizer:
    """Whitespace words, plus a BOS when special tokens are asked for."""

    def encode(self, text, add_special_tokens=True):
        return [0] * add_special_tokens + [1] * len(text.split())


def test_count_tokens_excludes_special_tokens():
    assert search.count_tokens(FakeTokenizer(), [" Step: 1 + 2 = 3.", "Answer: 3.", ""]) == 6 + 2 + 0


def test_reward_guided_step_weight_zero_is_greedy_and_large_weight_follows_scores():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 50, generator=g)
    scores = torch.randn(6, 4, generator=g)
    assert torch.equal(search.reward_guided_step(logits, scores, 0.0, 4), logits.argmax(-1))
    cands = search.top_k_tokens(logits, 4)
    follow = cands.gather(-1, scores.argmax(-1, keepdim=True)).squeeze(-1)
    assert torch.equal(search.reward_guided_step(logits, scores, 1e6, 4), follow)


def test_reward_guided_step_by_hand():
    logits = torch.tensor([[0.0, 5.0, 3.0, 1.0]])  # top-2: token 1 (5), token 2 (3)
    assert search.reward_guided_step(logits, torch.tensor([[0.0, 1.0]]), 1.0, 2).tolist() == [1]  # 5 vs 4
    assert search.reward_guided_step(logits, torch.tensor([[0.0, 10.0]]), 1.0, 2).tolist() == [2]  # 5 vs 13
    # token 3 is outside the top-2: no score can pick it
    assert search.reward_guided_step(logits, torch.tensor([[-9.0, -9.0]]), 1.0, 2).tolist() == [1]


def test_beam_search_from_several_roots_equals_one_search_per_root():
    calls = []

    def expand(states):
        calls.append(len(states))
        return [[s + d for d in "012"] if len(s) < 3 else [] for s in states]

    def score(states):
        return [sum((i + 1) * (int(c) - 1) ** 2 * (-1) ** i for i, c in enumerate(s[1:])) for s in states]
    roots = ["a", "b", "c"]
    together = search.beam_search_batch(roots, expand, score, beam_width=2, depth=4)
    calls_together, calls[:] = len(calls), []
    alone = [search.beam_search(r, expand, score, beam_width=2, depth=4) for r in roots]
    assert together == alone and calls_together == 4 and len(calls) == 12  # one expand per level, not per root
