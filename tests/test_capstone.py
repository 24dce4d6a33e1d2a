"""Chapter 9's measures: win rates with intervals, the prompted base model, behaviour rates, the
alignment tax's corpus loss, best-of-N picks, and the two-objective choices."""
import copy
import math
import random

import numpy as np
import pytest
import torch

from alignlab import capstone, evaluate, models, multiobjective as mo, train, world
from alignlab.world.common import rude
from alignlab.world.corpus import train_prompts
from alignlab.world.gold import MODULE
from alignlab.profiles import get_profile


def test_win_rate_counts_ties_half_and_clusters_by_prompt():
    prompts = ["p", "p", "q", "q"]
    out = capstone.win_rate_ci(prompts, [1.0, 0.0, 2.0, 2.0], [0.0, 1.0, 2.0, 1.0])
    wins = np.array([1.0, 0.0, 0.5, 1.0])
    assert out["mean"] == pytest.approx(0.625)
    # cluster-robust se by hand: √(Σ_prompt (Σ_i (w_i − w̄))²) / n
    m = wins.mean()
    se = math.sqrt(((wins[:2] - m).sum()) ** 2 + ((wins[2:] - m).sum()) ** 2) / 4
    assert out["se"] == pytest.approx(se)
    assert (out["lo"], out["hi"]) == pytest.approx((m - 1.96 * se, m + 1.96 * se))
    assert (out["n"], out["prompts"], out["ties"]) == (4, 2, 0.25)
    with pytest.raises(ValueError, match="one reward"):
        capstone.win_rate_ci(prompts, [1.0], [0.0, 1.0])


def test_a_noiseless_labeler_wins_as_the_gold_does():
    prompts = world.eval_prompts("harmful", n=6, seed=0)
    good = [MODULE["harmful"].good(world.parse_prompt(p)) for p in prompts]
    bad = [MODULE["harmful"].bad(world.parse_prompt(p), random.Random(i))[1] for i, p in enumerate(prompts)]
    gold = capstone.win_rate_ci(prompts, [world.gold_reward(p, r) for p, r in zip(prompts, good)],
                                [world.gold_reward(p, r) for p, r in zip(prompts, bad)])
    sharp = capstone.labeler_win_rate(prompts, good, bad, world.Labeler(temperature=0.0))
    assert sharp["mean"] == pytest.approx(gold["mean"]) and gold["mean"] > 0.5
    noisy = capstone.labeler_win_rate(prompts, good, bad, world.Labeler())
    assert 0.5 < noisy["mean"] < sharp["mean"]  # label noise pulls a win toward a coin flip


def test_behaviour_rate_counts_only_samples_where_it_can_occur():
    prompts = capstone.unknown_country_prompts()[:2] + world.eval_prompts("arithmetic", n=2, seed=0)
    res = evaluate.score(prompts, [" The capital is Ardkenia.", " I don't know.", " 4.", " 5."])
    rate = capstone.behaviour_rate(res, "hallucination")
    assert rate["n"] == 2 and 0.0 <= rate["mean"] <= 1.0
    assert rate["mean"] == pytest.approx(np.mean([v for v in res.behaviours["hallucination"] if v is not None]))
    with pytest.raises(ValueError, match="flag"):
        capstone.behaviour_rate(res, "grumpy")


def test_unknown_country_prompts_are_held_out_and_unknown():
    prompts = capstone.unknown_country_prompts()
    assert len(prompts) == len(set(prompts)) >= 20
    assert all(world.parse_prompt(p).data["truth"] is None for p in prompts)
    assert not set(prompts) & set(train_prompts("knowledge"))


def test_instruction_effect_pairs_rudeness_with_and_without_the_instruction():
    prompts = world.eval_prompts("reviews", n=4, seed=0)
    polite = [MODULE["reviews"].good(world.parse_prompt(p)) for p in prompts]
    plain = evaluate.score(prompts, [rude(r, random.Random(0)) for r in polite])  # rude without the instruction
    asked = evaluate.score(capstone.polite_prompts(prompts), polite)  # polite when asked
    eff = capstone.instruction_effect(plain, asked)
    assert eff["without"]["mean"] == 1.0 and eff["with"]["mean"] == 0.0
    assert eff["difference"]["mean"] == -1.0  # instructed − plain: the instruction removed it all


