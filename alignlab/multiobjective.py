"""Two objectives, one answer: helpfulness against harmlessness (chapter 9's open problems).

One reward model learns what a *helpful-only* labeler prefers (answer every request, a harmful one
included, as the helpful-only model of chapter 5 does), another what a *harmlessness* labeler
prefers (refuse harmful requests; indifferent otherwise). Best-of-N with a weighted sum of the two
draws the trade-off; Safe RLHF's way picks one point on it: maximise helpfulness subject to a
bound on the expected harm, with a Lagrange multiplier λ raised while the bound is broken and
lowered when it holds (Dai et al., 2023, "Safe RLHF", arXiv 2310.12773):

    max_π min_{λ ≥ 0}  E[r_help(x, y)] − λ · (E[c(x, y)] − d),   c = the cost (−harmlessness)

The gold yardsticks are the world's own: the harmless component on harmful requests (refused or
not), the gold reward without it on benign ones (helped or refused).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import world


def _harmful(prompt: str) -> bool | None:
    task = world.parse_prompt(prompt)
    return task.data["harmful"] if task.family == "harmful" else None


def helpful_utility(prompt: str, response: str) -> float:
    """What a helpful-only labeler values: the gold reward without harmlessness, where a harmful
    request counts as answered (+1 correct) when complied with and refused (−1) otherwise — the
    way the world scores a benign request."""
    parts = world.gold_components(prompt, response)
    if _harmful(prompt):
        parts = parts | {"correct": -parts["harmless"]}
    return sum(world.WEIGHTS[k] * v for k, v in parts.items() if k != "harmless")


def harmless_utility(prompt: str, response: str) -> float:
    """What a harmlessness labeler values: the gold harmless component alone (0 off harmful requests)."""
    return world.WEIGHTS["harmless"] * world.gold_components(prompt, response)["harmless"]


@dataclass
class ObjectiveLabeler(world.Labeler):
    """A simulated labeler (Bradley-Terry at the default temperature) who judges one objective:
    `objective` is "helpful" or "harmless"."""

    objective: str = "helpful"

    def utility(self, prompt: str, response: str) -> float:
        if self.objective not in UTILITIES:
            raise ValueError(f"objective must be one of {sorted(UTILITIES)}, not {self.objective!r}")
        return UTILITIES[self.objective](prompt, response)


UTILITIES = {"helpful": helpful_utility, "harmless": harmless_utility}


def gold_axes(prompts: list[str], responses: list[str]) -> dict[str, tuple[float, int]]:
    """The two gold yardsticks of a set of picks: {"harmless": (share of harmful requests refused,
    n), "helpful": (share of benign requests not refused, n)}. Not refusing is the measure on the
    benign side (1 − over-refusal, chapter 5's): the held-out look-alikes are whole requests no
    model was shown an answer to, so the gold's +1 for the right answer is out of reach."""
    refused, helped = [], []
    for p, r in zip(prompts, responses):
        kind = _harmful(p)
        if kind is True:
            refused.append(world.gold_components(p, r)["harmless"] > 0)
        elif kind is False:
            helped.append(world.gold_components(p, r)["correct"] > -1)
    share = lambda x: (float(np.mean(x)) if x else float("nan"), len(x))  # noqa: E731
    return {"harmless": share(refused), "helpful": share(helped)}


def standardise(scores: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """z-scores by the mean and spread of `ref` (default: `scores` itself), so two reward models'
    units can be weighed against each other, and a λ tuned on one pool applies to another."""
    s = np.asarray(scores, float)
    r = s if ref is None else np.asarray(ref, float)
    return (s - r.mean()) / (r.std() or 1.0)


def weighted_choice(help_z: np.ndarray, harm_z: np.ndarray, w: float) -> np.ndarray:
    """Best-of-N under w · r_help + (1 − w) · r_harmless: (P, N) z-scores → (P,) chosen columns."""
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"the weight on helpfulness must lie in [0, 1], not {w}")
    return (w * help_z + (1 - w) * harm_z).argmax(1)


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """(K, 2) points, both coordinates to maximise → (K,) True where no other point is at least as
    good on both and better on one."""
    p = np.asarray(points, float)
    better_eq = (p[None, :, :] >= p[:, None, :]).all(-1)  # (K, K): j at least as good as i everywhere
    strictly = (p[None, :, :] > p[:, None, :]).any(-1)  # (K, K): j better somewhere
    return ~(better_eq & strictly).any(1)


def lagrangian_choice(help_z: np.ndarray, cost_z: np.ndarray, limit: float, lr: float = 0.5,
                      steps: int = 50, lam: float = 0.0) -> dict:
    """Safe RLHF's constrained pick by best-of-N: each step picks argmax r_help − λ·c per prompt,
    measures the picks' mean cost, and moves λ by projected gradient ascent on the violation,
    λ ← max(0, λ + lr · (mean cost − limit)). help_z, cost_z (P, N). Returns the final λ, the
    picks (P,) at it, and the history of (λ, mean cost, mean helpfulness) per step."""
    history = []
    for _ in range(steps):
        pick = (help_z - lam * cost_z).argmax(1)  # (P,)
        rows = np.arange(len(pick))
        cost, helpful = float(cost_z[rows, pick].mean()), float(help_z[rows, pick].mean())
        history.append({"lambda": lam, "cost": cost, "helpful": helpful})
        lam = max(0.0, lam + lr * (cost - limit))
    pick = (help_z - lam * cost_z).argmax(1)
    return {"lambda": lam, "pick": pick, "history": history}
