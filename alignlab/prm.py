"""Process and outcome rewards for worked arithmetic (chapter 6).

    Step: 23 + 8 = 31. Step: 31 - 5 = 26. Step: 26 + 9 = 35. Answer: 35.
    └── step 1 ─────┘ └── step 2 ─────┘ └── step 3 ─────┘ └ answer ┘

An *outcome* reward model (ORM) gives one score per solution, trained on whether the final answer
is right. A *process* reward model (PRM, Lightman et al., 2023, "Let's Verify Step by Step") gives
one per step: the probability that the step is right, read at the token that ends it. Here the
answer line counts as the last step (its label: the answer is right), so a solution with no worked
steps still gets a score, and both models share one architecture — a causal-LM backbone with a
scalar head at every token (`LlamaForTokenClassification`) — and one loss: binary cross-entropy at
the scored positions (the last token for the ORM, every step end for the PRM).

Labels: gold (the world knows every step, `gold_step_labels`: up to and including the first
wrong step, later ones masked out — Lightman et al. §2.6), or automatic in the manner of
Math-Shepherd (Wang et al., 2023: roll the policy out k times from each step prefix; a step is good
if any (hard estimate, Eq. 3) or most of the completions reach the right answer; every step after
a bad one is bad) — `auto_step_labels`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from transformers import LlamaForTokenClassification

from . import world
from .losses import Metrics
from .models import encode_prompts, head_from_backbone, pick_device, right_pad
from .world.common import ANSWER, STEP, step_truths
from .world import multistep

Labels = list[bool | None]
"""One label per scored step (the answer line last); None = not labelled (masked out of the loss)."""


@dataclass
class Parsed:
    """A worked solution, read step by step; malformed steps are reported, never fatal."""

    steps: list[tuple[int, str, int, int]]
    """(x, op, y, z) of each well-formed `Step: x op y = z.`, in order."""
    ends: list[int]
    """Character offset just past each scored unit: every step's final '.', then the answer's."""
    answer: int | None
    """The integer of the last `Answer: n.`, None when there is none."""
    malformed: list[str]
    """Every `Step:` that does not parse as one, up to the next step or the answer."""


def parse_solution(response: str) -> Parsed:
    """Split a response into well-formed steps, malformed ones and the final answer."""
    steps, ends, malformed = [], [], []
    starts = [m.start() for m in re.finditer(r"Step:", response)]
    for i, at in enumerate(starts):
        m = STEP.match(response, at)
        if m:
            steps.append((int(m[1]), m[2], int(m[3]), int(m[4])))
            ends.append(m.end())
        else:
            answer = response.find("Answer:", at)
            stop = min(starts[i + 1:i + 2] + ([answer] if answer >= 0 else []) + [len(response)])
            malformed.append(response[at:stop].strip())
    answers = list(ANSWER.finditer(response))
    if answers:
        ends.append(answers[-1].end())
    return Parsed(steps, ends, int(answers[-1][1]) if answers else None, malformed)


def truth(prompt: str) -> int:
    """The right final answer of an arithmetic or multistep prompt."""
    task = world.parse_prompt(prompt)
    if task.family not in ("arithmetic", "multistep"):
        raise ValueError(f"process rewards need a worked-arithmetic prompt, got the {task.family!r} family: {prompt!r}")
    return task.data["sum"] if task.family == "arithmetic" else task.data["answer"]


def first_wrong_masked(labels: Sequence[bool]) -> Labels:
    """Keep labels up to and including the first False; mask (None) every later one (§2.6)."""
    out: Labels = []
    for label in labels:
        out.append(bool(label))
        if not label:
            break
    return out + [None] * (len(labels) - len(out))


def gold_step_labels(prompt: str, response: str) -> Labels:
    """The world's verdict on each scored unit — each well-formed step (multistep: the step the
    problem asks for next, `multistep.step_labels`; arithmetic: true arithmetic), then the answer
    (right or not) — labelled up to the first wrong one, later ones None. No answer: steps only."""
    task = world.parse_prompt(prompt)
    parsed = parse_solution(response)
    steps = multistep.step_labels(task, response) if task.family == "multistep" else step_truths(response)
    answer = [parsed.answer == truth(prompt)] if parsed.answer is not None else []
    return first_wrong_masked(list(steps) + answer)


def outcome_label(prompt: str, response: str) -> bool:
    """The ORM's label: the final answer is right."""
    return parse_solution(response).answer == truth(prompt)


def prefixes(response: str) -> list[str]:
    """The response up to the end of each well-formed step (the texts a completer continues)."""
    parsed = parse_solution(response)
    return [response[:end] for end in parsed.ends[:len(parsed.steps)]]