@pytest.fixture(scope="module")
def tiny():
    prof = get_profile("ci")
    tok = models.train_tokenizer(world.pretraining_corpus(400), vocab_size=300)
    torch.manual_seed(0)
    return models.build_model(prof.policy, tok), tok


def test_few_shot_prefix_fits_its_budget_one_demo_per_family(tiny):
    _, tok = tiny
    prefix = capstone.few_shot_prefix(tok, budget=10_000)
    dialogs = [d for d in prefix.split(tok.eos_token) if d]
    families = [world.parse_prompt(d.split("\n")[0].removeprefix("User: ")).family for d in dialogs]
    covered = {world.parse_prompt(p).family for p, _ in world.sft_demonstrations(400)}
    assert sorted(families) == sorted(covered) and prefix.endswith(tok.eos_token)
    shown = {d.split("\n")[0].removeprefix("User: ") for d in dialogs}
    assert all(any(p in train_prompts(f) for f in world.FAMILIES) for p in shown)
    short = capstone.few_shot_prefix(tok, budget=60)
    assert len(tok.encode(short, add_special_tokens=False)) <= 60


def test_few_shot_sample_cuts_at_the_next_turn_and_refuses_an_overlong_prompt(tiny, monkeypatch):
    model, tok = tiny
    prompts = world.eval_prompts("arithmetic", n=3, seed=0)
    prefix = capstone.few_shot_prefix(tok, capstone.prefix_budget(tok, prompts, model.config.max_position_embeddings, 8))
    out = capstone.few_shot_sample(model, tok, prompts, prefix, max_new_tokens=8)
    assert len(out) == 3 and not any("\nUser:" in r for r in out)
    # the cut itself: a continuation that writes the next turn loses it
    fake = type("R", (), {"texts": [" 7.\nUser: and 8?"]})()
    monkeypatch.setattr(capstone, "generate", lambda *a, **k: fake)
    assert capstone.few_shot_sample(model, tok, prompts[:1], "", max_new_tokens=8) == [" 7."]
    with pytest.raises(ValueError, match="context"):
        capstone.few_shot_sample(model, tok, prompts, prefix * 20, max_new_tokens=8)


def test_corpus_loss_is_the_pretraining_loss(tiny):
    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    with torch.no_grad():  # an untrained model's loss is log V on every token: make tokens differ
        for p in model.parameters():
            p.mul_(8.0)
    docs = world.pretraining_corpus(60, seed=1)
    mean, se, n = capstone.corpus_loss(model, tok, docs, batch_size=4)
    rows = train.pack(tok, docs, model.config.max_position_embeddings)
    batch = train.packed_batches(rows, len(rows))(0)
    with torch.no_grad():
        ref = train.lm_loss(model, batch, batch["mask"].sum())[0].item()
    assert mean == pytest.approx(ref, rel=1e-4) and se > 0 and n == len(rows)


def test_best_of_n_picks_the_best_of_each_block():
    r = np.array([0.1, 0.9, 0.3, 0.5, 0.2, 0.4])
    assert capstone.best_of_n_choice(r, 3).tolist() == [1, 3]
    assert capstone.best_of_n_kl(1) == 0.0 and capstone.best_of_n_kl(4) == pytest.approx(math.log(4) - 0.75)


# --- two objectives ---------------------------------------------------------------------------


def _harmful_pair(harmful: bool):
    p = next(q for q in world.eval_prompts("harmful", n=40, seed=0) if world.parse_prompt(q).data["harmful"] == harmful)
    task = world.parse_prompt(p)
    return p, MODULE["harmful"].comply(task), " I can't help with that. It could hurt someone."


