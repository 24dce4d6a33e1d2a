"""Chapter 8's library: tasks, the classifier, its training, and the grid's analysis."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from alignlab import models, w2s, w2s_eval, world
from alignlab.profiles import ModelSize

from conftest import TINY, TINY_SMALL

CHOICE = re.compile(r"^Consider this conversation\.\nUser: (.*)\nPrinciple: .*\n\(A\)(.*)\n\(B\)(.*)\nAnswer: \($", re.S)


@pytest.mark.parametrize("name", ["sums", "totals", "preference"])
def test_a_label_says_which_response_the_gold_prefers(name):
    task = w2s.TASKS[name]
    examples = w2s.task_examples(name, 40, held_out=False)
    assert [e.label for e in examples] == [0, 1] * 20  # balanced by construction
    for e in examples:
        prompt, a, b = CHOICE.match(e.text).groups()
        assert prompt == e.group and (task.score(prompt, b) > task.score(prompt, a)) == bool(e.label)


def test_test_prompts_are_held_out_and_training_prompts_are_not():
    train = {e.group for e in w2s.task_examples("sums", 60, held_out=False)}
    test = {e.group for e in w2s.task_examples("sums", 60, held_out=True)}
    held = set(world.eval_prompts("arithmetic", n=w2s.HELD_OUT_POOL))
    assert test <= held and not train & held


def test_step_examples_are_true_steps_or_slips():
    for e in w2s.task_examples("step", 30, held_out=True):
        x, op, y, z = world.common.STEP.search(e.text).groups()
        assert ((int(x) + int(y) if op == "+" else int(x) - int(y)) == int(z)) == bool(e.label)


def test_fits_filters_long_texts():
    examples = w2s.task_examples("totals", 20, held_out=False, fits=lambda text: len(text) < 260)
    assert examples and all(len(e.text) < 260 for e in examples)


def test_the_halves_split_by_prompt():
    examples = w2s.task_examples("facts", 80, held_out=False, per_prompt=4)  # several examples per prompt
    a, b = w2s.split_halves(examples, seed=0)
    assert sorted(a + b) == list(range(len(examples)))
    assert not {examples[i].group for i in a} & {examples[i].group for i in b}
    assert w2s.split_halves(examples, seed=0) == (a, b) and w2s.split_halves(examples, seed=1) != (a, b)


def test_confidence_weight_follows_burns_et_als_code():
    assert w2s.confidence_weight(0.05, 0.5) == pytest.approx(0.025)  # α · step_frac in the warm-up
    assert w2s.confidence_weight(0.1, 0.5) == pytest.approx(0.05)
    assert w2s.confidence_weight(0.2, 0.5) == 0.5 and w2s.confidence_weight(0.0, 0.5) == 0.0


@pytest.mark.parametrize("tune", ["head", "mlp"])
def test_cached_features_give_the_whole_models_last_hidden_state(tok, tune):
    """The `mlp`/`head` classifier's path (features after the last block's attention → that block's
    MLP → final norm) is the model's own forward at the last token, padding and all."""
    lm = models.build_model(TINY, tok, seed=3).eval()
    texts = ["User: What is 12 + 30?\nAssistant:", "Hi.", "Consider this conversation.\nUser: Hello"]
    feats = w2s.features(lm, tok, texts, tune)
    clf = w2s.Classifier(lm, tune)
    top = clf.top
    x = feats["state"]
    via_cache = top["norm"](x + top["mlp"](top["mlp_norm"](x)))
    enc = tok(texts, padding=True, return_tensors="pt")
    full = lm.model(**enc).last_hidden_state[torch.arange(3), enc.attention_mask.sum(1) - 1]
    torch.testing.assert_close(via_cache, full, rtol=1e-5, atol=1e-5)


def test_the_head_starts_at_zero_and_all_tunes_agree_at_the_start(tok):
    lm = models.build_model(TINY, tok, seed=3).eval()
    texts = ["Hi.", "Hello there."]
    for tune in w2s.TUNES:
        probs = w2s.predict(w2s.Classifier(lm, tune), w2s.features(lm, tok, texts, tune))
        torch.testing.assert_close(probs, torch.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="tune must be one of"):
        w2s.Classifier(lm, "last_two")


