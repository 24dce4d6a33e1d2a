"""Chapter 8's experiment and its analysis: the weak-to-strong grid over the size ladder.

`run_task` trains, for one task and each seed, every rung on ground truth of both halves (weak
supervisors on half A, ceilings on half B) and every larger rung on every smaller rung's labels
(students, plain cross-entropy and with the confidence loss), and records test accuracies, each
student's agreement with its supervisor, and its accuracy along training. The rest reads that
record: standard errors, the ceiling's rise, PGR where the gap is real (`losses.pgr`), misfit.

Standard errors are the test set's: √(p(1 − p)/n) for one accuracy, and √(se₁² + se₂²) for a
difference of two models' (a conservative one: the same test set makes the two correlated).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from . import w2s
from .losses import pgr

RUNGS = ("small", "policy", "large")
LOSSES = ("xent", "confidence")
MIN_SE = 3.0
"""A gap (ceiling − weak, or the ceiling's rise along the ladder) counts when it is at least this
many standard errors; PGR is reported only then, else "n/a"."""


def entry_name(rung: str) -> str:
    """The zoo's base model at a rung of the ladder."""
    return "base" if rung == "policy" else f"base@{rung}"


def pairs(rungs: Sequence[str] = RUNGS) -> list[tuple[str, str]]:
    """(weak, strong) for every smaller → larger pair of the ladder."""
    return [(w, s) for i, w in enumerate(rungs) for s in rungs[i + 1:]]


def pair_name(weak: str, strong: str) -> str:
    return f"{weak}>{strong}"


def _accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probs.argmax(-1) == labels).float().mean())


def _trained(lm, feats, targets, config: w2s.FitConfig, tune: str, evaluate=None):
    clf = w2s.Classifier(lm, tune)
    history = w2s.fit(clf, feats, targets, config, evaluate)
    return clf, history


def _take(feats: w2s.Features, rows: list[int]) -> w2s.Features:
    return {k: v[rows] for k, v in feats.items()}


def run_seed(lms: dict, feats: dict, labels: torch.Tensor, test_labels: torch.Tensor, halves, config: w2s.FitConfig,
             tune: str, alpha: float) -> dict:
    """One seed of one task: {weak, ceiling: {rung: acc}, students: {pair: {loss: {acc, agree, curve}}}}.
    feats[rung] = (train features, test features); halves = (rows of half A, rows of half B)."""
    a, b = halves
    truth = w2s.one_hot(labels.tolist())
    out = {"weak": {}, "ceiling": {}, "students": {}}
    weak_b, weak_test = {}, {}
    for rung, (lm, _) in lms.items():
        train_f, test_f = feats[rung]
        weak, _ = _trained(lm, _take(train_f, a), truth[a], config, tune)
        weak_b[rung], weak_test[rung] = w2s.predict(weak, _take(train_f, b)), w2s.predict(weak, test_f)
        out["weak"][rung] = _accuracy(weak_test[rung], test_labels)
        ceiling, _ = _trained(lm, _take(train_f, b), truth[b], config, tune)
        out["ceiling"][rung] = _accuracy(w2s.predict(ceiling, test_f), test_labels)
    for weak, strong in pairs(list(lms)):
        train_f, test_f = feats[strong]
        supervisor = weak_test[weak].argmax(-1)

        def evaluate(clf, test_f=test_f, supervisor=supervisor) -> dict:
            pred = w2s.predict(clf, test_f).argmax(-1)
            return {"test_acc": float((pred == test_labels).float().mean()),
                    "agree": float((pred == supervisor).float().mean())}
        runs = {}
        for loss, a_ in (("xent", 0.0), ("confidence", alpha)):
            _, history = _trained(lms[strong][0], _take(train_f, b), weak_b[weak], replace(config, alpha=a_), tune,
                                  evaluate)
            final = history[-1]  # the loop always logs (and so evaluates) its last step
            runs[loss] = {"acc": final["test_acc"], "agree": final["agree"],
                          "curve": [[r["step"], r["test_acc"], r["agree"]] for r in history]}
        out["students"][pair_name(weak, strong)] = runs
    return out


