"""The report card: every chapter's headline numbers on one Markdown page, beside the papers'.

Each chapter's summary cell saves its few headline numbers with `results.headline` (one
`<results>/<profile>/NN.json` per chapter); `alignlab report` gathers them into `REPORT.md`, with a
stamp saying where and from which code they came, each number's 95% interval, the paper's own
figure where the paper gives one (`PAPER`: only facts the chapters already quote, each with its
section) and a few plots — the report card that ends a run, as in nanochat.

The design choice: the report only *reads*. Regenerating it loads no torch and trains nothing,
so it is quick to rerun after any chapter; a missing or damaged record becomes a line in the
report instead of a crash, and a number saved without its uncertainty is listed as such, never
given an invented one. `--compute` (`compute_missing`) is the one way to fill a gap, and it does
so by running the chapter's own notebook, so the report can never disagree with the book.
"""
from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from . import results
from .cache import replacing, write_atomic

Z95 = 1.96
"""The normal quantile of a two-sided 95% interval: value ± 1.96·se."""
ROOT = Path(__file__).resolve().parents[1]
CHAPTERS_DIR = ROOT / "chapters"
CAPSTONE = "09"
"""Listed even before its notebook exists, so the report says it is still to run."""
MISSING = "missing — run the chapter (or `alignlab report --compute`)"
NOT_RECORDED = "not recorded"
REGENERATE = "Recorded without an uncertainty or a sample size: regenerate with `make book-outputs`"

TITLES = {
    "01": "SFT as KL", "02": "Bradley–Terry reward models", "03": "PPO with a KL penalty",
    "04": "DPO and its family", "05": "Constitutional AI", "06": "Process rewards and search",
    "07": "RL with verifiable rewards (GRPO)", "08": "Weak-to-strong", "09": "Capstone",
}

_W2S = "NLP median PGR ~25% → nearly 80% with the confidence loss (Burns et al., 2023, §4.3.2, Fig. 5)"
_LIGHTMAN = "best-of-1860 on 500 MATH test problems (Lightman et al., 2023, §3, Fig. 3)"
_GRPO = "DeepSeekMath, Shao et al., 2024"
_INSTRUCTGPT = "InstructGPT, Ouyang et al., 2022"
PAPER: dict[tuple[str, str], str] = {
    ("02", "two labelers agree"): f"72.6 ± 1.5% (training labelers), 77.3 ± 1.3% (held-out) ({_INSTRUCTGPT}, §3.4)",
    ("05", "RL-CAI harmful compliance (held out)"):
        "no rate: RL-CAI is more harmless than HH RLHF at a given helpfulness Elo (Bai et al., 2022, Fig. 2, 3, 8)",
    ("05", "RL-CAI over-refusal (held out)"): "RL-CAI is \"virtually never evasive\" (Bai et al., 2022, §4.4)",
    ("06", "best-of-N, PRM (gold labels) accuracy at N = 64"): f"PRM 78.2% vs ORM 72.4% vs majority 69.6%, {_LIGHTMAN}",
    ("06", "best-of-N, ORM accuracy at N = 64"): f"ORM 72.4% (PRM 78.2%), {_LIGHTMAN}",
    ("06", "majority vote accuracy at N = 64"): f"majority vote 69.6% (PRM 78.2%), {_LIGHTMAN}",
    ("07", "GRPO pass@1 (held-out sums, pool)"): f"no rate: GRPO+OS > Online RFT > RFT at 1.3B ({_GRPO}, Fig. 5)",
    ("07", "GRPO pass@64"): f"RL lifts Maj@K, not Pass@K ({_GRPO}, §5.2.2, Fig. 7)",
    # the preference task stands for Burns et al.'s reward modelling, whose PGR figures we could not verify
    **{("08", f"{task}: PGR small → large ({loss})"): _W2S
       for task in ("sums", "totals") for loss in ("xent", "confidence")},
    ("09", "small PPO-ptx vs policy-size base (few-shot), gold win rate"):
        f"1.3B InstructGPT preferred over 175B GPT-3, no head-to-head rate given ({_INSTRUCTGPT}, §1, Fig. 1); "
        "175B InstructGPT vs few-shot GPT-3: 71 ± 4% (§4.1)",
    **{("09", f"alignment tax: corpus loss, {model} − base"): "no rate: PPO regresses on public NLP tasks "
       f"(SQuAD, DROP, HellaSwag, WMT Fr→En), which PPO-ptx's pretraining term cuts ({_INSTRUCTGPT}, §1, §3.5)"
       for model in ("SFT", "PPO-ptx (pretraining text)")},
    **{("09", f"hallucination: {model}"): "closed-domain hallucination 41% (GPT-3) → 21% (InstructGPT) "
       f"({_INSTRUCTGPT}, §1, Fig. 4); ours is open-domain" for model in ("base", "PPO-ptx")},
    **{("09", f"rude with the polite instruction: {model}"): "about 25% fewer toxic outputs than GPT-3 when prompted "
       f"to be respectful ({_INSTRUCTGPT}, §1, §4.2, Fig. 7)" for model in ("base", "SFT", "PPO-ptx")},
}
"""(chapter, headline name as the results files spell it) → the paper's figure and its source."""

