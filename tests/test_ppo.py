"""The PPO trainer: log-probs agree between sampler and trainer, one update equals a hand-computed
one, accumulation equals a big batch, and a short run trains."""
from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
import torch

from alignlab import losses, models, ppo, reward, rollout, world
from alignlab.ppo import PPOConfig
from alignlab.train import STATE_FILE, accelerator

from conftest import TINY


@pytest.fixture
def four(tok, tmp_path):
    """Policy, reference (copies of one tiny LM) and a value model from a tiny 'reward model'."""
    lm = models.build_model(TINY, tok, seed=0).eval()
    models.save(lm, tok, tmp_path / "lm")
    rm = reward.reward_model_from(tmp_path / "lm", device="cpu")
    torch.nn.init.normal_(rm.score.weight, std=0.1)
    rm.save_pretrained(tmp_path / "rm")
    vm = ppo.value_model_from(tmp_path / "rm", device="cpu")
    return copy.deepcopy(lm), lm, vm


PROMPTS = world.preference_prompts(8)
CONFIG = dict(batch_size=8, minibatch_size=8, ppo_epochs=1, max_new_tokens=10, lr=1e-3, progress=False)


def test_value_model_reads_the_reward_models_weights(four, tok):
    _, _, vm = four
    assert vm.score.weight.abs().sum() > 0 and vm.config.num_labels == 1


def test_sampler_logprobs_equal_the_training_forward_and_ignore_padding(four, tok):
    policy, _, vm = four
    ro = rollout.generate(policy, tok, PROMPTS, max_new_tokens=10, seed=3)
    ids, attn, L = ppo.full_sequences(ro.prompt_ids, ro.tokens, ro.mask, tok.pad_token_id)
    with torch.no_grad():
        logp, values = ppo.response_logprobs_values(policy, vm, ids, attn, L, ro.tokens)
    assert torch.allclose(logp * ro.mask, ro.logprobs, atol=1e-4)  # ρ = 1 before any update
    assert values.shape == ro.tokens.shape
    for b in (0, 5):  # each row alone (no left padding) gives the same numbers
        ids1, attn1, L1 = ppo.full_sequences(ro.prompt_ids[b:b + 1], ro.tokens[b:b + 1], ro.mask[b:b + 1],
                                             tok.pad_token_id)
        with torch.no_grad():
            lp1, v1 = ppo.response_logprobs_values(policy, vm, ids1, attn1, L1, ro.tokens[b:b + 1])
        m = ro.mask[b].bool()
        assert torch.allclose(lp1[0][m], logp[b][m], atol=1e-5) and torch.allclose(v1[0][m], values[b][m], atol=1e-5)


def _experience(four, tok, config):
    policy, ref, vm = four
    acc = accelerator()
    return ppo.make_experience(acc, policy, vm, ref, tok, PROMPTS, ppo.gold_reward_fn, 0.05, config, seed=1), acc


def test_one_update_equals_a_hand_computed_step(four, tok):
    config = PPOConfig(**CONFIG)
    exp, acc = _experience(four, tok, config)
    policy, _, vm = four
    hand_p, hand_v = copy.deepcopy(policy).train(), copy.deepcopy(vm).train()
    # by hand: the losses on the whole rollout, one AdamW step
    logp, values = ppo.response_logprobs_values(hand_p, hand_v, exp.ids, exp.attn, exp.L, exp.tokens)
    pg, _ = losses.ppo_clip_loss(logp, exp.old_logprobs, exp.advantages, exp.mask, config.clip_eps)
    vf, _ = losses.value_loss(values, exp.old_values, exp.returns, exp.mask, config.vf_clip_eps)
    (pg + config.vf_coef * vf).backward()
    params = list(hand_p.parameters()) + list(hand_v.parameters())
    torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
    for p in {id(p): p for p in params}.values():  # one SGD step: θ ← θ − η g (Adam's
        p.data -= 0.5 * p.grad                    # normalisation would magnify rounding noise)
    # the trainer
    policy.train(), vm.train()
    both = torch.nn.ModuleDict({"p": policy, "v": vm})
    ppo.ppo_update(acc, policy, vm, torch.optim.SGD(both.parameters(), lr=0.5), exp, config)
    for a, b in zip(list(hand_p.parameters()) + list(hand_v.parameters()), list(policy.parameters()) + list(vm.parameters())):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()
    assert any(not torch.equal(a, b) for a, b in zip(hand_p.parameters(), four[1].parameters()))