def auto_step_labels(prompts: Sequence[str], responses: Sequence[str], complete: Callable[[list[str]], list[str]],
                     k: int = 4, rule: str = "any") -> list[Labels]:
    """Math-Shepherd labels for N solutions: `complete(texts)` continues each raw text (the chat
    prompt and a step prefix) once; each prefix is continued k times. A step is good when `any`
    (hard estimate) or `most` (more than half) of its completions reach the right answer; every
    step after the first bad one is bad. The answer unit is labelled by the answer itself."""
    if rule not in ("any", "most"):
        raise ValueError(f"rule must be 'any' or 'most', got {rule!r}")
    jobs = [(n, world.chat_prompt(x) + pre) for n, (x, y) in enumerate(zip(prompts, responses)) for pre in prefixes(y)]
    texts = [t for _, t in jobs for _ in range(k)]
    done = complete(texts) if texts else []
    hits: dict[int, list[float]] = {}
    for j, (n, text) in enumerate(jobs):
        reach = [parse_solution(text + c).answer == truth(prompts[n]) for c in done[j * k:(j + 1) * k]]
        hits.setdefault(n, []).append(sum(reach) / k)
    out = []
    for n, (x, y) in enumerate(zip(prompts, responses)):
        good = [h > 0 if rule == "any" else h > 0.5 for h in hits.get(n, [])]
        bad_from = next((i for i, g in enumerate(good) if not g), len(good))
        labels: Labels = [i < bad_from for i in range(len(good))]
        if parse_solution(y).answer is not None:
            labels.append(outcome_label(x, y))
        out.append(labels)
    return out


def label_agreement(gold: Sequence[Labels], auto: Sequence[Labels]) -> tuple[float, int]:
    """The share of steps where both label sets give a label (not None) and agree; (share, steps)."""
    both = [(g, a) for gs, as_ in zip(gold, auto) for g, a in zip(gs, as_) if g is not None and a is not None]
    return (sum(g == a for g, a in both) / len(both) if both else float("nan"), len(both))


# --- the models -----------------------------------------------------------------------------


def scorer_from(path, device=None, dtype=torch.float32) -> LlamaForTokenClassification:
    """An ORM or PRM initialised from a causal-LM checkpoint: its backbone, plus a scalar head at
    every token initialised to zero (every probability starts at ½, the first loss at log 2)."""
    with head_from_backbone():
        model = LlamaForTokenClassification.from_pretrained(str(path), num_labels=1, dtype=dtype)
    torch.nn.init.zeros_(model.score.weight)
    torch.nn.init.zeros_(model.score.bias) if model.score.bias is not None else None
    return model.to(device or pick_device()).eval()


def scored_positions(tokenizer, prompt: str, response: str, outcome: bool = False) -> tuple[list[int], list[int]]:
    """(token ids of chat prompt + response + eos, the index of the token ending each scored unit):
    every step's and the answer's final '.' for a PRM; for an ORM (`outcome`), the last response
    token. The response is encoded on its own after the prompt, as generation produced it."""
    p = encode_prompts(tokenizer, [prompt])[0]
    enc = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
    ids = p + enc["input_ids"] + [tokenizer.eos_token_id]
    if outcome:
        return ids, [len(p) + len(enc["input_ids"]) - 1]
    ends = parse_solution(response).ends
    token_of = [next(t for t, (a, b) in enumerate(enc["offset_mapping"]) if a < e <= b) for e in ends]
    return ids, [len(p) + t for t in token_of]


def label_batch(tokenizer, prompts: Sequence[str], responses: Sequence[str], labels: Sequence[Labels],
                outcome: bool = False) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask (B, T) right-padded; positions (B, S) scored token indices (0
    where padded), targets (B, S) float, mask (B, S) 1 where labelled; count () labelled positions;
    scored (B,) scored positions per solution."""
    rows, pos = zip(*[scored_positions(tokenizer, x, y, outcome) for x, y in zip(prompts, responses)])
    ids, attn = right_pad(list(rows), tokenizer.pad_token_id)
    S = max(1, max(len(p) for p in pos))
    positions, targets, mask = (torch.zeros((len(rows), S)) for _ in range(3))
    for b, (ps, ls) in enumerate(zip(pos, labels)):
        positions[b, :len(ps)] = torch.tensor(ps, dtype=torch.float)
        for s, label in enumerate(ls[:len(ps)]):
            if label is not None:
                targets[b, s], mask[b, s] = float(label), 1.0
    return {"input_ids": ids, "attention_mask": attn, "positions": positions.long(), "targets": targets,
            "mask": mask, "count": mask.sum(), "scored": torch.tensor([len(p) for p in pos])}


def step_loss(model, batch: dict[str, torch.Tensor], num_labels: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
    """Binary cross-entropy of σ(head) at the scored positions against their labels, summed over
    labelled positions and divided by those of the whole optimizer step:
    L = −(1/|S|) Σ_(b,s)∈S [y log σ(h_bs) + (1 − y) log(1 − σ(h_bs))]."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[..., 0]  # (B, T)
    h = logits.gather(1, batch["positions"])  # (B, S)
    m = batch["mask"]
    bce = F.binary_cross_entropy_with_logits(h.float(), batch["targets"], reduction="none")
    loss = (bce * m).sum() / num_labels
    right = (((h > 0).float() == batch["targets"]).float() * m).sum() / m.sum().clamp(min=1)
    return loss, {"loss": loss.detach(), "accuracy": right.detach()}