Collected = dict[str, "dict[str, results.Number] | str | None"]


def chapter_ids(notebooks_dir: Path | None = None) -> list[str]:
    """"01", "02", … : every `NN_*.ipynb` in chapters/ from 01 on, plus the capstone, so the list
    grows with the book (00 is the how-to, with no numbers)."""
    found = {p.name[:2] for p in Path(notebooks_dir or CHAPTERS_DIR).glob("[0-9][0-9]_*.ipynb")}
    return sorted({c for c in found if c >= "01"} | {CAPSTONE})


def title(chapter: str) -> str:
    """The chapter's title, from `TITLES`, else from its notebook's name (`10_foo_bar` → "foo bar")."""
    if chapter in TITLES:
        return TITLES[chapter]
    notebook = next(iter(sorted(CHAPTERS_DIR.glob(f"{chapter}_*.ipynb"))), None)
    return notebook.stem[3:].replace("_", " ") if notebook else f"chapter {chapter}"


def default_folder(profile: str) -> Path:
    """The book's committed results for `cpu`, this machine's ($ALIGNLAB_RESULTS or the home) else."""
    return results.book_dir() if profile == results.BOOK_PROFILE else results.results_dir()


def collect(profile: str, folder: Path | None = None, chapters: list[str] | None = None) -> Collected:
    """Chapter → its numbers as `results.load` returns them, None when it has no results file, or
    "unreadable: …" when the file is damaged (the report says so instead of failing)."""
    folder = Path(folder) if folder else default_folder(profile)
    collected: Collected = {}
    for chapter in chapters or chapter_ids():
        try:
            collected[chapter] = results.load(chapter, profile, folder)
        except ValueError as err:
            collected[chapter] = f"unreadable: {err}"
    return collected


def summary(collected: Collected) -> str:
    """One line: which chapters are present, missing and unreadable."""
    groups = {"present": [c for c, v in collected.items() if isinstance(v, dict)],
              "missing": [c for c, v in collected.items() if v is None],
              "unreadable": [c for c, v in collected.items() if isinstance(v, str)]}
    return "; ".join(f"{len(cs)} {what}" + (f" ({', '.join(cs)})" if cs else "") for what, cs in groups.items())


def _cpu_name() -> str:
    try:  # platform.processor() is often empty or just "x86_64" on Linux; /proc/cpuinfo names the model
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _output(*command: str) -> str | None:
    """A command's stripped stdout, or None if it is not installed, fails or hangs."""
    if not shutil.which(command[0]):
        return None
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _gpu_name() -> str:
    # Importing torch would cost seconds on every regeneration: ask it only if it is already loaded
    # (in a notebook it is), else ask the driver's nvidia-smi.
    if "torch" in sys.modules:
        cuda = sys.modules["torch"].cuda
        return cuda.get_device_name(0) if cuda.is_available() else "none"
    names = _output("nvidia-smi", "--query-gpu=name", "--format=csv,noheader")
    return ", ".join(names.splitlines()) if names else "none found"


def _version() -> str:
    # Only the repository this package lives in: an installed copy inside some other git folder
    # must not report that folder's commit.
    described = _output("git", "-C", str(ROOT), "describe", "--always", "--dirty") if (ROOT / ".git").exists() else None
    return described or getattr(sys.modules[__package__], "__version__", "unknown")


def stamp() -> dict[str, str]:
    """Where and from which code the report was made: machine, cores, GPU, UTC date, code version."""
    return {"machine": _cpu_name(), "cores": str(os.cpu_count() or "unknown"), "GPU": _gpu_name(),
            "date (UTC)": datetime.now(timezone.utc).isoformat(timespec="seconds"), "code version": _version()}


def _uncertainty(value: float, se: float | None) -> str:
    if se is None:
        return NOT_RECORDED
    return f"± {se:.3f} (95%: [{value - Z95 * se:.3f}, {value + Z95 * se:.3f}])"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a "|" in a name would split the Markdown table


