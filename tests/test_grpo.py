"""The GRPO trainer: it raises a reward a tiny model can learn, β keeps it near the reference,
minibatches add up to one big batch for every norm, the one-step shortcut skips the old
log-probs without changing the gradient, groups are consecutive, and a run resumes."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from alignlab import grpo, losses, models, rollout, world
from alignlab.grpo import GRPOConfig
from alignlab.ppo import response_logprobs_values
from alignlab.train import STATE_FILE, accelerator

from conftest import TINY

PROMPTS = world.preference_prompts(8)
HELD_OUT = world.preference_prompts(40)[8:]
CONFIG = dict(batch_size=8, group_size=4, minibatch_size=32, ppo_epochs=1, max_new_tokens=10, lr=1e-2,
              progress=False)
count_e = grpo.verifier_reward(lambda prompt, response: float(response.count("e")))
"""A reward an untrained tiny model learns in seconds: how many letters 'e' its response has."""


@pytest.fixture(scope="module")
def runs(tok):
    """Twenty GRPO iterations (one step each) from one tiny LM on `count_e`, β = 0 and β = 1 with
    a frozen copy as reference (~1 s each): ({β: (policy, history)}, reference). Measured over
    seeds 0-2: β = 0 goes from ~1.5 'e' to 2.6-4.2 at sequence KL 4-5 nats, β = 1 to ~2 at 0.3-0.4."""
    init = models.build_model(TINY, tok, seed=0).eval()
    out = {}
    for beta in (0.0, 1.0):
        policy, ref = copy.deepcopy(init), copy.deepcopy(init)
        config = GRPOConfig(**CONFIG, steps=20, beta=beta)
        out[beta] = policy, grpo.train_grpo(policy, ref, tok, PROMPTS, count_e, config, gold_fn=count_e)
        assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), init.parameters()))
        assert not any(p.requires_grad for p in ref.parameters())  # frozen by train_grpo
    return out, init


def held_out(policy, ref, tok) -> tuple[float, float]:
    """(mean count_e, mean sequence KL(π ‖ π_ref)) of `policy`'s samples on held-out prompts."""
    ro = rollout.generate(policy, tok, HELD_OUT, max_new_tokens=CONFIG["max_new_tokens"], seed=99)
    logp, mask = rollout.sequence_logprobs(policy, tok, HELD_OUT, response_ids=ro.tokens, mask=ro.mask)
    ref_logp, _ = rollout.sequence_logprobs(ref, tok, HELD_OUT, response_ids=ro.tokens, mask=ro.mask)
    return count_e(HELD_OUT, ro.texts).mean().item(), rollout.sequence_kl(logp, ref_logp, mask).mean().item()


def _mean(history: list[dict], key: str, rows: slice) -> float:
    return sum(h[key] for h in history[rows]) / len(history[rows])


def test_grpo_raises_the_reward_it_is_given(runs, tok):
    """Guards the direction of the update: a flipped advantage (or surrogate) sign lowers it."""
    (policy, history), init = runs[0][0.0], runs[1]
    assert _mean(history, "reward", slice(-5, None)) > _mean(history, "reward", slice(0, 5)) + 1.0
    assert held_out(policy, init, tok)[0] > held_out(init, init, tok)[0] + 1.5
    assert list(history[0]) == ["step", "reward", "flat_groups", "length", "gold", "pg_loss", "clip_frac",
                                "ratio", "seconds"]  # no "kl" without a reference in the loss
    assert all(h["gold"] == h["reward"] for h in history)  # gold_fn is logged (here the same function)


def test_a_larger_beta_stays_closer_to_the_reference(runs, tok):
    """Guards the KL term's wiring: with β unused, or the reference's log-probs taken from the
    policy, both runs drift alike."""
    (free, _), (tight, history), init = runs[0][0.0], runs[0][1.0], runs[1]
    kl_free, kl_tight = held_out(free, init, tok)[1], held_out(tight, init, tok)[1]
    assert kl_tight < 0.25 * kl_free, (kl_tight, kl_free)
    assert all(h["kl"] > 0 for h in history[1:])  # k3 to the reference, logged once the policy moved


# --- one rollout, by hand ---------------------------------------------------------------------


def experience(tok, policy, ref=None, prompts=PROMPTS[:2], reward_fn=count_e, **changes):
    config = GRPOConfig(**{**CONFIG, "batch_size": len(prompts), **changes})
    method = grpo.GRPO(policy, ref, tok, reward_fn, config)
    acc = accelerator()
    with torch.no_grad():
        exp = method.experience(acc, method.models(), prompts, seed=1)
    return method, acc, exp


def jitter(model: torch.nn.Module, std: float, seed: int) -> torch.nn.Module:
    """A copy of `model` with Gaussian noise on every weight: a policy a few updates away."""
    g = torch.Generator().manual_seed(seed)
    out = copy.deepcopy(model)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(std * torch.randn(p.shape, generator=g))
    return out


