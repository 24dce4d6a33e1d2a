"""Quiz progress: every attempt and each chapter's score, in one JSON file under ALIGNLAB_HOME.

Widget state dies with the notebook's kernel, so the kernel writes each attempt to
`$ALIGNLAB_HOME/quiz_progress.json` at once: atomically (`cache.write_atomic`) and under a file
lock (two notebooks may answer at the same moment).

The file is the student's work, so reading it is lenient and never changes it: `read` keeps every
entry of the expected shape and lists, in plain words, each one it had to leave out. Only a
writer (`record`, `recover`) deals with a damaged file: it sets the original aside as
`quiz_progress.corrupt-<time>-<random>.json` (`cache.set_aside`), writes the readable entries
back with the new attempt, and tells the student what was kept and what was not. `recover` merges
the readable entries of every set-aside copy back in; set-aside copies are never deleted. A file
written by a newer alignlab (`version` above `VERSION`) is neither read nor touched: the student
is asked to upgrade instead.

Schema (version 1):
    {"version": 1, "chapters": {"02": {"questions": {"bt-probability": {
        "attempts": [{"answer": 0.731, "correct": true, "time": 1700000000.0}, ...],
        "correct": true}}, "score": 1, "total": 9}}}
`score` is always recomputed from the entries; `total` is the chapter's number of questions.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from alignlab import cache
from alignlab.quiz.bank import QuizError

VERSION = 1
ASIDE_GLOB = "quiz_progress.corrupt-*.json"
"""Where `cache.set_aside` puts a damaged progress file: beside it, with this name."""
_SHOWN_ITEMS = 6  # list this many left-out items in a message, then "and N more"


class ProgressTooNew(QuizError):
    """The progress file was written by a newer alignlab: it is not read and never overwritten."""


@dataclass
class Reading:
    """What could be read from one progress file."""

    data: dict
    """Its well-formed entries, as a version-`VERSION` record (an empty one when none are)."""
    lost: list[str] = field(default_factory=list)
    """One plain description per entry (or part of the file) that was left out or repaired."""
    unreadable: str | None = None
    """Why nothing at all could be read (not JSON, not a record), or None."""
    newer: int | None = None
    """The file's version when it is newer than this alignlab reads; then `data` is empty."""

    @property
    def damaged(self) -> bool:
        """Whether writing must set the original aside first (it is not a clean record)."""
        return bool(self.lost) or self.unreadable is not None


def path() -> Path:
    return cache.home() / "quiz_progress.json"


def _empty() -> dict:
    return {"version": VERSION, "chapters": {}}


# --- reading: keep what has the right shape, say what does not ------------------------------


def _attempt_ok(a) -> bool:
    t = a.get("time") if isinstance(a, dict) else None
    return (isinstance(a, dict) and "answer" in a and isinstance(a.get("correct"), bool)
            and isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t))


def _question(raw, where: str, lost: list[str]) -> dict | None:
    """One question's entry, or None (and a line in `lost`) when none of it can be used."""
    if not isinstance(raw, dict):
        lost.append(f"{where} (not a record of attempts)")
        return None
    attempts = raw.get("attempts")
    if not isinstance(attempts, list):
        lost.append(f"{where} ({'no attempts' if attempts is None else 'its attempts are not a list'})")
        return None
    good = [a for a in attempts if _attempt_ok(a)]
    if len(good) < len(attempts):
        bad = len(attempts) - len(good)
        lost.append(f"{where}: {bad} of its {len(attempts)} attempts (each needs an answer, "
                    "a right/wrong mark and a time)")
    if attempts and not good:
        return None
    if not isinstance(raw.get("correct"), bool):
        lost.append(f"{where}: its right/wrong mark (worked out again from its attempts)")
    correct = raw.get("correct") is True or any(a["correct"] for a in good)
    return {"attempts": good, "correct": correct}


def score(questions: dict) -> int:
    """A chapter's score: its questions answered correctly at least once."""
    return sum(q["correct"] for q in questions.values())


def _chapter(raw, cid: str, lost: list[str]) -> dict | None:
    """One chapter's record with its readable questions, or None (and a line in `lost`)."""
    where = f"chapter {cid}"
    qs = raw.get("questions") if isinstance(raw, dict) else None
    if not isinstance(qs, dict):
        why = ("not a record of questions" if not isinstance(raw, dict) else
               "no questions" if qs is None else "its questions are not a record by question id")
        lost.append(f"{where} ({why})")
        return None
    questions = {}
    for qid, entry in qs.items():
        kept = _question(entry, f"{where} question {qid}", lost)
        if kept is not None:
            questions[qid] = kept
    out = {"questions": questions, "score": score(questions)}
    for key in ("total", "score"):
        value = raw.get(key)
        if value is not None and not (type(value) is int and value >= 0):
            lost.append(f"{where}: its {key} ({json.dumps(value)[:20]}, not a whole number)")
        elif key == "total" and value is not None:
            out["total"] = value
    return out


