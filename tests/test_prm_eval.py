"""Chapter 6's measures on a hand-made pool: the arrays, which selection picks what, how often an
unfaithful solution is ranked first, and the answers majority vote counts."""
from __future__ import annotations

import numpy as np
import pytest

from alignlab import prm_eval

X = "What is 23 + 8 - 5 + 9?"
RIGHT = " Step: 23 + 8 = 31. Step: 31 - 5 = 26. Step: 26 + 9 = 35. Answer: 35."
SLIP = " Step: 23 + 8 = 31. Step: 31 - 5 = 27. Step: 27 + 9 = 36. Answer: 36."
UNFAITHFUL = " Step: 23 + 8 = 31. Step: 31 - 5 = 27. Step: 26 + 9 = 35. Answer: 35."
NONE = " I do not know."
POOL = ([X, X], [[RIGHT, SLIP, SLIP, UNFAITHFUL], [NONE, SLIP, SLIP, RIGHT]])


def test_pool_arrays_mark_answers_rightness_and_unfaithful_solutions():
    a = prm_eval.pool_arrays(*POOL)
    assert a["answers"].tolist() == [[35, 36, 36, 35], [None, 36, 36, 35]]
    assert a["right"].tolist() == [[True, False, False, True], [False, False, False, True]]
    assert a["unfaithful"].tolist() == [[False, False, False, True], [False] * 4]


def test_selectors_pick_by_vote_by_score_and_by_oracle():
    a = prm_eval.pool_arrays(*POOL)
    score = {"PRM": np.array([[0.9, 0.1, 0.2, 0.3], [0.0, 0.5, 0.4, 0.6]])}
    sel = prm_eval.selectors(a, score)
    idx = np.tile(np.arange(4), (2, 1))
    assert sel["majority vote"](idx).tolist() == [0, 1]  # row 0: 35 and 36 tie, first wins; row 1: 36 twice
    assert sel["best-of-N, PRM"](idx).tolist() == [0, 3]
    assert sel["vote weighted by PRM"](idx).tolist() == [0, 1]  # 36: 0.9 against 35: 0.6
    assert sel["pass@N (oracle)"](idx).tolist() == [0, 3]
    curves = prm_eval.accuracy_curves(a, sel, [4], draws=3)
    assert curves["majority vote"][0, 0] == 0.5 and curves["pass@N (oracle)"][0, 0] == 1.0


def test_unfaithful_first_counts_only_problems_with_both_kinds():
    a = prm_eval.pool_arrays(*POOL)
    orm_like = np.array([[0.5, 0.1, 0.1, 0.9], [0.1, 0.1, 0.1, 0.9]])  # prefers the unfaithful one
    prm_like = np.array([[0.9, 0.1, 0.1, 0.2], [0.1, 0.1, 0.1, 0.9]])
    out = prm_eval.unfaithful_first(a, {"ORM": orm_like, "PRM": prm_like})
    assert out == {"ORM": (1.0, 1), "PRM": (0.0, 1)}


def test_distinct_answers_counts_wrong_ones_apart():
    assert prm_eval.distinct_answers(prm_eval.pool_arrays(*POOL)) == (2.0, 1.0)


def test_describe_marks_each_unit():
    text = prm_eval.describe(X, UNFAITHFUL)
    assert "✓ Step: 23 + 8 = 31." in text and "✗ Step: 31 - 5 = 27." in text and "· Answer: 35." in text
    assert "outcome label (ORM): True" in text
