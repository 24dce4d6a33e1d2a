"""Authoring: readable question sources (YAML, for instructors) → encoded banks (JSON, shipped).

Sources live in the repository's `quizzes/` folder, one `NN_name.yaml` per chapter, in
jupyterquiz's schema plus `id`, `hint` and `explanation` (see quizzes/README.md). Build them:

    alignlab quiz build            # every source → alignlab/quiz/banks/NN.json
    alignlab quiz build --check    # exit 1 if a bank is out of step with its source

A rebuild keeps each bank's salt, so the same source always gives the same bytes and the
in-step check is a byte comparison.
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import yaml

from alignlab.quiz.bank import BANK_DIR, FORMAT, TYPES, QuizError, digest, encode, normalise
from alignlab.quiz.check import option_code
from alignlab.cache import write_atomic

SOURCE_DIR = Path(__file__).resolve().parents[2] / "quizzes"


def _validate(q: dict, where: str) -> None:
    for key in ("id", "type", "question", "answers"):
        if key not in q:
            raise QuizError(f"{where}: missing {key!r}")
    if q["type"] not in TYPES:
        raise QuizError(f"{where}: type {q['type']!r} is not one of {TYPES}")
    if not any(a.get("correct") for a in q["answers"]):
        raise QuizError(f"{where}: no answer is marked correct")
    if q["type"] == "multiple_choice" and sum(bool(a.get("correct")) for a in q["answers"]) != 1:
        raise QuizError(f"{where}: a multiple_choice question has exactly one correct answer")


def _encode_options(q: dict, salt: str, text_answers: bool) -> list[dict]:
    out = []
    for i, a in enumerate(q["answers"]):
        key = digest(salt, q["id"], "text", normalise(a["answer"])) if text_answers else a["answer"]
        option = {"answer": key, "code": option_code(salt, q["id"], key, bool(a.get("correct")))}
        if a.get("feedback"):
            option["feedback"] = encode(salt, f"{q['id']}/feedback/{i}", a["feedback"])
        out.append(option)
    return out


def encode_question(q: dict, salt: str) -> dict:
    """One readable question → its encoded form (question text and option texts stay plain)."""
    out = {"id": q["id"], "type": q["type"], "question": q["question"]}
    if q["type"] == "numeric":
        out["answers"] = encode(salt, f"{q['id']}/numeric", q["answers"])
    else:
        out["answers"] = _encode_options(q, salt, text_answers=q["type"] == "string")
    for key in ("hint", "explanation"):
        if q.get(key):
            out[key] = encode(salt, f"{q['id']}/{key}", q[key])
    return out


def build_bank(source: dict, salt: str) -> dict:
    """A parsed source file → the bank's JSON object."""
    ids = [q.get("id") for q in source["questions"]]
    if len(set(ids)) != len(ids):
        raise QuizError(f"chapter {source['chapter']}: question ids repeat: {ids}")
    for q in source["questions"]:
        _validate(q, f"chapter {source['chapter']}, question {q.get('id')!r}")
    return {
        "format": FORMAT,
        "chapter": source["chapter"],
        "name": source.get("name", ""),
        "title": source["title"],
        "note": "Answers and feedback are salted hashes or encoded: a speed bump, not security. "
                "Instructors edit the readable source in quizzes/ and rebuild.",
        "salt": salt,
        "questions": [encode_question(q, salt) for q in source["questions"]],
    }


def render(bank: dict) -> str:
    return json.dumps(bank, ensure_ascii=False, indent=1) + "\n"


def sources(source_dir: Path = SOURCE_DIR) -> dict[str, dict]:
    """Chapter id ('03') → its readable source, parsed: what the banks encode, for the tests that
    check the checkers (Python's and the website's) against it."""
    out = {}
    for path in sorted(source_dir.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        out[f"{int(data['chapter']):02d}"] = data
    return out


def build(source_path: Path, bank_dir: Path = BANK_DIR) -> tuple[Path, str]:
    """Encode one source; returns (bank path, text). Reuses the existing bank's salt."""
    source = yaml.safe_load(source_path.read_text(encoding="utf-8"))
    source["chapter"] = f"{int(source['chapter']):02d}"
    source.setdefault("name", source_path.stem.split("_", 1)[-1])  # 02_bradley_terry → bradley_terry
    path = bank_dir / f"{source['chapter']}.json"
    salt = json.loads(path.read_text())["salt"] if path.exists() else secrets.token_hex(8)
    return path, render(build_bank(source, salt))


def build_all(source_dir: Path = SOURCE_DIR, bank_dir: Path = BANK_DIR, check: bool = False) -> list[str]:
    """Build every source; with `check`, write nothing and return the banks out of step."""
    stale = []
    for src in sorted(source_dir.glob("*.yaml")):
        path, text = build(src, bank_dir)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(f"{src.name} → {path.name}")
        if not check:
            write_atomic(path, text)
    return stale


def _progress_bar(output) -> bool:
    """A progress bar's output: a widget view (tqdm in a notebook; its text fallback reads
    "0%| 0/600") or progress text on stderr."""
    if "application/vnd.jupyter.widget-view+json" in output.get("data", {}):
        return True
    return output.get("name") == "stderr" and any(m in output.get("text", "") for m in ("\r", "%|", "it/s]"))


def clear_quiz_outputs(path: Path) -> int:
    """Drop an executed notebook's quiz outputs, progress bars and saved widget state, in place;
    returns how many quiz cells were cleared. A committed notebook shows no stale quiz and no frozen
    "0%" bar (widget views do not survive without their kernel; a live run still shows them), and
    its file stays free of per-run widget ids."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    n = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and "alignlab.quiz import quiz" in cell.source and cell.outputs:
            cell.outputs, cell.execution_count, n = [], None, n + 1
        elif cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not _progress_bar(o)]
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return n
