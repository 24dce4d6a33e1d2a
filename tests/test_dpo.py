"""The DPO trainer: batches, reference log-probs, agreement with TRL's DPOTrainer, and training."""
from __future__ import annotations

import copy
import math
import random

import pytest
import torch

from alignlab import dpo, models, world
from alignlab.reward import Group, rank_groups
from alignlab.train import TrainConfig

from conftest import TINY


def _pairs(n=6, seed=0):
    rng, groups = random.Random(seed), []
    for p in world.preference_prompts(n, seed=seed):
        resp = list(dict.fromkeys(world.sample_response(p, rng)[1] for _ in range(4)))
        if len(resp) >= 2:
            groups.append(Group(p, resp))
    return dpo.preference_pairs(rank_groups(groups, world.Labeler(seed=seed)))


@pytest.fixture
def pol_ref(tok, tmp_path):
    ref = models.build_model(TINY, tok, seed=0).eval()
    policy = models.build_model(TINY, tok, seed=1).eval()  # differs from ref: non-trivial log-ratios
    models.save(policy, tok, tmp_path / "policy")
    return policy, ref


def test_pair_batch_masks_responses_only(tok):
    pairs = _pairs(3)[:2]
    b = dpo.pair_batch(tok, pairs)
    assert b["input_ids"].shape[0] == 4 and b["count"].item() == 2
    for row, (p, y) in enumerate([(p, c) for p, c, _ in pairs] + [(p, r) for p, _, r in pairs]):
        ids, n_prompt = models.encode_dialog(tok, p, y)
        assert b["mask"][row].sum().item() == len(ids) - n_prompt  # response tokens + eos


@pytest.mark.parametrize("loss_type, method", [("sigmoid", "dpo"), ("hinge", "hinge"), ("ipo", "ipo")])
def test_first_step_loss_equals_trls_dpo_trainer(pol_ref, tok, tmp_path, loss_type, method):
    policy, ref = pol_ref
    pairs = _pairs(4)[:6]
    trainer = dpo.trl_dpo_trainer(policy, ref, tok, pairs, tmp_path / "trl", beta=0.3, loss_type=loss_type)
    examples = [trainer.train_dataset[i] for i in range(len(pairs))]
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, trainer.data_collator(examples))
        ref_lp = dpo.reference_logps(ref, tok, pairs)
        batch = dpo.pair_batch(tok, pairs) | {"ref": ref_lp}
        ours, _ = dpo.METHODS[method](beta=0.3)(policy, batch, batch["count"])
    assert ours.item() == pytest.approx(trl_loss.item(), rel=1e-4)


def test_training_raises_the_margin_and_no_gradient_reaches_the_reference(tok):
    policy = models.build_model(TINY, tok, seed=0)
    ref = copy.deepcopy(policy).eval()
    pairs = _pairs(20)
    # as if the caller had computed them with gradients on: the loss must still treat them as constants
    ref_lp = dpo.reference_logps(ref, tok, pairs).requires_grad_(True)
    frozen = ref_lp.detach().clone()
    history = dpo.train_preferences(policy, tok, pairs, ref_lp, TrainConfig(steps=30, lr=3e-3, progress=False, log_every=1),
                                    method="dpo", beta=0.5, batch_size=8)
    assert history[0]["loss"] == pytest.approx(math.log(2), abs=0.05)  # policy = ref at the start
    assert history[-1]["loss"] < history[0]["loss"] - 0.05 and history[-1]["margin"] > 0
    assert ref_lp.grad is None and torch.equal(ref_lp.detach(), frozen)


@pytest.mark.parametrize("method", ["simpo", "orpo", "ipo", "hinge", "kto"])
def test_every_method_trains(tok, method):
    policy = models.build_model(TINY, tok, seed=0)
    pairs = _pairs(8)
    ref_lp = dpo.reference_logps(copy.deepcopy(policy).eval(), tok, pairs)
    h = dpo.train_preferences(policy, tok, pairs, ref_lp, TrainConfig(steps=4, lr=1e-3, progress=False, log_every=1),
                              method=method, beta=0.5, batch_size=4)
    assert all(math.isfinite(r["loss"]) for r in h)
    with pytest.raises(ValueError, match="method must be one of"):
        dpo.train_preferences(policy, tok, pairs, ref_lp, TrainConfig(steps=1), method="dpop")


def test_zoo_dpo_entries_report_gold_and_kl(alignlab_home, tiny_profile):
    from alignlab import recipes, zoo
    prof = tiny_profile.replace(dpo={"steps": 2, "batch": 4})
    entry = zoo.get(recipes.dpo_beta_name(prof.dpo.betas[0]), prof)
    rep = entry.meta["report"]
    assert entry.meta["method"] == "dpo" and math.isfinite(rep["gain"]) and math.isfinite(rep["kl"])
    assert zoo.get("simpo", prof).meta["hyper"] == {"beta": 2.0, "gamma": 1.0}
    assert {"ipo", "simpo", "orpo", "kto"} <= set(zoo.names(prof))


def _completion_logps(model, ids, attn, completion_mask):
    from alignlab import losses
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]
    return (losses.token_logprobs(logits, ids[:, 1:]) * completion_mask[:, 1:]).sum(-1)


