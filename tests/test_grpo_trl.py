"""TRL's GRPOTrainer as the alternative backend (`alignlab.grpo_trl`): our config maps onto TRL's,
TRL sees our prompt ids, both backends compute the same loss (and gradient) for the same rollout
through the real model on each side, and `train_grpo_trl` trains end to end."""
from __future__ import annotations

import pytest
import torch

from alignlab import grpo, grpo_trl, models, rollout, world
from alignlab.grpo import GRPOConfig
from alignlab.ppo import full_sequences, response_logprobs_values
from alignlab.train import accelerator

from conftest import TINY

NORMS = ["grpo", "dapo", "dr_grpo"]
PROMPTS = list(world.train_prompts("arithmetic")[:2])
G, T = 4, 6
LENGTHS = [T, 2, 5, 1, T, 3, 4, T]  # ragged, so the three norms give three different losses
# planted bugs (2026-12-01): LOSS_TYPES["grpo"] = "dapo" failed both grpo parity cases; use_bias_correction_kl=True
# the three two_epochs_kl ones (and the config test); group_logprobs with its first-token logits misrouted all six


def verifier(prompt: str, response: str) -> float:
    return float(len(response))  # every completion a different reward: no flat group


CASES = {  # on-policy, one optimizer step per rollout (ρ = 1, no old forward, no KL) / μ = 2 with a KL
    "one_step": dict(ppo_epochs=1, beta=0.0),
    "two_epochs_kl": dict(ppo_epochs=2, beta=0.1),
}


def config(norm: str, **changes) -> GRPOConfig:
    return GRPOConfig(**{"steps": 1, "batch_size": len(PROMPTS), "group_size": G, "minibatch_size": len(PROMPTS) * G,
                         "max_new_tokens": T, "norm": norm, "progress": False, **changes})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tok):
    path = tmp_path_factory.mktemp("grpo_trl_policy")
    models.save(models.build_model(TINY, tok, seed=0), tok, path)
    return path


def load_policy(model_dir):
    """The checkpoint (the reference) moved by seeded noise, as if trained a while: KL to it > 0."""
    policy, _ = models.load(model_dir, device="cpu", dtype=torch.float32)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return policy


def fixed_rollout(tok) -> rollout.Rollout:
    """B·G completions of random non-special tokens, row b ending in eos after LENGTHS[b] tokens."""
    rows = [p for p in PROMPTS for _ in range(G)]
    tokens = torch.randint(3, len(tok), (len(rows), T), generator=torch.Generator().manual_seed(0))
    for b, n in enumerate(LENGTHS):
        if n < T:
            tokens[b, n - 1] = tok.eos_token_id
    return rollout.make_rollout(tok, rows, models.encode_prompts(tok, rows), tokens, torch.zeros(len(rows), T))


def ours(model_dir, tok, c: GRPOConfig, monkeypatch):
    """The experience of the fixed rollout (old log-probs shifted so the clip binds when μ > 1) and
    GRPO.loss on all its rows, as one optimizer step → (exp, loss, metrics, parameter gradients)."""
    policy, (ref, _) = load_policy(model_dir), models.load(model_dir, device="cpu", dtype=torch.float32)
    monkeypatch.setattr(grpo, "_sample", lambda *a, **kw: fixed_rollout(tok))
    reward_fn = grpo.verifier_reward(verifier)
    acc = accelerator()
    exp = grpo.make_group_experience(acc, policy, ref if c.beta else None, tok, PROMPTS, reward_fn, c, seed=0)
    if exp.old_logprobs is not None:
        shift = 0.5 * torch.randn(exp.mask.shape, generator=torch.Generator().manual_seed(1))
        exp.old_logprobs = exp.old_logprobs + shift * exp.mask
    policy.train()
    loss, metrics = grpo.GRPO(policy, ref, tok, reward_fn, c).loss(
        acc, {"policy": policy}, exp, torch.arange(len(exp)), exp.mask.sum(), step=0)
    loss.backward()
    return exp, loss.detach(), metrics, [p.grad for p in policy.parameters()]


def theirs(model_dir, tok, c: GRPOConfig, exp: grpo.GroupExperience, tmp_path):
    """TRL's `_compute_loss` (grpo_trainer.py:3020) on the same rollout, its prompts tokenized by
    TRL itself, its log-probs from its own forward of its own copy of the model; in train mode, one
    micro-batch per optimizer step (what Trainer's loop sets) → (trainer, loss, metrics, gradients)."""
    trainer = grpo_trl.trl_grpo_trainer(load_policy(model_dir), tok, PROMPTS, verifier, c, tmp_path)
    prompt_ids = trainer._tokenize_prompts([world.chat_prompt(p) for p in exp.prompts])[0]
    assert prompt_ids == models.encode_prompts(tok, exp.prompts)  # TRL sees the ids we sample from
    ids, attn = rollout.left_pad(prompt_ids, tok.pad_token_id)
    inputs = {"prompt_ids": ids, "prompt_mask": attn, "completion_ids": exp.tokens,
              "completion_mask": exp.mask.long(), "advantages": exp.advantages, "num_items_in_batch": exp.mask.sum()}
    if exp.old_logprobs is not None:
        inputs["old_per_token_logps"] = exp.old_logprobs
    if exp.ref_logprobs is not None:
        inputs["ref_per_token_logps"] = exp.ref_logprobs
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = c.grad_accum
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    return trainer, loss.detach(), metrics, [p.grad for p in trainer.model.parameters()]


