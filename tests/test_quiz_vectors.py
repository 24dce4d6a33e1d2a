"""One set of answers, two checkers: the notebook's (alignlab.quiz.check) and the static site's
(site/quiz.js) must give every answer the same verdict, feedback and error message.

tests/quiz_vectors.json lists answers a student might give to every question of every bank — each
option, each accepted text and its mangled forms, numbers as 73% / 3/4 / just inside and just
outside a tolerance, many-choice partial picks, unreadable input — with the verdict. `generate()`
below writes it: whether an answer is right comes from the readable sources (quizzes/*.yaml), never
from the checker under test; feedback and error texts are Python's, which the JS must copy. After
editing a quiz source, rewrite the file with

    .venv/bin/python tests/test_quiz_vectors.py

(`test_vectors_are_up_to_date` fails until then). `node site/check_vectors.mjs` runs the same file
through quiz.js; without node the JS half is skipped, except on CI (CI=true), where it fails.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from alignlab.quiz import QuizError, author, check, load_bank
from alignlab.quiz.bank import chapters

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "quiz_vectors.json"
NOT_A_NUMBER = "{!r} is not a number. Type a number such as 0.73 (fractions like 3/4 work too)."
NOT_FINITE = "{!r} is not a finite number."
COMMA = "{!r}: type numbers without commas, with a dot for decimals (e.g. 0.73)."
NOT_AN_OPTION = "{!r} is not one of this question's options."

# Numeric forms, tried on chapter 02's bt-probability (right: 0.7311 ± 0.002): (answer, correct, error).
NUMBER_FORMS = [
    ("73.11%", True, None), ("73.11 %", True, None), ("73.11%%", True, None), (" 0.7311 ", True, None),
    ("\u00a00.7311\t", True, None), ("7.311e-1", True, None), ("7311E-4", True, None), ("0.73_11", True, None),
    ("+.7311", True, None), ("\u0660.\u0667\u0663\u0661\u0661", True, None), ("\uff10.\uff17\uff13", True, None),
    ("3/4", False, None), ("3 / 4", False, None), ("-3/4", False, None), ("3/4%", False, None), ("\u22120.7311", False, None),
    ("", False, "Type a number first."), ("   ", False, "Type a number first."),
    ("0,7311", False, COMMA.format("0,7311")), ("1,000", False, COMMA.format("1,000")),
    ("1/0", False, NOT_A_NUMBER.format("1/0")), ("0x1", False, NOT_A_NUMBER.format("0x1")),
    ("about 0.73", False, NOT_A_NUMBER.format("about 0.73")), ("it's 0.73", False, NOT_A_NUMBER.format("it's 0.73")),
    ("0.7\n3", False, NOT_A_NUMBER.format("0.7\n3")), ("3/4/5", False, NOT_A_NUMBER.format("3/4/5")),
    ("1__0", False, NOT_A_NUMBER.format("1__0")), ("inf", False, NOT_FINITE.format("inf")),
    ("-Infinity", False, NOT_FINITE.format("-Infinity")), ("nan", False, NOT_FINITE.format("nan")),
    ("1e400", False, NOT_FINITE.format("1e400")), (True, False, "Type a number, not True/False."),
    ("0.73\x7f", False, NOT_A_NUMBER.format("0.73\x7f")), ("0.73\u200b", False, NOT_A_NUMBER.format("0.73\u200b")),
]
# |x − value| lands exactly on tolerance + 1e-12, the checker's allowance for float error: still a match
# (the source's exact arithmetic would say 1e-12 outside). Catches `<` for `<=` in either checker.
TOLERANCE_EDGES = [("04", "seed-spread", "0.017400000001", True), ("01", "ce-entropy", "0.001000000001", False)]
# Short-text normalisation, tried on chapter 02's cycle-name and chapter 01's prompt-mask.
TEXT_FORMS = [
    ("02", "cycle-name", ["CONDORCET'S PARADOX.", "  condorcet   cycle ", "Condorcet-cycle", "condorcet_cycle",
                          "Condorcet\u2019s paradox", "\uff23\uff4f\uff4e\uff44\uff4f\uff52\uff43\uff45\uff54 cycle",
                          "\u00abCondorcet\u00bb, cycle!", "PARADOX OF VOTING?"], True),
    ("02", "cycle-name", ["INTRANSITIVITY", "Intransitivity."], True),
    ("02", "cycle-name", ["Arrow\u2019s Theorem", "arrows theorem", "Condorcet's cycle's cycle", "Condorcetcycle",
                          "\u0131ntransitivity"], False),
    ("01", "prompt-mask", ["lo\u00df mask", "LO\u1e9e MASK", "\u2212100", " -100. ", "Loss-Masking"], True),
    ("01", "prompt-mask", ["100", "- 100", "attention_mask"], False),
    ("04", "gradient-weight", ["0.0", "ZERO!", "close-to-0"], True),
    ("04", "gradient-weight", ["0.5", "0.50", "1.0"], False),
]


@functools.cache
def sources() -> dict[str, dict]:
    """Chapter id ('03') → its parsed readable source (cached: many tests read it)."""
    return author.sources()


def source_question(chapter: str, qid: str) -> dict:
    return next(q for q in sources()[chapter]["questions"] if q["id"] == qid)


def number_text(x: Decimal) -> str:
    return format(x.normalize(), "f")


def rule_correct(q: dict, x: Decimal) -> bool:
    """The source's verdict on a number: the first rule it falls in decides (quizzes/README.md)."""
    for rule in q["answers"]:
        if "range" in rule:
            lo, hi = (Decimal(str(v)) for v in rule["range"])
            hit = lo <= x <= hi
        else:
            hit = abs(x - Decimal(str(rule["value"]))) <= Decimal(str(rule.get("tolerance", 0)))
        if hit:
            return bool(rule.get("correct"))
    return False


