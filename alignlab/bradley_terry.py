"""The classic Bradley-Terry model: a finite set of items, compared in pairs, each with a score.

    P(i beats j) = σ(s_i − s_j)                                  (Bradley & Terry, 1952)

Chapter 2 fits it to counts before it fits a neural reward model, because every way a reward
model can be wrong shows up here already, in a 3 × 3 table: a majority cycle (Condorcet) that no
scores can express, a decoy that changes a choice without touching the options it is between
(Huber, Payne & Puto, 1982), and annotators whose hidden disagreement BT averages like a Borda
count rather than by utility (Siththaranjan, Laidlaw & Hadfield-Menell, 2024).

Counts are a (n, n) float64 array `wins` with wins[i, j] = how often i beat j. Only differences
of scores are identified, so fitted scores are centred to mean 0. Two views of the same model
sit beside it: Luce's choice rule for picking one of many (whose pairwise marginals are BT), and
the random-utility view (utility + Gumbel noise, then argmax; McFadden, 1974) that produces it.
"""
from __future__ import annotations

from itertools import permutations

import numpy as np


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """σ(x) = 1 / (1 + e^−x), elementwise, same shape as x.

    Through e^−|x| so that nothing overflows and σ of a very negative x keeps its relative
    precision (log_likelihood takes its log) instead of rounding to 0.
    """
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def win_matrix(comparisons: list[tuple[int, int]], n_items: int) -> np.ndarray:
    """Counts from a list of (winner, loser) pairs → wins (n_items, n_items), wins[i, j] = i beat j."""
    wins = np.zeros((n_items, n_items))
    for winner, loser in comparisons:
        if winner == loser or not (0 <= winner < n_items and 0 <= loser < n_items):
            raise ValueError(f"comparison ({winner}, {loser}) needs two different items in 0..{n_items - 1}")
        wins[winner, loser] += 1
    return wins


def _check_wins(wins: np.ndarray) -> np.ndarray:
    """The counts as float64, or a ValueError that says what is wrong with them."""
    wins = np.asarray(wins, dtype=np.float64)
    if wins.ndim != 2 or wins.shape[0] != wins.shape[1]:
        raise ValueError(f"wins must be a square (n, n) matrix of counts, got shape {wins.shape}")
    if not np.all(np.isfinite(wins)) or np.any(wins < 0):
        raise ValueError("wins must hold finite, non-negative counts (wins[i, j] = times i beat j)")
    if np.any(np.diag(wins) != 0):
        raise ValueError("wins has a non-zero diagonal: an item cannot beat itself")
    return wins


def _penalised_ll(wins: np.ndarray, s: np.ndarray, l2: float) -> float:
    """Σ_ij wins[i, j] log σ(s_i − s_j) − (l2 / 2)‖s‖², the objective `fit_bt` maximises."""
    diff = s[:, None] - s[None, :]  # (n, n)
    log_p = -np.logaddexp(0.0, -diff)  # log σ(diff), stable
    return float(np.sum(wins * log_p) - 0.5 * l2 * s @ s)


def fit_bt(wins: np.ndarray, l2: float = 1e-6, tol: float = 1e-10, max_iter: int = 10_000) -> np.ndarray:
    """Maximum-likelihood Bradley-Terry scores s (n,) with mean 0, by Newton's method.

    wins (n, n) → s (n,). The log-likelihood is concave; its gradient and negative Hessian are

        g_i = Σ_j (wins[i, j] − N_ij P_ij) − l2 s_i,      N_ij = wins[i, j] + wins[j, i]
        H_ij = −N_ij P_ij P_ji (i ≠ j),  H_ii = Σ_j N_ij P_ij P_ji + l2

    (a weighted graph Laplacian, ridge added). The tiny ridge `l2` is there so that perfectly
    separated data (someone never lost) and a disconnected comparison graph still have a finite,
    unique answer: the unpenalised MLE would send such scores to ±∞ (Hunter, 2004, Assumption 1
    is the condition under which it would not). On well-posed data its pull on s is
    O(l2 / comparisons per item): far below sampling noise.
    Each Newton step is halved until the objective rises, which keeps separated data stable.
    """
    wins = _check_wins(wins)
    n = wins.shape[0]
    n_pair = wins + wins.T  # (n, n) comparisons per pair
    s = np.zeros(n)
    for _ in range(max_iter):
        p = sigmoid(s[:, None] - s[None, :])  # (n, n)
        grad = (wins - n_pair * p).sum(axis=1) - l2 * s  # (n,)
        w = n_pair * p * p.T  # (n, n) curvature of each pair
        hess = np.diag(w.sum(axis=1) + l2) - w  # (n, n), positive definite
        # Adding 11ᵀ/n changes nothing along the mean-0 subspace the iterates live in (grad ⊥ 1
        # there) but lifts the ridge-sized eigenvalue of the constant direction: better conditioned.
        step = np.linalg.solve(hess + np.full((n, n), 1.0 / n), grad)
        old, t = _penalised_ll(wins, s, l2), 1.0
        while _penalised_ll(wins, s + t * step, l2) < old and t > 1e-12:
            t *= 0.5
        s = s + t * step
        if np.max(np.abs(t * step)) < tol:
            break
    return s - s.mean()


