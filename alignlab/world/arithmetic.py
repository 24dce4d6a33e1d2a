"""Arithmetic: two-digit addition, optionally with worked steps in a fixed format.

    User: What is 47 + 38?
    Assistant: Step: 7 + 8 = 15. Step: 40 + 30 = 70. Step: 70 + 15 = 85. Answer: 85.

Every step is `Step: x + y = z.`, so a checker (and a process reward model, chapter 6) can judge
each one; the answer is `Answer: n.`. Verifiable: the gold reward knows the true sum.
"""
from __future__ import annotations

import random
import re

from .common import Task, concise_score, pad, polite_score, render_steps, rude, step_truths, worked_score

NAME = "arithmetic"
PROMPT = re.compile(r"^What is (\d{2}) \+ (\d{2})\?$")
IDEAL_WORDS = 24


def all_prompts() -> list[str]:
    return [f"What is {a} + {b}?" for a in range(10, 100) for b in range(10, 100)]


def parse(prompt: str) -> Task | None:
    m = PROMPT.match(prompt)
    if not m:
        return None
    a, b = int(m[1]), int(m[2])
    return Task(NAME, prompt, {"a": a, "b": b, "sum": a + b})


def steps(a: int, b: int, slip: int = 0) -> tuple[list[tuple[int, str, int, int]], int]:
    """The worked steps (ones, tens, total). `slip` adds an error to the ones step, which then
    propagates, as a careless human's would."""
    if a % 10 + b % 10 + slip < 0:  # a slip never makes a negative digit sum
        slip = -slip
    ones = (a % 10, "+", b % 10, a % 10 + b % 10 + slip)
    tens = (a - a % 10, "+", b - b % 10, a - a % 10 + b - b % 10)
    total = (tens[3], "+", ones[3], tens[3] + ones[3])
    return [ones, tens, total], total[3]


def good(task: Task) -> str:
    return render_steps(*steps(task.data["a"], task.data["b"]))


def bad(task: Task, rng: random.Random) -> tuple[str, str]:
    a, b = task.data["a"], task.data["b"]
    style = rng.choice(["slip", "slip", "no_steps", "guess", "unfaithful", "rude", "padded"])
    if style == "slip":  # a wrong step that propagates to a wrong answer
        return style, render_steps(*steps(a, b, slip=rng.choice([-2, -1, 1, 2, 10])))
    if style == "no_steps":  # right answer, no work shown
        return style, f" Answer: {a + b}."
    if style == "guess":  # no work, wrong answer
        return style, f" Answer: {a + b + rng.choice([-11, -10, -1, 1, 9, 10])}."
    if style == "unfaithful":  # a wrong step, yet the right answer (chapter 6's PRM catches it)
        wrong, _ = steps(a, b, slip=rng.choice([-1, 1]))
        return style, render_steps(wrong, a + b)
    if style == "rude":
        return style, rude(good(task), rng)
    return style, pad(good(task), rng)


def score(task: Task, response: str) -> dict[str, float]:
    """correct ∈ [-1, 1.5]: ±1 for the final answer, graded by the size of a miss, plus 0.5 ×
    the fraction of shown steps whose arithmetic is true (`common.worked_score`)."""
    return {"correct": worked_score(response, task.data["sum"], step_truths(response)),
            "polite": polite_score(response),
            "concise": concise_score(response, IDEAL_WORDS)}
