"""The website: built from the committed notebooks with warnings as errors, offline, every chapter
with its quiz (encoded) and a note on running it, and no quiz answer anywhere in the pages."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alignlab.quiz import author

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
pytestmark = pytest.mark.slow


def build_site() -> Path:
    """`site/build.py` once per session (make test builds it first; a lone pytest builds it here)."""
    if not (ROOT / "site" / "node_modules" / "mathjax").exists():
        subprocess.run(["npm", "install", "--prefix", str(ROOT / "site"), "--no-audit", "--no-fund"], check=True)
    out = subprocess.run([sys.executable, "site/build.py"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return HTML


@pytest.fixture(scope="session")
def site() -> Path:
    return HTML if (HTML / "chapters" / "09_capstone.html").exists() else build_site()


def text_of(html: str) -> str:
    """A page's words: tags dropped (Sphinx wraps each word of inline code in its own span)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def chapter_pages() -> list[str]:
    return [p.stem for p in sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))]


def test_every_chapter_is_a_page_with_its_quiz_and_a_run_note(site):
    for stem in chapter_pages():
        page = (site / "chapters" / f"{stem}.html").read_text(encoding="utf-8")
        bank = re.search(r'class="alignlab-quiz" data-bank="\.\./_static/banks/(\d\d)\.json"', page)
        assert bank and bank[1] == stem[:2], f"{stem}: no quiz for its bank"
        assert (site / "_static" / "banks" / f"{stem[:2]}.json").exists()
        words = text_of(page)
        assert "make lab" in words and f"chapters/{stem}.ipynb" in words, f"{stem}: no note on running it"
        labs = sorted((ROOT / "labs" / "source").glob(f"lab{int(stem[:2])}_*"))
        if stem[:2] != "00" and labs:
            assert f"labs/source/{labs[0].name}/" in words, f"{stem}: no pointer to its lab"
        assert 'quiz("' not in words, f"{stem}: the notebook's quiz call is on the page"


def test_landing_page_maps_the_chapters_and_gives_the_two_commands(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "make lab" in text_of(index) and "make test" in text_of(index)
    for stem in chapter_pages():
        assert f"chapters/{stem}.html" in index
    for page in ("running", "instructors", "report"):
        assert (site / f"{page}.html").exists()
    report = (site / "report.html").read_text(encoding="utf-8")
    assert "report_cpu_headlines.png" in report


def test_the_pages_load_nothing_from_the_network(site):
    """MathJax and the quiz are local files; no script or stylesheet comes from a CDN."""
    for page in [site / "index.html", *(site / "chapters").glob("*.html")]:
        html = page.read_text(encoding="utf-8")
        remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', html)
        assert not remote, f"{page.name} loads {remote}"
        assert re.search(r'<script[^>]+src="[^"]*_static/mathjax/tex-mml-chtml\.js"', html), page.name
    assert (site / "_static" / "mathjax" / "tex-mml-chtml.js").exists()
    assert (site / "_static" / "quiz.js").exists()


def quiz_texts() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """From the readable sources: (where, text) of what a quiz only reveals after a check —
    feedback, hints, explanations — and (where, text) of every right answer."""
    revealed, right = [], []
    for chapter, source in author.sources().items():
        for q in source["questions"]:
            where = f"{chapter}:{q['id']}"
            revealed += [(f"{where}:{key}", q[key]) for key in ("hint", "explanation") if q.get(key)]
            for a in q.get("answers", []):
                revealed += [(f"{where}:feedback", a["feedback"])] if a.get("feedback") else []
                if a.get("correct"):
                    right.append((where, str(a.get("answer", a.get("value")))))
    return revealed, right


def test_no_quiz_answer_is_in_the_pages(site):
    """Nothing a quiz reveals only after a check is anywhere the site serves (but the encoded
    banks), and no right answer is in a page's quiz: the quiz is drawn from the bank in the browser.
    (A right option's words may be the chapter's own subject — "IIA" — and so appear in its prose.)"""
    served = [p for p in site.rglob("*") if p.suffix in (".html", ".js", ".css", ".txt", ".json")
              and "banks" not in p.parts and "mathjax" not in p.parts]
    text = text_of("\n".join(p.read_text(encoding="utf-8", errors="ignore") for p in served))
    revealed, right = quiz_texts()
    leaks = [where for where, t in revealed if text_of(t).strip() in text]
    assert not leaks, f"quiz feedback, hints or explanations in plain text on the site: {leaks[:5]}"
    for stem in chapter_pages():
        page = (site / "chapters" / f"{stem}.html").read_text(encoding="utf-8")
        quiz = re.search(r'<div class="alignlab-quiz"[^>]*>(.*?)</div>', page, re.S)
        assert quiz and not [w for w, t in right if t in quiz[1]], f"{stem}: an answer in its quiz's HTML"


def test_a_broken_reference_or_missing_image_fails_the_build(site, tmp_path):
    """The build's flags make Sphinx's warnings errors: a page with a missing image must fail."""
    book = tmp_path / "book"
    shutil.copytree(ROOT / "site" / "_src", book, ignore=shutil.ignore_patterns("chapters", "_static"))
    (book / "_toc.yml").write_text("format: jb-book\nroot: index\n")
    (book / "index.md").write_text("# Broken\n\n![a figure](no_such_figure.png)\n\nSee [a page](missing.md).\n")
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(book), "--path-output", str(tmp_path),
           "--warningiserror", "--keep-going", "--quiet"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode != 0
    assert "no_such_figure.png" in out.stdout + out.stderr


def test_the_site_builds_from_the_same_flags(site):
    """The flags the test above exercises are the ones `site/build.py` uses."""
    source = (ROOT / "site" / "build.py").read_text()
    assert '"--warningiserror"' in source
    assert json.loads((ROOT / "site" / "package.json").read_text())["dependencies"]["mathjax"].startswith("3.")
