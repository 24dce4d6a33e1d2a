"""Quiz progress: every attempt and each chapter's score, in one JSON file under ALIGNLAB_HOME.

Widget state dies with the notebook's kernel, so the kernel writes each attempt to
`$ALIGNLAB_HOME/quiz_progress.json` at once: atomically (`cache.write_atomic`) and under a file
lock (two notebooks may answer at the same moment). A file that cannot be read is never
overwritten: it is set aside as `quiz_progress.corrupt-<time>-<random>.json` (`cache.set_aside`), a
fresh one is started and the student is told where the old one went.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from filelock import FileLock

from alignlab import cache

VERSION = 1


def path() -> Path:
    return cache.home() / "quiz_progress.json"


def _empty() -> dict:
    return {"version": VERSION, "chapters": {}}


def _valid(data) -> bool:
    return (isinstance(data, dict) and data.get("version") == VERSION
            and isinstance(data.get("chapters"), dict)
            and all(isinstance(c, dict) and isinstance(c.get("questions"), dict)
                    for c in data["chapters"].values()))


def _set_aside(p: Path, why: str) -> str:
    aside = cache.set_aside(p)
    return (f"Your quiz progress file could not be read ({why}). It was kept as {aside.name} "
            f"in {aside.parent}, and a fresh progress file was started.")


def load(notices: list[str] | None = None) -> dict:
    """The saved progress; a corrupt file is set aside (message appended to `notices`)."""
    p = path()
    if not p.exists():
        return _empty()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        if not _valid(data):
            raise ValueError("unexpected contents")
        return data
    except (ValueError, UnicodeDecodeError) as e:
        message = _set_aside(p, type(e).__name__ if not str(e) else str(e)[:80])
        if notices is not None:
            notices.append(message)
        print(message)
        return _empty()


def _write(data: dict) -> None:
    path().parent.mkdir(parents=True, exist_ok=True)
    cache.write_atomic(path(), json.dumps(data, indent=1, ensure_ascii=False))


def record(chapter: str, qid: str, n_questions: int, answer, correct: bool,
           notices: list[str] | None = None) -> dict:
    """Append one attempt and update the chapter's score; returns the question's entry."""
    with FileLock(str(path()) + ".lock"):
        data = load(notices)
        ch = data["chapters"].setdefault(chapter, {"questions": {}})
        entry = ch["questions"].setdefault(qid, {"attempts": [], "correct": False})
        entry["attempts"].append({"answer": answer, "correct": correct, "time": time.time()})
        entry["correct"] = entry["correct"] or correct
        ch["total"] = n_questions
        ch["score"] = sum(q["correct"] for q in ch["questions"].values())
        _write(data)
        return entry


def chapter(chapter: str, notices: list[str] | None = None) -> dict:
    """Saved entries of one chapter's questions: {qid: {"attempts": [...], "correct": bool}}.
    A progress file that cannot be read or moved (permissions, a full disk) gives {} and a notice:
    the quiz still works, and `record` will refuse to overwrite that file."""
    try:
        return load(notices)["chapters"].get(chapter, {}).get("questions", {})
    except OSError as e:
        if notices is not None:
            notices.append(f"Your saved quiz progress could not be read ({e}); answers will be checked "
                           "but not saved until that is fixed.")
        return {}


def summary_rows(totals: dict[str, tuple[str, int]]) -> list[str]:
    """One line per chapter: `totals` maps chapter → (title, number of questions)."""
    saved = load()["chapters"]
    rows = [f"{'chapter':<8}{'title':<44}{'correct':>8}{'attempts':>10}"]
    for cid, (title, n) in sorted(totals.items()):
        qs = saved.get(cid, {}).get("questions", {})
        right = sum(q["correct"] for q in qs.values())
        tries = sum(len(q["attempts"]) for q in qs.values())
        rows.append(f"{cid:<8}{title[:42]:<44}{f'{right}/{n}':>8}{tries:>10}")
    return rows
