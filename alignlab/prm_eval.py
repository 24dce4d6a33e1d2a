"""Chapter 6's measurements: reward models and search on the multistep pool, in accuracy and tokens.

The pool is `prm_samples`' held-out problems, M SFT samples each (P, M). Every selection method
draws its N from it (`search.accuracy_at_n`), as Lightman et al. (2023) draw from 1860 samples
per problem, so the curves differ only by how they choose.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import prm, search
from .evaluate import auc


def describe(prompt: str, response: str) -> str:
    """A solution unit by unit with its gold label (✓ right, ✗ wrong, · not labelled), and the
    ORM's label (the final answer)."""
    parsed, labels = prm.parse_solution(response), prm.gold_step_labels(prompt, response)
    starts = [0] + parsed.ends[:-1]
    mark = {True: "✓", False: "✗", None: "·"}
    lines = [f"User: {prompt}"]
    lines += [f"  {mark[l]} {response[a:b].strip()}" for a, b, l in zip(starts, parsed.ends, labels)]
    return "\n".join(lines + [f"  outcome label (ORM): {prm.outcome_label(prompt, response)}; "
                              f"step labels (PRM): {[mark[l] for l in labels]}"])


def pool_arrays(prompts: list[str], responses: list[list[str]]) -> dict[str, np.ndarray]:
    """(P, M) arrays of the pool: final answers (object, None = none), right (bool), and
    unfaithful (bool: the right answer reached through a wrong step)."""
    answers = np.array([[search.final_answer(y) for y in ys] for ys in responses], dtype=object)
    right = np.array([[prm.outcome_label(x, y) for y in ys] for x, ys in zip(prompts, responses)])
    wrong_step = np.array([[False in prm.gold_step_labels(x, y) for y in ys] for x, ys in zip(prompts, responses)])
    return {"answers": answers, "right": right, "unfaithful": right & wrong_step}


def pool_scores(probs: list[list[float]], shape: tuple[int, int], how: str = "product") -> np.ndarray:
    """(P, M) solution scores from each pool solution's unit probabilities (in pool order)."""
    return np.array([prm.solution_score(p, how) for p in probs]).reshape(shape)


def flat_pool(prompts: list[str], responses: list[list[str]]) -> tuple[list[str], list[str]]:
    """The pool as two flat lists, problem by problem: P·M prompts and P·M responses."""
    return [x for x, ys in zip(prompts, responses) for _ in ys], [y for ys in responses for y in ys]


def step_quality(probs: list[list[float]], prompts: list[str], responses: list[str]) -> dict[str, float]:
    """How well unit probabilities tell right steps from wrong ones, over the gold-labelled units:
    accuracy of the verdict p > ½ next to the share of right units (what always saying "right"
    scores), and the AUC (½ = cannot tell; 1 = every right unit above every wrong one)."""
    pairs = [(p, l) for ps, x, y in zip(probs, prompts, responses)
             for p, l in zip(ps, prm.gold_step_labels(x, y)) if l is not None]
    p, l = np.array([q for q, _ in pairs]), np.array([r for _, r in pairs])
    return {"accuracy": float(((p > 0.5) == l).mean()), "base_rate": float(l.mean()), "auc": auc(p, l), "units": len(l)}


def selectors(arrays: dict[str, np.ndarray], scores: dict[str, np.ndarray]) -> dict[str, Callable]:
    """name → select(idx (P, n)) → (P,) column: majority vote, best-of-N by each scorer, the
    vote weighted by each scorer, and the oracle (any right answer among the n: pass@n)."""
    take = lambda a, idx: np.take_along_axis(a, idx, 1)
    out: dict[str, Callable] = {"majority vote": lambda idx: search.majority_vote(take(arrays["answers"], idx))}
    for name, s in scores.items():
        out[f"best-of-N, {name}"] = lambda idx, s=s: search.best_of_n(take(s, idx))
    for name, s in scores.items():
        out[f"vote weighted by {name}"] = lambda idx, s=s: search.weighted_majority(take(arrays["answers"], idx), take(s, idx))
    out["pass@N (oracle)"] = lambda idx: take(arrays["right"], idx).argmax(1)
    return out


def accuracy_curves(arrays: dict[str, np.ndarray], select: dict[str, Callable], ns: list[int], draws: int = 100,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """name → (len(ns), 3) accuracy and its 2.5–97.5% band over `draws` subsets at each N."""
    return {name: np.array([search.accuracy_at_n(arrays["right"], fn, n, draws, seed) for n in ns])
            for name, fn in select.items()}


def unfaithful_first(arrays: dict[str, np.ndarray], scores: dict[str, np.ndarray]) -> dict[str, tuple[float, int]]:
    """Over the problems whose pool holds both an unfaithful solution and a fully right one: how
    often each scorer's top-ranked solution is an unfaithful one; name → (share, problems)."""
    faithful = arrays["right"] & ~arrays["unfaithful"]
    keep = arrays["unfaithful"].any(1) & faithful.any(1)
    out = {}
    for name, s in scores.items():
        top = search.best_of_n(s[keep])
        out[name] = (float(arrays["unfaithful"][keep][np.arange(keep.sum()), top].mean()) if keep.any() else float("nan"),
                     int(keep.sum()))
    return out


def distinct_answers(arrays: dict[str, np.ndarray]) -> tuple[float, float]:
    """Mean number of distinct final answers per problem, and of distinct *wrong* ones: few wrong
    answers that disagree is what makes majority vote strong."""
    rows = [(set(a) - {None}, {v for v, r in zip(a, rr) if v is not None and not r})
            for a, rr in zip(arrays["answers"], arrays["right"])]
    return float(np.mean([len(d) for d, _ in rows])), float(np.mean([len(w) for _, w in rows]))
