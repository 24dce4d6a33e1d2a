"""Reward models: the Bradley-Terry loss, pairs from rankings, training, and TRL agreement."""
from __future__ import annotations

import math
import random
from itertools import combinations

import pytest
import torch
from transformers import AutoModelForSequenceClassification
from transformers.modeling_outputs import SequenceClassifierOutput

from alignlab import models, reward, world
from alignlab.losses import bradley_terry_loss
from alignlab.reward import Group
from alignlab.train import TrainConfig

from conftest import TINY


def naive_bt(r_w, r_l, margin=None):
    total = 0.0
    for i in range(len(r_w)):
        d = float(r_w[i]) - float(r_l[i]) - (float(margin[i]) if margin is not None else 0.0)
        total += math.log(1 + math.exp(-d))
    return total / len(r_w)


@pytest.mark.parametrize("use_margin", [False, True])
def test_bradley_terry_loss_matches_a_naive_loop(use_margin):
    g = torch.Generator().manual_seed(0)
    r_w, r_l = torch.randn(7, generator=g) * 3, torch.randn(7, generator=g) * 3
    margin = torch.rand(7, generator=g) if use_margin else None
    loss, m = bradley_terry_loss(r_w[:, None], r_l[:, None], margin)  # HF heads' (B, 1) is squeezed
    assert loss.dim() == 0 and loss.item() == pytest.approx(naive_bt(r_w, r_l, margin), rel=1e-6)
    assert m["accuracy"].item() == pytest.approx(float((r_w > r_l).float().mean()))
    assert m["reward_margin"].item() == pytest.approx(float((r_w - r_l).mean()), rel=1e-6)  # no margin arg


def test_bradley_terry_loss_is_finite_for_huge_gaps_and_shift_invariant():
    loss, _ = bradley_terry_loss(torch.tensor([-1e4]), torch.tensor([1e4]))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(2e4)
    r_w, r_l, shift = torch.randn(5), torch.randn(5), torch.randn(5) * 10  # a function of the prompt
    assert bradley_terry_loss(r_w + shift, r_l + shift)[0].item() == pytest.approx(
        bradley_terry_loss(r_w, r_l)[0].item(), rel=1e-5)


def test_ranking_gives_all_pairs_consistent_with_the_order():
    ranking = [2, 0, 3, 1]
    pairs = reward.ranking_to_pairs(ranking)
    assert len(pairs) == 6 and len(set(pairs)) == 6
    pos = {item: i for i, item in enumerate(ranking)}
    assert all(pos[w] < pos[l] for w, l in pairs)


def _groups(n: int, k: int = 4, seed: int = 0, held_out: bool = False) -> list[Group]:
    rng = random.Random(seed)
    prompts = world.eval_prompts(n=n, seed=seed) if held_out else [
        world.train_prompts(world.FAMILIES[i % len(world.FAMILIES)])[i] for i in range(n)]
    groups = []
    for p in prompts:
        resp = list(dict.fromkeys(world.sample_response(p, rng)[1] for _ in range(k)))
        if len(resp) >= 2:
            groups.append(Group(p, resp))
    return reward.rank_groups(groups, world.Labeler(seed=seed))


def test_group_batch_keeps_each_prompts_pairs_together(tok):
    groups = _groups(6)
    batch = reward.group_batch(tok, groups)
    assert batch["count"].item() == reward.n_pairs(groups) == len(batch["chosen"])
    rows = [(g.prompt, r) for g in groups for r in g.responses]
    for c, r in zip(batch["chosen"].tolist(), batch["rejected"].tolist()):
        assert rows[c][0] == rows[r][0]  # a pair never mixes prompts
    picked = reward.take_pairs(groups, 10, seed=1)
    assert reward.n_pairs(picked) >= 10 and all(g in groups for g in picked)


def test_train_and_held_out_groups_never_share_a_prompt():
    train_p = {g.prompt for g in _groups(40)}
    test_p = {g.prompt for g in _groups(40, held_out=True)}
    assert train_p and test_p and not train_p & test_p