def gradient(policy: torch.nn.Module, loss_fn) -> tuple[object, list[torch.Tensor]]:
    """(loss_fn(), the gradient of policy's weights from what loss_fn backpropagates)."""
    policy.zero_grad(set_to_none=True)
    out = loss_fn()
    return out, [p.grad.clone() for p in policy.parameters()]


def all_close(a: list[torch.Tensor], b: list[torch.Tensor], atol: float = 1e-6) -> bool:
    return all(torch.allclose(x, y, atol=atol) for x, y in zip(a, b))


def cut(exp: grpo.GroupExperience, lengths: list[int]) -> grpo.GroupExperience:
    """`exp` with row i's completion cut to lengths[i] tokens, as if it had ended there (an
    untrained model almost never samples eos within a few tokens)."""
    mask = exp.mask * (torch.arange(exp.mask.shape[1]) < torch.tensor(lengths)[:, None])  # (N, T)
    attn = torch.cat([exp.attn[:, :exp.L], mask.long()], 1)
    return dataclasses.replace(exp, mask=mask, attn=attn, old_logprobs=exp.old_logprobs * mask,
                               ref_logprobs=exp.ref_logprobs * mask)


@pytest.mark.parametrize("norm", ["grpo", "dapo", "dr_grpo"])
def test_minibatches_add_up_to_one_big_batch(tok, tiny_model, norm):
    """Guards `step_weight`: two minibatches of 4 rows (each trimmed to its longest completion, 4
    and 8 of max_new_tokens = 10 columns) and grad_accum = 2 give the gradient of `grpo_loss` on
    all 8 rows at once, over the full width (dr_grpo divides by 8 × max_new_tokens)."""
    ref = jitter(tiny_model, 0.05, seed=1)
    method, acc, exp = experience(tok, tiny_model, ref, minibatch_size=4, grad_accum=2, ppo_epochs=2,
                                  beta=0.5, norm=norm)  # two passes: the old log-probs are computed
    exp = cut(exp, [1, 3, 2, 4, 8, 5, 7, 6])
    assert exp.mask.shape[1] == method.config.max_new_tokens
    policy = method.policy = jitter(tiny_model, 0.05, seed=2)  # ρ ≠ 1: the clip acts
    trained, num_tokens = method.models(), exp.mask.sum()
    _, split = gradient(policy, lambda: sum(method.loss(acc, trained, exp, idx, num_tokens, 0)[0]
                                            for idx in torch.arange(8).split(4)).backward())

    def whole():
        logp, _ = response_logprobs_values(policy, None, exp.ids, exp.attn, exp.L, exp.tokens)
        loss, metrics = losses.grpo_loss(logp, exp.old_logprobs, exp.advantages, exp.mask, 0.2, exp.ref_logprobs,
                                         0.5, norm)
        assert metrics["clip_frac"] > 0 and metrics["kl"] > 0
        loss.backward()
    assert all_close(split, gradient(policy, whole)[1])


def test_one_step_per_rollout_skips_the_old_logprobs_and_keeps_the_gradient(tok, tiny_model):
    """ppo_epochs = 1 with every row in one optimizer step: π_old = π_θ, so the old log-probs are
    not computed, and the loss and gradient are those with recomputed ones (ρ = 1)."""
    method, acc, exp = experience(tok, tiny_model, minibatch_size=4, grad_accum=2)
    assert exp.old_logprobs is None and len(exp) == 8
    with torch.no_grad():
        old = response_logprobs_values(tiny_model, None, exp.ids, exp.attn, exp.L, exp.tokens)[0] * exp.mask
    recomputed = dataclasses.replace(exp, old_logprobs=old)

    def loss_on(e: grpo.GroupExperience):
        out = method.loss(acc, method.models(), e, torch.arange(8), e.mask.sum(), 0)
        out[0].backward()
        return out
    (skipped, metrics), grads = gradient(tiny_model, lambda: loss_on(exp))
    (want, _), want_grads = gradient(tiny_model, lambda: loss_on(recomputed))
    assert metrics["ratio"].item() == 1.0 and metrics["clip_frac"].item() == 0.0
    assert torch.allclose(skipped, want, atol=1e-6) and all_close(grads, want_grads)


@pytest.mark.parametrize("changes", [{"ppo_epochs": 2}, {"minibatch_size": 2}])  # two passes, or two steps
def test_otherwise_the_old_logprobs_are_the_policys_and_the_reference_its_own(tok, model, changes):
    ref = jitter(model, 0.05, seed=1)
    _, _, exp = experience(tok, model, ref, beta=0.1, **changes)
    with torch.no_grad():
        logp, ref_logp = (response_logprobs_values(m, None, exp.ids, exp.attn, exp.L, exp.tokens)[0] * exp.mask
                          for m in (model, ref))
    assert torch.allclose(exp.old_logprobs, logp, atol=1e-5) and torch.allclose(exp.ref_logprobs, ref_logp, atol=1e-5)
    assert (logp - ref_logp).abs().sum() > 0.1
    assert experience(tok, model, ref, **changes)[2].ref_logprobs is None  # β = 0: the reference is not run


# --- groups -----------------------------------------------------------------------------------

