"""Helpers for tests/test_labs.py: a temporary copy of the course, nbgrader runs, fake students."""
from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

LABS_DIR = Path(__file__).resolve().parents[1] / "labs"
NBGRADER = str(Path(sys.executable).parent / "nbgrader")
MARKERS = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$")


def source_notebook(lab: str, root: Path = LABS_DIR) -> Path:
    return root / "source" / lab / f"{lab}.ipynb"


def copy_course(dest: Path) -> Path:
    """The course's config and instructor sources in `dest` (nbgrader writes next to them)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(LABS_DIR / "nbgrader_config.py", dest)
    shutil.copytree(LABS_DIR / "source", dest / "source")
    return dest


def nbgrader(course: Path, *args: str, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `nbgrader ARGS` in the course folder, in the ci profile, one thread per kernel (`env`:
    more variables for the run)."""
    env = {**os.environ, **(env or {}), "ALIGNLAB_PROFILE": "ci", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           # nbgrader runs `alembic` (its database migrations) from PATH: the environment's bin first
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    proc = subprocess.run([NBGRADER, *args], cwd=course, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def cell(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def solution_code(lab: str, grade_id: str) -> str:
    """The instructor's solution cell with the markers removed (what a correct student writes)."""
    src = cell(nbformat.read(source_notebook(lab), 4), grade_id).source
    return "\n".join(line for line in src.splitlines() if not MARKERS.match(line))


def submit(course: Path, student: str, lab: str, notebook: Path, cells: dict[str, str] | None = None) -> None:
    """Hand in `notebook` as `student`, with some solution cells replaced by `cells`."""
    nb = nbformat.read(notebook, 4)
    for grade_id, src in (cells or {}).items():
        cell(nb, grade_id).source = src
    out = course / "submitted" / student / lab
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / f"{lab}.ipynb")


def read_grades(course: Path) -> dict[tuple[str, str], tuple[float, float]]:
    """(student, lab) → (score, max score), from `nbgrader export`'s CSV."""
    with open(course / "grades.csv") as f:
        return {(r["student_id"], r["assignment"]): (float(r["score"]), float(r["max_score"]))
                for r in csv.DictReader(f)}


def hidden_text(lab: str) -> list[str]:
    """Lines of the source that a release must not contain: solution bodies and hidden tests."""
    lines, inside = [], False
    for c in nbformat.read(source_notebook(lab), 4).cells:
        for line in c.source.splitlines():
            if MARKERS.match(line):
                inside = line.strip().startswith("### BEGIN")
            elif inside and len(line.strip()) > 8:
                lines.append(line.strip())
    return lines