def test_kto_loss_equals_trls_kto_trainer(pol_ref, tok, tmp_path):
    """KTO's reference point z₀ is TRL's: the batch mean of log π − log π_ref on mismatched
    (prompt, completion) pairs its collator builds, clamped at 0; given it, the losses agree."""
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    from alignlab import losses
    policy, ref = pol_ref
    pairs = _pairs(6)[:4]
    rows = [{"prompt": world.chat_prompt(p), "completion": c, "label": True} for p, c, _ in pairs]
    rows += [{"prompt": world.chat_prompt(p), "completion": r, "label": False} for p, _, r in pairs]
    args = KTOConfig(output_dir=str(tmp_path / "kto"), report_to=[], use_cpu=True, per_device_train_batch_size=8,
                     beta=0.3, max_steps=1, gradient_checkpointing=False, disable_tqdm=True)
    trainer = KTOTrainer(model=policy, ref_model=ref, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tok)
    b = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, b)
        lp = [_completion_logps(m, b[f"{k}input_ids"], b[f"{k}attention_mask"], b[f"{k}completion_mask"])
              for k in ("", "KL_") for m in (policy, ref)]
        z0 = (lp[2] - lp[3]).mean().clamp(min=0)
        ours, _ = losses.kto_loss(lp[0], lp[1], b["label"], z0, beta=0.3)
    assert ours.item() == pytest.approx(trl_loss.item(), rel=1e-5)


def test_kto_trainer_uses_mismatched_pairs_for_its_reference_point(tok):
    pairs = _pairs(6)
    off = dpo.mismatched(pairs)
    assert [p for p, _, _ in off] == [p for p, _, _ in pairs]
    assert [c for _, c, _ in off] == [c for _, c, _ in pairs[1:] + pairs[:1]]
    model = models.build_model(TINY, tok, seed=0).eval()
    ref_lp = dpo.reference_logps(model, tok, pairs)
    batch = dpo.pair_batches(tok, pairs, ref_lp, 4)(0)
    with torch.no_grad():
        loss, m = dpo.METHODS["kto"](beta=0.1)(model, batch, batch["count"])
    assert m["reference_point"].item() == pytest.approx(0.0, abs=1e-5)  # policy = reference: z₀ = 0
    assert loss.item() == pytest.approx(0.5, abs=1e-5)  # and every value is σ(0) = ½


def test_first_step_equals_a_hand_computed_update(tok):
    """One step of `train_preferences` = Adam's first step written out by hand on the DPO loss's
    gradient: m̂ = g, v̂ = g², θ ← θ − η g / (√v̂ + ε) (no decay, no clipping, warm-up of one step)."""
    from alignlab import losses
    policy = models.build_model(TINY, tok, seed=1)
    ref = models.build_model(TINY, tok, seed=0).eval()
    pairs = _pairs(6)[:4]
    ref_lp = dpo.reference_logps(ref, tok, pairs)
    batch = dpo.pair_batches(tok, pairs, ref_lp, len(pairs))(0)  # the trainer's own first batch
    hand = copy.deepcopy(policy).train()
    c, r = dpo.sequence_logps(hand, batch)[0].chunk(2)
    losses.dpo_loss(c, r, batch["ref"][:, 0], batch["ref"][:, 1], beta=0.2)[0].backward()
    lr = 1e-3
    with torch.no_grad():
        for p in {id(p): p for p in hand.parameters()}.values():
            p -= lr * p.grad / (p.grad.abs() + 1e-8)
    config = TrainConfig(steps=1, lr=lr, warmup_steps=1, weight_decay=0.0, max_grad_norm=None, progress=False)
    dpo.train_preferences(policy, tok, pairs, ref_lp, config, method="dpo", beta=0.2, batch_size=len(pairs))
    for a, b in zip(hand.parameters(), policy.parameters()):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()


def test_preference_pairs_by_rank_gap():
    g = Group("p", ["a", "b", "c", "d"], ranking=[2, 0, 3, 1])  # c > a > d > b
    assert dpo.preference_pairs([g]) == [("p", x, y) for x, y in
                                         [("c", "a"), ("c", "d"), ("c", "b"), ("a", "d"), ("a", "b"), ("d", "b")]]
    assert dpo.preference_pairs([g], min_gap=2) == [("p", "c", "d"), ("p", "c", "b"), ("p", "a", "b")]
    assert dpo.preference_pairs([g], min_gap=4) == []


def test_far_apart_labels_agree_with_gold_more_often():
    rng, groups = random.Random(3), []
    for p in world.preference_prompts(150, seed=3):
        resp = list(dict.fromkeys(world.sample_response(p, rng)[1] for _ in range(6)))
        if len(resp) >= 5:
            groups.append(Group(p, resp))
    rows = dpo.label_quality_by_gap(rank_groups(groups, world.Labeler(seed=1)), gaps=(1, 4))
    assert [r["min_gap"] for r in rows] == [1, 4] and rows[0]["pairs"] > rows[1]["pairs"]
    assert all(abs(r["agree"] + r["tie"] + r["disagree"] - 1) < 1e-6 for r in rows)
    assert rows[1]["agree"] > rows[0]["agree"]
