"""Lab 6 (process reward models and test-time search): a solution's score from its step
probabilities, and best-of-N by majority vote with the verifier breaking ties.

The student writes `score_solution(step_probs, how)` — the product of the step probabilities
(Lightman et al., 2023, §2.6) or their minimum (Math-Shepherd, Wang et al., 2024, §3.4) — and
`select_best_of_n(answers, scores)` — which of a problem's N candidates to return. The lab then
samples the SFT model on held-out multistep problems and selects with both, scoring each step
with the world's gold labels (a perfect PRM). The library's versions, the references of the
hidden tests, are `prm.solution_score` and `search.majority_vote(answers, tie_break=scores)`.
"""
from __future__ import annotations

import math
import operator
import random
from typing import Callable, Sequence

import numpy as np
import torch

from .. import prm, search
from .core import REQUIRED_CELLS, LabCheckError, call, passed, student_error, student_function, wrong

REQUIRED_CELLS["lab6_prm"] = {"score_solution": "code", "test_score_solution": "code",
                              "select_best_of_n": "code", "test_select_best_of_n": "code",
                              "test_prm_run": "code"}


# --- score_solution ---------------------------------------------------------------------------

STEP_PROBS = [0.9, 0.5, 0.8]
"""The worked example: a solution of three scored steps, the second doubtful."""


def reference_score(step_probs: Sequence[float], how: str) -> float:
    return prm.solution_score(list(step_probs), how)


def _score_mistakes() -> dict[str, torch.Tensor]:
    """(score with how="product", score with how="min") of each common mistake on STEP_PROBS."""
    p = torch.tensor(STEP_PROBS, dtype=torch.float64)
    product, low = p.prod(), p.min()
    return {
        "you summed the step probabilities: the score is their product, the probability that every step "
        "is right (Lightman et al. §2.6).": torch.stack([p.sum(), low]),
        "you averaged the step probabilities: the score is their product, so one doubtful step pulls the "
        "whole solution down.": torch.stack([p.mean(), low]),
        "you took the geometric mean (the product to the power 1/steps): do not normalise by length — "
        "every extra step is one more chance to go wrong.": torch.stack([product ** (1 / len(p)), low]),
        "you summed log-probabilities and returned the log: exponentiate, the product is exp(Σ log p).":
            torch.stack([p.log().sum(), low]),
        "product and min are swapped: how=\"product\" multiplies the probabilities, how=\"min\" takes the "
        "weakest step.": torch.stack([low, product]),
        "you ignored `how`: you return the product for how=\"min\" too; there return the smallest "
        "probability (Math-Shepherd §3.4).": torch.stack([product, product]),
        "you ignored `how`: you return the minimum for how=\"product\" too; there return the product "
        "of the probabilities.": torch.stack([low, low]),
    }


def _as_float(out) -> float | None:
    """The student's score as a float, None when it is not one number."""
    try:
        return float(out)
    except (TypeError, ValueError, RuntimeError):
        return None


def check_score_solution(fn: Callable | None = None) -> None:
    """Check both scores of a three-step solution, then a solution with no scored step."""
    fn = student_function("score_solution", fn)
    outs = [call("score_solution", fn, list(STEP_PROBS), how) for how in ("product", "min")]
    got = [_as_float(o) for o in outs]
    if None in got:
        bad = outs[got.index(None)]
        raise LabCheckError(f"score_solution: return one number (a float), not a {type(bad).__name__} "
                            f"({bad!r}): the whole solution gets one score.")
    want = torch.tensor([reference_score(STEP_PROBS, how) for how in ("product", "min")], dtype=torch.float64)
    got_t = torch.tensor(got, dtype=torch.float64)
    if not torch.allclose(got_t, want, rtol=1e-6, atol=1e-9):
        wrong("score_solution", got_t, _score_mistakes(),
              f"on step probabilities {STEP_PROBS} expected {float(want[0]):.4f} (product) and "
              f"{float(want[1]):.4f} (min), got {got[0]:.4f} and {got[1]:.4f}.", tol=1e-6)
    try:
        empty = [_as_float(call("score_solution", fn, [], how)) for how in ("product", "min")]
    except LabCheckError as err:
        raise LabCheckError("score_solution: it raised on a solution with no scored step (step_probs = []), "
                            f"{student_error(err)}; check for an empty list first and return 0.0: nothing to "
                            "verify.") from err.__cause__
    if 1.0 in empty:
        raise LabCheckError("score_solution: with no scored step (step_probs = []) you return 1 (the product "
                            "of no numbers); return 0.0 — there is nothing to verify, so nothing to trust.")
    if empty != [0.0, 0.0]:
        raise LabCheckError(f"score_solution: with no scored step (step_probs = []) return 0.0 for both `how`, "
                            f"not {empty}.")
    return passed(f"score_solution = {got[0]:.4f} (product), {got[1]:.4f} (min); 0.0 without steps")