def parse(text: str) -> Reading:
    """Read a progress file's text: every well-formed entry is kept, and each one that is not
    is described in `Reading.lost`."""
    try:
        data = json.loads(text)
    except ValueError as e:
        return Reading(_empty(), unreadable=f"it is not valid JSON: {str(e)[:60]}")
    if not isinstance(data, dict):
        return Reading(_empty(), unreadable=f"it holds a JSON {type(data).__name__}, not a progress record")
    version, lost = data.get("version"), []
    if type(version) is int and version > VERSION:
        return Reading(_empty(), newer=version)
    if not (type(version) is int and version == VERSION):
        shown = "missing" if version is None else json.dumps(version)[:20]
        lost.append(f"its version number ({shown}; expected {VERSION})")
    chapters = data.get("chapters")
    if not isinstance(chapters, dict):
        lost.append("its chapters (" + ("missing" if chapters is None else
                                        f"a JSON {type(chapters).__name__}, not a record by chapter") + ")")
        chapters = {}
    out = _empty()
    for cid, raw in chapters.items():
        kept = _chapter(raw, cid, lost)
        if kept is not None:
            out["chapters"][cid] = kept
    return Reading(out, lost)


def read(p: Path | None = None) -> Reading:
    """Read the progress file `p` (default: the live one) without changing it. A missing file
    reads as empty; an OSError (permissions, a folder in its place) propagates."""
    p = path() if p is None else Path(p)
    if not p.exists():
        return Reading(_empty())
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return Reading(_empty(), unreadable="it is not text")
    return parse(text)


def count(data: dict) -> int:
    """How many question entries a progress record holds."""
    return sum(len(ch["questions"]) for ch in data["chapters"].values())


# --- telling the student --------------------------------------------------------------------


def too_new_message(version: int, p: Path | None = None) -> str:
    return (f"Your quiz progress ({cache.shown(p or path())}) was saved by a newer version of alignlab "
            f"(progress format {version}; this one reads format {VERSION}). It is left exactly as it "
            "is and new answers are checked but not saved. Upgrade alignlab to see and save them: "
            "`pip install -U alignlab`, or in a clone of the repository `git pull` and then "
            "reinstall (`pip install -e .`).")


def _items(lost: list[str]) -> str:
    shown = "; ".join(lost[:_SHOWN_ITEMS])
    return shown + (f"; and {len(lost) - _SHOWN_ITEMS} more" if len(lost) > _SHOWN_ITEMS else "")


def _head(reading: Reading, p: Path, written: bool) -> str:
    """The first sentences of `describe`: what could not be read, and what was kept."""
    if reading.unreadable:
        return f"Your quiz progress file ({cache.shown(p)}) could not be read ({reading.unreadable})."
    n, kept = len(reading.lost), count(reading.data)
    were = ("were" if n > 1 else "was") if written else ("are" if n > 1 else "is")
    rest = (f"Everything else ({kept} saved answer{'s' if kept != 1 else ''}) "
            f"{'was kept' if written else 'is shown'}." if kept else "Nothing else was saved in it.")
    return (f"{n} part{'s' if n > 1 else ''} of your saved quiz progress ({cache.shown(p)}) could not "
            f"be read and {were} left out: {_items(reading.lost)}. {rest}")


def describe(reading: Reading, p: Path | None = None, aside: Path | None = None) -> str | None:
    """What to tell the student about a damaged or newer file `p`; None when it is clean.
    `aside` is where a writer moved the original (None: the file was only read)."""
    p = path() if p is None else p
    if reading.newer is not None:
        return too_new_message(reading.newer, p)
    if not reading.damaged:
        return None
    head = _head(reading, p, written=aside is not None)
    if aside is None:
        return (f"{head} The file is left as it is; the next answer you check keeps it as a "
                "`quiz_progress.corrupt-….json` copy beside it and saves what could be read.")
    kept = f"{head} The original file was kept as {aside.name} in {cache.shown(aside.parent)}."
    if reading.unreadable:
        return (f"{kept} A fresh progress file was started; if you repair that copy by hand, "
                "`alignlab quiz progress --recover` merges it back into your progress.")
    return (f"{kept} `alignlab quiz progress --recover` merges what can be read from it back into "
            "your progress (repair it by hand first to get back the rest).")


def _tell(message: str | None, notices: list[str] | None) -> None:
    if message is None:
        return
    if notices is None:
        print(message)
    else:
        notices.append(message)


# --- writing --------------------------------------------------------------------------------


def _write(data: dict) -> None:
    path().parent.mkdir(parents=True, exist_ok=True)
    cache.write_atomic(path(), json.dumps(data, indent=1, ensure_ascii=False))


def _lock() -> FileLock:
    path().parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path()) + ".lock")


def _for_writing(notices: list[str] | None) -> dict:
    """The live progress, to be changed and written back (call under the lock). A newer file
    raises `ProgressTooNew`; a damaged one is set aside first, and the student told."""
    reading = read()
    if reading.newer is not None:
        raise ProgressTooNew(too_new_message(reading.newer))
    if reading.damaged:
        aside = cache.set_aside(path())
        _tell(describe(reading, path(), aside), notices)
    return reading.data