def _chapter_section(chapter: str, entry: dict | str | None) -> list[str]:
    """The chapter's heading and its table, or the line saying why there is none."""
    lines = [f"## {chapter} — {title(chapter)}", ""]
    if entry is None:
        return lines + [f"*{MISSING}*", ""]
    if isinstance(entry, str):
        return lines + [f"*{_cell(entry)}*", ""]
    lines += ["| number | value | uncertainty (± se; 95% interval) | n | the paper's figure |",
              "|---|---:|---|---:|---|"]
    for name, (value, se, n) in entry.items():
        n_text = NOT_RECORDED if n is None else str(n)
        paper = PAPER.get((chapter, name), "—")
        lines.append(f"| {_cell(name)} | {value:.3f} | {_uncertainty(value, se)} | {n_text} | {_cell(paper)} |")
    return lines + [""]


def _unrecorded(collected: Collected) -> list[str]:
    """One line per number saved without its se or n: the report never fills one in."""
    lines = []
    for chapter, entry in collected.items():
        for name, (_, se, n) in (entry.items() if isinstance(entry, dict) else []):
            lacking = [what for what, x in (("se", se), ("n", n)) if x is None]
            if lacking:
                lines.append(f"- {chapter} · {name}: {' and '.join(lacking)} {NOT_RECORDED}")
    return lines


def _figure(width: float, height: float):
    """A matplotlib figure on its own Agg canvas: pyplot's global backend (Jupyter's) is never touched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:
    with replacing(path) as tmp:  # the temporary name has no .png: say the format
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def _plot_headlines(collected: Collected, path: Path, profile: str) -> bool:
    """Every number with an se as a horizontal bar with its 95% interval, chapter by chapter."""
    rows = [(c, name, v, se) for c, entry in collected.items() if isinstance(entry, dict)
            for name, (v, se, _) in entry.items() if se is not None]
    if not rows:
        return False
    fig = _figure(9, 1.2 + 0.28 * len(rows))
    ax = fig.add_subplot()
    chapters = sorted({c for c, *_ in rows})
    colours = [f"C{chapters.index(c) % 10}" for c, *_ in rows]  # one colour per chapter groups the bars
    ys = range(len(rows))[::-1]  # first chapter at the top
    ax.barh(list(ys), [v for *_, v, _ in rows], xerr=[Z95 * se for *_, se in rows], color=colours, capsize=2)
    ax.set_yticks(list(ys), [f"{c}: {name}" for c, name, *_ in rows], fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"value (whiskers: 95% interval, ± {Z95}·se)")
    ax.set_title(f"Headline numbers, profile {profile}")
    _save(fig, path)
    return True


def _pgr_rows(numbers: dict[str, results.Number]) -> dict[str, dict[str, tuple[float, float | None]]]:
    """Chapter 8's PGR numbers as task → loss → (value, se), from names like "sums: PGR small → large (xent)"."""
    grid: dict[str, dict[str, tuple[float, float | None]]] = {}
    for name, (value, se, _) in numbers.items():
        if "PGR" not in name:
            continue
        m = re.match(r"(?P<task>.+?): PGR .*\((?P<loss>[^()]+)\)\s*$", name)
        task, loss = (m["task"], m["loss"]) if m else (name, "PGR")  # an unforeseen name still gets a bar
        grid.setdefault(task, {})[loss] = (value, se)
    return grid