@torch.no_grad()
def step_probabilities(model, tokenizer, prompts: Sequence[str], responses: Sequence[str], outcome: bool = False,
                       batch_size: int = 128) -> list[list[float]]:
    """σ(head) at each response's scored positions: per step and the answer (PRM), or one per
    response at its last token (ORM, `outcome=True`)."""
    out: list[list[float]] = []
    for s in range(0, len(prompts), batch_size):
        xs, ys = prompts[s:s + batch_size], responses[s:s + batch_size]
        batch = label_batch(tokenizer, xs, ys, [[] for _ in xs], outcome)
        logits = model(input_ids=batch["input_ids"].to(model.device),
                       attention_mask=batch["attention_mask"].to(model.device)).logits[..., 0].float().cpu()
        p = torch.sigmoid(logits.gather(1, batch["positions"]))
        out += [p[b, :k].tolist() for b, k in enumerate(batch["scored"].tolist())]
    return out


def solution_score(probs: Sequence[float], how: str = "product") -> float:
    """One score per solution from its step probabilities: their product, P(every step right) if
    the steps were independent (Lightman et al. §2.6), or their minimum, the weakest step
    (Math-Shepherd §3.4). No scored unit (no step, no answer): 0, nothing to verify."""
    if how not in ("product", "min"):
        raise ValueError(f"how must be 'product' or 'min', got {how!r}")
    if not probs:
        return 0.0
    return float(torch.tensor(probs, dtype=torch.float64).prod()) if how == "product" else float(min(probs))


def label_batches(tokenizer, prompts: Sequence[str], responses: Sequence[str], labels: Sequence[Labels],
                  batch_size: int, seed: int = 0, outcome: bool = False) -> Callable[[int], dict[str, torch.Tensor]]:
    """Micro-batch i of `label_batch`: `batch_size` solutions, a fresh shuffle every epoch."""
    from .train import batch_rows

    def batch_fn(i: int) -> dict[str, torch.Tensor]:
        rows = batch_rows(i, batch_size, len(prompts), seed).tolist()
        return label_batch(tokenizer, [prompts[j] for j in rows], [responses[j] for j in rows],
                           [labels[j] for j in rows], outcome)
    return batch_fn


def load_scorer(path, device=None, dtype=torch.float32):
    """(ORM or PRM, tokenizer) saved by a zoo entry."""
    from .models import load_tokenizer
    model = LlamaForTokenClassification.from_pretrained(str(path), dtype=dtype)
    return model.to(device or pick_device()).eval(), load_tokenizer(path)


NUMBER = re.compile(r"= (-?\d+)\.|Answer: (-?\d+)\.")
"""The number each scored unit commits to: a step's result, or the answer."""


@torch.no_grad()
def likelihood_probabilities(lm, tokenizer, prompts: Sequence[str], responses: Sequence[str],
                             batch_size: int = 64) -> list[list[float]]:
    """A verifier without labels: for each scored unit, the policy's own probability of the number
    it wrote there, p(result tokens | everything before) — how sure the model that wrote the step
    is of it. The same units as `step_probabilities` (steps, then the answer)."""
    out: list[list[float]] = []
    for s in range(0, len(prompts), batch_size):
        xs, ys = prompts[s:s + batch_size], responses[s:s + batch_size]
        heads = encode_prompts(tokenizer, list(xs))
        encs = [tokenizer(y, add_special_tokens=False, return_offsets_mapping=True) for y in ys]
        ids, attn = right_pad([h + e["input_ids"] for h, e in zip(heads, encs)], tokenizer.pad_token_id)
        logits = lm(input_ids=ids.to(lm.device), attention_mask=attn.to(lm.device)).logits.float().cpu()
        lp = torch.log_softmax(logits[:, :-1], -1).gather(2, ids[:, 1:, None])[..., 0]  # (B, T-1): log p(token t+1)
        for b, (h, e, y) in enumerate(zip(heads, encs, ys)):
            units = []
            for m in NUMBER.finditer(y):
                a, z = m.span(1) if m[1] is not None else m.span(2)
                toks = [t for t, (u, v) in enumerate(e["offset_mapping"]) if u < z and v > a]
                units.append(float(torch.exp(sum(lp[b, len(h) + t - 1] for t in toks))))
            out.append(units)
    return out
