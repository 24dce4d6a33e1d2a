"""Best-of-N and reward-model overoptimization (Gao, Schulman & Hilton, 2023).

Best-of-N: draw N responses, keep the one the (proxy) reward model likes best. Every N comes from
one pool of M ≥ N samples per prompt: the expected value of the best of N draws without
replacement is an exact sum over the sorted pool (order statistics), so no resampling noise.

Gao et al. measure gold and proxy reward against d = √KL(π ‖ π_init) and fit

    best-of-N:  R_bon(d) = d (α − β d)          RL:  R_RL(d) = d (α − β log d)

with R(0) = 0 (rewards relative to the initial policy's mean).
"""
from __future__ import annotations

import math

import numpy as np


def bon_weights(m: int, n: int) -> np.ndarray:
    """(m,) probability that the i-th smallest of m pool items is the max of n drawn without
    replacement: C(i, n − 1) / C(m, n) for i = 0 … m − 1 (0-based rank)."""
    if not 1 <= n <= m:
        raise ValueError(f"best-of-{n} needs 1 ≤ N ≤ pool size ({m})")
    total = math.comb(m, n)  # exact integers: no overflow for any pool that fits in memory
    return np.array([math.comb(i, n - 1) / total for i in range(m)])


def best_of_n(proxy: np.ndarray, gold: np.ndarray, n: int) -> tuple[float, float]:
    """Expected (proxy, gold) reward of the best-of-n response, selected by proxy, from one
    prompt's pool: proxy, gold (M,). Ties in proxy are broken by the pool order (stable sort)."""
    order = np.argsort(proxy, kind="stable")
    w = bon_weights(len(proxy), n)
    return float(w @ proxy[order]), float(w @ gold[order])


def bon_kl_bound(n: int | np.ndarray) -> np.ndarray:
    """The commonly quoted KL(π_bon ‖ π) = log N − (N − 1)/N: exact only when all responses are
    distinct; in general an upper bound (Beirami et al., 2024)."""
    n = np.asarray(n, dtype=float)
    return np.log(n) - (n - 1) / n


def bon_kl_estimate(proxy: np.ndarray, n: int) -> float:
    """Plug-in KL(π_bon ‖ π) for one prompt from a pool of samples: π is the pool's empirical
    distribution over distinct proxy values, π_bon(y) = F(r)^N − F(r⁻)^N with F its CDF.
    Repeated responses (ties) make it smaller than the log N − (N−1)/N formula."""
    values, counts = np.unique(proxy, return_counts=True)  # ascending
    p = counts / counts.sum()
    cdf = np.cumsum(p)
    p_bon = cdf ** n - np.concatenate([[0.0], cdf[:-1]]) ** n
    keep = p_bon > 0
    return float((p_bon[keep] * np.log(p_bon[keep] / p[keep])).sum())


def fit_gao(d: np.ndarray, reward: np.ndarray, form: str) -> dict[str, float]:
    """Least-squares fit of Gao et al.'s functional forms through the origin:
    form "bon": R = α d − β d²;  form "rl": R = α d − β d log d. Returns α, β and their
    standard errors (ordinary least squares; points along one run are correlated, so read
    the intervals as rough)."""
    d, reward = np.asarray(d, float), np.asarray(reward, float)
    keep = d > 0
    d, reward = d[keep], reward[keep]
    second = d ** 2 if form == "bon" else d * np.log(d) if form == "rl" else None
    if second is None:
        raise ValueError(f"form must be 'bon' or 'rl', not {form!r}")
    X = np.stack([d, -second], 1)  # (n, 2)
    coef, *_ = np.linalg.lstsq(X, reward, rcond=None)
    resid = reward - X @ coef
    dof = max(1, len(d) - 2)
    cov = np.linalg.pinv(X.T @ X) * (resid @ resid) / dof
    return {"alpha": float(coef[0]), "beta": float(coef[1]),
            "alpha_se": float(math.sqrt(max(cov[0, 0], 0))), "beta_se": float(math.sqrt(max(cov[1, 1], 0)))}