def bt_probs(scores: np.ndarray) -> np.ndarray:
    """scores (n,) → P (n, n), P[i, j] = σ(s_i − s_j); the diagonal is 0.5."""
    s = np.asarray(scores, dtype=np.float64)
    return sigmoid(s[:, None] - s[None, :])


def log_likelihood(wins: np.ndarray, probs: np.ndarray) -> float:
    """Σ_ij wins[i, j] log probs[i, j] over the pairs with data, for wins, probs (n, n)."""
    wins, probs = _check_wins(wins), np.asarray(probs, dtype=np.float64)
    seen = wins > 0  # a zero count contributes nothing, even where probs is 0
    return float(np.sum(wins[seen] * np.log(probs[seen])))


def saturated_probs(wins: np.ndarray) -> np.ndarray:
    """The empirical P[i, j] = wins[i, j] / (wins[i, j] + wins[j, i]), 0.5 where no data: (n, n).

    One free parameter per pair, so it fits any table; its log-likelihood is the ceiling BT's is
    measured against. 2 · (ll_saturated − ll_BT) is the likelihood-ratio statistic, χ² with
    (pairs − (n − 1)) degrees of freedom when BT is true.
    """
    wins = _check_wins(wins)
    n_pair = wins + wins.T
    return np.divide(wins, n_pair, out=np.full(wins.shape, 0.5), where=n_pair > 0)


def sample_wins(probs: np.ndarray, n_per_pair: int, rng: np.random.Generator) -> np.ndarray:
    """Counts (n, n) from comparing each unordered pair `n_per_pair` times, i beating j with
    probability probs[i, j] (n, n): any preference table, BT or not (a panel, a cycle)."""
    p = np.asarray(probs, dtype=np.float64)
    n = p.shape[0]
    wins = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            wins[i, j] = rng.binomial(n_per_pair, p[i, j])
            wins[j, i] = n_per_pair - wins[i, j]
    return wins


def simulate_wins(scores: np.ndarray, n_per_pair: int, rng: np.random.Generator) -> np.ndarray:
    """Counts (n, n) from comparing each unordered pair `n_per_pair` times under BT(scores (n,))."""
    return sample_wins(bt_probs(scores), n_per_pair, rng)


def borda(wins: np.ndarray) -> np.ndarray:
    """Each item's share of its comparisons that it won (a normalised Borda count): (n,).

    0.5 for an item never compared. With every pair compared equally often it ranks items as
    the BT fit does: BT's likelihood equations set each item's expected wins to its observed ones.
    """
    wins = _check_wins(wins)
    played = (wins + wins.T).sum(axis=1)
    return np.divide(wins.sum(axis=1), played, out=np.full(len(played), 0.5), where=played > 0)


def luce_choice_probs(scores: np.ndarray, subset: list[int]) -> np.ndarray:
    """Luce's choice rule (Luce, 1959): P(i chosen from subset) = e^{s_i} / Σ_{j ∈ subset} e^{s_j}.

    scores (n,) → (len(subset),), in the order of `subset`. On two items it is bt_probs. It has
    independence from irrelevant alternatives (IIA): P(i) / P(j) = e^{s_i − s_j} whatever else is
    in the subset, so no scores can make a third option change how i fares against j.
    """
    z = np.asarray(scores, dtype=np.float64)[list(subset)]
    e = np.exp(z - z.max())  # shift by the max: no overflow, same ratios
    return e / e.sum()


def gumbel_choice(utilities: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """How often each item has the highest noisy utility u_i + Gumbel(0, 1), over n draws: (k,).

    The random-utility view of the choice rule above (Thurstone's model with Gumbel instead of
    normal noise; McFadden, 1974): the argmax is softmax(u)-distributed, so with two items it is
    σ(u_a − u_b) (the difference of two Gumbels is logistic).
    """
    u = np.asarray(utilities, dtype=np.float64)
    noisy = u[None, :] + rng.gumbel(size=(n, len(u)))  # (n, k)
    return np.bincount(noisy.argmax(axis=1), minlength=len(u)) / n


def find_cycle(probs: np.ndarray) -> tuple[int, int, int] | None:
    """A Condorcet cycle (i, j, k): P[i, j] > .5, P[j, k] > .5 and P[k, i] > .5; else None.

    probs (n, n). BT probabilities never have one: s_i > s_j > s_k > s_i is impossible.
    """
    beats = np.asarray(probs) > 0.5  # (n, n)
    for i, j, k in permutations(range(beats.shape[0]), 3):
        if beats[i, j] and beats[j, k] and beats[k, i]:
            return i, j, k
    return None