@pytest.mark.parametrize("rows, T", [([0, 5, 1, 7, 2, 4], T), ([3, 0, 6], 1), ([0, 4], T)])  # shuffled; T = 1; distinct
def test_group_logprobs_equal_one_forward_per_row(model_dir, tok, rows, T):
    """`grpo.group_logprobs` (each distinct prompt run once, its keys and values shared by its rows)
    equals `ppo.response_logprobs_values` (every row whole), values and gradients. The speed-up it
    buys is in bench/RESULTS.md. It lives here for this file's fixed ragged rollout, which both
    backends' loss tests use too."""
    policy = load_policy(model_dir).train()
    ro = fixed_rollout(tok)
    ids, attn, L = full_sequences(ro.prompt_ids, ro.tokens, ro.mask, tok.pad_token_id)
    idx = torch.tensor(rows)
    ids, attn, tokens, mask = ids[idx, :L + T], attn[idx, :L + T], ro.tokens[idx, :T], ro.mask[idx, :T]
    shared = grpo.group_logprobs(policy, ids, attn, L, tokens)
    whole = response_logprobs_values(policy, None, ids, attn, L, tokens)[0]
    got, want = (shared * mask).sum(), (whole * mask).sum()
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    g1, g2 = (torch.autograd.grad(x, list(policy.parameters())) for x in (got, want))
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6 * b.abs().max()) for a, b in zip(g1, g2))  # float rounding


def test_config_maps_onto_trls():
    c = config("dr_grpo", batch_size=4, minibatch_size=4, grad_accum=2, ppo_epochs=3, steps=5, scale=None,
               clip_eps=0.3, beta=0.04, temperature=0.7, lr=3e-4, log_every=2)
    args = grpo_trl.trl_grpo_config(c, "/tmp/unused")
    assert (args.num_generations, args.loss_type, args.scale_rewards) == (G, "dr_grpo", "none")
    assert (args.epsilon, args.beta, args.use_bias_correction_kl, args.num_iterations) == (0.3, 0.04, False, 3)
    assert (args.max_completion_length, args.temperature, args.learning_rate) == (T, 0.7, 3e-4)
    assert args.generation_batch_size == 16 and args.steps_per_generation == 4  # a rollout: 4 prompts × G
    assert grpo_trl.steps_per_rollout(c) == 3 * 16 // (4 * 2) == 6
    assert (args.max_steps, args.logging_steps) == (5 * 6, 2 * 6)
    assert grpo_trl.trl_grpo_config(config("grpo"), "/tmp/unused").scale_rewards == "group"
    with pytest.raises(ValueError, match="must divide the rollout"):
        grpo_trl.trl_grpo_config(config("grpo", minibatch_size=3), "/tmp/unused")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("norm", NORMS)
def test_same_loss_for_the_same_rollout(model_dir, tok, tmp_path, monkeypatch, norm, case):
    c = config(norm, **CASES[case])
    exp, loss, metrics, grads = ours(model_dir, tok, c, monkeypatch)
    assert exp.mask.sum(-1).tolist() == LENGTHS and (exp.advantages != 0).all()
    assert (exp.old_logprobs is None) == (case == "one_step")  # ρ = 1: the old forward is skipped, as TRL does
    trainer, trl_loss, trl_metrics, trl_grads = theirs(model_dir, tok, c, exp, tmp_path)
    assert loss.item() == pytest.approx(trl_loss.item(), rel=1e-5)
    for g, h in zip(grads, trl_grads):
        assert torch.allclose(g, h, rtol=1e-4, atol=1e-7)
    assert metrics["clip_frac"].item() == pytest.approx(trl_metrics["clip_ratio/region_mean"], abs=1e-6)
    if c.beta:
        assert 0 < metrics["clip_frac"] < 1 and metrics["kl"] > 1e-3
        assert metrics["kl"].item() == pytest.approx(trl_metrics["kl"], rel=1e-5)
        p_ids, p_attn = rollout.left_pad(models.encode_prompts(tok, exp.prompts), tok.pad_token_id)
        ids, attn = torch.cat([p_ids, exp.tokens], 1), torch.cat([p_attn, exp.mask.long()], 1)
        with torch.no_grad():  # TRL's reference, loaded from the policy's checkpoint, is our reference
            ref_logp = trainer._get_per_token_logps_and_entropies(trainer.ref_model, ids, attn, T)[0]
        assert torch.allclose(ref_logp * exp.mask, exp.ref_logprobs, atol=1e-5)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_train_grpo_trl_runs_and_trains(model_dir, tok):
    policy, _ = models.load(model_dir, device="cpu", dtype=torch.float32)
    before = [p.detach().clone() for p in policy.parameters()]
    c = config("dapo", steps=2, lr=1e-3, max_new_tokens=8)
    history = grpo_trl.train_grpo_trl(policy, tok, list(world.train_prompts("arithmetic")[:5]), verifier, c)
    assert [r["step"] for r in history] == [1, 2]
    assert all(r["reward"] > 0 and 0 <= r["flat_groups"] <= 1 and 0 < r["length"] <= 8 for r in history)
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))
    assert "forward" not in vars(policy) and not policy.training  # TRL's patched head is gone


def test_beta_needs_the_reference_checkpoint(tok):
    c = config("grpo", beta=0.04)
    with pytest.raises(ValueError, match="name_or_path"):
        grpo_trl.trl_grpo_trainer(models.build_model(TINY, tok), tok, PROMPTS, verifier, c, "/tmp/unused")