def record(chapter: str, qid: str, n_questions: int, answer, correct: bool,
           notices: list[str] | None = None) -> dict:
    """Append one attempt and update the chapter's score; returns the question's entry.
    Messages about a damaged file go to `notices` (printed when None); a newer file raises
    `ProgressTooNew` and is left untouched."""
    with _lock():
        data = _for_writing(notices)
        ch = data["chapters"].setdefault(chapter, {"questions": {}})
        entry = ch["questions"].setdefault(qid, {"attempts": [], "correct": False})
        entry["attempts"].append({"answer": answer, "correct": correct, "time": time.time()})
        entry["correct"] = entry["correct"] or correct
        ch["total"] = n_questions
        ch["score"] = score(ch["questions"])
        _write(data)
        return entry


def _attempt_key(a: dict) -> tuple[str, float]:
    return json.dumps(a["answer"], sort_keys=True), a["time"]


def _merge_entry(mine: dict, theirs: dict) -> bool:
    """Add `theirs`' attempts that `mine` lacks (same answer and time = the same attempt);
    returns whether `mine` changed."""
    seen, new = {_attempt_key(a) for a in mine["attempts"]}, []
    for a in theirs["attempts"]:
        if _attempt_key(a) not in seen:
            seen.add(_attempt_key(a))
            new.append(a)
    changed = bool(new) or (theirs["correct"] and not mine["correct"])
    mine["attempts"] = sorted(mine["attempts"] + new, key=lambda a: a["time"])
    mine["correct"] = mine["correct"] or theirs["correct"]
    return changed


def merge(into: dict, other: dict) -> int:
    """Merge progress record `other` into `into` (both as `parse` returns them): attempts are
    pooled per question, a question is right if either says so, scores are recomputed. Returns
    how many question entries of `into` gained something."""
    gained = 0
    for cid, ch in other["chapters"].items():
        mine = into["chapters"].setdefault(cid, {"questions": {}})
        if "total" in ch:
            mine.setdefault("total", ch["total"])
        for qid, entry in ch["questions"].items():
            gained += _merge_entry(mine["questions"].setdefault(qid, {"attempts": [], "correct": False}), entry)
        mine["score"] = score(mine["questions"])
    return gained


def _recover_one(data: dict, aside: Path) -> str:
    """Merge one set-aside file into `data`; one line saying what came of it."""
    try:
        reading = read(aside)
    except OSError as e:
        return f"{aside.name}: could not be opened ({e})."
    if reading.newer is not None:
        return f"{aside.name}: saved by a newer alignlab (format {reading.newer}); upgrade alignlab to recover it."
    if reading.unreadable:
        return f"{aside.name}: nothing could be read ({reading.unreadable}); repair it by hand and run this again."
    n, there = merge(data, reading.data), count(reading.data)
    line = f"{aside.name}: {n} saved answer{'s' if n != 1 else ''} recovered"
    line += f" ({there - n} already in your progress)" if there - n else ""
    return line + (f"; {len(reading.lost)} part(s) of it could not be read." if reading.lost else ".")


def recover(notices: list[str] | None = None) -> list[str]:
    """Merge the readable entries of every set-aside progress file (`ASIDE_GLOB`, beside the live
    one) back into the live file; returns one line per file. The set-aside files stay where they
    are. A newer live file raises `ProgressTooNew`."""
    asides = sorted(path().parent.glob(ASIDE_GLOB))
    if not asides:
        return [f"No set-aside progress files to recover from in {cache.shown(path().parent)}."]
    with _lock():
        data = _for_writing(notices)
        asides = sorted(path().parent.glob(ASIDE_GLOB))  # the live file may just have joined them
        lines = [_recover_one(data, aside) for aside in asides]
        _write(data)
    return lines


# --- what the quiz and `progress()` show ------------------------------------------------------


def chapter(chapter: str, notices: list[str] | None = None) -> dict:
    """Saved entries of one chapter's questions: {qid: {"attempts": [...], "correct": bool}}.
    Read-only: a damaged file gives its readable entries and a notice; a newer one, or one that
    cannot be opened (permissions), gives {} and a notice. The quiz still works either way."""
    try:
        reading = read()
    except OSError as e:
        if notices is not None:
            notices.append(f"Your saved quiz progress could not be read ({e}); answers will be "
                           "checked but not saved until that is fixed.")
        return {}
    if notices is not None:
        _tell(describe(reading), notices)
    return reading.data["chapters"].get(chapter, {}).get("questions", {})


def summary_rows(totals: dict[str, tuple[str, int]], data: dict | None = None) -> list[str]:
    """One line per chapter: `totals` maps chapter → (title, number of questions); `data` is a
    progress record (default: what `read` keeps of the live file)."""
    saved = (read().data if data is None else data)["chapters"]
    rows = [f"{'chapter':<8}{'title':<44}{'correct':>8}{'attempts':>10}"]
    for cid, (title, n) in sorted(totals.items()):
        qs = saved.get(cid, {}).get("questions", {})
        tries = sum(len(q["attempts"]) for q in qs.values())
        rows.append(f"{cid:<8}{title[:42]:<44}{f'{score(qs)}/{n}':>8}{tries:>10}")
    return rows
