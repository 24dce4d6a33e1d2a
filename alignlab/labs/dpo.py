"""Lab 4 (DPO): the loss from sequence log-probs, the implicit reward on the exact bandit (where
β log Z cancels), and the trainer wired to the student's loss.

The student writes `dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
ref_rejected_logps, beta)` and `implicit_reward(pi, pi_ref, beta)`; `dpo_train_loss` plugs the
loss into `alignlab.train` where `dpo.train_preferences` uses the library's.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .. import losses
from ..bandit import Bandit
from ..dpo import sequence_logps
from ..train import Batch, LossFn
from .core import (REQUIRED_CELLS, LabCheckError, as_tensor, call, close, compare_random, expected, guarded,
                   passed, student_function, wrong)

REQUIRED_CELLS["lab4_dpo"] = {"dpo_loss": "code", "test_dpo_loss": "code", "implicit_reward": "code",
                              "test_implicit_reward": "code", "test_dpo_run": "code"}


def reference_dpo(pc, pr, rc, rr, beta) -> torch.Tensor:
    return losses.dpo_loss(pc.double(), pr.double(), rc.double(), rr.double(), beta)[0]


def _dpo_example() -> tuple:
    """`dpo_loss`' arguments on four pairs: policy chosen, rejected, reference chosen, rejected (4,), β = 0.5."""
    return (torch.tensor([-10.0, -12.0, -8.0, -20.0]), torch.tensor([-11.0, -9.0, -8.5, -14.0]),
            torch.tensor([-10.5, -11.0, -9.0, -19.0]), torch.tensor([-10.0, -10.0, -8.0, -16.0]), 0.5)


def _dpo_mistakes() -> dict[str, torch.Tensor]:
    """The loss each common mistake computes on the four pairs, with its feedback."""
    pc, pr, rc, rr, beta = _dpo_example()
    h = ((pc - rc) - (pr - rr)).double()  # (4,)
    return {
        "you left out the reference model: the implicit reward is β·(log π − log π_ref).":
            -F.logsigmoid(beta * (pc - pr).double()).mean(),
        "you swapped chosen and rejected: the loss is −log σ(β·(h_w − h_l)).": -F.logsigmoid(-beta * h).mean(),
        "β is outside the sigmoid; it scales the implicit reward, inside: −log σ(β·h).":
            -beta * F.logsigmoid(h).mean(),
        "you left out β.": -F.logsigmoid(h).mean(),
        "you summed over pairs; average (off by a factor of 4 here).": -F.logsigmoid(beta * h).sum(),
        "the sign is flipped: minimise −log σ(β·h).": F.logsigmoid(beta * h).mean(),
        "the reference log-ratio is the wrong way round: h = (log π(y_w) − log π_ref(y_w)) − "
        "(log π(y_l) − log π_ref(y_l)).": -F.logsigmoid(beta * ((pc + rc) - (pr + rr)).double()).mean(),
    }


def check_dpo_loss(fn: Callable | None = None) -> None:
    """Check the DPO loss on four pairs, β = 0.5, and that it stays finite for large margins."""
    fn = student_function("dpo_loss", fn)
    pc, *rest = _dpo_example()
    out = call("dpo_loss", fn, pc.clone().requires_grad_(True), *rest)
    got = as_tensor("dpo_loss", out, ())
    want = reference_dpo(pc, *rest)
    if not close(got, want):
        wrong("dpo_loss", got, _dpo_mistakes(), expected(got, want, "on four pairs"))
    if not out.requires_grad:
        raise LabCheckError("dpo_loss: right value, but no gradient reaches the policy's log-probs.")
    big = as_tensor("dpo_loss", call("dpo_loss", fn, torch.tensor([-300.0]), torch.tensor([-10.0]),
                                     torch.tensor([-10.0]), torch.tensor([-10.0]), 1.0), ())
    if not torch.isfinite(big):
        raise LabCheckError("dpo_loss: infinite when the policy strongly prefers the rejected answer; "
                            "use torch.nn.functional.logsigmoid, not log(sigmoid(·)).")
    return passed(f"dpo_loss = {float(got):.4f}: −log σ(β·h) averaged over pairs")


def _dpo_inputs(g: torch.Generator) -> tuple:
    B = int(torch.randint(1, 17, (), generator=g))
    return (*(-torch.rand(4, B, generator=g) * 30), float(0.05 + torch.rand((), generator=g)))


def hidden_dpo_loss(fn: Callable | None = None, seed: int = 0) -> None:
    """dpo_loss against `losses.dpo_loss` on random batches and β."""
    return compare_random("dpo_loss", student_function("dpo_loss", fn), reference_dpo, _dpo_inputs, seed)


def _implicit_mistakes(beta: float = 0.5) -> dict[str, torch.Tensor]:
    """The implicit reward each common mistake gives for π* on the exact bandit, with its feedback."""
    bandit = Bandit.example()
    pi_star = bandit.optimal_policy(beta)
    return {
        "you left out β: r̂ = β·log(π/π_ref).": pi_star.log() - bandit.ref.log(),
        "the ratio is upside down: r̂ = β·log(π/π_ref).": beta * (bandit.ref.log() - pi_star.log()),
        "you used π/π_ref without the log.": beta * pi_star / bandit.ref,
        "you added β·log Z: the implicit reward is β·log(π/π_ref) alone (log Z is what cancels).":
            bandit.implied_reward(pi_star, beta),
    }