@pytest.fixture
def rm(tok, tiny_model, tmp_path):
    models.save(tiny_model, tok, tmp_path / "lm")
    rm = reward.reward_model_from(tmp_path / "lm", device="cpu")
    torch.nn.init.normal_(rm.score.weight, std=0.5)  # a non-trivial head, so losses differ from log 2
    return rm


def test_reward_model_is_a_standard_hf_checkpoint(rm, tok, tmp_path):
    groups = _groups(3)
    prompts, responses = reward.flatten(groups)
    ours = reward.rewards(rm, tok, prompts, responses, batch_size=4)
    rm.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").eval()
    assert torch.allclose(reward.rewards(again, tok, prompts, responses), ours, atol=1e-5)
    one_by_one = torch.stack([reward.rewards(rm, tok, [p], [r])[0] for p, r in zip(prompts, responses)])
    assert torch.allclose(one_by_one, ours, atol=1e-5)  # padding never changes a reward


def test_our_loss_equals_trls_on_a_batch_trls_collator_built(rm, tok, tmp_path):
    groups = _groups(4)
    trainer = reward.trl_reward_trainer(rm, tok, groups, tmp_path / "trl")
    examples = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    trl_batch = trainer.data_collator(examples)
    rm.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(rm, dict(trl_batch))
        ours_batch = reward.group_batch(tok, groups)
        ours, _ = reward.rm_loss(rm, ours_batch, ours_batch["count"])
    assert ours.item() == pytest.approx(trl_loss.item(), rel=1e-5)
    # and the same token ids: TRL's prompt + chosen + eos is our dialog layout
    first = examples[0]
    w, l = groups[0].pairs()[0]
    assert first["chosen_ids"] == models.encode_dialog(tok, groups[0].prompt, groups[0].responses[w])[0]


class FixedRewards(torch.nn.Module):
    """Returns given rewards (chosen half first, as TRL's collator orders them)."""

    def __init__(self, r):
        super().__init__()
        self.r = r

    def forward(self, **kwargs):
        return SequenceClassifierOutput(logits=self.r[:, None])


def test_bradley_terry_loss_equals_trls_reward_loss_on_the_same_tensors(rm, tok, tmp_path):
    trainer = reward.trl_reward_trainer(rm, tok, _groups(2), tmp_path / "trl")
    g = torch.Generator().manual_seed(3)
    r_w, r_l = torch.randn(9, generator=g), torch.randn(9, generator=g)
    ids = torch.zeros(18, 2, dtype=torch.long)
    trl = trainer.compute_loss(FixedRewards(torch.cat([r_w, r_l])), {"input_ids": ids, "attention_mask": ids + 1})
    assert bradley_terry_loss(r_w, r_l)[0].item() == pytest.approx(trl.item(), rel=1e-6)


def test_training_fits_the_labelers_choices(rm, tok):
    torch.nn.init.zeros_(rm.score.weight)
    groups = _groups(24, k=4)
    batch = reward.group_batch(tok, groups)
    before, _ = reward.rm_loss(rm, batch, batch["count"])
    history = reward.train_reward_model(rm, tok, groups, TrainConfig(steps=40, lr=3e-3, progress=False),
                                        groups_per_batch=8)
    with torch.no_grad():
        after, m = reward.rm_loss(rm, batch, batch["count"])
    assert before.item() == pytest.approx(math.log(2), abs=1e-6)  # zero head: every reward 0
    assert after.item() < before.item() - 0.1 and m["accuracy"] > 0.6
    assert all(math.isfinite(h["loss"]) for h in history)


def test_pair_accuracy_reports_bayes_ceiling_and_gold(rm, tok):
    groups = _groups(12, held_out=True)
    acc = reward.pair_accuracy(rm, tok, groups, world.Labeler(), seed=0)
    n = sum(len(list(combinations(g.responses, 2))) for g in groups)
    assert acc["n_pairs"] == n and acc["n_gold_pairs"] <= n
    bayes, expected = acc["labeler_bayes"][0], acc["labeler_expected"][0]
    assert 0.5 <= bayes <= 1 and expected <= bayes + 1e-12  # nothing beats the Bayes rate
    assert all(0 <= acc[k][0] <= 1 and acc[k][1] >= 0 for k in ("labeler", "gold"))


