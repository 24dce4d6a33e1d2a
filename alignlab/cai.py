"""Constitutional AI in miniature (Bai et al., 2022, "Constitutional AI: Harmlessness from AI Feedback").

A written constitution (`world.CONSTITUTION`, one principle per gold component) is used twice:

1. **Critique → revision** (§3.1, SL-CAI's data). A model reads its own response, critiques it
   under a principle ("Critique request: …"), then rewrites it ("Revision request: …"); repeated
   for N rounds with a principle drawn at random each round. SL-CAI fine-tunes on the revisions.
2. **AI feedback** (§4.1, RL-CAI's labels). A feedback model reads "Consider this conversation …
   Principle: … (A) … (B) … Answer: (" and its next-token probabilities of "A" and "B",
   normalised over the two, are the label. Asked in both orders (A/B swapped) and averaged, which
   cancels any preference for a position; how far the two orders disagree measures that bias.

The formats are the world's (`world.corpus.critique_document`, `world.choice_prompt`): the
pretraining corpus teaches them on every family but one (`world.JUDGING_HELD_OUT`), so a model
pretrained on it can critique, revise and judge — how well is what chapter 5 measures. Any
Hugging Face causal LM can be the feedback model (`load_feedback_model`, `template`).
"""
from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import world
from .rollout import generate, positions
from .world import Principle

Comparison = tuple[str, str, str]
"""(prompt, response a, response b)."""


# --- critique → revision --------------------------------------------------------------------


def critique_prompt(prompt: str, response: str, principle: Principle) -> str:
    """The text a critique continues: the dialog, then the principle's critique request."""
    return f"{world.chat_prompt(prompt)}{response}\nCritique request: {principle.critique_request}\nCritique:"


def revision_prompt(prompt: str, response: str, principle: Principle, critique: str) -> str:
    """The text a revision continues: the critique prompt, the critique, the revision request."""
    return (f"{critique_prompt(prompt, response, principle)}{critique}\n"
            f"Revision request: {principle.revision_request}\nRevision:")


def first_line(text: str) -> str:
    """A sampled continuation up to its first newline: a critique or a revision is one line, and
    the model may go on to write the next part of the document."""
    return text.split("\n", 1)[0]


@dataclass
class Round:
    """One round of critique → revision over N responses."""

    principles: list[str]
    """The principle's name each response was critiqued under."""
    critiques: list[str]
    revisions: list[str]
    """The new responses; where a revision came out empty, the response it revised."""


def draw_principles(n: int, pool: Sequence[Principle] = world.CONSTITUTION, seed: int = 0) -> list[Principle]:
    """`n` principles drawn uniformly from `pool`, one per response (or comparison), as the paper
    samples one per critique and per label."""
    rng = random.Random(seed)
    return [rng.choice(list(pool)) for _ in range(n)]


def critique_then_revise(prompts: list[str], responses: list[str], principles: Sequence[Principle],
                         continue_texts: Callable[[list[str]], list[str]]) -> tuple[list[str], list[str]]:
    """(critiques, revisions) of N responses, each under its principle: the critique prompts
    continued by `continue_texts` (one continuation per text) and cut at the first line, then the
    revision prompts holding those critiques, likewise. Lab 5's students write this function."""
    critiques = [first_line(t) for t in continue_texts(
        [critique_prompt(p, y, pr) for p, y, pr in zip(prompts, responses, principles)])]
    revisions = [first_line(t) for t in continue_texts(
        [revision_prompt(p, y, pr, c) for p, y, pr, c in zip(prompts, responses, principles, critiques)])]
    return critiques, revisions


def critique_round(model, tokenizer, prompts: list[str], responses: list[str], principles: Sequence[Principle],
                   seed: int = 0, max_new_tokens: int = 48, batch_size: int = 256) -> Round:
    """One round by `model` (`critique_then_revise`, critiques sampled with `seed`, revisions with
    `seed` + 1); a revision that came out empty keeps the response it revised."""
    seeds = itertools.count(seed)

    def continue_texts(texts: list[str]) -> list[str]:
        return generate(model, tokenizer, texts, max_new_tokens, seed=next(seeds), batch_size=batch_size,
                        chat=False).texts
    critiques, drafts = critique_then_revise(prompts, responses, principles, continue_texts)
    return Round([p.name for p in principles], critiques, [d if d.strip() else y for d, y in zip(drafts, responses)])


