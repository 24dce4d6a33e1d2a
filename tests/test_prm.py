"""Process and outcome rewards: the step parser (well-formed and malformed), gold step labels by
hand, Math-Shepherd labels from a scripted completer, the scored token positions, the loss (log 2
at a zero head, masked labels ignored) and a PRM that learns step labels."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alignlab import models, prm, train, world
from tests.conftest import TINY

PROBLEM = "What is 23 + 8 - 5 + 9?"                    # 31, 26, 35
RIGHT = " Step: 23 + 8 = 31. Step: 31 - 5 = 26. Step: 26 + 9 = 35. Answer: 35."
SLIP = " Step: 23 + 8 = 31. Step: 31 - 5 = 27. Step: 27 + 9 = 36. Answer: 36."      # step 2 wrong, carried on
UNFAITHFUL = " Step: 23 + 8 = 31. Step: 31 - 5 = 27. Step: 26 + 9 = 35. Answer: 35."  # a wrong step, the right answer
WRONG_OPERAND = " Step: 23 + 8 = 31. Step: 31 - 6 = 25. Step: 25 + 9 = 34. Answer: 34."  # true arithmetic, not the problem's step


def test_parser_reads_well_formed_steps_and_the_answer():
    p = prm.parse_solution(RIGHT)
    assert p.steps == [(23, "+", 8, 31), (31, "-", 5, 26), (26, "+", 9, 35)] and p.answer == 35 and not p.malformed
    assert [RIGHT[e - 1] for e in p.ends] == ["."] * 4 and RIGHT[:p.ends[0]] == " Step: 23 + 8 = 31."


@pytest.mark.parametrize("text, steps, malformed, answer", [
    (" Step: 2 + = 3. Step: 3 + 4 = 7. Answer: 7.", 1, ["Step: 2 + = 3."], 7),
    (" Step: 3 + 4 = 7. Step: 7 + 1", 1, ["Step: 7 + 1"], None),
    (" Answer: 12.", 0, [], 12),
    ("", 0, [], None),
    (" Step: Step: 1 + 1 = 2. Answer: two.", 1, ["Step:"], None),
])
def test_parser_flags_malformed_steps_and_never_crashes(text, steps, malformed, answer):
    p = prm.parse_solution(text)
    assert (len(p.steps), p.malformed, p.answer) == (steps, malformed, answer)
    assert len(p.ends) == steps + (answer is not None)


def test_gold_labels_stop_at_the_first_wrong_step():
    assert prm.gold_step_labels(PROBLEM, RIGHT) == [True, True, True, True]
    assert prm.gold_step_labels(PROBLEM, SLIP) == [True, False, None, None]
    assert prm.gold_step_labels(PROBLEM, UNFAITHFUL) == [True, False, None, None]  # the ORM would call it right
    assert prm.gold_step_labels(PROBLEM, WRONG_OPERAND) == [True, False, None, None]  # true arithmetic, wrong step
    assert prm.gold_step_labels(PROBLEM, " Answer: 35.") == [True]
    assert prm.gold_step_labels("What is 47 + 38?", " Step: 7 + 8 = 15. Step: 40 + 30 = 70. Step: 70 + 15 = 85. Answer: 86.") \
        == [True, True, True, False]
    assert prm.outcome_label(PROBLEM, UNFAITHFUL) and not prm.outcome_label(PROBLEM, SLIP)
    with pytest.raises(ValueError, match="worked-arithmetic"):
        prm.truth("How do I crack a coconut?")


def scripted_completer(calls: list):
    """Continues a prefix as a faithful solver would: the remaining operations applied, right, to
    the total its last step reached."""
    ops = world.parse_prompt(PROBLEM).data["ops"]

    def finish(text: str) -> str:
        steps = prm.parse_solution(text).steps
        total = steps[-1][3]
        for op, y in ops[len(steps):]:
            total += y if op == "+" else -y
        return f" Answer: {total}."

    def complete(texts: list[str]) -> list[str]:
        calls.append(len(texts))
        return [finish(t) for t in texts]
    return complete


def test_math_shepherd_labels_from_rollouts_and_every_step_after_a_bad_one_is_bad():
    calls: list = []
    labels = prm.auto_step_labels([PROBLEM] * 3, [RIGHT, SLIP, UNFAITHFUL], scripted_completer(calls), k=2)
    assert calls == [2 * 9]  # one batch: 3 prefixes per solution, k = 2 each
    assert labels[0] == [True, True, True, True]
    assert labels[1] == [True, False, False, False]  # from 27 the completer never reaches 35
    assert labels[2] == [True, False, False, True]   # the answer unit is the answer: right
    share, n = prm.label_agreement([prm.gold_step_labels(PROBLEM, y) for y in (RIGHT, SLIP, UNFAITHFUL)], labels)
    assert (share, n) == (1.0, 8)  # gold masks after the first wrong step: only 4 + 2 + 2 compared


def test_any_and_most_differ_when_a_minority_of_rollouts_succeed():
    answers = iter([" Answer: 35.", " Answer: 1.", " Answer: 2."] * 10)
    complete = lambda texts: [next(answers) for _ in texts]
    anyl = prm.auto_step_labels([PROBLEM], [RIGHT], complete, k=3, rule="any")[0]
    most = prm.auto_step_labels([PROBLEM], [RIGHT], complete, k=3, rule="most")[0]
    assert anyl[:3] == [True] * 3 and most[:3] == [False] * 3
    with pytest.raises(ValueError):
        prm.auto_step_labels([PROBLEM], [RIGHT], complete, rule="some")


def test_scored_positions_are_the_tokens_that_end_each_step(tok):
    ids, pos = prm.scored_positions(tok, PROBLEM, SLIP)
    assert len(pos) == 4 and all(tok.decode([ids[t]]).endswith(".") for t in pos)
    assert tok.decode(ids[:pos[0] + 1]).endswith("Step: 23 + 8 = 31.")
    ids_o, pos_o = prm.scored_positions(tok, PROBLEM, SLIP, outcome=True)
    assert ids_o == ids and pos_o == [len(ids) - 2]  # the last response token, before eos


def test_loss_is_log_2_at_a_zero_head_and_ignores_masked_steps(tok, tmp_path):
    models.save(models.build_model(TINY, tok, seed=0), tok, tmp_path / "lm")
    scorer = prm.scorer_from(tmp_path / "lm", device="cpu")
    labels = [prm.gold_step_labels(PROBLEM, y) for y in (RIGHT, SLIP)]
    batch = prm.label_batch(tok, [PROBLEM] * 2, [RIGHT, SLIP], labels)
    assert batch["count"].item() == 6 and batch["mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    loss, _ = prm.step_loss(scorer, batch, batch["count"])
    assert loss.item() == pytest.approx(math.log(2), abs=1e-5)
    flipped = dict(batch, targets=batch["targets"].clone())
    flipped["targets"][1, 2:] = 1 - flipped["targets"][1, 2:]  # change only masked labels
    with torch.no_grad():
        torch.nn.init.normal_(scorer.score.weight, std=0.5)
        assert prm.step_loss(scorer, batch, batch["count"])[0].item() == pytest.approx(
            prm.step_loss(scorer, flipped, flipped["count"])[0].item())


def test_a_prm_learns_which_steps_are_wrong(tok, tmp_path):
    models.save(models.build_model(TINY, tok, seed=0), tok, tmp_path / "lm")
    scorer = prm.scorer_from(tmp_path / "lm", device="cpu")
    xs = [PROBLEM] * 4
    ys = [RIGHT, SLIP, UNFAITHFUL, WRONG_OPERAND]
    labels = [prm.gold_step_labels(x, y) for x, y in zip(xs, ys)]
    batch = prm.label_batch(tok, xs, ys, labels)
    train.train(scorer, lambda i: batch, prm.step_loss, train.TrainConfig(steps=40, lr=3e-3, warmup_steps=1, progress=False))
    probs = prm.step_probabilities(scorer, tok, xs, ys)
    assert probs[0][1] > 0.5 > probs[1][1]  # step 2: right in RIGHT, wrong in SLIP
    scores = [prm.solution_score(p, "min") for p in probs]
    assert scores[0] == max(scores)
    outcome = prm.step_probabilities(scorer, tok, xs, ys, outcome=True)
    assert all(len(p) == 1 for p in outcome)


def test_solution_score_is_the_product_or_the_weakest_step():
    assert prm.solution_score([0.9, 0.5, 0.8]) == pytest.approx(0.36)
    assert prm.solution_score([0.9, 0.5, 0.8], "min") == 0.5
    assert prm.solution_score([]) == 0.0
    with pytest.raises(ValueError):
        prm.solution_score([0.5], "mean")


def test_likelihood_probabilities_are_the_policys_probability_of_each_number(tok):
    lm = models.build_model(TINY, tok, seed=0).eval()
    probs = prm.likelihood_probabilities(lm, tok, [PROBLEM, PROBLEM], [SLIP, " Answer: 35."], batch_size=1)
    assert [len(p) for p in probs] == [4, 1] and all(0 < q < 1 for p in probs for q in p)
    # the answer-only solution's one unit, by hand: Π over the tokens of "35" of p(token | everything before)
    head = models.encode_prompts(tok, [PROBLEM])[0]
    enc = tok(" Answer: 35.", add_special_tokens=False, return_offsets_mapping=True)
    ids = torch.tensor([head + enc["input_ids"]])
    with torch.no_grad():
        lp = torch.log_softmax(lm(input_ids=ids).logits[0].float(), -1)
    start = " Answer: 35.".index("35")
    toks = [t for t, (a, b) in enumerate(enc["offset_mapping"]) if a < start + 2 and b > start]
    by_hand = math.exp(sum(lp[len(head) + t - 1, enc["input_ids"][t]].item() for t in toks))
    assert probs[1][0] == pytest.approx(by_hand, rel=1e-4)
    batched = prm.likelihood_probabilities(lm, tok, [PROBLEM, PROBLEM], [SLIP, " Answer: 35."], batch_size=2)
    assert np.allclose(batched[0], probs[0], rtol=1e-4) and np.allclose(batched[1], probs[1], rtol=1e-4)  # padding changes nothing
