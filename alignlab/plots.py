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