def run_task(name: str, lms: dict, examples: list, test: list, config: w2s.FitConfig, tune: str, alpha: float,
             seeds: Sequence[int]) -> dict:
    """The whole grid of one task over `lms` = {rung: (model, tokenizer)}, smallest first."""
    feats = {rung: (w2s.features(lm, tok, [e.text for e in examples], tune),
                    w2s.features(lm, tok, [e.text for e in test], tune)) for rung, (lm, tok) in lms.items()}
    labels, test_labels = torch.tensor([e.label for e in examples]), torch.tensor([e.label for e in test])
    runs = [run_seed(lms, feats, labels, test_labels, w2s.split_halves(examples, s), replace(config, seed=s), tune,
                     alpha) for s in seeds]
    return {"task": name, "n_train": len(examples), "n_test": len(test), "base_rate": float(test_labels.float().mean()),
            "seeds": list(seeds), "runs": runs}


def screen_task(name: str, lms: dict, examples: list, test: list, config: w2s.FitConfig, tune: str) -> dict:
    """A candidate task's ceiling at every rung (ground truth of half B, the first seed)."""
    a, b = w2s.split_halves(examples, config.seed)
    truth = w2s.one_hot([e.label for e in examples])
    test_labels = torch.tensor([e.label for e in test])
    acc = {}
    for rung, (lm, tok) in lms.items():
        train_f = w2s.features(lm, tok, [examples[i].text for i in b], tune)
        clf, _ = _trained(lm, train_f, truth[b], config, tune)
        acc[rung] = _accuracy(w2s.predict(clf, w2s.features(lm, tok, [e.text for e in test], tune)), test_labels)
    return {"task": name, "n_train": len(b), "n_test": len(test), "ceiling": acc}


# --- analysis of the records ------------------------------------------------------------------


def se(p: float, n: int) -> float:
    """Standard error of an accuracy p on n test examples."""
    return math.sqrt(max(p * (1 - p), 0.0) / n)


def diff_se(p: float, q: float, n: int) -> float:
    return math.sqrt(se(p, n) ** 2 + se(q, n) ** 2)


def mean_over_seeds(record: dict, kind: str) -> dict[str, float]:
    """{rung: mean accuracy over seeds} of the `weak` or `ceiling` models."""
    return {r: float(np.mean([run[kind][r] for run in record["runs"]])) for r in record["runs"][0][kind]}


def ceiling_rise(ceiling: dict[str, float], n: int) -> dict:
    """The ceiling's rise from the smallest rung to the largest, in accuracy and in standard errors."""
    lo, hi = ceiling[next(iter(ceiling))], ceiling[list(ceiling)[-1]]
    s = diff_se(lo, hi, n)
    return {"rise": hi - lo, "se": s, "in_se": (hi - lo) / s if s > 0 else math.inf, "holds": hi - lo >= MIN_SE * s}


def pgr_cell(record: dict, weak: str, strong: str, loss: str) -> dict:
    """One cell of the grid: mean accuracies, the gap and its SE, and the mean ± spread (std) of the
    per-seed PGRs, or pgr None ("n/a") where ceiling − weak is under MIN_SE standard errors."""
    runs, n = record["runs"], record["n_test"]
    w = np.array([r["weak"][weak] for r in runs])
    c = np.array([r["ceiling"][strong] for r in runs])
    s = np.array([r["students"][pair_name(weak, strong)][loss]["acc"] for r in runs])
    gap, gap_se = c.mean() - w.mean(), diff_se(w.mean(), c.mean(), n)
    cell = {"weak": w.mean(), "ceiling": c.mean(), "student": s.mean(), "gap": gap, "gap_se": gap_se,
            "pgr": None, "pgr_std": None}
    if gap >= MIN_SE * gap_se and np.all(c > w):
        per_seed = pgr(w, s, c)
        cell.update(pgr=float(per_seed.mean()), pgr_std=float(per_seed.std()))
    return cell


