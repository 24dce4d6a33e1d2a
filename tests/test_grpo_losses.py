"""GRPO's advantages and loss: by hand, against naive per-token loops, and against TRL's
GRPOTrainer._compute_loss on the same tensors (trl 1.16.0)."""
from __future__ import annotations

import math

import pytest
import torch

from alignlab import losses

NORMS = ["grpo", "dapo", "dr_grpo"]
EPS = 0.2


# --- advantages -----------------------------------------------------------------------------


def test_group_advantages_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.1, 0.1, 0.1, 0.1])  # two groups of 4; the second is flat
    std = math.sqrt(4 * 0.5 ** 2 / 3)  # unbiased: ÷ (G − 1); the population std would be 0.5
    want = [0.5 / (std + 1e-4), -0.5 / (std + 1e-4), -0.5 / (std + 1e-4), 0.5 / (std + 1e-4), 0, 0, 0, 0]
    adv = losses.grpo_advantages(rewards, 4)
    assert adv.tolist() == pytest.approx(want, rel=1e-6)
    assert torch.equal(adv[4:], torch.zeros(4))  # exactly 0, not 1e-8 / 1e-4
    plain = losses.grpo_advantages(rewards, 4, scale=None)  # Dr. GRPO: centred only
    assert plain.tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0], abs=1e-7)
    assert torch.equal(plain[4:], torch.zeros(4))
    assert losses.grpo_advantages(rewards, 2).tolist() == pytest.approx([0.7070, -0.7070, -0.7070, 0.7070] + [0] * 4, abs=1e-4)


def test_flat_groups_are_exactly_zero_never_nan():
    for value in (0.1, 1 / 3, -7.3, 1e6, 0.0):
        for scale in ("group", None):
            adv = losses.grpo_advantages(torch.full((6,), value), 3, scale=scale, eps=0.0)  # even with no eps
            assert torch.equal(adv, torch.zeros(6)), (value, scale, adv)


def test_advantages_match_trls_formula():
    """grpo_trainer.py:2763-2787 (sum_then_normalize, scale_rewards="group"): mean by group, TRL's
    own `nanstd` by group, (r − mean) / (std + 1e-4)."""
    from trl.trainer.utils import nanstd
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(12, generator=g)
    grouped = rewards.view(-1, 4)
    mean = grouped.mean(1).repeat_interleave(4)
    std = nanstd(grouped, dim=1).repeat_interleave(4)
    assert torch.allclose(losses.grpo_advantages(rewards, 4), (rewards - mean) / (std + 1e-4), atol=1e-6)
    assert torch.allclose(losses.grpo_advantages(rewards, 4, scale=None), rewards - mean, atol=1e-6)


@pytest.mark.parametrize("rewards, group_size, kwargs, match", [
    (torch.zeros(7), 4, {}, "not a multiple of 4"),
    (torch.zeros(4), 1, {}, "at least 2"),
    (torch.zeros(4), 0, {}, "at least 2"),
    (torch.zeros(2, 4), 4, {}, "one \\(B,\\) row"),
    (torch.zeros(8), 4, {"scale": "batch"}, "scale must be"),
    (torch.zeros(8), 4, {"scale": "none"}, "scale must be"),
])
def test_advantage_errors(rewards, group_size, kwargs, match):
    with pytest.raises(ValueError, match=match):
        losses.grpo_advantages(rewards, group_size, **kwargs)


# --- the loss -------------------------------------------------------------------------------