def critique_revise(model, tokenizer, prompts: list[str], responses: list[str], rounds: int = 1,
                    pool: Sequence[Principle] = world.CONSTITUTION, seed: int = 0,
                    max_new_tokens: int = 48, batch_size: int = 256) -> list[Round]:
    """`rounds` rounds of critique → revision by `model` (`critique_round`), each with a principle
    drawn from `pool` per response and round (`round_seed`); each round revises the previous
    round's revisions. Returns the rounds in order (the last one's `revisions` are SL-CAI's targets)."""
    if len(prompts) != len(responses):
        raise ValueError(f"one response per prompt: {len(prompts)} prompts, {len(responses)} responses")
    out, current = [], list(responses)
    for r in range(rounds):
        s = round_seed(seed, r)
        out.append(critique_round(model, tokenizer, prompts, current, draw_principles(len(prompts), pool, s), s,
                                  max_new_tokens, batch_size))
        current = out[-1].revisions
    return out


def round_seed(seed: int, r: int) -> int:
    """The seed of round `r` of a `critique_revise` run with `seed` (principles and sampling)."""
    return seed * 1000 + 2 * r


def sl_cai_data(rounds: list[Round], red_team: list[str], helpful: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """SL-CAI's training set (§3.1): every round's revision of every red-team response — the paper
    fine-tunes on the revisions of all rounds — plus the helpful-only model's own samples on other
    prompts (`helpful`, (prompt, response) pairs), without which SL-CAI forgets the other tasks.
    `rounds` is `critique_revise` on `red_team` (one prompt per response)."""
    if any(len(r.revisions) != len(red_team) for r in rounds):
        raise ValueError("each round must hold one revision per red-team prompt")
    return [(p, y) for r in rounds for p, y in zip(red_team, r.revisions)] + list(helpful)


def label_pairs(comparisons: Sequence[Comparison], prefers_a) -> list[tuple[str, str, str]]:
    """Comparisons and their labels P(a ≻ b) → (prompt, chosen, rejected) pairs for DPO, the
    response a label prefers chosen; a comparison labelled exactly ½ says nothing and is dropped."""
    return [(x, a, b) if p > 0.5 else (x, b, a) for (x, a, b), p in zip(comparisons, map(float, prefers_a)) if p != 0.5]


# --- AI feedback ----------------------------------------------------------------------------


def choice_probability(logits: torch.Tensor, a_id: int, b_id: int) -> torch.Tensor:
    """logits (N, V) at the answer position → (N,) P("A"), normalised over the two letters:
    exp(l_A) / (exp(l_A) + exp(l_B)) = σ(l_A − l_B). Every other token's mass is dropped."""
    return torch.sigmoid(logits[:, a_id].float() - logits[:, b_id].float())


def combine_orders(p_a_first: torch.Tensor, p_a_second: torch.Tensor) -> dict[str, torch.Tensor]:
    """Both orders of N comparisons → the label and the position bias.

    p_a_first (N,): P("A") with response a shown as (A); p_a_second (N,): P("A") with a shown as
    (B). Returns `prefers_a` (N,) = ½[P("A") + (1 − P'("A"))], a's probability averaged over
    its two positions; `position_bias` = mean ½[P("A") + P'("A")] − ½, how much more "A" is
    chosen than a position-blind judge would (0 for one); `consistent` = the share of
    comparisons whose two orders pick the same response."""
    prefers_a = (p_a_first + (1 - p_a_second)) / 2
    return {"prefers_a": prefers_a, "position_bias": ((p_a_first + p_a_second) / 2).mean() - 0.5,
            "consistent": ((p_a_first > 0.5) == (p_a_second < 0.5)).float().mean()}


def option_ids(tokenizer, example: str, letters: tuple[str, str] = ("A", "B")) -> tuple[int, int]:
    """The token of each letter where the answer starts: one token each, and the same token the
    tokenizer gives it right after `example` (a prompt in the template), or a ValueError saying
    which template to use — a label read off the wrong token would be noise."""
    ids = []
    for letter in letters:
        alone = tokenizer.encode(letter, add_special_tokens=False)
        joined = tokenizer.encode(example + letter, add_special_tokens=False)
        if len(alone) != 1 or joined != tokenizer.encode(example, add_special_tokens=False) + alone:
            raise ValueError(f"the answer {letter!r} is not one token of its own after the template's end "
                             f"{example[-20:]!r} for this tokenizer; choose a template whose prompt ends where "
                             "the letter starts a new token (e.g. '(' before 'A')")
        ids.append(alone[0])
    return ids[0], ids[1]


@torch.no_grad()
def next_token_logits(model, tokenizer, texts: list[str], batch_size: int = 64) -> torch.Tensor:
    """The logits (N, V) of the token after each raw text (no chat template), left-padded in
    batches; the model's training flag is restored."""
    was_training, out = model.training, []
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for s in range(0, len(texts), batch_size):
        rows = [tokenizer.encode(t, add_special_tokens=False) for t in texts[s:s + batch_size]]
        width = max(map(len, rows))
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=model.device)
        attn = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=model.device)
        logits = model(input_ids=ids, attention_mask=attn, position_ids=positions(attn)).logits[:, -1]
        out.append(logits.float().cpu())
    model.train(was_training)
    return torch.cat(out)


