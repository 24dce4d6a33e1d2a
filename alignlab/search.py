"""Test-time search (chapter 6): spending compute at inference to pick or build a better answer.

Given N sampled responses per problem, a verifier chooses one:

    best-of-N          argmax_n r(x, y_n)                        (Lightman et al. 2023, §2)
    majority vote      the most common final answer              (self-consistency, Wang et al. 2023)
    weighted majority  argmax_a Σ_n r(x, y_n) · [ans(y_n) = a]   (Uesato et al. 2022; Lightman et al. 2023)

and a process reward model (PRM), which scores partial solutions, can also steer generation step
by step: beam search over solution steps (Math-Shepherd, Wang et al. 2024) and reward-guided
decoding over tokens (ARGS, Khanov et al. 2024). Shapes: P problems, N responses per problem,
M responses in a problem's pool, B batch, V vocabulary. Every method's compute is counted in
generated tokens (`count_tokens`) or states scored, so methods are compared at equal cost.

Everything here is a pure function of arrays, strings or callables: the model calls live in the
caller's `expand` / `score` / `select`, so the search logic is testable without a model.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np
import torch

from .world.common import ANSWER

Answer = int | None


def final_answer(response: str) -> int | None:
    """The integer n of the last `Answer: n.` in a response; None if there is none.

    The last, not the first: a model that revises itself ("Answer: 3. ... Answer: 4.") is judged
    on what it ended with, as a reader would.
    """
    found = ANSWER.findall(response)
    return int(found[-1]) if found else None


def _finite(scores) -> np.ndarray:
    """Scores as float with NaN read as −inf: a verifier that failed never wins a comparison."""
    s = np.asarray(scores, dtype=float)
    return np.where(np.isnan(s), -np.inf, s)


def best_of_n(scores) -> np.ndarray:
    """Best-of-N: scores (P, N) → (P,) index of each row's highest score.

    Ties go to the lowest index (np.argmax keeps the first maximum), NaN counts as −inf.
    """
    return np.argmax(_finite(scores), axis=1)


def _vote_row(row: Sequence[Answer], weights: np.ndarray, scores: np.ndarray | None) -> int:
    """One row of a (weighted) vote: the index of the response carrying the winning answer.

    Answers with the largest total weight tie → the one whose best response scores highest
    (when `scores`), else the first to appear; the response returned is the first carrying the
    winner, or its highest-scoring one when `scores`. No answer in the row → 0.
    """
    totals: dict = {}  # insertion order = order of first appearance, the last tie-break
    for a, w in zip(row, weights):
        if a is not None:  # a response without an answer casts no vote
            totals[a] = totals.get(a, 0.0) + float(w)
    if not totals:
        return 0
    top = max(totals.values())
    tied = [a for a in totals if totals[a] == top]
    carriers = {a: [n for n, b in enumerate(row) if b is not None and b == a] for a in tied}
    if scores is None:
        return carriers[tied[0]][0]
    best = {a: max(carriers[a], key=lambda n: scores[n]) for a in tied}  # max keeps the first on ties
    winner = max(tied, key=lambda a: scores[best[a]])
    return best[winner]


def majority_vote(answers, tie_break=None) -> np.ndarray:
    """Majority vote (self-consistency): answers (P, N) of int | None → (P,) chosen index.

    The winning answer is the most common one; None (no answer) is never a vote. Answers tied on
    count are separated by `tie_break` (P, N) scores when given (the answer whose best response
    scores highest), else by which appears first. The index returned is the first response
    carrying the winner, or with `tie_break` its highest-scoring one. A row without any answer → 0.
    """
    scores = None if tie_break is None else _finite(tie_break)
    return np.array([_vote_row(list(row), np.ones(len(row)), None if scores is None else scores[p])
                     for p, row in enumerate(answers)], dtype=int)


def weighted_majority(answers, weights) -> np.ndarray:
    """RM-weighted majority vote: answers (P, N) of int | None, weights (P, N) → (P,) index.

        â = argmax_a Σ_n w[p, n] · [answer[p, n] = a]      (Uesato et al. 2022; Lightman et al. 2023)

    with w e.g. the reward model's probability that the response is correct. Returns the
    highest-weight response carrying â. Responses without an answer are ignored; answers tied on
    total weight go to the one with the heaviest single response, then to the first to appear.
    Weights should be ≥ 0 (probabilities): a negative weight would count as a vote against.
    """
    w = _finite(weights)
    return np.array([_vote_row(list(row), w[p], w[p]) for p, row in enumerate(answers)], dtype=int)


def _draw_subsets(rng: np.random.Generator, P: int, M: int, n: int) -> np.ndarray:
    """(P, n) pool indices: n distinct of M per row, uniformly, sorted within the row.

    Sorting keeps a subset's draw uniform but fixes its column order, so a selector's
    lowest-index tie-break means the same response whatever order the draw came out in (and
    n = M is always the whole pool in pool order).
    """
    return np.sort(np.argsort(rng.random((P, M)), axis=1)[:, :n], axis=1)


def accuracy_at_n(correct, select: Callable[[np.ndarray], np.ndarray], n: int, draws: int = 200,
                  seed: int = 0, resample_problems: bool = True) -> tuple[float, float, float]:
    """Accuracy of a selection method at N = n, from one pool of samples per problem.

    correct (P, M) bool: response m of problem p is right. Each of `draws` times, n distinct
    responses are drawn per problem without replacement, `select(idx)` with idx (P, n) pool
    indices returns (P,) positions within idx's columns, and each problem's hit is recorded.
    Returns the mean accuracy over draws and a 95% band (2.5th, 97.5th percentile): the band of
    Lightman et al. 2023 Fig. 3, who draw their N from 1860 samples per problem. With
    `resample_problems` each draw also resamples the P problems with replacement (a bootstrap),
    so the band covers which problems were asked as well as which samples were drawn; without it,
    at n = M every draw is the whole pool and the band collapses to one value.
    """
    correct = np.asarray(correct, dtype=bool)
    P, M = correct.shape
    assert 1 <= n <= M, f"n={n} must lie in 1..M={M}"
    rng, rows = np.random.default_rng(seed), np.arange(P)
    means, band = np.empty(draws), np.empty(draws)
    for d in range(draws):
        idx = _draw_subsets(rng, P, M, n)  # (P, n)
        pos = np.asarray(select(idx), dtype=int)  # (P,) column of idx
        hit = correct[rows, idx[rows, pos]]  # (P,)
        means[d] = hit.mean()
        band[d] = hit[rng.integers(0, P, P)].mean() if resample_problems else means[d]
    return float(means.mean()), float(np.percentile(band, 2.5)), float(np.percentile(band, 97.5))


Scored = list[tuple[Hashable, float | None]]


def _score_missing(states: Scored, score: Callable[[list], list[float]]) -> tuple[Scored, int]:
    """Fill in the scores still None with one batched `score` call; → (states, how many scored).

    A finished state carried over keeps the score it had, so it is never paid for twice.
    """
    todo = [i for i, (_, v) in enumerate(states) if v is None]
    if not todo:
        return states, 0
    vals = _finite(score([states[i][0] for i in todo]))
    out = list(states)
    for i, v in zip(todo, vals):
        out[i] = (states[i][0], float(v))
    return out, len(todo)


def _by_score(states: Scored) -> list[int]:
    """Indices best first; `sorted` is stable, so equal scores keep their order of generation."""
    return sorted(range(len(states)), key=lambda i: -states[i][1])


def beam_search(root: Hashable, expand: Callable[[list], list[list]], score: Callable[[list], list[float]],
                beam_width: int, depth: int) -> tuple[list, int]:
    """Step-level beam search guided by a process reward model (Math-Shepherd, Wang et al. 2024).

    `expand(states)` → for each state its children (e.g. the partial solution plus one sampled
    step); [] means the state is finished and it is carried over unchanged. `score(states)` →
    one float per state (the PRM's score of a partial solution). At each of `depth` levels the
    beam becomes the `beam_width` best of all children and carried-over states; equal scores go
    to the earlier generated. The kept states stay in generation order, so with a beam wide
    enough to keep everything this enumerates exactly as `exhaustive_best` does.

    Returns (final beam best first, number of states scored). The root is scored only if it is
    returned unexpanded (depth 0) or carried over finished; carried states are not rescored.
    """
    return beam_search_batch([root], expand, score, beam_width, depth)[0]


def beam_search_batch(roots: Sequence[Hashable], expand: Callable[[list], list[list]],
                      score: Callable[[list], list[float]], beam_width: int, depth: int) -> list[tuple[list, int]]:
    """`beam_search` from several roots at once (one per problem): each level calls `expand` and
    `score` once on every root's states together — one batched generation and one batched scoring
    pass per level instead of one per problem — and keeps `beam_width` per root. Returns one
    (final beam best first, states scored) per root, each equal to `beam_search` from that root."""
    beams: list[Scored] = [[(r, None)] for r in roots]
    scored = [0] * len(roots)
    for _ in range(depth):
        flat = [s for beam in beams for s, _ in beam]
        kids, at = expand(flat), 0
        cands: list[Scored] = []
        for beam in beams:
            cands.append([c for (s, v), ks in zip(beam, kids[at:at + len(beam)])
                          for c in ([(k, None) for k in ks] if ks else [(s, v)])])
            at += len(beam)
        cands, counts = _score_missing_batch(cands, score)
        scored = [a + b for a, b in zip(scored, counts)]
        beams = [[c[i] for i in sorted(_by_score(c)[:beam_width])] for c in cands]  # top-k, back in generation order
    beams, counts = _score_missing_batch(beams, score)
    return [([b[i][0] for i in _by_score(b)], n + k) for b, n, k in zip(beams, scored, counts)]


def _score_missing_batch(groups: list[Scored], score: Callable[[list], list[float]]) -> tuple[list[Scored], list[int]]:
    """`_score_missing` over several groups of states with one `score` call."""
    flat = [st for g in groups for st in g]
    done, _ = _score_missing(flat, score)
    out, counts, at = [], [], 0
    for g in groups:
        out.append(done[at:at + len(g)])
        counts.append(sum(v is None for _, v in g))
        at += len(g)
    return out, counts


def exhaustive_best(root: Hashable, expand: Callable[[list], list[list]],
                    score: Callable[[list], list[float]], depth: int) -> Hashable:
    """The best-scoring leaf of the whole tree to `depth`: the answer beam search approximates.

    Enumerates every path (finished states carried over, as in `beam_search`), scores only the
    leaves, returns the first of the best in generation order. Exponential: for tests and tiny trees.
    """
    leaves = [root]
    for _ in range(depth):
        kids = expand(leaves)
        leaves = [k for s, ks in zip(leaves, kids) for k in (ks or [s])]
    return leaves[int(np.argmax(_finite(score(leaves))))]


def count_tokens(tokenizer, texts: list[str]) -> int:
    """Total tokens in texts, without special tokens: the compute a method spent generating them.

    Counting generated tokens (not responses) is what makes best-of-N, voting, beam search and
    reward-guided decoding comparable: a beam step is short, a full response is long.
    """
    return sum(len(tokenizer.encode(t, add_special_tokens=False)) for t in texts)


def top_k_tokens(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """logits (B, V) → (B, top_k) the candidate token ids, likeliest first: column j of
    `reward_guided_step`'s candidate_scores must score the continuation with token [:, j]."""
    return logits.topk(top_k, dim=-1).indices


def reward_guided_step(logits: torch.Tensor, candidate_scores: torch.Tensor, weight: float,
                       top_k: int) -> torch.Tensor:
    """One step of reward-guided decoding (ARGS, Khanov et al. 2024), greedy variant:

        y_t = argmax_{v ∈ top-k(logits)} logit(v) + w · r(x, y_<t ⊕ v)

    logits (B, V) of the next token; candidate_scores (B, top_k) the scorer's value of each
    candidate continuation, column j for token `top_k_tokens(logits, top_k)[:, j]` — the caller
    computes them by appending each candidate to the partial response and scoring it (k scorer
    calls per generated token: that is this method's cost). → (B,) chosen token ids.
    weight 0 is greedy decoding; a large weight follows the scorer among the top-k alone.
    """
    top = logits.topk(top_k, dim=-1)  # values, indices (B, k), likeliest first
    total = top.values.float() + weight * candidate_scores.to(top.values.device).float()  # (B, k)
    return top.indices.gather(-1, total.argmax(-1, keepdim=True)).squeeze(-1)
