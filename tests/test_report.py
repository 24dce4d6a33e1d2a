"""The report card: fixture results in tmp_path (never the repository's results/) → REPORT.md + plots."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest

from alignlab import cli, report, results

CHAPTERS = ["02", "03", "04", "05", "08"]
PGR = {"sums: PGR small → large (xent)": (0.2, 0.03, 2), "sums: PGR small → large (confidence)": (0.4, 0.06, 2),
       "totals: PGR small → large (xent)": (0.3, 0.1, 2), "totals: PGR small → large (confidence)": (0.1, 0.2, 2),
       "sums: ceiling large − small": (0.1, 0.01, 2000)}


@pytest.fixture
def folder(tmp_path) -> Path:
    """Chapters 02, 03 and 08 recorded, 04 damaged, 05 missing."""
    out = tmp_path / "results"
    results.record("02", {"RM accuracy vs gold": (0.5, 0.1, 100), "two labelers agree": (0.69, None, None)}, "ci", out)
    results.record("03", {"PPO-ptx − SFT, held-out gold": (-0.25, 0.05, 960), "KL (nats)": (1.5, 0.2, None)},
                   "ci", out)
    results.record("08", PGR, "ci", out)
    (out / "ci" / "04.json").write_text('{"format": "alignlab-results/1", "numbers": ')  # cut off mid-write
    return out


def rendered(folder: Path, tmp_path: Path) -> str:
    return report.render(report.collect("ci", folder, CHAPTERS), "ci", tmp_path / "out" / "REPORT.md").read_text()


def row(markdown: str, name: str) -> list[str]:
    """The table row of the number `name`, as its cells: name, value, uncertainty, n, paper."""
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def section(markdown: str, chapter: str) -> str:
    """The text of chapter's section, up to the next heading."""
    return markdown.split(f"\n## {chapter} — ", 1)[1].split("\n## ", 1)[0]


def test_collect_sorts_chapters_into_numbers_missing_and_unreadable(folder):
    got = report.collect("ci", folder, CHAPTERS)
    assert list(got) == CHAPTERS
    assert got["02"] == {"RM accuracy vs gold": (0.5, 0.1, 100), "two labelers agree": (0.69, None, None)}
    assert got["05"] is None
    assert got["04"].startswith("unreadable: ") and "04.json" in got["04"]
    assert report.summary(got) == "3 present (02, 03, 08); 1 missing (05); 1 unreadable (04)"


def test_each_number_shows_its_value_se_95_interval_and_n(folder, tmp_path):
    md = rendered(folder, tmp_path)
    assert row(md, "RM accuracy vs gold")[1:4] == ["0.500", "± 0.100 (95%: [0.304, 0.696])", "100"]
    assert row(md, "PPO-ptx − SFT, held-out gold")[1:4] == ["-0.250", "± 0.050 (95%: [-0.348, -0.152])", "960"]
    assert row(md, "KL (nats)")[2:4] == ["± 0.200 (95%: [1.108, 1.892])", "not recorded"]


def test_missing_and_damaged_chapters_are_lines_not_crashes(folder, tmp_path):
    md = rendered(folder, tmp_path)
    assert "missing — run the chapter (or `alignlab report --compute`)" in section(md, "05")
    assert section(md, "05").startswith("Constitutional AI")
    damaged = section(md, "04")
    assert "unreadable: 04.json" in damaged and "make book-outputs" in damaged and "| number |" not in damaged
    assert "missing" not in section(md, "02") + section(md, "04")


def test_a_number_without_se_or_n_is_not_recorded_never_invented(folder, tmp_path):
    md = rendered(folder, tmp_path)
    assert row(md, "two labelers agree")[2:4] == ["not recorded", "not recorded"]
    listed = md.split("regenerate with `make book-outputs`:", 1)[1]
    assert "- 02 · two labelers agree: se and n not recorded" in listed
    assert "- 03 · KL (nats): n not recorded" in listed
    assert "RM accuracy vs gold" not in listed and "PPO-ptx − SFT" not in listed


def test_the_papers_figure_stands_beside_a_keyed_number_only(folder, tmp_path):
    md = rendered(folder, tmp_path)
    assert row(md, "two labelers agree")[4].startswith("72.6 ± 1.5%") and "§3.4" in row(md, "two labelers agree")[4]
    assert "nearly 80%" in row(md, "sums: PGR small → large (confidence)")[4]
    assert row(md, "RM accuracy vs gold")[4] == "—"


def test_the_paper_table_keys_name_numbers_the_book_records():
    # Read-only look at the committed records: a renamed headline must not silently lose its paper figure.
    book = report.collect("cpu", results.book_dir(), [f"{c:02d}" for c in range(1, 10)])
    for chapter, name in report.PAPER:
        if isinstance(book.get(chapter), dict):
            assert name in book[chapter], f"PAPER key ({chapter}, {name!r}) is no headline of results/cpu"


def test_every_number_the_book_records_has_an_uncertainty_and_a_sample_size():
    # Read-only look at the committed cpu records: what the committed REPORT.md is made of.
    book = report.collect("cpu", results.book_dir(), [f"{c:02d}" for c in range(1, 10)])
    bare = [f"{chapter} · {name}" for chapter, numbers in book.items() if isinstance(numbers, dict)
            for name, (_, se, n) in numbers.items() if se is None or n is None]
    assert len(book) == 9 and not bare, bare