def test_gradient_accumulation_2x4_equals_1x8(four, tok):
    base = PPOConfig(**CONFIG)
    exp, acc = _experience(four, tok, base)
    results = []
    for mb, accum in ((8, 1), (4, 2)):
        policy, vm = copy.deepcopy(four[0]).train(), copy.deepcopy(four[2]).train()
        config = PPOConfig(**{**CONFIG, "minibatch_size": mb, "grad_accum": accum})
        opt = torch.optim.SGD(torch.nn.ModuleDict({"p": policy, "v": vm}).parameters(), lr=0.5)
        ppo.ppo_update(acc, policy, vm, opt, exp, config)
        results.append([p.detach().clone() for p in list(policy.parameters()) + list(vm.parameters())])
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-6)


def test_adaptive_beta_moves_toward_the_target():
    assert ppo.adaptive_beta(0.1, kl=12.0, target=6.0, n_samples=1000, horizon=10_000) == pytest.approx(0.1 * 1.02)
    assert ppo.adaptive_beta(0.1, kl=3.0, target=6.0, n_samples=1000, horizon=10_000) == pytest.approx(0.1 * (1 - 0.02))


def test_a_short_run_adapts_beta_logs_gold_and_leaves_the_reference_alone(four, tok):
    policy, ref, vm = four
    config = PPOConfig(**{**CONFIG, "steps": 3, "ppo_epochs": 2, "minibatch_size": 4, "target_kl": 1.0})
    before, ref_before = ([p.detach().clone() for p in m.parameters()] for m in (policy, ref))
    history = ppo.train_ppo(policy, ref, vm, tok, PROMPTS, count_e, config, gold_fn=ppo.gold_reward_fn)
    assert len(history) == 3 and all(math.isfinite(h[k]) for h in history for k in ("score", "kl", "pg_loss", "vf_loss"))
    assert all(h["score"] >= 0 and "gold" in h for h in history)  # scored by count_e, gold only logged
    assert history[-1]["beta"] != config.beta or history[-2]["beta"] != config.beta  # the controller acted
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(ref_before, ref.parameters()))


def count_e(prompts: list[str], responses: list[str]) -> torch.Tensor:
    """A reward an untrained tiny model learns in seconds: how many letters 'e' its response has."""
    return torch.tensor([float(r.count("e")) for r in responses])


@pytest.fixture(scope="module")
def count_e_runs(tok, tmp_path_factory):
    """Twenty PPO iterations of a tiny model on `count_e` with β = 0 and β = 1 (seconds each):
    {β: history}. Measured over seeds 0-2: β = 0 goes from ~1 'e' to 7-10 at KL ~20 nats,
    β = 1 stays near 1.5 at KL ~1."""
    out = tmp_path_factory.mktemp("count_e")
    lm = models.build_model(TINY, tok, seed=0).eval()
    models.save(lm, tok, out / "lm")
    reward.reward_model_from(out / "lm", device="cpu").save_pretrained(out / "rm")
    runs = {}
    for beta in (0.0, 1.0):
        policy, ref = (models.load(out / "lm", device="cpu", dtype=torch.float32)[0] for _ in range(2))
        config = PPOConfig(**{**CONFIG, "steps": 20, "batch_size": 16, "ppo_epochs": 2, "lr": 1e-2, "beta": beta})
        runs[beta] = ppo.train_ppo(policy, ref, ppo.value_model_from(out / "rm", device="cpu"), tok, PROMPTS,
                                   count_e, config)
    return runs


def _mean(history: list[dict], key: str, rows: slice) -> float:
    return sum(h[key] for h in history[rows]) / len(history[rows])


def test_ppo_raises_the_reward_it_is_given(count_e_runs):
    """Guards the direction of the whole update: a flipped advantage (or surrogate) sign lowers it."""
    free = count_e_runs[0.0]
    assert _mean(free, "score", slice(-5, None)) > _mean(free, "score", slice(0, 5)) + 1.0


def test_a_larger_beta_ends_at_a_lower_kl(count_e_runs):
    """Guards the KL penalty's wiring: with β unused (or the log-probs swapped) both runs drift alike."""
    free, tight = (_mean(count_e_runs[b], "kl", slice(-5, None)) for b in (0.0, 1.0))
    assert tight < 0.25 * free, (tight, free)