def gao_curve(d: np.ndarray, alpha: float, beta: float, form: str) -> np.ndarray:
    """R(d) of a fitted form, for plotting."""
    d = np.asarray(d, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        second = d ** 2 if form == "bon" else np.where(d > 0, d * np.log(np.maximum(d, 1e-300)), 0.0)
    return alpha * d - beta * second


def bon_curve(proxy: np.ndarray, gold: np.ndarray, ns: list[int]) -> dict[str, np.ndarray]:
    """Best-of-N for each N in `ns` from pools proxy, gold (P prompts, M samples each): the mean
    over prompts of the selected response's expected proxy and gold reward, the KL formula and
    the mean plug-in KL estimate. Each entry (len(ns),)."""
    out = {"n": np.array(ns), "proxy": [], "gold": [], "kl_bound": bon_kl_bound(np.array(ns)), "kl_estimate": []}
    for n in ns:
        pairs = [best_of_n(p, g, n) for p, g in zip(proxy, gold)]
        out["proxy"].append(np.mean([a for a, _ in pairs]))
        out["gold"].append(np.mean([b for _, b in pairs]))
        out["kl_estimate"].append(np.mean([bon_kl_estimate(p, n) for p in proxy]))
    return {k: np.asarray(v) for k, v in out.items()}


def agreement_at_the_top(proxy: np.ndarray, gold: np.ndarray) -> dict[str, tuple[float, int]]:
    """How often the proxy orders two samples of one prompt as gold does — over all pairs whose
    gold differs, and over only the pairs that hold the proxy's top pick — from pools proxy, gold
    (P, M). Each entry is (share that agree, pairs counted); a proxy tie counts ½.

    Best-of-N reads the proxy at its top, so where "top" falls below "all", the harder the
    selection, the more it picks the proxy's errors: gold can fall with N while the proxy's
    average agreement with gold is well above chance."""
    dp, dg = proxy[:, :, None] - proxy[:, None, :], gold[:, :, None] - gold[:, None, :]   # (P, M, M)
    agree = np.where(dp == 0, 0.5, (np.sign(dp) == np.sign(dg)).astype(float))
    counted = np.triu(dg != 0, k=1)                                                          # each pair once
    top = np.argmax(proxy, axis=1)                                                           # (P,)
    at_top = np.zeros_like(counted)
    at_top[np.arange(len(top)), top, :] = dg[np.arange(len(top)), top, :] != 0
    return {"all": (float(agree[counted].mean()), int(counted.sum())),
            "top": (float(agree[at_top].mean()), int(at_top.sum()))}


GAO_SERIES = (("PPO gold", "rl"), ("PPO proxy", "rl"), ("BoN gold", "bon"), ("BoN proxy", "bon"))
"""(label, functional form) of each series `gao_points` returns, in drawing order."""


def gao_points(history: list[dict], bon: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """Gao et al.'s axes for one proxy reward model: label → (d, R(d) − R(0), form) for PPO's
    held-out evaluations along `history` (rows with `heldout_gain`, paired against SFT, and the
    training batch's proxy `score` minus the first row's) and for best-of-N (`bon` from
    `bon_curve`; d from the KL formula, as Gao et al. use). d = √KL, KL clipped at 0."""
    ev = [r for r in history if "heldout_gold" in r]
    d_rl = np.sqrt(np.maximum([r["kl"] for r in ev], 0.0))
    d_bon = np.sqrt(np.asarray(bon["kl_bound"], float))
    series = {"PPO gold": (d_rl, np.array([r["heldout_gain"] for r in ev])),
              "PPO proxy": (d_rl, np.array([r["score"] for r in ev]) - history[0]["score"]),
              "BoN gold": (d_bon, bon["gold"] - bon["gold"][0]),
              "BoN proxy": (d_bon, bon["proxy"] - bon["proxy"][0])}
    return {label: (*series[label], form) for label, form in GAO_SERIES}


def fit_gao_points(points: dict[str, tuple[np.ndarray, np.ndarray, str]]) -> dict[str, dict[str, float]]:
    """`fit_gao` of every series of `gao_points`, by label."""
    return {label: fit_gao(d, r, form) for label, (d, r, form) in points.items()}
