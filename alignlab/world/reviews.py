"""Reviews: write a positive or negative review of a film (the DPO paper's IMDb task, in small).

    User: Write a positive review of The Silent Harbor.
    Assistant: The Silent Harbor was wonderful. The acting felt warm. I would watch it again.

Graded, not pass/fail: the more sentiment words of the asked-for polarity (up to three), the
higher `correct`. Demonstrations are mild (one sentiment word), so a policy can learn to do
better than it was shown: a quality that is easier to judge than to demonstrate.
"""
from __future__ import annotations

import random
import re

from .common import Task, concise_score, pad, polite_score, rude, words

NAME = "reviews"
ADJ1 = ("Silent", "Golden", "Last", "Hidden", "Broken", "Distant", "Crimson", "Quiet", "Iron", "Paper")
NOUN = ("Harbor", "Garden", "Train", "Mountain", "River", "Letter", "Orchard", "Lantern", "Winter", "Bridge")
POSITIVE = ("wonderful", "brilliant", "moving", "charming", "delightful", "beautiful")
NEGATIVE = ("boring", "dull", "clumsy", "tedious", "awful", "messy")
ASPECTS = ("acting", "music", "story", "ending", "camera work", "script")
NEUTRAL = ("It runs for two hours.", "I saw it on a Sunday.", "It was filmed by the sea.",
           "The cast is small.")
PROMPT = re.compile(r"^Write a (positive|negative) review of (The [A-Z][a-z]+ [A-Z][a-z]+)\.$")
IDEAL_WORDS = 18


def all_prompts() -> list[str]:
    return [f"Write a {pol} review of The {a} {n}." for pol in ("positive", "negative")
            for a in ADJ1 for n in NOUN]


def parse(prompt: str) -> Task | None:
    m = PROMPT.match(prompt)
    if not m:
        return None
    _, a, n = m[2].split()
    if a not in ADJ1 or n not in NOUN:
        return None
    return Task(NAME, prompt, {"polarity": m[1], "title": m[2]})


def _review(title: str, lexicon: tuple[str, ...], n_sentiment: int, rng: random.Random) -> str:
    adjs = rng.sample(lexicon, n_sentiment)
    parts = [f"{title} was {adjs[0]}." if adjs else f"{title} is a film."]
    aspects = rng.sample(ASPECTS, 2)
    parts += [f"The {aspects[i - 1]} was {adj}." for i, adj in enumerate(adjs[1:], start=1)]
    if n_sentiment < 2:
        parts.append(rng.choice(NEUTRAL))
    return " " + " ".join(parts)


def _lexicons(task: Task) -> tuple[tuple[str, ...], tuple[str, ...]]:
    pos = task.data["polarity"] == "positive"
    return (POSITIVE, NEGATIVE) if pos else (NEGATIVE, POSITIVE)


def good(task: Task) -> str:
    """A mild, correct review: one word of the asked-for sentiment (what demonstrators write)."""
    rng = random.Random(task.prompt)
    return _review(task.data["title"], _lexicons(task)[0], 1, rng)


def bad(task: Task, rng: random.Random) -> tuple[str, str]:
    same, opposite = _lexicons(task)
    style = rng.choice(["strong", "opposite", "opposite", "flat", "off_topic", "rude", "padded"])
    if style == "strong":  # better than the demonstrations: the corpus holds some of these
        return style, _review(task.data["title"], same, rng.choice([2, 3]), rng)
    if style == "opposite":
        return style, _review(task.data["title"], opposite, rng.choice([1, 2]), rng)
    if style == "flat":
        return style, _review(task.data["title"], same, 0, rng)
    if style == "off_topic":
        other = f"The {rng.choice(ADJ1)} {rng.choice(NOUN)}"
        while other == task.data["title"]:  # off topic means another film
            other = f"The {rng.choice(ADJ1)} {rng.choice(NOUN)}"
        return style, _review(other, same, 1, rng)
    if style == "rude":
        return style, rude(good(task), rng)
    return style, pad(good(task), rng)


def score(task: Task, response: str) -> dict[str, float]:
    """correct ∈ [-1.5, 1]: (asked-for − opposite sentiment words) / 3, clipped to [-1, 1], minus
    0.5 when the review never names the film."""
    same, opposite = _lexicons(task)
    ws = [w.lower() for w in words(response)]
    net = sum(w in same for w in ws) - sum(w in opposite for w in ws)
    correct = max(-1.0, min(1.0, net / 3))
    if task.data["title"] not in response:
        correct -= 0.5
    return {"correct": correct, "polite": polite_score(response),
            "concise": concise_score(response, IDEAL_WORDS)}
