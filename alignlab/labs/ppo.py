"""Lab 3 (PPO): the KL-shaped reward, GAE and the clipped surrogate, plugged into `ppo.train_ppo`.

The student writes `kl_penalized_rewards`, `gae` and `ppo_clip_loss` with the library's
signatures (the surrogate returns just the loss); `ppo_objectives` hands them to the trainer, and
`check_ppo_update` checks one PPO iteration with them against one with the library's.
"""
from __future__ import annotations

from typing import Callable

import torch

from .. import losses
from ..ppo import Objectives
from .core import (REQUIRED_CELLS, LabCheckError, as_tensor, call, close, compare_random, expected, guarded,
                   passed, student_function, wrong)

REQUIRED_CELLS["lab3_ppo"] = {"kl_penalized_rewards": "code", "test_kl_penalized_rewards": "code",
                              "gae": "code", "test_gae": "code", "ppo_clip_loss": "code",
                              "test_ppo_clip_loss": "code", "test_ppo_run": "code"}


def reference_kl_rewards(scores, logprobs, ref_logprobs, mask, beta) -> torch.Tensor:
    return losses.kl_penalized_rewards(scores.double(), logprobs.double(), ref_logprobs.double(), mask, beta)


def reference_gae(rewards, values, gamma, lam, mask) -> tuple[torch.Tensor, torch.Tensor]:
    return losses.gae(rewards.double(), values.double(), gamma, lam, mask)


def reference_clip(logprobs, old_logprobs, advantages, mask, clip_eps) -> torch.Tensor:
    return losses.ppo_clip_loss(logprobs.double(), old_logprobs.double(), advantages.double(), mask, clip_eps)[0]


def _example(seed: int = 0, B: int = 3, T: int = 5) -> dict[str, torch.Tensor]:
    """Right-padded rows of 5, 3 and 1 response tokens; padding holds junk a mask must remove."""
    g = torch.Generator().manual_seed(seed)
    mask = (torch.arange(T)[None, :] < torch.tensor([5, 3, 1])[:B, None]).float()
    return {"mask": mask, "logprobs": -torch.rand(B, T, generator=g) * 3, "ref": -torch.rand(B, T, generator=g) * 3,
            "scores": torch.tensor([1.0, -0.5, 2.0])[:B], "values": torch.randn(B, T, generator=g),
            "rewards": torch.randn(B, T, generator=g)}


def _kl_example() -> tuple:
    """`kl_penalized_rewards`' arguments on three right-padded responses, β = 0.1."""
    e = _example()
    return e["scores"], e["logprobs"], e["ref"], e["mask"], 0.1


def _kl_mistakes() -> dict[str, torch.Tensor]:
    """The shaped rewards each common mistake gives on the worked example, with its feedback."""
    scores, logprobs, ref, mask, beta = _kl_example()
    m, k1, s = mask.double(), (logprobs - ref).double(), scores.double()
    rows, last = torch.arange(3), m.sum(-1).long() - 1  # (3,) each row's last response token

    def with_score(pen: torch.Tensor, col: torch.Tensor = last) -> torch.Tensor:
        out = pen.clone()
        out[rows, col] += s
        return out
    return {
        "the KL penalty has the wrong sign: it is −β·(log π − log π_ref), a cost for moving away from π_ref.":
            with_score(beta * k1 * m),
        "you added the score at the last column; rows are right-padded, so it goes on each row's last "
        "response token (index mask.sum(-1) − 1).": with_score(-beta * k1 * m, col=torch.full((3,), 4)),
        "you added the score on the first token; InstructGPT gives it at the end of the response.":
            with_score(-beta * k1 * m, col=torch.zeros(3, dtype=torch.long)),
        "you added the score to every token; it is given once, on the last response token.":
            -beta * k1 * m + s[:, None] * m,
        "the penalty is not masked: padding positions must be 0.": with_score(-beta * k1),
        "you left out β: the penalty is −β·(log π − log π_ref).": with_score(-k1 * m),
    }