def _plot_pgr(grid: dict[str, dict[str, tuple[float, float | None]]], path: Path) -> str:
    """Grouped bars, one group per task, one bar per loss; returns the takeaway sentence."""
    losses = list(dict.fromkeys(loss for per_task in grid.values() for loss in per_task))
    fig = _figure(1.5 + 1.4 * len(grid), 4)
    ax = fig.add_subplot()
    width = 0.8 / len(losses)
    for i, loss in enumerate(losses):
        cells = [grid[t].get(loss, (float("nan"), None)) for t in grid]
        xs = [k + (i - (len(losses) - 1) / 2) * width for k in range(len(grid))]
        ax.bar(xs, [v for v, _ in cells], width, yerr=[Z95 * (se or 0.0) for _, se in cells], capsize=3, label=loss)
    ax.set_xticks(range(len(grid)), list(grid))
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axhline(1, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("task")
    ax.set_ylabel("PGR (0 = weak supervisor, 1 = strong ceiling)")
    ax.legend(title="loss")
    _save(fig, path)
    if len(losses) < 2:
        return "Whiskers are 95% intervals."
    first, last = losses[0], losses[-1]
    both = [t for t in grid if first in grid[t] and last in grid[t]]
    wins = sum(grid[t][last][0] > grid[t][first][0] for t in both)
    return (f"{last}'s PGR is above {first}'s on {wins} of {len(both)} tasks; where the whiskers (95% intervals) "
            f"overlap, this run cannot tell them apart. Burns et al.: {_W2S}.")


def _plots(collected: Collected, profile: str, folder: Path) -> list[str]:
    """Write the PNGs beside the report and return the Markdown that shows them (or says why not)."""
    lines = ["## Plots", ""]
    bars = folder / f"report_{profile}_headlines.png"
    if _plot_headlines(collected, bars, profile):
        lines += [f"![headline numbers]({bars.name})", "",
                  "Each bar is on its own scale (rates in [0, 1], differences around 0, KL in nats): read a bar "
                  "against its whiskers and against 0, not against its neighbours.", ""]
    else:
        bars.unlink(missing_ok=True)  # a stale plot from an earlier report must not pass for this one
        lines += ["No headline number has a standard error: no headline plot.", ""]
    pgr = folder / f"report_{profile}_pgr.png"
    grid = _pgr_rows(collected["08"]) if isinstance(collected.get("08"), dict) else {}
    if grid:
        takeaway = _plot_pgr(grid, pgr)
        lines += [f"![chapter 8: PGR by task and loss]({pgr.name})", "", takeaway, ""]
    else:
        pgr.unlink(missing_ok=True)
        lines += ["Chapter 08 has no PGR numbers here: no PGR plot.", ""]
    return lines


def render(collected: Collected, profile: str, out: Path) -> Path:
    """Write the Markdown report to `out`, its PNGs beside it, and return `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# AlignLab report card", "", f"- **profile**: {profile}"]
    lines += [f"- **{key}**: {value}" for key, value in stamp().items()]
    lines += ["", f"{summary(collected)}. Intervals are value ± {Z95}·se; \"the paper's figure\" is the "
              "paper's own result for the nearest comparison, on its models and data, not ours.", ""]
    for chapter, entry in collected.items():
        lines += _chapter_section(chapter, entry)
    lines += _plots(collected, profile, out.parent)
    unrecorded = _unrecorded(collected)
    lines += ["## Uncertainty and sample sizes", ""]
    lines += [f"{REGENERATE}:", "", *unrecorded] if unrecorded else ["Every number has its se and n."]
    write_atomic(out, "\n".join(lines) + "\n")
    return out


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables (the kernel inherits them) and restore the old ones afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def compute_missing(chapters: list[str], profile: str, folder: Path | None = None,
                    notebooks_dir: Path | None = None, timeout: int = 7200) -> list[str]:
    """Run the notebook of each chapter with no results file (a damaged one is left to be read as
    such), with ALIGNLAB_PROFILE and ALIGNLAB_RESULTS set so it records into `folder`; returns the
    chapters computed. The committed notebook is only read (it runs in memory; a failed run's copy
    is saved to a temporary folder, named in the message). `timeout` is per cell, in seconds."""
    import nbclient  # only --compute pays for the Jupyter stack
    import nbformat
    folder = Path(folder or default_folder(profile)).resolve()
    notebooks_dir = Path(notebooks_dir or CHAPTERS_DIR).resolve()
    done = []
    for chapter in chapters:
        if results.path(chapter, profile, folder).exists():
            continue
        source = next(iter(sorted(notebooks_dir.glob(f"{chapter}_*.ipynb"))), None)
        if source is None:
            print(f"{chapter}: no {chapter}_*.ipynb in {notebooks_dir}, nothing to run")
            continue
        nb = nbformat.read(source, as_version=4)
        client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                         resources={"metadata": {"path": str(notebooks_dir)}})
        start = time.monotonic()
        try:
            with _environ(ALIGNLAB_PROFILE=profile, ALIGNLAB_RESULTS=str(folder)):
                client.execute()
        except (nbclient.exceptions.CellExecutionError, nbclient.exceptions.DeadKernelError, TimeoutError) as err:
            copy = Path(tempfile.mkdtemp(prefix="alignlab-report-")) / source.name  # to read the traceback in
            nbformat.write(nb, copy)
            # a cell's error names its exception; nbclient's message starts with boilerplate instead
            why = f"{err.ename}: {err.evalue}" if hasattr(err, "ename") else f"{type(err).__name__}: {err}"
            print(f"{chapter}: {source.name} failed ({why}); the executed copy is {copy}")
            continue
        made = results.path(chapter, profile, folder)
        print(f"computed {chapter}: {source.name} in {time.monotonic() - start:.0f} s → "
              + (str(made) if made.exists() else "it recorded no results"))
        done += [chapter] if made.exists() else []
    return done
