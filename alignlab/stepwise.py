"""Search with models (chapter 6): a policy proposes, a process reward model steers.

`alignlab.search` holds the search logic as pure functions; this module plugs in the models:

- `prm_beam_search`: the policy samples `expansions` next steps from each partial solution, the
  PRM scores every partial solution (product of its step probabilities), the best `width` per
  problem go on (`search.beam_search_batch`: one batched generation and one scoring pass per level).
- `reward_guided_decode`: token by token, the policy's top-k next tokens re-ranked by
  logit + w · σ(PRM head at that token) (ARGS, Khanov et al. 2024, greedy) — k scorer passes per
  token, which is what it costs.

Both report what they spent in generated tokens, so chapter 6 compares them with best-of-N at
equal compute.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import torch

from . import prm, search, world
from .models import encode_prompts
from .rollout import generate, left_pad, positions

UNIT = re.compile(r"Step: -?\d+ [+-] -?\d+ = -?\d+\.|Answer: -?\d+\.")
"""A complete scored unit: one worked step, or the answer line."""


@dataclass(frozen=True)
class State:
    """A partial solution in the beam: its problem, the text so far, whether it is complete."""

    problem: int
    text: str
    done: bool = False


def first_unit(continuation: str) -> tuple[str, bool]:
    """The continuation up to the end of its first step or answer, and whether the solution ends
    there (an answer; or no complete unit at all, whose text is kept as it is and ends it)."""
    m = UNIT.search(continuation)
    if m is None:
        return continuation, True
    return continuation[:m.end()], m[0].startswith("Answer")


def prm_beam_search(policy, scorer, tokenizer, prompts: Sequence[str], width: int, expansions: int,
                    max_steps: int = 7, seed: int = 0, max_new_tokens: int = 24, batch_size: int = 256
                    ) -> tuple[list[str], int]:
    """One solution per prompt by PRM-guided step-level beam search; → (solutions, generated tokens)."""
    spent, seeds = [0], iter(range(seed * 10_000, 10**9))

    def expand(states: list[State]) -> list[list[State]]:
        todo = [s for s in states if not s.done]
        texts = [world.chat_prompt(prompts[s.problem]) + s.text for s in todo for _ in range(expansions)]
        kids: dict[State, list[State]] = {}
        if texts:
            ro = generate(policy, tokenizer, texts, max_new_tokens, seed=next(seeds), batch_size=batch_size, chat=False)
            spent[0] += int(ro.mask.sum())
            for j, cont in enumerate(ro.texts):
                parent = todo[j // expansions]
                unit, done = first_unit(cont)
                kids.setdefault(parent, []).append(State(parent.problem, parent.text + unit, done))
        return [kids.get(s, []) for s in states]

    def score(states: list[State]) -> list[float]:
        probs = prm.step_probabilities(scorer, tokenizer, [prompts[s.problem] for s in states], [s.text for s in states])
        return [prm.solution_score(p) for p in probs]
    roots = [State(i, "") for i in range(len(prompts))]
    out = search.beam_search_batch(roots, expand, score, width, max_steps)
    return [beam[0].text for beam, _ in out], spent[0]


@torch.no_grad()
def reward_guided_decode(policy, scorer, tokenizer, prompts: Sequence[str], weight: float, top_k: int = 4,
                         max_new_tokens: int = 48) -> tuple[list[str], int]:
    """Greedy reward-guided decoding; → (responses, generated tokens). weight 0 is greedy decoding."""
    rows = encode_prompts(tokenizer, list(prompts))
    out: list[list[int]] = [[] for _ in rows]
    live = list(range(len(rows)))
    eos = tokenizer.eos_token_id
    for _ in range(max_new_tokens):
        if not live:
            break
        ids, attn = left_pad([rows[b] + out[b] for b in live], tokenizer.pad_token_id, policy.device)
        logits = policy(input_ids=ids, attention_mask=attn, position_ids=positions(attn)).logits[:, -1].float()
        cands = search.top_k_tokens(logits, top_k)  # (B, k)
        cand_rows = [rows[b] + out[b] + [int(t)] for i, b in enumerate(live) for t in cands[i]]
        cids, cattn = left_pad(cand_rows, tokenizer.pad_token_id, scorer.device)
        h = scorer(input_ids=cids, attention_mask=cattn, position_ids=positions(cattn)).logits[:, -1, 0].float()
        chosen = search.reward_guided_step(logits, torch.sigmoid(h).view(len(live), top_k).to(logits.device),
                                           weight, top_k)  # (B,)
        for i, b in enumerate(live):
            out[b].append(int(chosen[i]))
        live = [b for b in live if out[b][-1] != eos]
    texts = [tokenizer.decode([t for t in r if t != eos]) for r in out]
    return texts, sum(len(r) for r in out)