def test_the_stamp_says_profile_machine_date_and_code_version(folder, tmp_path):
    info = report.stamp()
    assert set(info) == {"machine", "cores", "GPU", "date (UTC)", "code version"}
    date = datetime.fromisoformat(info["date (UTC)"])
    assert date.utcoffset() == timedelta(0) and abs(datetime.now(timezone.utc) - date) < timedelta(minutes=5)
    assert info["code version"] and info["code version"] != "unknown" and info["machine"]
    head = rendered(folder, tmp_path).split("\n## ", 1)[0]
    assert "- **profile**: ci" in head and f"- **code version**: {info['code version']}" in head
    assert "- **date (UTC)**: " in head and "- **cores**: " in head


def test_plots_are_written_beside_the_report_and_linked(folder, tmp_path):
    md = rendered(folder, tmp_path)
    for name in ("report_ci_headlines.png", "report_ci_pgr.png"):
        png = tmp_path / "out" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
        assert f"]({name})" in md
    assert "confidence's PGR is above xent's on 1 of 2 tasks" in md  # sums yes, totals no


def test_plots_are_skipped_with_a_line_when_there_is_nothing_to_plot(tmp_path):
    stale = tmp_path / "report_ci_headlines.png"
    stale.write_bytes(b"old")
    md = report.render({"02": {"x": (0.5, None, 10)}, "08": None}, "ci", tmp_path / "REPORT.md").read_text()
    assert "no headline plot" in md and "no PGR plot" in md and ".png)" not in md
    assert not stale.exists() and not (tmp_path / "report_ci_pgr.png").exists()


def test_the_cli_writes_the_report_to_out(folder, tmp_path, capsys):
    out = tmp_path / "deep" / "card.md"
    assert cli.main(["report", "--profile", "ci", "--results", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "3 present (02, 03, 08)" in printed and "unreadable (04)" in printed
    md = out.read_text()
    assert "[0.304, 0.696]" in md and "## 09 — Capstone" in md and (out.parent / "report_ci_headlines.png").exists()


def test_regenerating_imports_no_torch_and_no_pyplot(folder, tmp_path):
    code = ("import sys; from pathlib import Path; from alignlab import report\n"
            f"c = report.collect('ci', Path({str(folder)!r}), {CHAPTERS!r})\n"
            f"report.render(c, 'ci', Path({str(tmp_path / 'sub' / 'R.md')!r}))\n"
            "assert 'torch' not in sys.modules, 'torch'\n"
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot'  # a notebook's backend stays as it was\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(report.__file__).parents[1], timeout=120)
    assert done.returncode == 0, done.stderr
    assert "[0.304, 0.696]" in (tmp_path / "sub" / "R.md").read_text()


def test_chapter_ids_grow_with_the_notebooks_and_always_hold_the_capstone(tmp_path):
    for name in ("00_how_to.ipynb", "01_a.ipynb", "03_b.ipynb", "10_c.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert report.chapter_ids(tmp_path) == ["01", "03", "09", "10"]
    assert report.chapter_ids()[:9] == [f"{c:02d}" for c in range(1, 10)]


def notebook(path: Path, value: float | str) -> Path:
    cell = ("import os\nfrom alignlab import results\n"
            f"results.record('{path.name[:2]}', {{'x': ({value}, 0.1, 10)}}, profile=os.environ['ALIGNLAB_PROFILE'])")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)]), path)
    return path


def test_compute_missing_runs_only_missing_chapters_and_leaves_the_notebook_alone(tmp_path, monkeypatch, capsys,
                                                                                 alignlab_home):
    nbs, folder = tmp_path / "chapters", tmp_path / "results"
    nbs.mkdir()
    source = notebook(nbs / "42_fake.ipynb", 1.0)
    before = source.read_bytes()
    notebook(nbs / "43_present.ipynb", 2.0)
    notebook(nbs / "45_broken.ipynb", "1 / 0")  # a cell that fails: reported, not fatal
    results.record("43", {"x": (5.0, None, None)}, "ci", folder)  # present: its notebook must not run
    monkeypatch.setenv("ALIGNLAB_PROFILE", "gpu")
    monkeypatch.delenv(results.RESULTS_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where a failed run's executed copy goes
    done = report.compute_missing(["42", "43", "44", "45"], "ci", folder, notebooks_dir=nbs, timeout=120)
    assert done == ["42"]
    assert results.load("42", "ci", folder) == {"x": (1.0, 0.1, 10)}
    assert results.load("43", "ci", folder) == {"x": (5.0, None, None)}
    assert source.read_bytes() == before and json.loads(before)["cells"][0]["outputs"] == []
    assert os.environ["ALIGNLAB_PROFILE"] == "gpu" and results.RESULTS_ENV not in os.environ  # restored
    printed = capsys.readouterr().out.splitlines()
    assert [line[:11] for line in printed] == ["computed 42", "44: no 44_*", "45: 45_brok"]
    assert "failed (ZeroDivisionError: division by zero)" in printed[2]
    copy = Path(printed[2].rsplit(" ", 1)[1])
    assert copy.is_relative_to(tmp_path) and "ZeroDivisionError" in copy.read_text()  # kept, to read the error
    assert not (alignlab_home / "results").exists()  # the kernel recorded where it was told to
