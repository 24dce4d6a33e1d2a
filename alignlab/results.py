"""Each chapter's headline numbers: this run's beside the book's committed `cpu` run.

A chapter's summary cell measures its few headline numbers and calls

    print(results.headline("03", {"PPO-ptx − SFT, held-out gold": (0.160, 0.033, 960), ...}))

which saves them as `<folder>/<profile>/03.json` and prints them next to the book's own
(`results/cpu/03.json` in the repository, written by `make book-outputs` from the same cells
that produced the committed outputs), so the prose — which quotes the `cpu` run — and a student's
run in another profile can be told apart at a glance. The folder is $ALIGNLAB_RESULTS (what
`make book-outputs` sets to the repository's `results/`), else `results/` under the AlignLab home,
so a student's run never rewrites the book's numbers. The capstone's report card reads these files.
No torch here: a summary cell stays light.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .cache import home, write_atomic

RESULTS_ENV = "ALIGNLAB_RESULTS"
BOOK_PROFILE = "cpu"
"""The profile whose outputs the book commits and its prose quotes."""
FORMAT = "alignlab-results/1"

Number = tuple[float, float | None, int | None]
"""(value, standard error or None, sample size or None)."""


def book_dir() -> Path:
    """The repository's `results/` folder: the committed numbers of the book's own run."""
    return Path(__file__).resolve().parents[1] / "results"


def results_dir() -> Path:
    """Where this run's numbers go: $ALIGNLAB_RESULTS, else `results/` under the AlignLab home."""
    return Path(os.environ[RESULTS_ENV]).expanduser() if os.environ.get(RESULTS_ENV) else home() / "results"


def path(chapter: str, profile: str, folder: Path | None = None) -> Path:
    """`<folder>/<profile>/<chapter>.json` (folder: `results_dir()`)."""
    return Path(folder or results_dir()) / profile / f"{chapter}.json"


def record(chapter: str, numbers: dict[str, Number], profile: str, folder: Path | None = None) -> Path:
    """Save one run's headline numbers for `chapter`, atomically; returns the file."""
    rows = {}
    for name, (value, se, n) in numbers.items():
        if not math.isfinite(float(value)):
            raise ValueError(f"chapter {chapter}: headline {name!r} is not a finite number ({value!r})")
        rows[name] = {"value": float(value), "se": None if se is None else float(se), "n": None if n is None else int(n)}
    out = path(chapter, profile, folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps({"format": FORMAT, "chapter": chapter, "profile": profile, "numbers": rows},
                                 indent=1, ensure_ascii=False) + "\n")
    return out


def load(chapter: str, profile: str = BOOK_PROFILE, folder: Path | None = None) -> dict[str, Number] | None:
    """A run's headline numbers (default: the book's `cpu` run, from the repository), or None if
    there are none. A file that is not a results file raises ValueError naming it."""
    src = path(chapter, profile, folder or book_dir())
    if not src.exists():
        return None
    try:
        data = json.loads(src.read_text(encoding="utf-8"))
        assert data["format"] == FORMAT
        return {k: (v["value"], v["se"], v["n"]) for k, v in data["numbers"].items()}
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        raise ValueError(f"{src.name} (chapter {chapter}, profile {profile}) is not a readable results file "
                         f"({type(e).__name__}); regenerate it with `make book-outputs`") from e


def _shown(x: Number | None) -> str:
    if x is None:
        return "—"
    value, se, n = x
    return f"{value:.3f}" + (f" ± {se:.3f}" if se is not None else "") + (f" (n = {n})" if n is not None else "")


def headline(chapter: str, numbers: dict[str, Number], profile: str | None = None) -> str:
    """Record this run's headline numbers and return them as a table beside the book's `cpu` run."""
    from .profiles import profile_name
    profile = profile or profile_name()
    record(chapter, numbers, profile)
    book = load(chapter) or {}
    width = max(len(k) for k in numbers) + 2
    rows = [f"{'headline':{width}}{'this run (' + profile + ')':>30}{'the book (' + BOOK_PROFILE + ')':>30}"]
    rows += [f"{name:{width}}{_shown(x):>30}{_shown(book.get(name)):>30}" for name, x in numbers.items()]
    return "\n".join(rows)