def test_the_two_labelers_disagree_on_harmful_requests_only():
    p, comply, refuse = _harmful_pair(True)
    assert mo.helpful_utility(p, comply) > mo.helpful_utility(p, refuse)
    assert mo.harmless_utility(p, comply) < mo.harmless_utility(p, refuse)
    q, comply_b, refuse_b = _harmful_pair(False)
    assert mo.helpful_utility(q, comply_b) > mo.helpful_utility(q, refuse_b)
    assert mo.harmless_utility(q, comply_b) == mo.harmless_utility(q, refuse_b) == 0.0
    assert mo.ObjectiveLabeler(objective="harmless", temperature=0.0).prob_prefers(p, refuse, comply) == 1.0
    with pytest.raises(ValueError, match="objective"):
        mo.ObjectiveLabeler(objective="wise").utility(p, comply)


def test_gold_axes_count_refusals_and_help():
    p, comply, refuse = _harmful_pair(True)
    q, comply_b, refuse_b = _harmful_pair(False)
    axes = mo.gold_axes([p, p, q, q, q], [refuse, comply, comply_b, refuse_b, " Maybe later."])
    # a benign request counts as helped unless refused: a vague answer is not an over-refusal
    assert axes["harmless"] == (0.5, 2) and axes["helpful"] == (pytest.approx(2 / 3), 3)


def test_pareto_mask_keeps_only_undominated_points():
    pts = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.4, 0.4], [0.5, 0.5]])
    assert mo.pareto_mask(pts).tolist() == [True, True, True, False, True]


def test_weighted_choice_moves_from_one_objective_to_the_other():
    help_z = np.array([[2.0, 0.0, 1.5]])
    harm_z = np.array([[-2.0, 2.0, 1.5]])
    assert mo.weighted_choice(help_z, harm_z, 1.0).tolist() == [0]
    assert mo.weighted_choice(help_z, harm_z, 0.0).tolist() == [1]
    assert mo.weighted_choice(help_z, harm_z, 0.5).tolist() == [2]
    with pytest.raises(ValueError):
        mo.weighted_choice(help_z, harm_z, 1.5)


def test_the_lagrange_multiplier_rises_until_the_constraint_holds():
    rng = np.random.default_rng(0)
    help_z = rng.normal(size=(200, 8))
    cost_z = help_z + 0.5 * rng.normal(size=(200, 8))  # the helpful answers are the costly ones
    free = mo.lagrangian_choice(help_z, cost_z, limit=10.0)
    assert free["lambda"] == 0.0  # a bound that never binds costs nothing
    out = mo.lagrangian_choice(help_z, cost_z, limit=0.0, steps=200, lr=0.2)
    assert out["lambda"] > 0.0
    rows = np.arange(200)
    assert cost_z[rows, out["pick"]].mean() <= 0.05  # the bound (nearly) holds at the final λ
    assert cost_z[rows, free["pick"]].mean() > 0.5
    lams = [h["lambda"] for h in out["history"]]
    assert lams[1] > lams[0]  # violated at λ = 0, so λ went up


def test_win_rate_by_family_splits_the_samples():
    prompts = world.eval_prompts("arithmetic", n=2, seed=0) + world.eval_prompts("reviews", n=2, seed=0)
    a = evaluate.score(prompts, [" 1.", " 2.", " A great film.", " Bad."])
    b = evaluate.score(prompts, [" 3.", " 4.", " Bad.", " A great film."])
    by = capstone.win_rate_by_family(a, b)
    assert set(by) == {"arithmetic", "reviews"} and all(r["n"] == 2 for r in by.values())
    whole = capstone.win_rate_ci(prompts, a.rewards, b.rewards)["mean"]
    assert np.mean([r["mean"] for r in by.values()]) == pytest.approx(whole)  # equal-sized families


def test_ptx_mixes_in_the_corpus_or_the_demonstrations(tiny):
    from alignlab.recipes.rlhf import ptx_batches
    prof = get_profile("ci").replace(pretrain={"corpus_dialogs": 200}, sft={"demos": 20})
    corpus, demos = ptx_batches(prof, tiny[1], "corpus")(0), ptx_batches(prof, tiny[1], "demos")(0)
    assert bool(corpus["mask"].all())  # pretraining text: every token is a target
    assert not bool(demos["mask"].all())  # demonstrations: the prompt's tokens are not
    assert corpus["input_ids"].shape[1] == prof.policy.max_length
    with pytest.raises(ValueError, match="ptx_source"):
        ptx_batches(prof, tiny[1], "books")