def test_clustered_se_reduces_to_the_plain_one_for_singletons():
    x = [1, 0, 1, 1, 0, 1]
    m, se = reward.clustered_mean_se(x, range(6))
    xs = torch.tensor(x, dtype=torch.float64)
    assert m == pytest.approx(4 / 6) and se == pytest.approx(float(xs.std(unbiased=False) / math.sqrt(6)))
    _, se_one = reward.clustered_mean_se(x, [0] * 6)
    assert se_one == pytest.approx(0.0)  # one cluster: the sums cancel


def test_zoo_builds_the_reward_models_from_one_set_of_samples(alignlab_home, tiny_profile):
    from alignlab import zoo
    rm_entry = zoo.get("rm", tiny_profile)
    biased = zoo.get("rm_length_biased", tiny_profile)
    data = reward.load_groups(zoo.get("rm_data", tiny_profile).path)
    assert set(data) == {"train", "test"} and data["train"] and data["test"]
    assert not {g.prompt for g in data["train"]} & {g.prompt for g in data["test"]}
    assert rm_entry.meta["pairs"] == reward.n_pairs(data["train"]) == biased.meta["pairs"]
    assert biased.meta["labeler"]["length_bias"] == world.LENGTH_BIAS and rm_entry.meta["labeler"]["length_bias"] == 0
    clean = zoo.get("rm_noiseless", tiny_profile).meta
    assert clean["labeler"]["temperature"] == 0 and clean["pairs"] == rm_entry.meta["pairs"]  # gold order, same pairs
    rm, tok = reward.load_reward_model(rm_entry.path, device="cpu")
    r = reward.rewards(rm, tok, [data["test"][0].prompt] * 2, data["test"][0].responses[:2])
    assert r.shape == (2,) and torch.isfinite(r).all()
    assert not (alignlab_home / "zoo" / "ci" / ".partial").exists() or not any(
        (alignlab_home / "zoo" / "ci" / ".partial").iterdir())  # resumable state cleaned up


def test_sample_groups_splits_k_over_policies_and_drops_duplicates(tok, model):
    other = models.build_model(TINY, tok, seed=1).eval()
    prompts = world.preference_prompts(5)
    groups = reward.sample_groups([model, other], tok, prompts, k=5, max_new_tokens=8, batch_size=4)
    assert groups and all(2 <= len(g.responses) <= 5 for g in groups)
    assert all(len(set(g.responses)) == len(g.responses) for g in groups)
    assert [g.prompt for g in groups] == [p for p in prompts if p in {g.prompt for g in groups}]
    again = reward.sample_groups([model, other], tok, prompts, k=5, max_new_tokens=8, batch_size=2)
    assert [g.responses for g in again] == [g.responses for g in groups]  # batching changes nothing


def test_preference_prompts_cover_every_family_and_no_held_out_prompt():
    prompts = world.preference_prompts(50)
    k = len(world.FAMILIES)
    assert [world.parse_prompt(p).family for p in prompts[:k]] == list(world.FAMILIES)
    held_out = set(world.eval_prompts(n=5000))
    assert not set(prompts) & held_out


def test_bradley_terry_loss_keeps_float64():
    r_w = torch.tensor([5000.1], dtype=torch.float64)
    loss, m = bradley_terry_loss(r_w, r_w - 0.1)
    assert loss.dtype == torch.float64 and m["reward_margin"].item() == pytest.approx(0.1, abs=1e-9)


def test_accuracy_breakdown_lists_families_then_components(rm, tok):
    groups = _groups(15, held_out=True)
    rows = reward.accuracy_breakdown(rm, tok, groups, world.Labeler())
    fams = [k for k in rows if not k.startswith("differs")]
    assert fams == [f for f in world.FAMILIES if f in fams]
    assert sum(rows[f]["n"] for f in fams) == len(reward.eval_pairs(groups))
    assert all(r["rm"] <= r["bayes"] + 1e-12 and 0.5 <= r["bayes"] <= 1 for r in rows.values())