def _score_inputs(rng: random.Random) -> tuple[list[float], str]:
    n = rng.choice([0, 0, 1, 2, 3, 4, 5, 8])
    return [rng.random() for _ in range(n)], rng.choice(["product", "min"])


def hidden_score_solution(fn: Callable | None = None, seed: int = 0, trials: int = 10) -> None:
    """score_solution against `prm.solution_score` on random step probabilities, lengths and `how`."""
    fn = student_function("score_solution", fn)
    rng = random.Random(seed)
    for t in range(trials):
        probs, how = _score_inputs(rng)
        want, got = reference_score(probs, how), _as_float(call("score_solution", fn, list(probs), how))
        if got is None or not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12):
            raise LabCheckError(f"score_solution differs from the reference on random case #{t + 1} "
                                f"({len(probs)} steps, how={how!r}): it passes the worked example but not every "
                                "case — check other lengths, one step, and no step.")
    return passed(f"score_solution matches the reference on {trials} random cases")


# --- select_best_of_n -------------------------------------------------------------------------

VOTE_CASES: list[tuple[list[int | None], list[float]]] = [
    # 7 wins two votes to one; most candidates have no answer; the best score has none
    ([7, None, 12, 7, None, None], [0.2, 0.9, 0.6, 0.5, 0.3, 0.1]),
    # 5 and 9 tie on two votes; 9's best candidate scores higher; a lone 11 scores highest of all
    ([5, 9, 5, 9, 11], [0.4, 0.3, 0.35, 0.8, 0.95]),
    # 3 and 4 tie; 3's best scores higher, but 4's two scores add up to more
    ([3, 4, 3, 4], [0.1, 0.6, 0.9, 0.55]),
    # 2 wins two votes to one, though the lone 6 outweighs it
    ([2, 2, 6], [0.3, 0.2, 0.9]),
]
"""The worked example: four problems' candidates (final answers, verifier scores)."""


def reference_select(answers: Sequence[int | None], scores: Sequence[float]) -> int:
    """The library's majority vote with the scores breaking ties, on one problem."""
    return int(search.majority_vote(np.array([list(answers)], dtype=object),
                                    tie_break=np.array([list(scores)], dtype=float))[0])


def _vote(answers, scores, none_votes=False, weighted=False, tie="best", pick=max, carrier="best") -> int:
    """A majority vote with one rule changed: None votes, weights instead of counts, ties broken
    by first appearance or by total score, `pick=min` for max, or the winner's first candidate."""
    totals: dict = {}
    for a, s in zip(answers, scores):
        if a is not None or none_votes:
            totals[a] = totals.get(a, 0) + (s if weighted else 1)
    top = max(totals.values())
    tied = [a for a in totals if totals[a] == top]
    carriers = {a: [n for n, b in enumerate(answers) if b == a] for a in tied}
    best = {a: pick(carriers[a], key=lambda n: scores[n]) for a in tied}
    if tie == "first":
        winner = tied[0]
    elif tie == "total":
        winner = max(tied, key=lambda a: sum(scores[n] for n in carriers[a]))
    else:
        winner = pick(tied, key=lambda a: scores[best[a]])
    return carriers[winner][0] if carrier == "first" else best[winner]


def _vote_mistakes() -> dict[str, torch.Tensor]:
    """What each common mistake returns on the four VOTE_CASES."""
    def on_cases(rule: Callable) -> torch.Tensor:
        return torch.tensor([float(rule(a, s)) for a, s in VOTE_CASES], dtype=torch.float64)
    return {
        "a candidate without an answer (None) does not vote: you let the Nones win the vote.":
            on_cases(lambda a, s: _vote(a, s, none_votes=True)),
        "you returned the highest-scoring candidate and ignored the vote: the most common answer wins, "
        "the scores only break ties.": on_cases(lambda a, s: int(np.argmax(s))),
        "you returned the lowest-scoring candidate: a higher score means the verifier trusts the solution "
        "more.": on_cases(lambda a, s: int(np.argmin(s))),
        "you used the lowest scores in the vote: among tied answers and among a winner's candidates, take "
        "the highest score.": on_cases(lambda a, s: _vote(a, s, pick=min)),
        "answers tied on votes: you kept the first to appear (as Counter.most_common does); break the tie "
        "by the score of each tied answer's best candidate.": on_cases(lambda a, s: _vote(a, s, tie="first")),
        "answers tied on votes: you kept the first to appear, and returned its first candidate; break the "
        "tie by score, and return the winner's highest-scoring candidate.":
            on_cases(lambda a, s: _vote(a, s, tie="first", carrier="first")),
        "the right answer wins, but you returned its first candidate: return its highest-scoring one.":
            on_cases(lambda a, s: _vote(a, s, carrier="first")),
        "you weighted the votes by score (weighted majority): here each candidate is one vote, and the "
        "scores only break ties.": on_cases(lambda a, s: _vote(a, s, weighted=True)),
        "answers tied on votes: you compared their total scores; compare the score of each tied answer's "
        "best candidate.": on_cases(lambda a, s: _vote(a, s, tie="total")),
        "you returned the winning answer itself: return the index of the candidate that carries it "
        "(0 … N − 1).": on_cases(lambda a, s: a[_vote(a, s)]),
    }