def numeric_answers(q: dict) -> list[tuple[str, bool]]:
    """Each rule's value; for right ones also a percentage, a fraction, the tolerance's edge (right),
    just inside (right) and 1.5 tolerances out (wrong, near) — or one off for an exact answer."""
    out, values = [], []
    for rule in q["answers"]:
        if "range" in rule:
            lo, hi = (Decimal(str(v)) for v in rule["range"])
            out.append(number_text((lo + hi) / 2))
            continue
        v, tol = Decimal(str(rule["value"])), Decimal(str(rule.get("tolerance", 0)))
        values.append(v)
        out.append(number_text(v))
        if not rule.get("correct"):
            continue
        out.append(number_text(v * 100) + "%")
        frac = Fraction(str(v)).limit_denominator(1000) if tol else Fraction(str(v)) * 3 / 3
        n, d = (frac.numerator * 3, frac.denominator * 3) if frac.denominator == 1 else (frac.numerator, frac.denominator)
        if abs(Decimal(n) / Decimal(d) - v) <= tol:
            out.append(f"{n}/{d}")
        if tol:
            out += [number_text(v + tol), number_text(v - tol * Decimal("0.9")), number_text(v + tol * Decimal("1.5"))]
        else:
            out.append(number_text(v + 1))
    out.append(number_text(max(values, default=Decimal(0)) * 10 + 100))  # far from everything
    return [(a, rule_correct(q, Decimal(a.rstrip("%")) / (100 if a.endswith("%") else 1)
                            if "/" not in a else Decimal(int(a.split("/")[0])) / Decimal(int(a.split("/")[1]))))
            for a in out]


def choice_answers(q: dict, first: bool) -> list[tuple[object, bool | None, str | None]]:
    texts = [a["answer"] for a in q["answers"]]
    right = [a["answer"] for a in q["answers"] if a.get("correct")]
    wrong = [t for t in texts if t not in right]
    if q["type"] == "multiple_choice":
        out = [(t, t in right, None) for t in texts]
        if first:
            out += [("", None, "Choose an option first."), ("None of these", None, NOT_AN_OPTION.format("None of these")),
                    (0, texts[0] in right, None), (True, None, "Choose one of the options (not True/False).")]
        return out
    out = [(right, True, None), (list(reversed(right)) + right[:1], True, None)]
    out += [([t], right == [t], None) for t in texts]
    if len(right) > 1:
        out.append((right[:-1], False, None))  # partial: one correct option missed
    if wrong:
        out += [(right + wrong[:1], False, None), (texts, False, None)]
    out += [([], None, "Select at least one option."), ("", None, "Select at least one option."),
            (right[:1] + ["All of the above"], None, NOT_AN_OPTION.format("All of the above"))]
    return out


def string_answers(q: dict) -> list[tuple[str, bool | None, str | None]]:
    out = [(a["answer"], bool(a.get("correct")), None) for a in q["answers"]]
    first = next(a["answer"] for a in q["answers"] if a.get("correct"))
    out += [(first.upper(), True, None), (f"  {first.title()}! ", True, None), ("banana", False, None),
            ("", None, "Type an answer first."), ("  ?! ", None, "Type an answer first.")]
    return out


def cases(chapter: str):
    """(qid, answer, correct, error) for every question of one chapter, from its source."""
    first_choice = True
    for q in sources()[chapter]["questions"]:
        if q["type"] == "numeric":
            yield from ((q["id"], a, ok, None) for a, ok in numeric_answers(q))
            yield from [(q["id"], "", None, "Type a number first."),
                        (q["id"], "a half", None, NOT_A_NUMBER.format("a half"))]
        elif q["type"] == "string":
            yield from ((q["id"], a, ok, err) for a, ok, err in string_answers(q))
        else:
            yield from ((q["id"], a, ok, err) for a, ok, err in choice_answers(q, first_choice and q["type"] == "multiple_choice"))
            first_choice = first_choice and q["type"] != "multiple_choice"
    if chapter == "02":
        yield from (("bt-probability", a, ok, err) for a, ok, err in NUMBER_FORMS)
    yield from ((qid, a, ok, None) for c, qid, a, ok in TOLERANCE_EDGES if c == chapter)
    for c, qid, answers, ok in TEXT_FORMS:
        if c == chapter:
            yield from ((qid, a, ok, None) for a in answers)
    if chapter == "09":
        ids = ", ".join(q["id"] for q in sources()["09"]["questions"])
        yield "no-such-question", "0.5", None, f"Chapter 09 has no question 'no-such-question'. Its questions are: {ids}."


