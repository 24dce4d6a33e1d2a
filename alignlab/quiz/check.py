"""Checking one answer against an encoded question: pure functions, no widgets.

`check(bank, qid, answer)` takes what a student gave — an option text (or its index) for a
single choice, a list of option texts for "select all that apply", a number or the text of a
number for numeric questions, any text for short-text ones — and returns a `Verdict`. An
answer the quiz cannot read (nothing chosen, text in a numeric box, an unknown option) raises
`QuizError` with a message for the student, never a bare traceback.
A wrong number near a right one is told it is close, and how close, never the answer
(`near_miss`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

from alignlab.quiz.bank import Bank, QuizError, decode, digest, normalise


@dataclass
class Verdict:
    """The outcome of one check."""

    correct: bool
    feedback: list[str] = field(default_factory=list)
    """Per-option (or per-value) feedback that applies to this answer."""
    answer: object = None
    """The answer as recorded in the progress file (JSON-able)."""


def option_code(salt: str, qid: str, key: str, correct: bool) -> str:
    """The salted code stored for one option: it says whether the option is right only to
    someone who recomputes it for both truth values."""
    return digest(salt, qid, "option", key, "1" if correct else "0")


def _is_correct(bank: Bank, q: dict, key: str, code: str) -> bool:
    return code == option_code(bank.salt, q["id"], key, True)


def _feedback(bank: Bank, q: dict, i: int, option: dict) -> list[str]:
    blob = option.get("feedback")
    return [] if blob is None else [decode(bank.salt, f"{q['id']}/feedback/{i}", blob)]


def _option_index(q: dict, choice) -> int:
    texts = [a["answer"] for a in q["answers"]]
    if isinstance(choice, bool):
        raise QuizError("Choose one of the options (not True/False).")
    if isinstance(choice, int) and 0 <= choice < len(texts):
        return choice
    if isinstance(choice, str) and choice in texts:
        return texts.index(choice)
    raise QuizError(f"{choice!r} is not one of this question's options.")


def _check_single(bank: Bank, q: dict, answer) -> Verdict:
    if answer is None or answer == "":
        raise QuizError("Choose an option first.")
    i = _option_index(q, answer)
    option = q["answers"][i]
    ok = _is_correct(bank, q, option["answer"], option["code"])
    return Verdict(ok, _feedback(bank, q, i, option), option["answer"])


def _check_many(bank: Bank, q: dict, answer) -> Verdict:
    if answer is None or isinstance(answer, (str, int)):
        answer = [] if answer in (None, "") else [answer]
    chosen = sorted({_option_index(q, a) for a in answer})
    if not chosen:
        raise QuizError("Select at least one option.")
    truth = [_is_correct(bank, q, a["answer"], a["code"]) for a in q["answers"]]
    ok = all(truth[i] == (i in chosen) for i in range(len(truth)))
    feedback = [f for i in chosen for f in _feedback(bank, q, i, q["answers"][i])]
    missed = sum(t and i not in chosen for i, t in enumerate(truth))
    if not ok and missed:
        feedback.append(f"{missed} correct option{'s' if missed > 1 else ''} not selected.")
    return Verdict(ok, feedback, [q["answers"][i]["answer"] for i in chosen])


def parse_number(text) -> float:
    """A number from what a student typed: '0.73', '7.3e-1', '3/4', '73%' (→ 0.73), ' 15 '. A comma
    is refused with a message: '0,73' (a decimal comma) and '1,000' (a thousands separator) would
    otherwise be read differently by different students."""
    if isinstance(text, bool):
        raise QuizError("Type a number, not True/False.")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = str(text).strip().replace("−", "-")
        if not s:
            raise QuizError("Type a number first.")
        if "," in s:  # 0,73 or 1,000? Ask rather than guess.
            raise QuizError(f"{text!r}: type numbers without commas, with a dot for decimals (e.g. 0.73).")
        percent = s.endswith("%")
        try:
            # "3 / 4": the pattern allows the spaces; Fraction() on Python 3.11 does not (3.12 does)
            value = float(Fraction(re.sub(r"\s+", "", s.rstrip("%")))) if re.fullmatch(r"[-+]?\d+\s*/\s*\d+%?", s) \
                else float(s.rstrip("%"))
        except (ValueError, ZeroDivisionError):
            raise QuizError(f"{text!r} is not a number. Type a number such as 0.73 "
                            "(fractions like 3/4 work too).") from None
        value = value / 100 if percent else value
    if not math.isfinite(value):
        raise QuizError(f"{text!r} is not a finite number.")
    return value


def _matches(rule: dict, x: float) -> bool:
    if "range" in rule:
        lo, hi = rule["range"]
        return lo <= x <= hi
    if "value" in rule:
        return abs(x - rule["value"]) <= rule.get("tolerance", 0.0) + 1e-12
    return rule.get("type") == "default"


NEAR_TOLERANCES = 5
"""A wrong number within this many tolerances of a right `value` is called close."""
NEAR_RELATIVE = 0.1
"""For a right `value` with no tolerance (it must be exact): close means within 10% of its size."""


def near_band(rule: dict) -> float:
    """How far from a right `value` rule's value a wrong answer still counts as close:
    `NEAR_TOLERANCES` × its tolerance, or `NEAR_RELATIVE` × |value| when the tolerance is 0 (an
    exact answer, e.g. a count: 14 for 15 is close). A value of 0 with no tolerance has no band."""
    tol = rule.get("tolerance", 0.0)
    return NEAR_TOLERANCES * tol if tol > 0 else NEAR_RELATIVE * abs(rule["value"])


def near_miss(rules: list[dict], x: float) -> str | None:
    """A word for a wrong answer `x` that lies near a right answer, without giving the answer:
    "Close — within 0.05 of the answer, outside its tolerance of 0.01." Only `value` rules count
    (a right `range` already says how wide it is); None when `x` is near none."""
    for rule in rules:
        if not (rule.get("correct") and "value" in rule):
            continue
        band, tol = near_band(rule), rule.get("tolerance", 0.0)
        if abs(x - rule["value"]) <= band + 1e-12:
            outside = f"outside its tolerance of {tol:g}" if tol > 0 else "but it must be exact"
            return f"Close — within {round(band, 12):g} of the answer, {outside}."
    return None


def _check_numeric(bank: Bank, q: dict, answer) -> Verdict:
    x = parse_number(answer)
    rules = decode(bank.salt, f"{q['id']}/numeric", q["answers"])
    rule = next((r for r in rules if _matches(r, x)), {})
    verdict = Verdict(bool(rule.get("correct", False)), [rule["feedback"]] if rule.get("feedback") else [], x)
    if not verdict.correct and not verdict.feedback:  # an author's own feedback says more
        verdict.feedback = [m for m in [near_miss(rules, x)] if m]
    return verdict


def _check_string(bank: Bank, q: dict, answer) -> Verdict:
    if not isinstance(answer, str) or not normalise(answer):
        raise QuizError("Type an answer first.")
    h = digest(bank.salt, q["id"], "text", normalise(answer))
    for i, option in enumerate(q["answers"]):
        if option["answer"] == h:
            return Verdict(_is_correct(bank, q, h, option["code"]), _feedback(bank, q, i, option), answer)
    return Verdict(False, [], answer)


_CHECKS = {"multiple_choice": _check_single, "many_choice": _check_many,
           "numeric": _check_numeric, "string": _check_string}


def check(bank: Bank, qid: str, answer) -> Verdict:
    """Check `answer` to question `qid` of `bank`; `QuizError` if it cannot be read."""
    q = bank.question(qid)
    return _CHECKS[q["type"]](bank, q, answer)
