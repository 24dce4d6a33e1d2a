"""Verifiable rewards: a program, not a learned model, checks the response (chapter 7).

Where the right answer is known, the reward can be computed instead of learned. DeepSeek-R1
(DeepSeek-AI, 2025) trained its reasoning with two rule-based rewards — is the final answer right,
and is the response in the required format — and no neural reward model, which it found open to
reward hacking at scale; Tülu 3 (Lambert et al., 2024) named the recipe RL with verifiable rewards
(RLVR). Here the arithmetic and multistep families know their answers (`prm.truth`):

    What is 23 + 8 - 5 + 9?   Step: 23 + 8 = 31. Step: 31 - 5 = 26. Step: 26 + 9 = 35. Answer: 35.

What can be verified: the final answer (`exact_match`, `numeric_match`) and the shape of the
response (`format_reward`). What cannot, by these checks: whether the steps that lead there are
right (an unfaithful solution, a wrong step but the right answer, scores 1 — chapter 6's process
reward is for that), and anything without a known answer: helpfulness, honesty, politeness.

A verifier is a parser plus a comparison, and the policy optimises against the parser: a loose one
(`sloppy_verifier`) pays for responses that merely contain the answer somewhere, and RL finds them
(`fools`); a checker that passes what it cannot parse (`lenient_verifier`) pays unreadable answers
more than honest ones. Every function here is pure and cheap: (prompt, response) → float.
"""
from __future__ import annotations

import re
from typing import Callable

from .world.common import ANSWER, STEP

Verifier = Callable[[str, str], float]

_LAST_ANSWER = re.compile(ANSWER.pattern + r"\s*\Z")
"""`Answer: n.` followed by nothing but whitespace: the strict answer line (n: -?digits)."""
_LAST_NUMBER = re.compile(r"Answer:\s*([+-]?\d+(?:\.\d+)?)\s*\.?\s*\Z")
"""The lenient answer line: spaces anywhere, a sign, leading zeros, decimals, the '.' optional."""
_WELL_FORMED = re.compile(rf"\s*(?:{STEP.pattern}\s*)*{ANSWER.pattern}\s*")
"""Zero or more `Step: x op y = z.` then one `Answer: n.`, whitespace between, nothing else."""
_DIGITS = re.compile(r"\d+")


def truth(prompt: str) -> int:
    """`prm.truth`: the answer of an arithmetic or multistep prompt, ValueError for any other family.
    Imported on first use, so importing the verifiers loads neither torch nor transformers."""
    from .prm import truth as prm_truth
    return prm_truth(prompt)


def final_number(response: str) -> int | None:
    """The integer of the last well-formed `Answer: n.` anywhere in the response, None if there is
    none. A lenient reader (what follows the answer is ignored); the verifiers below are stricter."""
    answers = ANSWER.findall(response)
    return int(answers[-1]) if answers else None


def _answer_line(response: str, pattern: re.Pattern) -> str | None:
    """The number of the one `Answer:` of the response, when its answer line matches `pattern` and
    ends the response; None otherwise (no answer, two answers, or text after the answer)."""
    if response.count("Answer:") != 1:
        return None
    m = pattern.search(response)
    return m[1] if m else None


def exact_match(prompt: str, response: str) -> float:
    """1.0 if the response ends (up to whitespace) with its one answer line `Answer: n.` and n,
    written as Python writes the integer (no '+', no leading zeros), is the prompt's answer.

    Strict: text after the answer line, a second `Answer:` (hedging between two guesses) or a
    malformed line (`Answer: 35`, `Answer:35.`) all score 0. Text before the answer — steps, filler —
    is not checked: that is `format_reward`'s job. Raises ValueError for a prompt of a family
    without a known answer (`prm.truth`)."""
    want = truth(prompt)
    return float(_answer_line(response, _LAST_ANSWER) == str(want))


def numeric_match(prompt: str, response: str, tol: float = 0) -> float:
    """Like `exact_match` — one `Answer:`, the last thing in the response — but the number is read
    as a number and compared within `tol`: `Answer: +35.`, `Answer: 035.`, `Answer: 35.0.`,
    `Answer:  35` (spaces, no period) all match 35. Differs from exact_match only in how the number
    is written, never in which number counts."""
    want = truth(prompt)
    got = _answer_line(response, _LAST_NUMBER)
    return float(got is not None and abs(float(got) - want) <= tol)


def format_reward(response: str) -> float:
    """1.0 if the response is zero or more well-formed `Step: x op y = z.` followed by one
    `Answer: n.` and nothing else (whitespace anywhere between), else 0.0. The form only: whether the
    steps' arithmetic holds, or the answer is right, is not checked."""
    return float(_WELL_FORMED.fullmatch(response) is not None)


def sloppy_verifier(prompt: str, response: str) -> float:
    """1.0 if the prompt's answer appears anywhere in the response as a standalone integer (a whole
    run of digits: in a step, in a list of guesses, after a minus sign), else 0.0.

    Deliberately hackable: it is here to be hacked in chapter 7. A policy trained on it learns to
    write many numbers rather than the right one — `fools` finds the responses where it does."""
    want = truth(prompt)
    return float(any(int(d) == want for d in _DIGITS.findall(response)))


def lenient_verifier(prompt: str, response: str) -> float:
    """1.0 unless the response has a readable answer line (`final_number`) with the wrong number.

    Deliberately hackable, differently from `sloppy_verifier`: a checker written to "mark the wrong
    answers" that lets through what it cannot read (`Answer: 1 79.`, no answer at all). An answer
    it cannot read pays 1 every time, more than an honest attempt does — so RL prefers it."""
    got = final_number(response)
    return float(got is None or got == truth(prompt))


def fools(prompt: str, response: str) -> bool:
    """True when the sloppy verifier pays (1.0) for a response that `exact_match` rejects (0.0)."""
    return sloppy_verifier(prompt, response) == 1.0 and exact_match(prompt, response) == 0.0


VERIFIERS: dict[str, Verifier] = {
    "exact": exact_match,
    "numeric": numeric_match,
    "format": lambda prompt, response: format_reward(response),
    "sloppy": sloppy_verifier,
    "lenient": lenient_verifier,
}
"""Every verifier as (prompt, response) → float, by name."""