def generate() -> list[dict]:
    """Every vector, with Python's feedback; fails if Python's verdict disagrees with the source."""
    vectors = []
    for chapter in chapters():
        bank = load_bank(chapter)
        for qid, answer, correct, error in cases(chapter):
            try:
                verdict = check(bank, qid, answer)
                got = {"correct": verdict.correct, "error": None, "feedback": verdict.feedback}
            except QuizError as e:
                got = {"correct": False, "error": str(e), "feedback": None}
            vector = {"chapter": chapter, "id": qid, "answer": answer, "correct": bool(correct), "error": error}
            if error is None:
                vector["feedback"] = got["feedback"]
            assert (got["correct"], got["error"]) == (vector["correct"], error), (
                f"{chapter}/{qid} {answer!r}: the source says {(vector['correct'], error)}, the checker {got}")
            vectors.append(vector)
    return vectors


def render(vectors: list[dict]) -> str:
    """One vector a line; invisible characters (NBSP, zero-width space, DEL) written as \\uXXXX."""
    text = "[\n" + ",\n".join(json.dumps(v, ensure_ascii=False) for v in vectors) + "\n]\n"
    return re.sub(r"[^\S\n ]|[\x7f-\x9f\u200b-\u200f\u2060\ufeff]", lambda m: f"\\u{ord(m[0]):04x}", text)


def load() -> list[dict]:
    return json.loads(VECTORS.read_text(encoding="utf-8"))


def test_vectors_are_up_to_date():
    assert VECTORS.read_text(encoding="utf-8") == render(generate()), \
        "tests/quiz_vectors.json is stale: run .venv/bin/python tests/test_quiz_vectors.py"


@pytest.mark.parametrize("chapter", chapters())
def test_python_checker_gives_each_vectors_verdict(chapter):
    bank = load_bank(chapter)
    for v in (v for v in load() if v["chapter"] == chapter):
        if v["error"] is not None:
            with pytest.raises(QuizError) as caught:
                check(bank, v["id"], v["answer"])
            assert str(caught.value) == v["error"], v
        else:
            verdict = check(bank, v["id"], v["answer"])
            assert (verdict.correct, verdict.feedback) == (v["correct"], v["feedback"]), v


def test_javascript_checker_agrees():
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is not on PATH: the site's quiz checker (site/quiz.js) went untested")
        pytest.skip("node is not on PATH: site/quiz.js is not checked here (CI runs it)")
    run = subprocess.run([node, str(ROOT / "site" / "check_vectors.mjs")], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert run.stdout.strip(), run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report == {"vectors": len(load()), "failed": []}, json.dumps(report["failed"][:5], ensure_ascii=False, indent=1)
    assert run.returncode == 0, run.stderr


def test_every_question_has_a_right_and_a_wrong_vector():
    seen = {(v["chapter"], v["id"], v["correct"]) for v in load() if v["error"] is None}
    for chapter in chapters():
        for q in load_bank(chapter).questions:
            assert (chapter, q["id"], True) in seen, f"{chapter}/{q['id']}: no right answer among the vectors"
            assert (chapter, q["id"], False) in seen, f"{chapter}/{q['id']}: no wrong answer among the vectors"


def secrets_of(q: dict) -> list[str]:
    """What the site must only learn from a bank at check time: right options' texts, every
    feedback, the hint and the explanation. Texts under 12 characters ("PPO", "0", "mask") are
    left out: they occur in any code by chance."""
    texts = [a["answer"] for a in q["answers"] if a.get("correct") and "answer" in a]
    texts += [a["feedback"] for a in q["answers"] if a.get("feedback")]
    texts += [q[k] for k in ("hint", "explanation") if q.get(k)]
    return [t for t in texts if len(t) >= 12]


@pytest.mark.parametrize("name", ["quiz.js", "quiz.css"])
def test_site_code_contains_no_answers(name):
    code = (ROOT / "site" / name).read_text(encoding="utf-8").casefold()
    leaks = [(c, q["id"], t) for c, src in sources().items() for q in src["questions"]
             for t in secrets_of(q) if t.casefold() in code]
    assert not leaks, f"site/{name} contains answer text: {leaks[:3]}"


if __name__ == "__main__":
    VECTORS.write_text(render(generate()), encoding="utf-8")
    print(f"wrote {len(load())} vectors to {VECTORS.relative_to(ROOT)}")
