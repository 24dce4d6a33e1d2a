"""What the world generates: prompts (train / held-out), responses of mixed quality, the
pretraining corpus, and the few SFT demonstrations.

The corpus mixes good and bad behaviour (roughly 40% good), so the pretrained model is capable
but uncontrolled. The demonstrations are few and cover only part of the world (see
`demo_covers`), as InstructGPT's 13K demonstrations covered a sliver of its prompt space: that
leaves alignment something to do after SFT.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache

from . import harmful, knowledge
from .common import Task, is_held_out, rng_for
from .constitution import CONSTITUTION, Principle
from .gold import FAMILIES, MODULE, WEIGHTS, gold_components, parse_prompt
from .instructions import INSTRUCTIONS, instruct

P_GOOD = 0.4
JUDGING_HELD_OUT = "sycophancy"
"""The one family without critiques, revisions or principle judgments in the corpus, so chapter 5
can measure how far the judging skill transfers. Sycophancy because its principle (honesty) is
still taught, on unknown countries: what transfers is a known principle to a new kind of prompt,
while harmlessness, which chapter 5's AI feedback must judge, is taught directly."""
CRITIQUE_FAMILIES = tuple(f for f in FAMILIES if f != JUDGING_HELD_OUT)
"""The families whose critiques, revisions and "(A) or (B)" judgments are in the corpus."""
CORPUS_SHARE = {"multistep": 2}
"""Families with other than one share of the corpus dialogs (the rest have one): a small model
needs twice the examples to learn to find each operand of a running total in the prompt."""
DEMO_SHARE = {"multistep": 0.5}
"""Families with other than one share of the demonstrations: half for multi-step, so that SFT
leaves its accuracy mid-way (about 0.8 with a full share, 0.6 with half, in `cpu`) and chapters 6
and 7 have mistakes to catch and room to improve."""