def check_implicit_reward(fn: Callable | None = None, beta: float = 0.5) -> None:
    """On the exact bandit: the implicit reward of the optimal policy π* is the true reward minus
    the same constant β log Z for every response, so every Bradley-Terry preference between two
    responses comes out exactly as under the true reward — Z cancels (Rafailov et al., §4)."""
    fn = student_function("implicit_reward", fn)
    bandit = Bandit.example()
    pi_star = bandit.optimal_policy(beta)
    r_hat = as_tensor("implicit_reward", call("implicit_reward", fn, pi_star, bandit.ref, beta), (len(pi_star),))
    want = beta * (pi_star.log() - bandit.ref.log())
    if not close(r_hat, want, 1e-9):
        wrong("implicit_reward", r_hat, _implicit_mistakes(beta),
              "wrong on the bandit; r̂(y) = β·log(π(y)/π_ref(y)).", tol=1e-7)
    shift = bandit.reward - r_hat  # (K,) should be β log Z everywhere
    beta_log_z = beta * bandit.log_partition(beta)
    if not torch.allclose(shift, beta_log_z.expand_as(shift), atol=1e-9):
        raise LabCheckError("implicit_reward: r − r̂ is not the same constant for every response.")
    p_true = torch.sigmoid(bandit.reward[:, None] - bandit.reward[None, :])  # (K, K) P(y_i ≻ y_j)
    p_hat = torch.sigmoid(r_hat[:, None] - r_hat[None, :])
    gap = float((p_true - p_hat).abs().max())
    return passed(f"r − r̂ = β log Z = {float(beta_log_z):.6f} for all {len(shift)} responses; Bradley-Terry "
                  f"preferences agree to {gap:.1e}: Z cancels")


def hidden_implicit_reward(fn: Callable | None = None, seed: int = 0) -> None:
    """implicit_reward against β·log(π/π_ref) on random distributions and β."""
    def inputs(g: torch.Generator) -> tuple:
        K = int(torch.randint(2, 12, (), generator=g))
        pi, ref = (torch.softmax(torch.randn(K, generator=g, dtype=torch.float64) * 2, 0) for _ in range(2))
        return pi, ref, float(0.05 + torch.rand((), generator=g))
    compare_random("implicit_reward", student_function("implicit_reward", fn),
                   lambda pi, ref, beta: beta * (pi.log() - ref.log()), inputs, seed, tol=1e-9)


def dpo_train_loss(loss_fn: Callable, beta: float) -> LossFn:
    """A `train` loss from the student's DPO loss on a `dpo.pair_batches` batch (summed response
    log-probs, reference log-probs precomputed), weighted by the step's pairs as `dpo._dpo`."""
    loss_fn = guarded("dpo_loss", loss_fn)
    def fn(model, batch: Batch, n_pairs: torch.Tensor):
        total, _ = sequence_logps(model, batch)  # (2B,) chosen rows, then rejected
        c, r = total.chunk(2)
        loss = loss_fn(c, r, batch["ref"][:, 0], batch["ref"][:, 1], beta)
        return loss * batch["count"] / n_pairs, {}
    return fn


@torch.no_grad()
def preference_eval(policy, tokenizer, pairs, ref_logps: torch.Tensor, beta: float,
                    batch_size: int = 64) -> dict[str, float]:
    """The library's DPO loss and implicit-reward accuracy of `policy` on `pairs`."""
    from ..dpo import pair_batch
    was_training = policy.training
    policy.eval()
    chosen, rejected = [], []
    for s in range(0, len(pairs), batch_size):
        batch = {k: v.to(policy.device) for k, v in pair_batch(tokenizer, pairs[s:s + batch_size]).items()}
        c, r = sequence_logps(policy, batch)[0].float().cpu().chunk(2)
        chosen.append(c), rejected.append(r)
    loss, m = losses.dpo_loss(torch.cat(chosen), torch.cat(rejected), ref_logps[:, 0], ref_logps[:, 1], beta)
    policy.train(was_training)
    return {"loss": float(loss), "accuracy": float(m["accuracy"]), "margin": float(m["margin"])}


def check_dpo_run(before: dict, after: dict) -> None:
    """Training with the student's loss lowered the DPO loss on its pairs (it starts at log 2,
    where π = π_ref) and the implicit reward now ranks most pairs the labeler's way."""
    if not after["loss"] < before["loss"]:
        raise LabCheckError(f"the DPO loss on the training pairs did not fall ({before['loss']:.4f} → "
                            f"{after['loss']:.4f}); check dpo_loss's sign and which side is chosen.")
    if not after["accuracy"] > 0.5:
        raise LabCheckError(f"after training the implicit reward ranks only {after['accuracy']:.0%} of the "
                            "training pairs the labeler's way.")
    passed(f"DPO loss {before['loss']:.4f} → {after['loss']:.4f}; the implicit reward now ranks "
           f"{after['accuracy']:.0%} of the pairs the labeler's way (at π = π_ref every pair ties)")
