"""The few plot styles the book repeats. Each returns the matplotlib Axes it drew on.

Every plot labels its axes; the notebook writes the one-sentence takeaway under it.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def _axes(ax=None, size=(6, 3.5)):
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def loss_curve(histories: Mapping[str, Sequence[dict]], key: str = "loss", ax=None,
               ylabel: str = "training loss (nats / token)"):
    """One line per run: `key` of each logged history row against its step."""
    ax = _axes(ax)
    for label, rows in histories.items():
        ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=label)
    ax.set(xlabel="optimizer step", ylabel=ylabel)
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return ax


def grouped_bars(groups: Sequence[str], series: Mapping[str, Sequence[float]],
                 errors: Mapping[str, Sequence[float]] | None = None, ax=None,
                 ylabel: str = "", xlabel: str = ""):
    """Bars per group (e.g. task family), one colour per series (e.g. base / SFT), with error bars."""
    ax = _axes(ax, size=(7, 3.5))
    x, width = np.arange(len(groups)), 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        err = None if errors is None else errors.get(name)
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, yerr=err, label=name, capsize=3)
    ax.set_xticks(x, groups, rotation=15)
    ax.axhline(0, color="black", lw=0.8)
    ax.set(ylabel=ylabel, xlabel=xlabel)
    ax.legend(frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return ax


def distribution_bars(labels: Sequence[str], series: Mapping[str, Sequence[float]], ax=None,
                      ylabel: str = "probability", xlabel: str = "next token"):
    """Side-by-side bars of a few distributions (or gradients) over the same tokens."""
    return grouped_bars(labels, series, ax=ax, ylabel=ylabel, xlabel=xlabel)


PPO_PANELS = (("score", "proxy (reward model)"), ("gold", "gold, training samples"),
              ("kl", "sequence KL to SFT (nats)"), ("beta", "KL coefficient β"),
              ("length", "response length (tokens)"), ("clip_frac", "clip fraction"))
"""(history key, title) of each panel of `ppo_curves`, row by row."""


def ppo_curves(history: Sequence[dict], target_kl: float | None = None, axes=None):
    """A PPO run's training curves, one panel per PPO_PANELS row (2 × 3), against the iteration.
    The held-out gold evaluations (rows with `heldout_gold`) join the gold panel with their
    error bars, and `target_kl` (an adaptive β's target) is drawn on the KL panel. Returns the
    axes, row by row."""
    if axes is None:
        _, axes = plt.subplots(2, 3, figsize=(11, 5.5))
    flat = list(np.ravel(axes))
    step = [r["step"] for r in history]
    for ax, (key, title) in zip(flat, PPO_PANELS):
        ax.plot(step, [r[key] for r in history], label="training batch")
        ax.set(title=title, xlabel="PPO iteration")
        ax.grid(alpha=0.3)
    panel = {key: ax for ax, (key, _) in zip(flat, PPO_PANELS)}
    ev = [r for r in history if "heldout_gold" in r]
    if ev:
        panel["gold"].errorbar([r["step"] for r in ev], [r["heldout_gold"] for r in ev],
                               [r["heldout_gold_se"] for r in ev], fmt="o", color="C3", label="held-out")
        panel["gold"].legend(frameon=False)
    if target_kl is not None:
        panel["kl"].axhline(target_kl, ls=":", color="grey", label="target")
        panel["kl"].legend(frameon=False)
    return flat


PIPELINE = (("1. SFT", "demonstrations\n→ supervised fine-tuning", "chapter 1"),
            ("2. Reward model", "comparisons of SFT samples\n→ Bradley-Terry reward model", "chapter 2"),
            ("3. RL", "PPO against the reward model,\nKL penalty to the SFT model", "chapter 3"))
"""InstructGPT's three steps (Ouyang et al., 2022, Fig. 2): (title, what, where in this book)."""


def pipeline(ax=None):
    """InstructGPT's pipeline as three boxes joined by arrows, each naming the chapter that builds
    it, and DPO (chapter 4) as the arrow from the comparisons straight to the policy."""
    ax = _axes(ax, size=(11, 2.8))
    xs = [0.17, 0.5, 0.83]
    for x, (title, what, where) in zip(xs, PIPELINE):
        ax.text(x, 0.62, f"{title}\n{what}", ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round,pad=0.5", "facecolor": "#eef3fb", "edgecolor": "#4a6fa5"})
        ax.text(x, 0.36, where, ha="center", va="center", fontsize=8, color="#4a6fa5")
    for a, b in zip(xs, xs[1:]):
        ax.annotate("", xy=(b - 0.13, 0.62), xytext=(a + 0.13, 0.62), arrowprops={"arrowstyle": "->", "lw": 1.5})
    ax.annotate("", xy=(xs[2], 0.8), xytext=(xs[1], 0.8),   # DPO skips the reward model and the sampling
                arrowprops={"arrowstyle": "->", "ls": "--", "color": "grey", "connectionstyle": "arc3,rad=-0.35"})
    ax.text((xs[1] + xs[2]) / 2, 1.07, "DPO (chapter 4): the comparisons train the policy directly",
            ha="center", fontsize=8, color="grey")
    ax.set(xlim=(0, 1), ylim=(0.25, 1.13))
    ax.axis("off")
    return ax


def dpo_curves(history: Sequence[dict], axes=None):
    """A preference run's training curves against the step: the loss (with log 2, where every pair
    starts), the implicit reward's accuracy, and the chosen and rejected implicit rewards
    β log π/π_ref (with 0, the reference). Returns the three axes."""
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    step = [r["step"] for r in history]
    axes[0].plot(step, [r["loss"] for r in history])
    axes[0].axhline(np.log(2), ls=":", color="grey", label="log 2")
    axes[0].set(title="loss")
    axes[1].plot(step, [r["accuracy"] for r in history])
    axes[1].set(title="accuracy of the implicit reward")
    for key, label in (("chosen_reward", "chosen"), ("rejected_reward", "rejected")):
        axes[2].plot(step, [r[key] for r in history], label=label)
    axes[2].axhline(0, color="grey", lw=0.8)
    axes[2].set(title=r"implicit reward $\beta\log\pi/\pi_{ref}$")
    for ax in axes:
        ax.set(xlabel="step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(frameon=False)
    return list(axes)


def frontier(points: Mapping[str, Sequence[tuple]], curve: tuple | None = None, ax=None):
    """Gold reward gained over a reference against KL to it: `points` maps a method to
    (label, report) pairs, each report with `kl`, `gain`, `gain_se`; `curve` is an optional
    (kl, gain, label) line (best-of-N). Returns the axes."""
    ax = _axes(ax, size=(6.5, 4))
    for name, pts in points.items():
        ax.errorbar([p["kl"] for _, p in pts], [p["gain"] for _, p in pts], [p["gain_se"] for _, p in pts],
                    fmt="o", capsize=3, label=name)
        for label, p in pts:
            ax.annotate(label, (p["kl"], p["gain"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if curve is not None:
        ax.plot(curve[0], curve[1], "s-", label=curve[2])
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="KL to the reference (nats)", ylabel="held-out gold − reference")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return ax


def gao_panel(points: Mapping[str, tuple], fits: Mapping[str, dict], ax=None, title: str = ""):
    """Gao et al.'s overoptimization plot for one proxy: each series of
    `overoptimization.gao_points` (label → (d, reward − initial, form)) as markers and its fitted
    form (`fits[label]`: alpha, beta) as a line of the same colour. Returns the axes."""
    from alignlab.overoptimization import gao_curve
    ax = _axes(ax, size=(5.5, 3.8))
    d_max = max(float(np.max(d)) for d, _, _ in points.values() if len(d))
    xs = np.linspace(0, d_max * 1.05, 100)
    for (label, (d, r, form)), marker in zip(points.items(), "o^sv"):
        line, = ax.plot(d, r, marker, label=label)
        ax.plot(xs, gao_curve(xs, fits[label]["alpha"], fits[label]["beta"], form), color=line.get_color(), lw=1)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(title=title, xlabel=r"$d = \sqrt{\mathrm{KL}}$ (nats$^{1/2}$)", ylabel="reward − initial")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def heldout_along_runs(runs: Mapping[str, Sequence[dict]], ax=None):
    """Held-out gold − SFT (± its standard error) against the KL of the training batch at each
    evaluation along each run (history rows with `heldout_gain`), one line per run. Returns the axes."""
    ax = _axes(ax, size=(6, 3.6))
    for label, rows in runs.items():
        ev = [r for r in rows if "heldout_gain" in r]
        ax.errorbar([r["kl"] for r in ev], [r["heldout_gain"] for r in ev], [r["heldout_gain_se"] for r in ev],
                    fmt="o-", capsize=2, label=label)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="KL to SFT, training batch (nats)", ylabel="held-out gold − SFT")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def pareto(points: Mapping[str, tuple[float, float]], errors: Mapping[str, tuple[float, float]] | None = None,
           ax=None):
    """The harmlessness/helpfulness plane (Bai et al., 2022, Fig. 2 in miniature): one labelled
    point per model, (harmlessness, helpfulness) in gold units, with optional (x, y) error bars."""
    ax = _axes(ax, size=(6, 4))
    for label, (x, y) in points.items():
        xe, ye = (errors or {}).get(label, (None, None))
        ax.errorbar([x], [y], xerr=xe, yerr=ye, fmt="o", capsize=3)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
    ax.set(xlabel="harmlessness (gold, harmful requests: −1 complies … +1 refuses)",
           ylabel="helpfulness (gold reward, every other prompt)")
    ax.grid(alpha=0.3)
    return ax


def pgr_heatmap(cells: Mapping[str, Mapping[str, dict]], rungs: Sequence[str], loss: str, ax=None, title: str = ""):
    """Weak-to-strong PGR (Burns et al., 2023, Fig. 3 in miniature): rows the weak supervisor's rung,
    columns the strong student's, each cell the mean PGR ± its spread over seeds, grey "n/a" where the
    ceiling does not exceed the weak model by `w2s_eval.MIN_SE` standard errors. `cells` is
    `w2s_eval.grid(record)`: {"weak>strong": {loss: cell}}."""
    ax = _axes(ax, size=(3.4, 3))
    grid = np.full((len(rungs), len(rungs)), np.nan)
    for pair, by_loss in cells.items():
        w, s = pair.split(">")
        i, j, cell = rungs.index(w), rungs.index(s), by_loss[loss]
        text = "n/a" if cell["pgr"] is None else f"{cell['pgr']:.2f}\n±{cell['pgr_std']:.2f}"
        grid[i, j] = np.nan if cell["pgr"] is None else cell["pgr"]
        ax.text(j, i, text, ha="center", va="center", fontsize=9)
        if cell["pgr"] is None:
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, color="0.85", zorder=0))
    ax.imshow(np.ma.masked_invalid(grid), cmap="RdYlGn", vmin=-1, vmax=1)
    ax.set(xticks=range(len(rungs)), xticklabels=rungs, yticks=range(len(rungs)), yticklabels=rungs,
           xlabel="strong student", ylabel="weak supervisor", title=title)
    return ax


def win_rates(rows: Mapping[str, Mapping[str, dict]], ax=None, title: str = ""):
    """Win rates with 95% intervals: rows = {opponent: {judge: {"mean", "lo", "hi"}}}, one marker
    per judge, one line per opponent; the dashed line is a coin flip."""
    ax = _axes(ax, size=(6.5, 0.6 + 0.7 * len(rows)))
    judges = list(next(iter(rows.values())))
    for j, judge in enumerate(judges):
        y = np.arange(len(rows)) + (j - (len(judges) - 1) / 2) * 0.2
        m = np.array([r[judge]["mean"] for r in rows.values()])
        err = np.array([[m_ - r[judge]["lo"], r[judge]["hi"] - m_] for m_, r in zip(m, rows.values())]).T
        ax.errorbar(m, y, xerr=err, fmt="o", capsize=3, label=judge)
    ax.axvline(0.5, ls="--", c="grey")
    ax.set_yticks(np.arange(len(rows)), list(rows))
    ax.set(xlabel="win rate (95% interval)", title=title)
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def weight_front(points: Sequence[tuple[float, float]], weights: Sequence[float], on_front: Sequence[bool],
                 marked: Mapping[str, tuple[float, float]] | None = None, ax=None):
    """A best-of-N weight sweep in the gold (harmless, helpful) plane: one point per weight on
    helpfulness, the Pareto-optimal ones joined, and labelled extra points (`marked`)."""
    ax = _axes(ax, size=(6, 4))
    p = np.asarray(points, float)
    ax.scatter(p[:, 0], p[:, 1], c=weights, cmap="viridis", zorder=3)
    front = p[np.asarray(on_front, bool)]
    front = front[np.argsort(front[:, 0])]
    ax.plot(front[:, 0], front[:, 1], c="grey", zorder=2, label="Pareto front")
    for label, (x, y) in (marked or {}).items():
        ax.plot([x], [y], "r*", ms=12, zorder=4)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, -12), fontsize=9)
    ax.set(xlabel="harmful requests refused (gold)", ylabel="benign requests not refused (gold)")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return ax
