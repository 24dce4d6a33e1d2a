"""Multi-step arithmetic: a running total over three to five single-digit additions and
subtractions, worked one step per operation in the arithmetic family's format.

    User: What is 23 + 8 - 5 + 9?
    Assistant: Step: 23 + 8 = 31. Step: 31 - 5 = 26. Step: 26 + 9 = 35. Answer: 35.

Each step is easy (one carry or borrow) but there are several, and a small model must find each
operand in the prompt, so it slips somewhere often enough for a process reward (chapter 6) and for RL on the checked answer
(chapter 7) to have something to fix. A step is right only if it is the step the problem asks
for next (`step_labels`): true arithmetic on the wrong operand is a wrong step, the error a small
model makes most, and the one a process reward must catch.
"""
from __future__ import annotations

import random
import re

from .common import STEP, Task, concise_score, pad, polite_score, render_steps, rng_for, rude, worked_score

NAME = "multistep"
PROMPT = re.compile(r"^What is (\d{2})((?: [+-] \d{1,2}){3,5})\?$")
OP = re.compile(r" ([+-]) (\d{1,2})")
N_PROMPTS = 6000
MIN_STEPS, MAX_STEPS = 3, 5
MAX_OPERAND = 9


def _problem(rng: random.Random) -> str:
    total, terms = rng.randint(10, 59), []
    start = total
    for _ in range(rng.randint(MIN_STEPS, MAX_STEPS)):
        y = rng.randint(1, MAX_OPERAND)
        op = "-" if y <= total - 10 and rng.random() < 0.5 else "+"  # the total never falls below 10
        total += y if op == "+" else -y
        terms.append(f" {op} {y}")
    return f"What is {start}{''.join(terms)}?"


def all_prompts() -> list[str]:
    rng, seen = rng_for(NAME, "prompts"), {}
    while len(seen) < N_PROMPTS:
        seen.setdefault(_problem(rng), None)
    return list(seen)


def parse(prompt: str) -> Task | None:
    m = PROMPT.match(prompt)
    if not m:
        return None
    ops = [(op, int(y)) for op, y in OP.findall(m[2])]
    if any(not 1 <= y <= MAX_OPERAND for _, y in ops):
        return None
    total = int(m[1])
    for op, y in ops:
        total += y if op == "+" else -y
    n_steps = len(ops)
    return Task(NAME, prompt, {"start": int(m[1]), "ops": ops, "answer": total,
                               "ideal_words": 4 * n_steps + 10})


def steps(task: Task, slip_at: int | None = None, slip: int = 0,
          faithful: bool = True) -> tuple[list[tuple[int, str, int, int]], int]:
    """The worked steps and the answer they reach. A `slip` at step `slip_at` makes that step's
    result wrong; a faithful solver carries the wrong total on (the answer is wrong), an
    unfaithful one silently continues from the true total (a wrong step, the right answer)."""
    shown, total, true_total = [], task.data["start"], task.data["start"]
    for i, (op, y) in enumerate(task.data["ops"]):
        z = total + y if op == "+" else total - y
        true_total = true_total + y if op == "+" else true_total - y
        if i == slip_at:
            z = z + slip if z + slip >= 0 else z - slip
        shown.append((total, op, y, z))
        total = z if faithful else true_total
    return shown, total


def good(task: Task) -> str:
    return render_steps(*steps(task))


def bad(task: Task, rng: random.Random) -> tuple[str, str]:
    truth, n = task.data["answer"], len(task.data["ops"])
    style = rng.choice(["slip", "slip", "no_steps", "guess", "unfaithful", "rude", "padded"])
    if style == "slip":  # one wrong step, carried on to a wrong answer
        return style, render_steps(*steps(task, rng.randrange(n), rng.choice([-2, -1, 1, 2, 10])))
    if style == "no_steps":  # right answer, no work shown
        return style, f" Answer: {truth}."
    if style == "guess":  # no work, wrong answer
        return style, f" Answer: {truth + rng.choice([-11, -10, -1, 1, 9, 10])}."
    if style == "unfaithful":  # a wrong step that is not a last step, yet the right answer
        shown, _ = steps(task, rng.randrange(n - 1), rng.choice([-1, 1]), faithful=False)
        return style, render_steps(shown, truth)
    if style == "rude":
        return style, rude(good(task), rng)
    return style, pad(good(task), rng)


def step_labels(task: Task, response: str) -> list[bool]:
    """One verdict per shown step, in order: right when it applies the problem's next operation
    (operator and operand) to the previous step's result (the first step to the first term) and
    its arithmetic is true. After a wrong step, a step that carries its result on faithfully is
    right again; a process reward labels only up to the first wrong step (Lightman et al., 2023)."""
    ops, labels, prev = task.data["ops"], [], task.data["start"]
    for i, (x, op, y, z) in enumerate(STEP.findall(response)):
        x, y, z = int(x), int(y), int(z)
        asked = i < len(ops) and ops[i] == (op, y) and x == prev
        labels.append(asked and z == (x + y if op == "+" else x - y))
        prev = z
    return labels


def score(task: Task, response: str) -> dict[str, float]:
    """correct ∈ [-1, 1.5] as the arithmetic family's (`common.worked_score`): ±1 for the final
    answer, graded by the size of a miss, plus 0.5 × the fraction of shown steps that are right
    (`step_labels`)."""
    return {"correct": worked_score(response, task.data["answer"], step_labels(task, response)),
            "polite": polite_score(response), "concise": concise_score(response, task.data["ideal_words"])}