def _as_index(out) -> int | None:
    """The student's choice as an int (int, numpy or 0-dim torch integer), None otherwise."""
    if isinstance(out, (bool, np.bool_)):
        return None
    try:
        return operator.index(out)
    except TypeError:
        return None


def check_select_best_of_n(fn: Callable | None = None) -> None:
    """Check the choice on the four VOTE_CASES, then on candidates none of which has an answer."""
    fn = student_function("select_best_of_n", fn)
    outs = [call("select_best_of_n", fn, list(a), list(s)) for a, s in VOTE_CASES]
    got = [_as_index(o) for o in outs]
    if None in got:
        bad = outs[got.index(None)]
        raise LabCheckError(f"select_best_of_n: return the index of the chosen candidate (an int), not a "
                            f"{type(bad).__name__} ({bad!r}).")
    want = [reference_select(a, s) for a, s in VOTE_CASES]
    if got != want:
        chose = torch.tensor(got, dtype=torch.float64)
        wrong("select_best_of_n", chose, _vote_mistakes(),
              f"expected the indices {want} on the four example problems, got {got}.")
    nothing = ([None, None, None], [0.2, 0.7, 0.4])
    try:
        first = _as_index(call("select_best_of_n", fn, *map(list, nothing)))
    except LabCheckError as err:
        raise LabCheckError("select_best_of_n: it raised when no candidate has an answer (every answer None), "
                            f"{student_error(err)}; there is no vote then: return 0, the first candidate."
                            ) from err.__cause__
    if first != 0:
        raise LabCheckError(f"select_best_of_n: when no candidate has an answer there is no vote: return 0 (the "
                            f"first candidate, as search.majority_vote does), not {first}.")
    return passed(f"select_best_of_n chose {got} on the four example problems: the vote, ties broken by score")


def _vote_inputs(rng: random.Random) -> tuple[list[int | None], list[float]]:
    """N ∈ 1…8 candidates, answers from a few values (ties are common) or None, distinct scores."""
    n, values = rng.randint(1, 8), rng.sample(range(100), rng.randint(2, 3))
    return [None if rng.random() < 0.4 else rng.choice(values) for _ in range(n)], [rng.random() for _ in range(n)]


def hidden_select_best_of_n(fn: Callable | None = None, seed: int = 0, trials: int = 20) -> None:
    """select_best_of_n against `search.majority_vote(..., tie_break=scores)` on random problems."""
    fn = student_function("select_best_of_n", fn)
    rng = random.Random(seed)
    for t in range(trials):
        answers, scores = _vote_inputs(rng)
        if _as_index(call("select_best_of_n", fn, list(answers), list(scores))) != reference_select(answers, scores):
            raise LabCheckError(f"select_best_of_n differs from the reference on random problem #{t + 1} "
                                f"({len(answers)} candidates): it passes the worked example but not every case — "
                                "check one candidate, three-way ties, and candidates without an answer.")
    return passed(f"select_best_of_n matches the reference on {trials} random problems")


# --- the run ----------------------------------------------------------------------------------


def check_prm_run(chosen: dict[str, Sequence[int]], answers: Sequence[Sequence[int | None]],
                  step_probs: Sequence[Sequence[Sequence[float]]]) -> None:
    """Your selections on the model's samples equal the library's: `search.majority_vote` with
    `prm.solution_score` of each solution breaking ties, for each way of scoring in `chosen`."""
    if sorted(chosen) != ["min", "product"]:
        raise LabCheckError(f"give your selections scored both ways, {{'product': [...], 'min': [...]}}, not "
                            f"{sorted(chosen)}: run the cell above again.")
    table = np.array([list(row) for row in answers], dtype=object)  # (P, N)
    for how, yours in chosen.items():
        scores = np.array([[prm.solution_score(list(p), how) for p in row] for row in step_probs])  # (P, N)
        library = search.majority_vote(table, tie_break=scores).tolist()
        if [int(i) for i in yours] != library:
            raise LabCheckError(f"your selections with how={how!r} differ from the library's on "
                                f"{sum(int(a) != b for a, b in zip(yours, library))} of {len(library)} problems; "
                                "each function passed its own check, so look at what goes into them.")
    return passed(f"your selections on {len(table)} problems match the library's, scored by "
                  f"{' and by '.join(chosen)}")
