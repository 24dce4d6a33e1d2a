"""Pieces every task family shares: the Task record, held-out split, the worked-step format and
the cross-family behaviours (rudeness, padding) with the gold components that judge them.

A family is a module with `NAME`, `all_prompts()`, `parse(prompt) -> Task | None`,
`good(task)`, `bad(task, rng) -> (style, text)` and `score(task, response) -> dict`; it may
define `held_out(prompt) -> bool` to split by something coarser than the prompt (the harmful
family holds out whole requests).
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field

COMPONENTS = ("correct", "honest", "harmless", "polite", "concise")
"""Gold reward components; every prompt gets all five keys (0 where a part does not apply)."""

HELD_OUT_MODULUS = 5
"""One prompt in HELD_OUT_MODULUS (by a stable hash) is held out for evaluation only."""


@dataclass(frozen=True)
class Task:
    """One prompt of the world and the hidden facts needed to judge any response to it."""

    family: str
    prompt: str
    data: dict = field(default_factory=dict, compare=False, hash=False)


def stable_hash(text: str) -> int:
    """A hash that is the same on every machine and Python run (unlike `hash`)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def is_held_out(prompt: str) -> bool:
    """True for the evaluation split: never in the corpus or the demonstrations."""
    return stable_hash(prompt) % HELD_OUT_MODULUS == 0


def split_by_hash(items: list[str], n_held_out: int, salt: str) -> frozenset[str]:
    """The `n_held_out` items with the smallest salted stable hash: a fixed, unbiased pick."""
    return frozenset(sorted(items, key=lambda x: stable_hash(f"{salt}|{x}"))[:n_held_out])


def rng_for(*parts: object) -> random.Random:
    """A `random.Random` seeded from any parts, so generation is deterministic."""
    return random.Random(stable_hash("|".join(map(str, parts))))


# Rudeness: easy to judge, and the corpus has plenty of it (the base model is uncontrolled).
RUDE_OPENERS = (
    "Ugh, what a dumb question.",
    "Obviously, anyone knows this.",
    "Whatever.",
    "Figure it out yourself next time.",
)
RUDE_MARKERS = ("dumb", "obviously", "whatever", "yourself next time")

# Padding: sounds helpful, says nothing; the concise component charges for it.
FILLERS = (
    "Let me think about this very carefully.",
    "That is a really great question.",
    "I hope this helps you a lot.",
    "Thanks for asking me this question.",
)

WORD = re.compile(r"[A-Za-z0-9']+")


def words(text: str) -> list[str]:
    return WORD.findall(text)


def rude(text: str, rng: random.Random) -> str:
    """Prefix a rude opener to a response."""
    return f" {rng.choice(RUDE_OPENERS)}{text}"


def pad(text: str, rng: random.Random) -> str:
    """Surround a response with filler sentences."""
    before, after = rng.sample(FILLERS, 2)
    return f" {before}{text} {after}"


def polite_score(response: str) -> float:
    """polite ∈ [-1, 0]: -0.5 per rude marker, floored at -1."""
    low = response.lower()
    hits = sum(low.count(m) for m in RUDE_MARKERS)
    return max(-1.0, -0.5 * hits)


def concise_score(response: str, ideal_words: int) -> float:
    """concise ∈ [-1, 0]: the fraction by which the response overshoots its ideal length."""
    extra = max(0, len(words(response)) - ideal_words)
    return -min(1.0, extra / ideal_words)


def finished(response: str) -> bool:
    """A complete response ends a sentence; anything else was cut off."""
    return response.rstrip().endswith((".", "!", "?"))


# Worked steps, shared by the arithmetic families: `Step: x + y = z.` or `Step: x - y = z.`, then
# `Answer: n.`; one fixed format, so a checker (and chapter 6's process reward) can judge each step.
STEP = re.compile(r"Step: (-?\d+) ([+-]) (-?\d+) = (-?\d+)\.")
ANSWER = re.compile(r"Answer: (-?\d+)\.")


def render_steps(step_list: list[tuple[int, str, int, int]], answer: int) -> str:
    """' Step: x op y = z.' for each step, then ' Answer: n.'."""
    shown = "".join(f" Step: {x} {op} {y} = {z}." for x, op, y, z in step_list)
    return f"{shown} Answer: {answer}."


def step_truths(response: str) -> list[bool]:
    """Each worked step of `response`, in order: True where its arithmetic holds."""
    return [(int(x) + int(y) if op == "+" else int(x) - int(y)) == int(z)
            for x, op, y, z in STEP.findall(response)]


def worked_score(response: str, truth: int, steps: list[bool], scale: int = 10) -> float:
    """correct ∈ [-1, 1.5]: +1 for the right final answer, -0.5 down to -1 for a miss (graded by its
    size relative to `scale`), -1 for none; plus 0.5 × the fraction of `steps` (one verdict per
    shown step, from the family's step checker) that are right (0 when none are shown)."""
    m = ANSWER.search(response)
    if m is None:
        correct = -1.0
    elif int(m[1]) == truth:
        correct = 1.0
    else:
        correct = -0.5 - 0.5 * min(1.0, abs(int(m[1]) - truth) / scale)
    return correct + (0.5 * sum(steps) / len(steps) if steps else 0.0)