def check_kl_penalized_rewards(fn: Callable | None = None) -> None:
    """Check the shaped reward on three right-padded responses, β = 0.1."""
    fn = student_function("kl_penalized_rewards", fn)
    args = _kl_example()  # scores, logprobs, ref_logprobs, mask, β
    got = as_tensor("kl_penalized_rewards", call("kl_penalized_rewards", fn, *args), tuple(args[3].shape))
    want = reference_kl_rewards(*args)
    if close(got, want):
        return passed("kl_penalized_rewards: −β·(log π − log π_ref) on each token, the score on the last one")
    wrong("kl_penalized_rewards", got, _kl_mistakes(),
          f"wrong on the worked example.\nexpected =\n{want.numpy().round(4)}\nyours =\n{got.numpy().round(4)}")


def _gae_example() -> tuple:
    """`gae`'s arguments on two padded rows (5 and 3 tokens), γ = 0.9, λ = 0.8 (so every mistake shows)."""
    e = _example(1, B=2)
    return e["rewards"], e["values"], 0.9, 0.8, e["mask"]


def _gae_mistakes() -> dict[str, torch.Tensor]:
    """The advantages each common mistake gives on the worked example, with its feedback."""
    r, v, gamma, lam, m = _gae_example()
    r, v, m = r.double(), v.double(), m.double()
    v_next = torch.cat([v[:, 1:] * m[:, 1:], torch.zeros(2, 1, dtype=v.dtype)], 1)  # (B, T), 0 after the end
    return {
        "you ignored λ: that is the one-step TD error δ_t; GAE sums (γλ)^l δ_{t+l} backwards from the end.":
            (r + gamma * v_next - v) * m,
        "you used λ = 1 (Monte Carlo returns minus V); weight later δ's by (γλ)^l.":
            reference_gae(r, v, gamma, 1.0, m)[0],
        # γλ = 1: every δ counts in full (λ = 1 above is the student who discounts by γ alone)
        "you summed the δ's without discounting them: Â_t = δ_t + γλ Â_{t+1}, not δ_t + Â_{t+1}.":
            reference_gae(r, v, gamma, 1.0 / gamma, m)[0],
        "padding leaks in: the value after a row's last token is 0 (the episode ends); mask rewards, "
        "values and the recursion.": reference_gae(r, v, gamma, lam, None)[0] * m,
    }


def check_gae(fn: Callable | None = None) -> None:
    """Check advantages and returns on padded rows with γ = 0.9, λ = 0.8 (so every mistake shows)."""
    fn = student_function("gae", fn)
    args = _gae_example()
    shape = tuple(args[-1].shape)
    out = call("gae", fn, *args)
    if not isinstance(out, tuple) or len(out) != 2:
        raise LabCheckError("gae: return a pair (advantages, returns).")
    adv, ret = as_tensor("gae", out[0], shape), as_tensor("gae", out[1], shape)
    want_adv, want_ret = reference_gae(*args)
    if not close(adv, want_adv):
        wrong("gae", adv, _gae_mistakes(), f"advantages wrong on the worked example.\nexpected =\n"
              f"{want_adv.numpy().round(4)}\nyours =\n{adv.numpy().round(4)}")
    if not close(ret, want_ret):
        if close(ret, want_adv):
            raise LabCheckError("gae: the returns are the advantages; returns = advantages + values (the value "
                                "head's regression target).")
        raise LabCheckError("gae: advantages right, returns wrong: returns = (advantages + values) · mask.")
    return passed("gae: advantages and returns match on padded rows (γ = 0.9, λ = 0.8)")


def _clip_example() -> tuple:
    """`ppo_clip_loss`' arguments: ratios inside and outside [1 − ε, 1 + ε], ε = 0.2, for positive and
    negative advantages; padding holds advantages a mask must remove."""
    ratio = torch.tensor([[0.5, 0.9, 1.1, 1.6, 1.0], [1.3, 0.7, 1.0, 1.0, 1.0]])
    old = -torch.tensor([[1.0, 2.0, 0.5, 1.5, 1.0], [0.8, 1.2, 2.0, 1.0, 1.0]])
    adv = torch.tensor([[1.0, -2.0, 0.5, 1.5, 9.0], [-1.0, 2.0, -0.5, 3.0, 7.0]])
    mask = torch.tensor([[1.0, 1, 1, 1, 0], [1, 1, 1, 0, 0]])
    return old + ratio.log(), old, adv, mask, 0.2


