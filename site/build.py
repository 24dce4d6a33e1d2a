"""Build the book's website: `python site/build.py` (what `make site` runs) → `_build/html/`.

A Jupyter Book 1 (Sphinx) site from the committed notebooks, their `cpu`-run outputs as they are —
nothing is executed. The build works offline: MathJax is served from `site/node_modules/mathjax`
(installed from the npm registry by `make site`, like the Python packages), the quiz from
`site/quiz.js`. Steps:

1. `site/_src/` is rebuilt from scratch: each chapter notebook is copied with its quiz cell replaced
   by `<div class="alignlab-quiz" data-bank="../_static/banks/NN.json">` (the encoded bank, checked
   in the browser by `quiz.js` as the Python checker does; no answer is in the page) and a line
   after its title on how to run it and which lab goes with it; the landing page, the "running the
   book" page, the instructors' guide and the report card are written beside them.
2. `jupyter-book build` with warnings as errors, so a broken cross-reference or a missing image
   fails the build.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"
SRC = SITE / "_src"
MATHJAX = SITE / "node_modules" / "mathjax" / "es5"
OUT = ROOT / "_build" / "html"
QUIZ_CALL = re.compile(r"""quiz\(\s*["'](\d\d)["']\s*\)""")

CONFIG = """\
title: AlignLab
author: The AlignLab authors
copyright: "2026"
only_build_toc_files: true
execute:
  execute_notebooks: "off"
html:
  use_repository_button: false
  use_issues_button: false
  use_edit_page_button: false
launch_buttons:
  notebook_interface: ""
  binderhub_url: ""
  colab_url: ""
  thebe: false
parse:
  myst_enable_extensions: [dollarmath, amsmath, colon_fence]
sphinx:
  config:
    mathjax_path: mathjax/tex-mml-chtml.js
    nb_ipywidgets_js: {}
    # Jupyter Book adds every .js and .css file of a static path to every page (the quiz's two);
    # MathJax's hundred files are copied into the built _static after the build instead, and
    # loaded only through mathjax_path
    html_static_path: [_static]
    html_show_sourcelink: false
    # a chapter's heading levels are its own business; a broken reference or image is not
    suppress_warnings: [myst.header]
"""


def chapters() -> list[Path]:
    return sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def lab_of(number: str) -> str | None:
    """The lab folder that goes with chapter `number` (`labs/source/lab3_ppo`), if any."""
    found = sorted((ROOT / "labs" / "source").glob(f"lab{int(number)}_*"))
    return f"labs/source/{found[0].name}" if found and number != "00" else None


def title_of(nb: dict) -> str:
    first = "".join(nb["cells"][0]["source"]).splitlines()[0]
    return first.lstrip("# ").strip()


def run_note(path: Path) -> dict:
    """A markdown cell: how to run this chapter yourself, and its lab."""
    lab = lab_of(path.name[:2])
    text = (f"```{{note}}\nThis page is the chapter as the book's `cpu` run left it. To run it yourself, "
            f"`make lab` and open `chapters/{path.name}` (see [running the book](../running.md)).")
    if lab:
        text += f" Its lab: `{lab}/` (see the [instructors' guide](../instructors.md))."
    return {"cell_type": "markdown", "id": "run-note", "metadata": {}, "source": text + "\n```"}


def site_notebook(path: Path) -> dict:
    """The chapter as the site shows it: quiz cells replaced, a run note after the title."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = []
    for cell in nb["cells"]:
        found = QUIZ_CALL.search("".join(cell["source"])) if cell["cell_type"] == "code" else None
        if found:
            cell = {"cell_type": "markdown", "id": cell.get("id", "quiz"), "metadata": {},
                    "source": f'<div class="alignlab-quiz" data-bank="../_static/banks/{found[1]}.json"></div>'}
        cells.append(cell)
    cells.insert(1, run_note(path))
    return nb | {"cells": cells}


def landing() -> str:
    rows = []
    for path in chapters():
        nb = json.loads(path.read_text(encoding="utf-8"))
        lab = lab_of(path.name[:2])
        rows.append(f"| {path.name[:2]} | [{title_of(nb)}](chapters/{path.stem}.ipynb) | {('`' + lab + '`') if lab else '—'} |")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    intro = readme.split("## What this is", 1)[1].split("\n## ", 1)[0].strip()
    return "\n".join([
        "# AlignLab", "", "An interactive textbook and lab on aligning language models with human preferences.", "",
        intro, "", "## The chapters", "", "| | chapter | lab |", "|---|---|---|", *rows, "",
        "## Run it yourself", "", "```bash",
        "make lab    # set up .venv, install everything, and open the book in JupyterLab",
        "make test   # set up the same .venv and run every test and every notebook (the ci profile)",
        "```", "", "More in [running the book](running.md); instructors start at the [instructors' guide](instructors.md);",
        "every chapter's headline numbers are on the [report card](report.md).", ""])


def running() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    profiles = readme.split("## Profiles", 1)[1].split("\n## ", 1)[0]
    return "\n".join(["# Running the book", "", "```bash", "make lab", "```", "",
                      "sets up `.venv` (Python ≥ 3.11) and opens JupyterLab at chapter 0; open any "
                      "`chapters/NN_*.ipynb` from its file browser and run it top to bottom. The quizzes "
                      "check answers in the notebook as they do here.", "", "## Profiles", profiles, ""])


def write_sources() -> None:
    shutil.rmtree(SRC, ignore_errors=True)
    (SRC / "chapters").mkdir(parents=True)
    static = SRC / "_static"
    shutil.copytree(ROOT / "alignlab" / "quiz" / "banks", static / "banks")
    for name in ("quiz.js", "quiz.css"):
        shutil.copy(SITE / name, static / name)
    for path in chapters():
        (SRC / "chapters" / path.name).write_text(json.dumps(site_notebook(path), indent=1, ensure_ascii=False),
                                                  encoding="utf-8")
    report = (ROOT / "REPORT.md").read_text(encoding="utf-8")
    (SRC / "report.md").write_text(report, encoding="utf-8")
    for png in ROOT.glob("report_cpu_*.png"):
        shutil.copy(png, SRC / png.name)
    shutil.copy(ROOT / "docs" / "instructors.md", SRC / "instructors.md")
    (SRC / "index.md").write_text(landing(), encoding="utf-8")
    (SRC / "running.md").write_text(running(), encoding="utf-8")
    (SRC / "_config.yml").write_text(CONFIG, encoding="utf-8")
    toc = ["format: jb-book", "root: index", "parts:", "  - caption: The book", "    chapters:"]
    toc += [f"      - file: chapters/{p.stem}" for p in chapters()]
    toc += ["  - caption: Using it", "    chapters:", "      - file: running", "      - file: instructors",
            "      - file: report"]
    (SRC / "_toc.yml").write_text("\n".join(toc) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources-only", action="store_true", help="write site/_src and stop")
    args = parser.parse_args(argv)
    if not (MATHJAX / "tex-mml-chtml.js").exists():
        sys.exit(f"MathJax is not installed in {MATHJAX}: run `npm install --prefix site` (make site does)")
    write_sources()
    if args.sources_only:
        return 0
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(SRC), "--path-output", str(ROOT),
           "--warningiserror", "--keep-going", "--quiet"]
    status = subprocess.call(cmd, cwd=ROOT)
    if status == 0:
        shutil.copytree(MATHJAX, OUT / "_static" / "mathjax", dirs_exist_ok=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