def test_experience_rewards_are_the_kl_shaped_score(four, tok):
    """The rollout's rewards are kl_penalized_rewards(score, log π, log π_ref, mask, β), with log π
    from the policy and log π_ref from the reference, and GAE runs on exactly those rewards."""
    policy, ref, vm = four
    with torch.no_grad():  # a reference that differs from the policy, so the penalty is not zero
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    config, beta = PPOConfig(**CONFIG, whiten_advantages=False), 0.3
    acc = accelerator()
    exp = ppo.make_experience(acc, policy, vm, ref, tok, PROMPTS, count_e, beta, config, seed=1)
    with torch.no_grad():
        logp, _ = ppo.response_logprobs_values(policy, None, exp.ids, exp.attn, exp.L, exp.tokens)
        ref_logp, _ = ppo.response_logprobs_values(ref, None, exp.ids, exp.attn, exp.L, exp.tokens)
    assert torch.allclose(exp.old_logprobs, logp * exp.mask, atol=1e-5)
    assert torch.allclose(exp.ref_logprobs, ref_logp * exp.mask, atol=1e-5)
    assert ((logp - ref_logp) * exp.mask).abs().sum() > 0.1
    assert torch.equal(exp.scores, count_e(exp.prompts, exp.texts))
    shaped = losses.kl_penalized_rewards(exp.scores, logp * exp.mask, ref_logp * exp.mask, exp.mask, beta)
    assert torch.allclose(exp.rewards, shaped, atol=1e-5)
    adv, ret = losses.gae(shaped, exp.old_values, config.gamma, config.lam, exp.mask)
    assert torch.allclose(exp.advantages, adv, atol=1e-5) and torch.allclose(exp.returns, ret, atol=1e-5)


def test_whitened_advantages_keep_their_order(four, tok):
    """Whitening is (A − mean)/std over the response tokens: mean 0, std 1, and the same order as
    the raw advantages (a flipped sign would make PPO minimise the reward)."""
    raw, _ = _experience(four, tok, PPOConfig(**CONFIG, whiten_advantages=False))
    white, _ = _experience(four, tok, PPOConfig(**CONFIG))
    m = raw.mask.bool()
    a = raw.advantages[m].double()
    want = (a - a.mean()) / a.std(unbiased=False)
    assert torch.allclose(white.advantages[m].double(), want, atol=1e-4)
    assert (white.advantages[~m] == 0).all()


def test_value_model_has_no_dropout(four):
    assert four[2].dropout.p == 0.0


def test_zoo_ppo_entries_train_save_and_log_held_out_gold(alignlab_home, tiny_profile):
    from alignlab import recipes, zoo
    prof = tiny_profile.replace(ppo={"steps": 2, "batch": 8, "minibatch": 4, "eval_every": 1})
    entry = zoo.get("ppo", prof)
    history = entry.meta["history"]
    assert len(history) == 2 and all("heldout_gold" in h and math.isfinite(h["kl"]) for h in history)
    policy, tok = entry.load(device="cpu")
    sft, _ = zoo.get("sft", prof).load(device="cpu")
    assert any(not torch.equal(a, b) for a, b in zip(policy.parameters(), sft.parameters()))
    assert all(recipes.ppo_beta_name(b) in zoo.registry() for b in prof.ppo.betas)
    assert history[-1]["beta"] != prof.ppo.beta  # the main run adapts β toward its target KL
    assert entry.meta["ppo"]["ptx_coef"] == prof.ppo.ptx_coef > 0  # the main run is PPO-ptx


@pytest.fixture
def short_ppo(tiny_profile):
    """The tiny profile with two-iteration PPO runs: the PPO variants' tests share its cached runs."""
    return tiny_profile.replace(ppo={"steps": 2, "batch": 8, "minibatch": 4, "eval_every": 2})


def test_ppo_seed_runs_differ_only_in_seed_and_are_built_on_demand(alignlab_home, short_ppo):
    from alignlab import zoo
    assert "ppo" in zoo.names(short_ppo) and "ppo_seed1" not in zoo.names(short_ppo)  # not built by `zoo build`
    a, b = zoo.get("ppo", short_ppo).meta["ppo"], zoo.get("ppo_seed1", short_ppo).meta["ppo"]
    assert b["seed"] == 1 and {**a, "seed": 1, "checkpoint_dir": None} == {**b, "checkpoint_dir": None}