def _clip_mistakes() -> dict[str, torch.Tensor]:
    """The loss each common mistake computes on the worked example, with its feedback."""
    logprobs, old, adv, mask, eps = _clip_example()
    a, m = adv.double(), mask.double()
    rho = (logprobs - old).double().exp()
    clipped = rho.clamp(1 - eps, 1 + eps)

    def mmean(x):
        return (x * m).sum() / m.sum()
    return {
        "no clipping: the loss is max(−Âρ, −Â·clip(ρ, 1 − ε, 1 + ε)).": mmean(-a * rho),
        "you took the optimistic bound: PPO minimises max(−Âρ, −Â·clip(ρ)) — the minimum of the two "
        "objectives, not the maximum.": mmean(torch.minimum(-a * rho, -a * clipped)),
        "the sign is flipped: as a loss to minimise, the surrogate is −Â·ρ.":
            mmean(torch.minimum(a * rho, a * clipped)),
        "you used the log-ratio as ρ; ρ = exp(log π − log π_old).":
            mmean(torch.maximum(-a * rho.log(), -a * rho.log().clamp(1 - eps, 1 + eps))),
        "ρ is upside down: ρ = π/π_old = exp(log π − log π_old).":
            mmean(torch.maximum(-a / rho, -a * (1 / rho).clamp(1 - eps, 1 + eps))),
        "you averaged over every position, padding included; average over mask.sum() tokens.":
            torch.maximum(-a * rho, -a * clipped).mul(m).mean(),
        "you did not mask: padding positions must not count.": torch.maximum(-a * rho, -a * clipped).mean(),
    }


def check_ppo_clip_loss(fn: Callable | None = None) -> None:
    """Check the clipped surrogate where ratios fall inside and outside [1 − ε, 1 + ε], ε = 0.2,
    for positive and negative advantages."""
    fn = student_function("ppo_clip_loss", fn)
    logprobs, *rest = _clip_example()
    out = call("ppo_clip_loss", fn, logprobs.clone().requires_grad_(True), *rest)
    got = as_tensor("ppo_clip_loss", out, ())
    want = reference_clip(logprobs, *rest)
    if close(got, want):
        if not out.requires_grad:
            raise LabCheckError("ppo_clip_loss: right value, but no gradient reaches the log-probs.")
        return passed(f"ppo_clip_loss = {float(got):.4f}: the pessimistic (clipped) surrogate, masked mean")
    wrong("ppo_clip_loss", got, _clip_mistakes(), expected(got, want, "on the worked example"))


def _ppo_inputs(g: torch.Generator) -> tuple:
    B, T = int(torch.randint(1, 5, (), generator=g)), int(torch.randint(1, 9, (), generator=g))
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()
    return B, T, mask


def _kl_inputs(g: torch.Generator) -> tuple:
    B, T, m = _ppo_inputs(g)
    return (torch.randn(B, generator=g), -torch.rand(B, T, generator=g) * 4, -torch.rand(B, T, generator=g) * 4,
            m, float(torch.rand((), generator=g)))


def _gae_inputs(g: torch.Generator) -> tuple:
    B, T, m = _ppo_inputs(g)
    return (torch.randn(B, T, generator=g), torch.randn(B, T, generator=g),
            float(0.5 + torch.rand((), generator=g) / 2), float(torch.rand((), generator=g)), m)


def _clip_inputs(g: torch.Generator) -> tuple:
    B, T, m = _ppo_inputs(g)
    old = -torch.rand(B, T, generator=g) * 3
    return old + torch.randn(B, T, generator=g) * 0.3, old, torch.randn(B, T, generator=g), m, 0.2