FLAT = PROMPTS[1]


def by_position(prompts: list[str], responses: list[str]) -> torch.Tensor:
    """0 for every completion of FLAT (a flat group), the row's index for the others: within a
    consecutive group of G, rewards g·G, …, g·G + G − 1, so advantages ∝ (−1.5, −0.5, 0.5, 1.5)."""
    return torch.tensor([0.0 if p == FLAT else float(i) for i, p in enumerate(prompts)])


@pytest.mark.parametrize("scale", ["group", None])
def test_groups_are_consecutive_and_advantages_are_per_group(tok, model, scale):
    prompts = PROMPTS[:3]
    method, acc, exp = experience(tok, model, prompts=prompts, reward_fn=by_position, scale=scale, temperature=0.7)
    assert exp.prompts == [p for p in prompts for _ in range(4)]
    assert exp.texts == rollout.generate(model, tok, exp.prompts, max_new_tokens=10, temperature=0.7, seed=1).texts
    assert torch.equal(exp.rewards, by_position(exp.prompts, exp.texts))
    centred = torch.tensor([-1.5, -0.5, 0.5, 1.5])
    std = torch.tensor([1.0, 2.0, 3.0, 4.0]).std()  # std of any 4 consecutive integers
    want = centred if scale is None else centred / (std + 1e-4)
    assert torch.allclose(exp.advantages, torch.cat([want, torch.zeros(4), want]), atol=1e-6)
    stats = method.stats(acc, exp)
    assert stats["flat_groups"].item() == pytest.approx(1 / 3) and stats["reward"] == exp.rewards.mean()


def test_flat_groups_is_the_share_of_groups_with_equal_rewards(tok, model):
    method, acc, exp = experience(tok, model, prompts=PROMPTS[:4], group_size=3)
    for rewards, share in (([1, 1, 1, 0, 0, 0, 2, 2, 2, 5, 5, 5], 1.0), ([1, 1, 1, 0, 1, 0, 2, 2, 2, 0, 0, 5], 0.5),
                           ([1, 0, 1, 0, 0, 1, 0, 2, 2, 5, 5, 0], 0.0)):
        e = dataclasses.replace(exp, rewards=torch.tensor(rewards, dtype=torch.float))
        assert method.stats(acc, e)["flat_groups"].item() == share, rewards


# --- errors and resuming ----------------------------------------------------------------------


@pytest.mark.parametrize("changes, match", [
    ({"beta": 0.04}, "beta = 0.04 > 0 needs a reference model"),  # and none is given
    ({"group_size": 1, "minibatch_size": 8}, "group_size must be at least 2"),
    # steps that do not tile the rollout: online.update would run none, or drop the remainder, silently
    ({"batch_size": 2, "group_size": 4, "minibatch_size": 16}, "must divide the rollout"),
    ({"batch_size": 2, "group_size": 4, "minibatch_size": 4, "grad_accum": 3}, "must divide the rollout"),
    ({"batch_size": 2, "group_size": 4, "minibatch_size": 6}, "must divide the rollout"),
])
def test_bad_settings_are_refused(tok, model, changes, match):
    config = GRPOConfig(**{**CONFIG, "steps": 1, **changes})
    with pytest.raises(ValueError, match=match):
        grpo.train_grpo(copy.deepcopy(model), None, tok, PROMPTS, count_e, config)


def test_an_interrupted_run_resumes_to_the_same_weights(tok, tiny_model, tmp_path):
    """Two passes of two minibatches per rollout (old log-probs, shuffles) and β > 0: the loop is
    PPO's, tests/test_online.py checks its random state; this checks GRPO keeps no state of its own."""
    config = GRPOConfig(**{**CONFIG, "steps": 3, "batch_size": 4, "minibatch_size": 8, "ppo_epochs": 2,
                           "beta": 0.1})
    ref = copy.deepcopy(tiny_model)
    whole = copy.deepcopy(tiny_model)
    full = grpo.train_grpo(whole, ref, tok, PROMPTS, count_e, config)

    def interrupt(step, _):
        if step == 2:
            raise KeyboardInterrupt
        return {}
    ckpt = GRPOConfig(**{**vars(config), "checkpoint_dir": str(tmp_path), "checkpoint_every": 1})
    with pytest.raises(KeyboardInterrupt):
        grpo.train_grpo(copy.deepcopy(tiny_model), ref, tok, PROMPTS, count_e, ckpt, callback=interrupt)
    assert torch.load(tmp_path / STATE_FILE, weights_only=False)["step"] == 1
    resumed = copy.deepcopy(tiny_model)
    history = grpo.train_grpo(resumed, ref, tok, PROMPTS, count_e, ckpt)
    assert [h["step"] for h in history] == [1, 2, 3]
    assert [h["reward"] for h in history] == pytest.approx([h["reward"] for h in full], abs=1e-6)
    for a, b in zip(resumed.parameters(), whole.parameters()):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()
    assert any(not torch.equal(a, b) for a, b in zip(resumed.parameters(), tiny_model.parameters()))