def _separable(n=256, h=TINY.hidden_size, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, h, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return {"state": x}, y


@pytest.mark.parametrize("tune", ["head", "mlp"])
def test_fit_learns_a_separable_task(tok, tune):
    lm = models.build_model(TINY, tok, seed=0)
    feats, y = _separable()
    clf = w2s.Classifier(lm, tune)
    history = w2s.fit(clf, feats, w2s.one_hot(y.tolist()), w2s.FitConfig(lr=1e-2, epochs=8, evals=2),
                      evaluate=lambda m: {"acc": float((w2s.predict(m, feats).argmax(-1) == y).float().mean())})
    assert history[-1]["acc"] > 0.85 and len(history) == 2
    if tune == "head":  # a linear probe leaves the model's weights alone
        torch.testing.assert_close(clf.top["mlp"].up_proj.weight, lm.model.layers[-1].mlp.up_proj.weight.float())


def test_the_confidence_term_is_wired_in(tok):
    """Soft weak labels of 0.5 everywhere teach nothing; with α the student's own (hardened)
    predictions pull it on: its probabilities move away from 0.5 only then."""
    lm = models.build_model(TINY, tok, seed=0)
    feats, _ = _separable()
    flat = torch.full((len(feats["state"]), 2), 0.5)
    spread = {}
    for alpha in (0.0, 0.5):
        clf = w2s.Classifier(lm, "mlp")
        with torch.no_grad():  # a student that already leans, as after some training
            clf.head.weight.copy_(torch.randn(2, TINY.hidden_size, generator=torch.Generator().manual_seed(1)) * 0.1)
        w2s.fit(clf, feats, flat, w2s.FitConfig(lr=1e-2, epochs=3, alpha=alpha))
        spread[alpha] = float((w2s.predict(clf, feats)[:, 1] - 0.5).abs().mean())
    assert spread[0.5] > spread[0.0] + 0.05


def test_run_task_on_tiny_models(tok):
    lms = {"small": (models.build_model(TINY_SMALL, tok, seed=0).eval(), tok),
           "policy": (models.build_model(TINY, tok, seed=0).eval(), tok)}
    examples, test = w2s.task_examples("sums", 48, False), w2s.task_examples("sums", 16, True)
    rec = w2s_eval.run_task("sums", lms, examples, test, w2s.FitConfig(lr=1e-3, epochs=1, batch=8, evals=2), "mlp",
                            0.5, seeds=[0, 1])
    assert rec["n_train"] == 48 and rec["n_test"] == 16 and rec["base_rate"] == 0.5 and len(rec["runs"]) == 2
    run = rec["runs"][0]
    assert set(run["weak"]) == set(run["ceiling"]) == {"small", "policy"}
    student = run["students"]["small>policy"]
    assert set(student) == set(w2s_eval.LOSSES)
    curve = student["xent"]["curve"]
    assert len(curve) >= 2 and all(len(row) == 3 for row in curve) and 0 <= student["xent"]["agree"] <= 1


def _record(weak, ceiling, student, n=2000, agree=0.9):
    """A one-pair record (small > large) with the given accuracies per seed."""
    runs = [{"weak": {"small": w, "large": 0.0}, "ceiling": {"small": 0.0, "large": c},
             "students": {"small>large": {loss: {"acc": s, "agree": agree, "curve": [[1, s, agree]]}
                                          for loss, s in zip(w2s_eval.LOSSES, st)}}}
            for w, c, st in zip(weak, ceiling, student)]
    return {"task": "t", "n_test": n, "runs": runs}


def test_pgr_cells_are_means_of_per_seed_pgrs():
    rec = _record(weak=[0.6, 0.62], ceiling=[0.8, 0.72], student=[(0.7, 0.75), (0.67, 0.70)])
    cell = w2s_eval.grid(rec)["small>large"]
    assert cell["xent"]["pgr"] == pytest.approx(np.mean([0.5, 0.5]))
    assert cell["confidence"]["pgr"] == pytest.approx(np.mean([0.75, 0.8]))
    assert cell["confidence"]["pgr_std"] == pytest.approx(0.025)
    effect = w2s_eval.confidence_effect(rec)
    assert effect["pairs"] == 1 and effect["effect"] == pytest.approx(0.275)


def test_pgr_is_not_reported_over_a_gap_within_the_noise():
    rec = _record(weak=[0.62], ceiling=[0.64], student=[(0.70, 0.70)])  # 0.02 ≈ 1.3 SE on 2000
    cell = w2s_eval.grid(rec)["small>large"]["xent"]
    assert cell["pgr"] is None and cell["gap"] < w2s_eval.MIN_SE * cell["gap_se"]
    assert w2s_eval.confidence_effect(rec)["effect"] is None
    assert w2s_eval.grid(_record([0.62], [0.64], [(0.7, 0.7)], n=200_000))["small>large"]["xent"]["pgr"] is not None


def test_ceiling_rise_and_misfit():
    rise = w2s_eval.ceiling_rise({"small": 0.60, "policy": 0.65, "large": 0.70}, 1000)
    assert rise["rise"] == pytest.approx(0.10) and rise["holds"] and rise["in_se"] == pytest.approx(
        0.10 / np.hypot(np.sqrt(0.24 / 1000), np.sqrt(0.21 / 1000)))
    assert not w2s_eval.ceiling_rise({"small": 0.60, "large": 0.61}, 1000)["holds"]
    rows = w2s_eval.misfit(_record([0.6], [0.8], [(0.7, 0.75)], agree=0.8))
    assert [(r["gain"], r["disagreement"]) for r in rows] == [(pytest.approx(0.1), pytest.approx(0.2)),
                                                             (pytest.approx(0.15), pytest.approx(0.2))]


def test_pairs_run_from_smaller_to_larger():
    assert w2s_eval.pairs() == [("small", "policy"), ("small", "large"), ("policy", "large")]
    assert w2s_eval.entry_name("policy") == "base" and w2s_eval.entry_name("large") == "base@large"
    assert ModelSize  # the ladder's sizes are the profile's (tests/test_profiles.py)