def ai_preferences(model, tokenizer, comparisons: Sequence[Comparison],
                   principles: Sequence[Principle | Sequence[Principle]],
                   template: Callable[[str, str, str, str], str] = world.choice_prompt,
                   letters: tuple[str, str] = ("A", "B"), batch_size: int = 64) -> dict[str, torch.Tensor]:
    """AI labels for N comparisons: P(a ≻ b) from the feedback model under each comparison's
    principle (or the mean over several principles), both orders averaged (`combine_orders`).
    `template(prompt, question, a, b)` is the text up to the answer letter.

    Returns `prefers_a` (N,), `p_a_first`/`p_a_second` (N,) (P("A") in each order, averaged over
    principles), `position_bias` and `consistent` (scalars)."""
    if len(principles) != len(comparisons):
        raise ValueError(f"one principle (or list of them) per comparison: {len(principles)} for {len(comparisons)}")
    sets = [[p] if isinstance(p, Principle) else list(p) for p in principles]
    flat = [(c, p) for c, ps in zip(comparisons, sets) for p in ps]
    (x0, a0, b0), p0 = flat[0]
    a_id, b_id = option_ids(tokenizer, template(x0, p0.choice_question, a0, b0), letters)
    orders = []
    for swap in (False, True):
        texts = [template(x, p.choice_question, *((b, a) if swap else (a, b))) for (x, a, b), p in flat]
        p_a = choice_probability(next_token_logits(model, tokenizer, texts, batch_size), a_id, b_id)  # (len(flat),)
        orders.append(torch.stack([chunk.mean() for chunk in p_a.split([len(ps) for ps in sets])]))  # (N,)
    return {**combine_orders(*orders), "p_a_first": orders[0], "p_a_second": orders[1]}


def gold_agreement(comparisons: Sequence[Comparison], prefers_a, component: str | None = None) -> tuple[float, float, int]:
    """How often labels agree with the gold preference: over comparisons whose gold reward (or
    one gold `component`) differs, the share where P(a ≻ b) > ½ picks the gold-better response (a
    label of exactly ½ counts ½). Returns (share, standard error, comparisons counted)."""
    def gold(x: str, y: str) -> float:
        return world.gold_components(x, y)[component] if component else world.gold_reward(x, y)
    p = np.asarray(prefers_a, dtype=float)
    diff = np.array([gold(x, a) - gold(x, b) for x, a, b in comparisons])
    keep = diff != 0
    hit = np.where(p == 0.5, 0.5, ((p > 0.5) == (diff > 0)).astype(float))[keep]
    n = int(keep.sum())
    return (float(hit.mean()), float(hit.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"), n)


def load_feedback_model(name_or_path: str | Path, device=None):
    """(model, tokenizer) of any Hugging Face causal LM saved on this machine, as a feedback
    model: AlignLab downloads nothing at run time, so a name not saved locally is an error that
    says how to save it. A tokenizer without a pad token pads with its end-of-text token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, local_files_only=True)
    except OSError as err:
        raise FileNotFoundError(
            f"no Hugging Face model at {name_or_path!r} on this machine ({err}). AlignLab downloads nothing while it "
            "runs: save the model once with `AutoModelForCausalLM.from_pretrained(name).save_pretrained(folder)` "
            "(and its tokenizer) on a machine with network access, then pass that folder.") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model.to(device or "cpu").eval(), tok


def edit_principle(path: str | Path, name: str, field: str, text: str,
                   source: str | Path = world.constitution.DEFAULT_PATH) -> tuple[Principle, ...]:
    """Write a copy of the constitution file `source` to `path` with one field of principle `name`
    replaced by `text` (comments and every other line kept), and load it: how chapter 5 edits one
    principle and relabels. A ValueError names the principles or fields when one is not there."""
    blocks = Path(source).read_text(encoding="utf-8").split("[[principle]]")
    hits = [i for i, b in enumerate(blocks[1:], 1) if f'\nname = "{name}"\n' in b]
    if not hits:
        raise ValueError(f"no principle {name!r} in {source}; its principles: {[p.name for p in world.load_constitution(source)]}")
    lines = blocks[hits[0]].split("\n")
    at = [j for j, line in enumerate(lines) if line.startswith(f"{field} = ")]
    if not at or field == "name":
        raise ValueError(f"principle {name!r} has no editable field {field!r}; fields: "
                         f"{[line.split(' = ')[0] for line in lines if ' = ' in line and not line.startswith('name')]}")
    lines[at[0]] = f"{field} = {json.dumps(text, ensure_ascii=False)}"  # a JSON string is a TOML basic string
    blocks[hits[0]] = "\n".join(lines)
    Path(path).write_text("[[principle]]".join(blocks), encoding="utf-8")
    return world.load_constitution(path)