def test_the_zero_reward_control_sees_no_reward(alignlab_home, short_ppo):
    from alignlab import zoo
    entry = zoo.get("ppo_ptx_only", short_ppo)
    assert "ppo_ptx_only" not in zoo.names(short_ppo) and entry.meta["ppo"]["ptx_coef"] > 0
    assert all(h["score"] == 0 for h in entry.meta["history"])  # only the KL penalty and ptx act


def test_ppo_no_ptx_is_the_main_run_without_the_demonstrations_loss(alignlab_home, short_ppo):
    from alignlab import zoo
    main, plain = zoo.get("ppo", short_ppo).meta["ppo"], zoo.get("ppo_no_ptx", short_ppo).meta["ppo"]
    assert plain["ptx_coef"] == 0 and {**main, "ptx_coef": 0, "checkpoint_dir": None} == {
        **plain, "checkpoint_dir": None}


def test_static_decoder_gives_the_same_experience(four, tok):
    a, _ = _experience(four, tok, PPOConfig(**CONFIG, static_decode=False))
    b, _ = _experience(four, tok, PPOConfig(**CONFIG, static_decode=True))
    assert a.texts == b.texts and torch.allclose(a.advantages, b.advantages, atol=1e-5)


def noisy_count_e(prompts: list[str], responses: list[str]) -> torch.Tensor:
    """count_e plus noise from the global generators of torch, numpy and python: a run scored by
    it resumes exactly only if a checkpoint carries their states."""
    noise = torch.rand(len(responses)) + torch.from_numpy(np.random.rand(len(responses))).float() + random.random()
    return count_e(prompts, responses) + noise


def test_an_interrupted_run_resumes_to_the_same_weights(four, tok, tmp_path):
    config = PPOConfig(**{**CONFIG, "steps": 3, "minibatch_size": 4, "target_kl": 1.0})
    policy, ref, vm = four
    start_p, start_v = copy.deepcopy(policy.state_dict()), copy.deepcopy(vm.state_dict())
    full_p, full_v = copy.deepcopy(policy), copy.deepcopy(vm)
    full = ppo.train_ppo(full_p, ref, full_v, tok, PROMPTS, noisy_count_e, config)

    def interrupt(step, _):
        if step == 2:
            raise KeyboardInterrupt
        return {}
    ckpt = PPOConfig(**{**vars(config), "checkpoint_dir": str(tmp_path / "ckpt"), "checkpoint_every": 1})
    with pytest.raises(KeyboardInterrupt):
        ppo.train_ppo(policy, ref, vm, tok, PROMPTS, noisy_count_e, ckpt, callback=interrupt)
    state = torch.load(tmp_path / "ckpt" / STATE_FILE, weights_only=False)
    assert state["step"] == 1 and len(state["rng"]) == 1  # one process: its generators' states
    policy.load_state_dict(start_p), vm.load_state_dict(start_v)  # a fresh process: initial weights
    torch.manual_seed(123), np.random.seed(123), random.seed(123)  # and its own random state
    resumed = ppo.train_ppo(policy, ref, vm, tok, PROMPTS, noisy_count_e, ckpt)
    assert [h["step"] for h in resumed] == [1, 2, 3]
    assert [h["score"] for h in resumed] == pytest.approx([h["score"] for h in full], abs=1e-6)
    assert resumed[-1]["beta"] == pytest.approx(full[-1]["beta"])
    for a, b in zip([*policy.parameters(), *vm.parameters()], [*full_p.parameters(), *full_v.parameters()]):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()
    assert any(not torch.equal(a, start_p[k]) for k, a in policy.state_dict().items())


def test_ppo_ptx_mixes_in_the_pretraining_loss(four, tok):
    """PPO-ptx: with ptx_coef > 0 the update also lowers the LM loss on pretraining text."""
    from alignlab import train
    policy, ref, vm = four
    rows = train.pack(tok, world.pretraining_corpus(60), 32)
    ptx = train.packed_batches(rows, 4)
    fixed = ptx(0)
    with torch.no_grad():
        before = train.lm_loss(policy, fixed, None)[0].item()
    config = PPOConfig(**{**CONFIG, "steps": 3, "ptx_coef": 5.0, "lr": 3e-3})
    ppo.train_ppo(policy, ref, vm, tok, PROMPTS, ppo.gold_reward_fn, config, ptx_fn=lambda step: fixed)
    with torch.no_grad():
        after = train.lm_loss(policy, fixed, None)[0].item()
    assert after < before