def grid(record: dict) -> dict[str, dict[str, dict]]:
    """{pair: {loss: pgr_cell}} of one task."""
    rungs = list(record["runs"][0]["weak"])
    return {pair_name(w, s): {loss: pgr_cell(record, w, s, loss) for loss in LOSSES} for w, s in pairs(rungs)}


def confidence_effect(record: dict) -> dict:
    """Mean PGR with the confidence loss minus with cross-entropy over the pairs where PGR is
    reported, per seed, then its mean and spread over seeds (None where no pair qualifies)."""
    cells = grid(record)
    ok = [p for p, by_loss in cells.items() if by_loss["xent"]["pgr"] is not None]
    if not ok:
        return {"pairs": 0, "effect": None, "std": None}
    runs = record["runs"]
    per_seed = []
    for i, r in enumerate(runs):
        def seed_pgr(p, loss):
            w, s = p.split(">")
            return pgr(r["weak"][w], r["students"][p][loss]["acc"], r["ceiling"][s])
        per_seed.append(np.mean([seed_pgr(p, "confidence") - seed_pgr(p, "xent") for p in ok]))
    return {"pairs": len(ok), "effect": float(np.mean(per_seed)), "std": float(np.std(per_seed))}


def misfit(record: dict) -> list[dict]:
    """One row per student: its gain over its supervisor and its disagreement with it on the test
    set (Burns et al. §5: students that beat the supervisor disagree with it)."""
    rows = []
    for run in record["runs"]:
        for p, by_loss in run["students"].items():
            w = p.split(">")[0]
            for loss, st in by_loss.items():
                rows.append({"task": record["task"], "pair": p, "loss": loss, "gain": st["acc"] - run["weak"][w],
                             "disagreement": 1 - st["agree"]})
    return rows


def summary(record: dict) -> dict:
    """One task's grid in a line: the pairs where PGR is reported, how many of them have PGR > 0 per
    loss, the mean PGR per loss over them, and the confidence loss's effect (`confidence_effect`)."""
    cells = grid(record)
    ok = {p: c for p, c in cells.items() if c["xent"]["pgr"] is not None}
    out = {"pairs": len(cells), "reported": len(ok), "effect": confidence_effect(record)}
    for loss in LOSSES:
        pgrs = [c[loss]["pgr"] for c in ok.values()]
        out[loss] = {"positive": sum(v > 0 for v in pgrs), "mean_pgr": float(np.mean(pgrs)) if pgrs else None}
    return out


def screen_table(record: dict) -> list[dict]:
    """Every task the chapter tried, grid and screened alike: its ceiling per rung (the grid's mean over
    seeds), the rise smallest → largest in standard errors, and whether it is in the grid."""
    rows = []
    for name, rec in record["tasks"].items():
        rows.append({"task": name, "ceiling": mean_over_seeds(rec, "ceiling"), "n_test": rec["n_test"], "grid": True})
    for name, rec in record["screen"].items():
        rows.append({"task": name, "ceiling": rec["ceiling"], "n_test": rec["n_test"], "grid": False})
    for row in rows:
        row.update(ceiling_rise(row["ceiling"], row["n_test"]))
    return rows


def mean_curve(record: dict, pair: str, loss: str) -> dict[str, np.ndarray]:
    """A student's test accuracy and agreement with its supervisor along training, mean over seeds:
    {step, acc, agree}, each (points,)."""
    curves = np.array([run["students"][pair][loss]["curve"] for run in record["runs"]])  # (seeds, points, 3)
    mean = curves.mean(0)
    return {"step": mean[:, 0], "acc": mean[:, 1], "agree": mean[:, 2]}