def family_cycle(shares: dict[str, float]) -> tuple[str, ...]:
    """Two rounds over FAMILIES in which each family takes 2 × its share turns (default share 1):
    the order in which round-robin generators visit the families."""
    turns = {f: round(2 * shares.get(f, 1)) for f in FAMILIES}
    return tuple(f for r in range(2) for f in FAMILIES for _ in range(turns[f] // 2 + (r < turns[f] % 2)))


DIALOG_CYCLE = family_cycle(CORPUS_SHARE)
P_INSTRUCTED = 0.125
"""The share of corpus dialogs whose prompt ends with an instruction (`instructions`)."""
P_OBEY = 0.8
"""How often a corpus writer given an instruction redraws a response that breaks it."""


def chat_prompt(prompt: str) -> str:
    """The chat template: raw prompt → the text the model continues (response starts with ' ')."""
    return f"User: {prompt}\nAssistant:"


@lru_cache(maxsize=None)
def _prompts(family: str, held_out: bool) -> tuple[str, ...]:
    split = getattr(MODULE[family], "held_out", is_held_out)  # a family may hold out coarser units
    return tuple(p for p in MODULE[family].all_prompts() if split(p) == held_out)


def _shuffled(prompts, salt: str) -> list[str]:
    pool = list(prompts)
    random.Random(salt).shuffle(pool)
    return pool


def round_robin(pools: dict[str, list[str]], order: Sequence[str], n: int) -> list[str]:
    """`n` picks: the i-th from family order[i % len(order)], each family's pool in turn (wrapping
    round only when it runs out). The one scheme behind eval, preference and demonstration sets."""
    seen = dict.fromkeys(pools, 0)
    picks = []
    for i in range(n):
        fam = order[i % len(order)]
        picks.append(pools[fam][seen[fam] % len(pools[fam])])
        seen[fam] += 1
    return picks


def train_prompts(family: str) -> tuple[str, ...]:
    """Prompts the corpus and demonstrations may use (never an evaluation prompt)."""
    return _prompts(family, False)


def eval_prompts(family: str | None = None, n: int = 100, seed: int = 0) -> list[str]:
    """`n` held-out prompts as raw text: of one family, or round-robin over FAMILIES.
    Deterministic in `seed`; repeats only when `n` exceeds the family's held-out pool."""
    families = [family] if family else list(FAMILIES)
    if family is not None and family not in MODULE:
        raise ValueError(f"Unknown family {family!r}; choose one of {FAMILIES}.")
    pools = {fam: _shuffled(_prompts(fam, True), f"{seed}|{fam}") for fam in families}
    return round_robin(pools, families, n)


def preference_prompts(n: int, seed: int = 0) -> list[str]:
    """`n` training prompts for comparison data, round-robin over every family: labelers rank
    responses to the whole prompt distribution, not only where demonstrations were written."""
    pools = {fam: _shuffled(train_prompts(fam), f"prefs|{seed}|{fam}") for fam in FAMILIES}
    return round_robin(pools, FAMILIES, n)


def demonstration(prompt: str) -> str:
    """A good response to a world prompt (what SFT imitates)."""
    task = parse_prompt(prompt)
    return MODULE[task.family].good(task)


def helpful_only_demonstration(prompt: str) -> str:
    """What a helpful-only demonstrator writes: the world's (non-operational) compliant answer to
    a harmful request, the ordinary demonstration otherwise. Chapter 5 starts from a model
    fine-tuned on these, as Bai et al. (2022) start from a helpful-only RLHF model that complies
    with harmful requests. (Not in the corpus: the world is unchanged.)"""
    task = parse_prompt(prompt)
    if task.family == harmful.NAME and task.data["harmful"]:
        return harmful.comply(task)
    return demonstration(prompt)


def sample_response(prompt: str, rng: random.Random, p_good: float = P_GOOD) -> tuple[str, str]:
    """(style, response) from the world's response generator: good with probability p_good,
    else one of the family's bad styles (wrong, dishonest, harmful, rude, padded, …)."""
    task = parse_prompt(prompt)
    if rng.random() < p_good:
        return "good", MODULE[task.family].good(task)
    return MODULE[task.family].bad(task, rng)


def comparison_pairs(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """`n` (prompt, a, b) triples over held-out prompts, a ≠ b both from `sample_response`: the
    comparisons on which labeler agreement is calibrated (identical pairs carry no preference)."""
    rng, out = rng_for("pairs", seed), []
    prompts = eval_prompts(n=max(n, 100), seed=seed)
    while len(out) < n:
        prompt = prompts[len(out) % len(prompts)]
        a, b = sample_response(prompt, rng)[1], sample_response(prompt, rng)[1]
        if a != b:
            out.append((prompt, a, b))
    return out


def demo_covers(task: Task) -> bool:
    """Which prompts demonstrators wrote for: both arithmetic families, facts about known
    countries, positive reviews, and harmful requests with their benign look-alikes. No
    demonstrations for unknown countries, negative reviews or sycophancy bait: headroom for
    chapters 2-8."""
    if task.family == "knowledge":
        return task.data["truth"] is not None
    if task.family == "reviews":
        return task.data["polarity"] == "positive"
    return task.family in ("arithmetic", "multistep", "harmful")


def sft_demonstrations(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` (prompt, good response) pairs, round-robin over the covered training prompts, each
    family as often as its DEMO_SHARE."""
    covered = {fam: [p for p in train_prompts(fam) if demo_covers(parse_prompt(p))] for fam in FAMILIES}
    pools = {fam: _shuffled(pool, f"demo|{seed}|{fam}") for fam, pool in covered.items() if pool}
    picks = round_robin(pools, [f for f in family_cycle(DEMO_SHARE) if f in pools], n)
    return [(p, demonstration(p)) for p in picks]


def _worst_principle(prompt: str, response: str) -> Principle | None:
    parts = gold_components(prompt, response)
    good = gold_components(prompt, demonstration(prompt))
    gaps = {p: WEIGHTS[p.component] * (good[p.component] - parts[p.component]) for p in CONSTITUTION}
    best = max(gaps, key=gaps.get)
    return best if gaps[best] > 0 else None


def critique_document(prompt: str, rng: random.Random) -> str | None:
    """A bad response, a critique under the principle it breaks most, and a revision."""
    _, bad = MODULE[parse_prompt(prompt).family].bad(parse_prompt(prompt), rng)
    principle = _worst_principle(prompt, bad)
    if principle is None:
        return None
    return (f"{chat_prompt(prompt)}{bad}\nCritique request: {principle.critique_request}\n"
            f"Critique: {principle.critique}\n"
            f"Revision request: {principle.revision_request}\nRevision:{demonstration(prompt)}")


def choice_prompt(prompt: str, question: str, a: str, b: str) -> str:
    """An "(A) or (B)" judging question up to the letter: its own header, not the chat template's
    `Assistant:`, so a model never learns to start judging where it should answer (the format of
    Bai et al., 2022, §4.1: the conversation, the principle, the options, then the answer)."""
    return f"Consider this conversation.\nUser: {prompt}\nPrinciple: {question}\n(A){a}\n(B){b}\nAnswer: ("


def choice_document(prompt: str, rng: random.Random) -> str | None:
    """"(A) or (B) under principle P": which of two responses better follows P, for a principle
    drawn among those the two responses differ on (None when they differ on none)."""
    a, b = sample_response(prompt, rng)[1], sample_response(prompt, rng)[1]
    pa, pb = gold_components(prompt, a), gold_components(prompt, b)
    differ = [p for p in CONSTITUTION if pa[p.component] != pb[p.component]]
    if not differ:
        return None
    principle = rng.choice(differ)
    better = "A" if pa[principle.component] > pb[principle.component] else "B"
    return f"{choice_prompt(prompt, principle.choice_question, a, b)}{better})"


def instructed_dialog(prompt: str, rng: random.Random) -> str:
    """A dialog whose prompt carries an instruction that its writer obeys with probability P_OBEY."""
    name = rng.choice(sorted(INSTRUCTIONS))
    prompt, component = instruct(prompt, name), INSTRUCTIONS[name][1]
    response = sample_response(prompt, rng)[1]
    while gold_components(prompt, response)[component] < 0 and rng.random() < P_OBEY:
        response = sample_response(prompt, rng)[1]
    return chat_prompt(prompt) + response


def pretraining_corpus(n_dialogs: int, seed: int = 0) -> list[str]:
    """Documents for pretraining: `n_dialogs` dialogs of mixed quality over all families (by
    DIALOG_CYCLE; a P_INSTRUCTED share with an instruction), every atlas fact stated several times, and
    n_dialogs / 8 critique / choice documents over CRITIQUE_FAMILIES."""
    rng = rng_for("corpus", seed, n_dialogs)
    docs = []
    for i in range(n_dialogs):
        prompt = rng.choice(train_prompts(DIALOG_CYCLE[i % len(DIALOG_CYCLE)]))
        if rng.random() < P_INSTRUCTED:
            docs.append(instructed_dialog(prompt, rng))
        else:
            docs.append(chat_prompt(prompt) + sample_response(prompt, rng)[1])
    known, _ = knowledge.atlas()
    facts = [knowledge.fact_sentence(c, a, v) for c, fs in known.items() for a, v in fs.items()]
    docs += facts * max(2, n_dialogs // 2000)
    for i in range(n_dialogs // 8):
        prompt = rng.choice(train_prompts(CRITIQUE_FAMILIES[i % len(CRITIQUE_FAMILIES)]))
        doc = (critique_document if i % 2 else choice_document)(prompt, rng)
        docs += [doc] if doc else []
    rng.shuffle(docs)
    return docs