def hidden_kl_penalized_rewards(fn: Callable | None = None, seed: int = 0) -> None:
    """kl_penalized_rewards against `losses.kl_penalized_rewards` on random padded batches and β."""
    compare_random("kl_penalized_rewards", student_function("kl_penalized_rewards", fn), reference_kl_rewards,
                   _kl_inputs, seed)


def hidden_gae(fn: Callable | None = None, seed: int = 0) -> None:
    """gae against `losses.gae` on random padded batches, γ and λ."""
    compare_random("gae", student_function("gae", fn), reference_gae, _gae_inputs, seed)


def hidden_ppo_clip_loss(fn: Callable | None = None, seed: int = 0) -> None:
    """ppo_clip_loss against `losses.ppo_clip_loss` on random padded batches."""
    compare_random("ppo_clip_loss", student_function("ppo_clip_loss", fn), reference_clip, _clip_inputs, seed)


def ppo_objectives(kl_penalized_rewards: Callable, gae: Callable, ppo_clip_loss: Callable) -> Objectives:
    """The student's three pieces as the trainer's `Objectives`. The surrogate is rescaled from the
    minibatch's token count to the optimizer step's (`num_tokens`), as `losses.ppo_clip_loss` does."""
    kl_penalized_rewards, gae = guarded("kl_penalized_rewards", kl_penalized_rewards), guarded("gae", gae)
    ppo_clip_loss = guarded("ppo_clip_loss", ppo_clip_loss)
    def clip(logprobs, old_logprobs, advantages, mask, clip_eps=0.2, num_tokens=None):
        loss = ppo_clip_loss(logprobs, old_logprobs, advantages, mask, clip_eps)
        scale = 1.0 if num_tokens is None else mask.sum() / num_tokens
        with torch.no_grad():  # the logged diagnostics (clip fraction, approximate KL), not the loss
            metrics = losses.ppo_clip_loss(logprobs, old_logprobs, advantages, mask, clip_eps)[1]
        return loss * scale, metrics
    return Objectives(kl_penalized_rewards=kl_penalized_rewards, gae=gae, ppo_clip_loss=clip)


def check_ppo_update(objectives: Objectives, policy_path, rm_path, prompts: list[str], config,
                     tol: float = 1e-4) -> None:
    """One PPO iteration from the same weights, prompts and seed, with `objectives` and with the
    library's: the policy's parameters must end up the same (so the pieces plug in correctly)."""
    from .. import models, ppo, reward
    params = []
    for obj in (objectives, Objectives()):
        policy, tok = models.load(policy_path, dtype=torch.float32)
        ref, _ = models.load(policy_path, dtype=torch.float32)
        rm, _ = reward.load_reward_model(rm_path)
        ppo.train_ppo(policy, ref, ppo.value_model_from(rm_path), tok, prompts, ppo.rm_reward_fn(rm, tok),
                      config, objectives=obj)
        params.append(torch.cat([p.detach().flatten().double() for p in policy.parameters()]))
    diff = float((params[0] - params[1]).abs().max())
    if not diff <= tol:
        raise LabCheckError(f"one PPO iteration with your functions moves the policy differently from the "
                            f"reference (max parameter difference {diff:.2e}); each passes its own check, so "
                            "look at dtypes, in-place edits of the inputs, and gradients you detach.")
    return passed(f"one PPO iteration with your functions matches the library's (max difference {diff:.1e})")


def check_ppo_run(history: list[dict]) -> None:
    """A short PPO run with the student's pieces: every logged number finite, and the policy left
    the reference (sequence KL > 0 by the last iteration)."""
    import math
    for row in history:
        bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise LabCheckError(f"iteration {row['step']}: {', '.join(bad)} not finite; look for a log of 0 or a "
                                "division by a mask sum of 0.")
    if not history[-1]["kl"] > 0:
        raise LabCheckError(f"after {len(history)} iterations the KL to the reference is {history[-1]['kl']:.4f}: "
                            "the policy did not move — does gradient reach the log-probs in ppo_clip_loss?")
    passed(f"{len(history)} PPO iterations with your functions: score {history[0]['score']:+.3f} → "
           f"{history[-1]['score']:+.3f}, KL {history[-1]['kl']:.3f}")