def batch(seed=0, T=5):
    """Six completions (two prompts × G = 3) of lengths T, T−2, 1, 3, 0, 2; junk under the padding,
    ratios spread well beyond 1 ± 0.2, advantages from grpo_advantages."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(6, T)
    for b, n in enumerate([T, T - 2, 1, 3, 0, 2]):
        mask[b, :n] = 1
    logp = -torch.rand(6, T, generator=g) * 3
    old = logp + 0.4 * torch.randn(6, T, generator=g)
    ref = logp + 0.5 * torch.randn(6, T, generator=g)
    adv = losses.grpo_advantages(torch.randn(6, generator=g), 3)
    return logp, old, ref, adv, mask


def naive_grpo(logp, old, ref, adv, mask, beta, norm):
    """One token at a time in Python floats, the formula of DeepSeekMath eq. 3-4."""
    B, T = mask.shape
    rows, total, count = [], 0.0, 0
    for b in range(B):
        row = []
        for t in range(T):
            if mask[b, t] == 0:
                continue
            rho, a = math.exp(logp[b, t] - old[b, t]), adv[b].item()
            ell = -min(rho * a, min(max(rho, 1 - EPS), 1 + EPS) * a)
            d = (ref[b, t] - logp[b, t]).item()
            ell += beta * (math.exp(d) - d - 1)
            row.append(ell)
        rows.append(sum(row) / len(row) if row else 0.0)
        total, count = total + sum(row), count + len(row)
    return {"grpo": sum(rows) / B, "dapo": total / count, "dr_grpo": total / (B * T)}[norm]


@pytest.mark.parametrize("beta", [0.0, 0.1])
@pytest.mark.parametrize("norm", NORMS)
def test_grpo_loss_matches_a_naive_loop(norm, beta):
    logp, old, ref, adv, mask = batch()
    loss, m = losses.grpo_loss(logp, old, adv, mask, clip_eps=EPS, ref_logprobs=ref, beta=beta, norm=norm)
    assert loss.item() == pytest.approx(naive_grpo(logp, old, ref, adv, mask, beta, norm), rel=1e-5)
    clipped = ratio = kl = 0.0
    for b, t in mask.nonzero().tolist():
        rho, d = math.exp(logp[b, t] - old[b, t]), (ref[b, t] - logp[b, t]).item()
        clipped += (rho > 1 + EPS and adv[b] > 0) or (rho < 1 - EPS and adv[b] < 0)
        ratio, kl = ratio + rho, kl + math.exp(d) - d - 1
    n = mask.sum().item()
    assert 0 < clipped < n
    assert m["clip_frac"].item() == pytest.approx(clipped / n) and m["ratio"].item() == pytest.approx(ratio / n, rel=1e-5)
    assert m["kl"].item() == pytest.approx(kl / n, rel=1e-5)
    assert all(not v.requires_grad for v in m.values())


def test_the_norms_differ_only_through_lengths():
    logp, old, ref, adv, mask = batch(seed=1)
    got = {n: losses.grpo_loss(logp, old, adv, mask, norm=n)[0].item() for n in NORMS}
    assert len({round(v, 6) for v in got.values()}) == 3  # ragged lengths: three different losses
    full = torch.ones_like(mask)  # equal lengths T: grpo = dapo = dr_grpo
    same = [losses.grpo_loss(logp, old, adv, full, norm=n)[0].item() for n in NORMS]
    assert same == pytest.approx([same[0]] * 3, rel=1e-6)


def test_padding_never_matters():
    logp, old, ref, adv, mask = batch(seed=2)
    junk = torch.where(mask.bool(), torch.zeros_like(logp), 5 * torch.randn_like(logp))
    for norm in NORMS:
        a = losses.grpo_loss(logp, old, adv, mask, ref_logprobs=ref, beta=0.1, norm=norm)[0]
        b = losses.grpo_loss(logp + junk, old - junk, adv, mask, ref_logprobs=ref + junk, beta=0.1, norm=norm)[0]
        assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_the_clip_stops_the_gradient_in_the_advantages_direction():
    # ρ = e^{±0.5}, outside [0.8, 1.2]; row 0 has Â = +1, row 1 has Â = −1
    logp = torch.tensor([[0.5, -0.5], [-0.5, 0.5]], requires_grad=True)
    loss, m = losses.grpo_loss(logp, torch.zeros(2, 2), torch.tensor([1.0, -1.0]), torch.ones(2, 2), norm="dapo")
    loss.backward()
    assert logp.grad[0, 0] == 0 and logp.grad[1, 0] == 0  # pushed further the way Â wants: clipped
    assert logp.grad[0, 1] == pytest.approx(-math.exp(-0.5) / 4)  # the way back is never clipped
    assert logp.grad[1, 1] == pytest.approx(math.exp(0.5) / 4)
    assert m["clip_frac"].item() == 0.5


def test_the_kl_term_pulls_towards_the_reference():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    ref = torch.tensor([[-2.0, -1.0]])  # token 0 more likely than the reference says, token 1 less
    loss, m = losses.grpo_loss(logp, logp.detach(), torch.zeros(1), torch.ones(1, 2), ref_logprobs=ref, beta=1.0)
    loss.backward()
    assert logp.grad[0, 0] > 0 and logp.grad[0, 1] < 0  # descent lowers token 0, raises token 1
    k3 = [math.exp(-1) + 1 - 1, math.exp(1) - 1 - 1]
    assert m["kl"].item() == pytest.approx(sum(k3) / 2) and loss.item() == pytest.approx(sum(k3) / 2)


def test_loss_errors():
    logp, old, ref, adv, mask = batch()
    with pytest.raises(ValueError, match="norm must be one of"):
        losses.grpo_loss(logp, old, adv, mask, norm="bnpo")
    with pytest.raises(ValueError, match="pass ref_logprobs"):
        losses.grpo_loss(logp, old, adv, mask, beta=0.04)
    assert "kl" not in losses.grpo_loss(logp, old, adv, mask)[1]


# --- parity with TRL ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tok):
    from alignlab import models

    from conftest import TINY
    path = tmp_path_factory.mktemp("grpo_policy")
    models.save(models.build_model(TINY, tok, seed=0), tok, path)
    return path


def trl_compute_loss(model_dir, tok, loss_type, beta, logp, old, ref, adv, mask, bias_correction=False):
    """TRL's loss on our tensors: a real GRPOTrainer (tiny model, CPU, one process), its
    `_compute_loss` (grpo_trainer.py:3020-3295) with the model's forward pass
    (`_get_per_token_logps_and_entropies`, :3031) replaced by our log-probs, in train mode with one
    micro-batch per optimizer step (what Trainer's loop sets, transformers trainer.py:1885).
    Returns (loss, d loss / d logp, the metrics TRL logged)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer
    B, T = mask.shape
    args = GRPOConfig(output_dir=str(model_dir / "out"), per_device_train_batch_size=B, num_generations=3,
                      max_completion_length=T, loss_type=loss_type, beta=beta, epsilon=EPS,
                      use_bias_correction_kl=bias_correction, report_to=[], save_strategy="no", use_cpu=True,
                      disable_tqdm=True)
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=lambda prompts, completions, **kw: [0.0] * len(prompts),
                          args=args, train_dataset=Dataset.from_list([{"prompt": "What is 12 + 34?"}] * B),
                          processing_class=tok)
    leaf = logp.clone().requires_grad_(True)
    trainer._get_per_token_logps_and_entropies = lambda *a, **kw: (leaf, torch.zeros_like(leaf), None)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    inputs = {"prompt_ids": torch.zeros(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1, dtype=torch.long),
              "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": mask.long(),
              "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref,
              "num_items_in_batch": mask.sum()}  # dapo's normalizer: the generation batch's tokens (:2498)
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    return loss.detach(), leaf.grad, {k: v[-1] for k, v in trainer._metrics["train"].items()}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")
@pytest.mark.parametrize("beta", [0.0, 0.1])
@pytest.mark.parametrize("norm", NORMS)
def test_grpo_loss_matches_trl(model_dir, tok, norm, beta):
    logp, old, ref, adv, mask = batch(seed=3)
    trl_loss, trl_grad, trl_metrics = trl_compute_loss(model_dir, tok, norm, beta, logp, old, ref, adv, mask)
    leaf = logp.clone().requires_grad_(True)
    loss, m = losses.grpo_loss(leaf, old, adv, mask, clip_eps=EPS, ref_logprobs=ref, beta=beta, norm=norm)
    loss.backward()
    assert loss.item() == pytest.approx(trl_loss.item(), rel=1e-5)
    assert torch.allclose(leaf.grad, trl_grad, rtol=1e-5, atol=1e-7)
    assert m["clip_frac"].item() == pytest.approx(trl_metrics["clip_ratio/region_mean"])
    if beta:
        assert m["kl"].item() == pytest.approx(trl_metrics["kl"], rel=1e-5)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")
def test_trls_default_kl_correction_changes_the_gradient_not_the_value(model_dir, tok):
    """TRL 1.16 multiplies k3 by ρ by default (use_bias_correction_kl=True, grpo_config.py:972;
    grpo_trainer.py:3104-3105). On-policy ρ = 1, so the loss is ours, but ∇(ρ k3) adds k3 ∇log π:
    the gradient is not DeepSeekMath's eq. 4."""
    logp, _, ref, adv, mask = batch(seed=4)
    trl_loss, trl_grad, _ = trl_compute_loss(model_dir, tok, "dapo", 0.1, logp, logp, ref, adv, mask,
                                             bias_correction=True)
    leaf = logp.clone().requires_grad_(True)
    loss, _ = losses.grpo_loss(leaf, logp, adv, mask, ref_logprobs=ref, beta=0.1, norm="dapo")
    loss.backward()
    assert loss.item() == pytest.approx(trl_loss.item(), rel=1e-5)
    k3 = losses.kl_estimators(logp, ref)["k3"]
    extra = 0.1 * k3 * mask / mask.sum()
    assert not torch.allclose(leaf.grad, trl_grad, atol=1e-6)
    assert torch.allclose(leaf.grad + extra, trl_grad, rtol=1e-5, atol=1e-7)
