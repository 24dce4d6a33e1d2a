"""Search with models: step units, PRM-guided beam search and reward-guided decoding on tiny
models — what they return, what they spend, and that weight 0 is greedy decoding."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from alignlab import models, prm, stepwise, world
from alignlab.rollout import left_pad, positions
from tests.conftest import TINY

PROBLEM = "What is 23 + 8 - 5 + 9?"


@pytest.mark.parametrize("text, unit, done", [
    (" Step: 23 + 8 = 31. Step: 31 - 5 = 26.", " Step: 23 + 8 = 31.", False),
    (" Answer: 35. Step: 1 + 1 = 2.", " Answer: 35.", True),
    (" I think so", " I think so", True),
    ("", "", True),
])
def test_first_unit_cuts_after_one_step_or_the_answer(text, unit, done):
    assert stepwise.first_unit(text) == (unit, done)


@pytest.fixture(scope="module")
def pair(tok, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    models.save(models.build_model(TINY, tok, seed=0), tok, folder)
    policy, _ = models.load(folder, device="cpu")
    scorer = prm.scorer_from(folder, device="cpu")
    torch.manual_seed(0)
    torch.nn.init.normal_(scorer.score.weight, std=0.3)
    return policy, scorer


def test_beam_search_returns_one_solution_per_problem_and_counts_its_tokens(pair, tok):
    policy, scorer = pair
    prompts = [PROBLEM, "What is 47 + 38?"]
    texts, spent = stepwise.prm_beam_search(policy, scorer, tok, prompts, width=2, expansions=2, max_steps=3,
                                            max_new_tokens=8)
    assert len(texts) == 2 and 0 < spent <= 3 * 2 * 2 * 2 * 8  # levels × problems × width × expansions × tokens


class Scripted:
    """A policy stand-in: from a partial solution with s steps it proposes, in turn, the problem's
    right next step and a slip (the answer line once the steps are done)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, policy, tok, texts, max_new_tokens, seed, batch_size, chat):
        out = []
        for j, text in enumerate(texts):
            task = world.parse_prompt(text.split("\n")[0].removeprefix("User: "))
            steps, _ = world.multistep.steps(task)
            have = len(prm.parse_solution(text).steps)
            if have == len(steps):
                out.append(f" Answer: {prm.parse_solution(text).steps[-1][3]}.")
                continue
            x, op, y, z = steps[have]
            prev = prm.parse_solution(text).steps[-1][3] if have else x
            z = prev + y if op == "+" else prev - y
            out.append(f" Step: {prev} {op} {y} = {z + (j + seed) % 2}. Step: junk")  # every other one slips
        self.calls += 1
        return SimpleNamespace(texts=out, mask=torch.ones(len(out), 5))


def test_beam_search_with_a_perfect_prm_finds_the_right_solution(monkeypatch):
    monkeypatch.setattr(stepwise, "generate", Scripted())
    perfect = lambda scorer, tok, xs, ys: [[0.99 if l else 0.01 for l in prm.gold_step_labels(x, y) if l is not None]
                                           for x, y in zip(xs, ys)]
    monkeypatch.setattr(prm, "step_probabilities", perfect)
    texts, spent = stepwise.prm_beam_search(None, None, None, [PROBLEM], width=2, expansions=2, max_steps=5)
    assert texts[0] == world.multistep.good(world.parse_prompt(PROBLEM))
    assert spent == 5 * (2 + 3 * 4)  # the root × 2, then 2 kept × 2 for the other two steps and the answer; 5 tokens each


def greedy(policy, tok, prompt: str, n: int) -> list[int]:
    rows = [tok.encode(world.chat_prompt(prompt), add_special_tokens=False)]
    out = []
    for _ in range(n):
        ids, attn = left_pad([rows[0] + out], tok.pad_token_id)
        with torch.no_grad():
            out.append(int(policy(input_ids=ids, attention_mask=attn, position_ids=positions(attn)).logits[0, -1].argmax()))
        if out[-1] == tok.eos_token_id:
            break
    return out


def test_reward_guided_decoding_at_weight_0_is_greedy_and_a_large_weight_changes_it(pair, tok):
    policy, scorer = pair
    texts, spent = stepwise.reward_guided_decode(policy, scorer, tok, [PROBLEM], weight=0.0, top_k=4, max_new_tokens=12)
    ids = greedy(policy, tok, PROBLEM, 12)
    assert texts[0] == tok.decode([t for t in ids if t != tok.eos_token_id]) and spent == len(ids)
    steered, _ = stepwise.reward_guided_decode(policy, scorer, tok, [PROBLEM], weight=1e4, top_k=4, max_new_tokens=12)
    assert steered[0] != texts[0]  # the scorer, not the policy, picks among the top 4
