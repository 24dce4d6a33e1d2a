"""Lab 7 (GRPO): group advantages and the GRPO loss, plugged into `grpo.train_grpo`.

The student writes `grpo_advantages` — each reward against its group's (DeepSeekMath §4.1.2; Dr.
GRPO without the ÷ std) — and `grpo_loss` — the clipped surrogate plus β·k3 per token, averaged the
"grpo" or the "dapo" way, returning just the loss — with `alignlab.losses`' signatures (the
references of the hidden tests). `grpo_objectives` hands them to the trainer; `check_grpo_run`
replays the run's first iteration with the library's functions and compares.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch

from .. import losses
from ..grpo import GRPOConfig, GRPOObjectives
from .core import (REQUIRED_CELLS, LabCheckError, as_tensor, call, close, compare_random, guarded, passed,
                   student_function, wrong)

REQUIRED_CELLS["lab7_grpo"] = {"grpo_advantages": "code", "test_grpo_advantages": "code",
                               "grpo_loss": "code", "test_grpo_loss": "code", "test_grpo_run": "code"}


def reference_advantages(rewards, group_size, scale="group") -> torch.Tensor:
    """`losses.grpo_advantages` in float64 (the hidden tests' reference)."""
    return losses.grpo_advantages(rewards.double(), group_size, scale=scale)


def reference_loss(logprobs, old_logprobs, advantages, mask, clip_eps, ref_logprobs, beta, norm) -> torch.Tensor:
    """`losses.grpo_loss`'s loss in float64 (the hidden tests' reference)."""
    ref = None if ref_logprobs is None else ref_logprobs.double()
    return losses.grpo_loss(logprobs.double(), old_logprobs.double(), advantages.double(), mask, clip_eps, ref,
                            beta, norm)[0]


# --- grpo_advantages ----------------------------------------------------------------------------

GROUP_SIZE = 4
REWARDS = torch.tensor([1.5, 0.0, 0.5, 0.0,    # prompt 0: one right and well formed, one only well formed
                        1.0, 1.0, 1.0, 1.0,    # prompt 1: all four equal — nothing to learn
                        0.0, 0.5, 0.0, 0.0])   # prompt 2: one well formed
"""The worked example: three prompts × G = 4 completions, groups consecutive."""


def _both_scales(view: tuple[int, int], dim: int, std: Callable | None, none_std: Callable | None = None
                 ) -> torch.Tensor:
    """A student's advantages on REWARDS viewed as `view`, normalised over `dim`: (r − mean) / std(x, dim)
    for scale="group", then / none_std(x, dim) for scale=None (neither division when None) → (2B,)."""
    x = REWARDS.double().view(view)
    centred = x - x.mean(dim, keepdim=True)
    return torch.cat([(centred if s is None else centred / s(x, dim)).reshape(-1) for s in (std, none_std)])


def _advantage_mistakes() -> dict[str, torch.Tensor]:
    """(scale="group" then scale=None) of each common mistake on REWARDS, with its feedback."""
    G, n, eps = GROUP_SIZE, len(REWARDS) // GROUP_SIZE, 1e-4

    def unbiased(x, d):
        return x.std(d, keepdim=True) + eps
    return {
        "you used the population std (÷ G, `unbiased=False`); GRPO uses the unbiased one (÷ G − 1), "
        "torch.std's default.": _both_scales((n, G), -1, lambda x, d: x.std(d, keepdim=True, correction=0) + eps),
        "you normalised over the whole batch: compare each completion with its own prompt's — view the rewards "
        "as (n_prompts, G), one group per row.": _both_scales((1, -1), -1, unbiased),
        "you centred each group but divided by the std of the whole batch: divide by each group's own std.":
            _both_scales((n, G), -1, lambda x, d: x.std() + eps),
        "you normalised over the wrong axis: in the (n_prompts, G) view a group is a row; take the mean and "
        "std over dim=-1, not dim=0 (across prompts).": _both_scales((n, G), 0, unbiased),
        "your groups are strided (rows i, i + n_prompts, …, as `view(G, -1)` makes them); each prompt's G "
        "completions are consecutive: `view(-1, G)`.": _both_scales((G, n), 0, unbiased),
        "you divided by the std for scale=None too: scale=None (Dr. GRPO) only subtracts the group mean.":
            _both_scales((n, G), -1, unbiased, unbiased),
        "you did not divide by the group's std for scale=\"group\": Â = (r − mean) / (std + eps).":
            _both_scales((n, G), -1, None),
        "you divided by the std alone: divide by std + eps (eps = 1e-4, TRL's convention), so groups whose "
        "rewards barely differ cannot blow up.":
            _both_scales((n, G), -1, lambda x, d: x.std(d, keepdim=True)).nan_to_num(),  # its 0/0 → 0
        "you put eps under the square root (√(var + eps), as batch norm does); add it to the std: "
        "(r − mean) / (std + eps).": _both_scales((n, G), -1, lambda x, d: (x.var(d, keepdim=True) + eps).sqrt()),
    }


def check_grpo_advantages(fn: Callable | None = None) -> None:
    """Check both scales on three prompts × 4 completions, one group of equal rewards."""
    fn = student_function("grpo_advantages", fn)
    outs = []
    for scale in ("group", None):
        rewards = REWARDS.clone()
        outs.append(as_tensor("grpo_advantages", call("grpo_advantages", fn, rewards, GROUP_SIZE, scale),
                              tuple(REWARDS.shape)))
        if not torch.equal(rewards, REWARDS):
            raise LabCheckError("grpo_advantages: you changed `rewards` in place (e.g. `rewards -= mean`, or an "
                                "edit of its view); the trainer logs them afterwards — compute on a copy.")
    got = torch.cat(outs)  # (2B,) scale="group", then scale=None
    if torch.isnan(got).any():
        raise LabCheckError("grpo_advantages: NaN where a group's rewards are all equal (prompt 1: std 0, so "
                            "0 / 0); add eps to the std, (r − mean) / (std + eps): such a group has nothing "
                            "to learn from and gets advantage 0.")
    want = torch.cat([reference_advantages(REWARDS, GROUP_SIZE, scale) for scale in ("group", None)])
    if close(got, want):
        return passed("grpo_advantages: each reward against its own group's mean (and std); equal rewards → 0")
    wrong("grpo_advantages", got, _advantage_mistakes(),
          f"wrong on the worked example (rewards {REWARDS.tolist()}, G = {GROUP_SIZE}).\n"
          f"expected (scale=\"group\", then None) =\n{want.view(4, -1).numpy().round(4)}\n"
          f"yours =\n{got.view(4, -1).numpy().round(4)}", tol=1e-5)


def _advantage_inputs(g: torch.Generator) -> tuple:
    """n_prompts × G rewards, Gaussian or from {0, ½, 1, 1½} (equal groups happen), and a scale."""
    n, G = int(torch.randint(1, 5, (), generator=g)), int(torch.randint(2, 7, (), generator=g))
    gaussian = torch.rand((), generator=g) < 0.5
    rewards = torch.randn(n * G, generator=g) if gaussian else torch.randint(0, 4, (n * G,), generator=g) / 2
    return rewards, G, ("group", None)[int(torch.randint(2, (), generator=g))]


def hidden_grpo_advantages(fn: Callable | None = None, seed: int = 0) -> None:
    """grpo_advantages against `losses.grpo_advantages` on random groups, sizes and scales."""
    compare_random("grpo_advantages", student_function("grpo_advantages", fn), reference_advantages,
                   _advantage_inputs, seed, trials=8)


# --- grpo_loss ----------------------------------------------------------------------------------


def _loss_example() -> dict[str, torch.Tensor]:
    """Four completions of 5, 3, 1 and 4 tokens: ratios inside and beyond [0.8, 1.2] for both signs
    of Â, and a reference the policy has moved away from in both directions."""
    ratio = torch.tensor([[0.5, 0.9, 1.1, 1.6, 1.0], [1.3, 0.7, 1.0, 1.25, 1.0],
                          [0.75, 1.0, 1.0, 1.0, 1.0], [1.05, 1.4, 0.6, 0.95, 1.0]])
    old = -torch.tensor([[1.0, 2.0, 0.5, 1.5, 1.0], [0.8, 1.2, 2.0, 1.0, 1.0],
                         [1.1, 0.3, 0.9, 2.2, 0.4], [0.6, 1.7, 1.3, 0.9, 2.5]])
    shift = torch.tensor([[0.6, -0.4, 0.2, -0.9, 0.3], [-0.5, 0.8, -0.3, 0.4, -0.6],
                          [0.7, 0.1, -0.2, 0.5, 0.9], [-0.8, 0.3, 0.6, -0.2, 0.4]])
    logprobs = old + ratio.log()
    mask = (torch.arange(5)[None, :] < torch.tensor([5, 3, 1, 4])[:, None]).float()
    return {"logprobs": logprobs, "old": old, "ref": logprobs + shift, "mask": mask,
            "adv": torch.tensor([0.8, -1.2, 1.5, -0.6])}


CALLS = (("grpo", 0.1), ("dapo", 0.1), ("grpo", 0.0))
"""The check's three calls, (norm, β), ε = 0.2; β = 0 passes ref_logprobs=None, as the trainer does."""


def _row_mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return ((x * m).sum(-1) / m.sum(-1)).mean()


def _token_mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return (x * m).sum() / m.sum()


def _loss_values(surrogate: Callable = lambda rho, a, c: -torch.minimum(rho * a, c * a),
                 kl: Callable = lambda d: d.exp() - d - 1, beta_times: Callable = lambda beta, k: beta * k,
                 grpo: Callable = _row_mean, dapo: Callable = _token_mean) -> torch.Tensor:
    """The three CALLS' losses (float64) of a student with one piece changed: `surrogate(ρ, Â, clip(ρ))`,
    `kl(d)` with d = log π_ref − log π, `beta_times(β, kl)`, the aggregation of each norm."""
    e = _loss_example()
    m, a = e["mask"].double(), e["adv"].double()[:, None]  # (B, T), (B, 1)
    rho, d = (e["logprobs"] - e["old"]).double().exp(), (e["ref"] - e["logprobs"]).double()
    pg = surrogate(rho, a, rho.clamp(0.8, 1.2))
    return torch.stack([(grpo if norm == "grpo" else dapo)(pg + (beta_times(beta, kl(d)) if beta else 0), m)
                        for norm, beta in CALLS])


def _loss_mistakes() -> dict[str, torch.Tensor]:
    """The losses (CALLS) each common mistake gives on the worked example, with its feedback."""
    return {
        "you kept only the clipped term: the loss is −min(ρÂ, clip(ρ)Â); without the min, a ratio that moved the "
        "wrong way past the clip (ρ < 1 − ε, Â > 0) gets no gradient back.": _loss_values(lambda rho, a, c: -c * a),
        "no clipping: the loss is −min(ρÂ, clip(ρ, 1 − ε, 1 + ε)Â).": _loss_values(lambda rho, a, c: -rho * a),
        "you took the optimistic bound: the loss is −min(ρÂ, clip(ρ)Â), not −max(…).":
            _loss_values(lambda rho, a, c: -torch.maximum(rho * a, c * a)),
        "the sign is flipped: you returned the objective to maximise; the loss is −min(ρÂ, clip(ρ)Â) + β·k3.":
            -_loss_values(),
        "ρ is upside down: ρ = π_θ/π_old = exp(log π_θ − log π_old).":
            _loss_values(lambda rho, a, c: -torch.minimum(a / rho, (1 / rho).clamp(0.8, 1.2) * a)),
        "the KL term has the wrong sign: it is a cost for leaving the reference, + β·k3 in the loss.":
            _loss_values(beta_times=lambda beta, k: -beta * k),
        "you used k1 = log π_θ − log π_ref as the KL: GRPO uses k3 = e^d − d − 1 with d = log π_ref − log π_θ, "
        "never negative (DeepSeekMath eq. 4).": _loss_values(kl=lambda d: -d),
        "your k3 is the wrong way round: with d = log π_ref − log π_θ it is e^d − d − 1, not e^{−d} + d − 1.":
            _loss_values(kl=lambda d: (-d).exp() + d - 1),
        "you left out β: the KL term is β·k3.": _loss_values(beta_times=lambda beta, k: k),
        "you left out the KL term: with beta > 0 add β·k3 per token.": _loss_values(beta_times=lambda beta, k: 0 * k),
        "for norm=\"grpo\" you averaged over every token of the batch (that is \"dapo\"): average each "
        "completion's tokens, then the completions.": _loss_values(grpo=_token_mean),
        "for norm=\"dapo\" you averaged each completion's tokens (that is \"grpo\"): divide the sum over every "
        "completion token by their count.": _loss_values(dapo=_row_mean),
        "the norms are swapped: \"grpo\" averages each completion's tokens, then the completions; \"dapo\" "
        "averages every token of the batch at once.": _loss_values(grpo=_token_mean, dapo=_row_mean),
        "you did not mask: padding positions must not count.":
            _loss_values(grpo=lambda x, m: x.mean(-1).mean(), dapo=lambda x, m: x.mean()),
        "you divided by every position, padding included; divide by the completion tokens (mask.sum()).":
            _loss_values(grpo=lambda x, m: ((x * m).sum(-1) / x.shape[-1]).mean(), dapo=lambda x, m: (x * m).mean()),
        "for norm=\"grpo\" you summed each completion's tokens; average them (÷ its length), then the "
        "completions.": _loss_values(grpo=lambda x, m: (x * m).sum(-1).mean()),
    }


def check_grpo_loss(fn: Callable | None = None) -> None:
    """Check the loss of four padded completions for norm "grpo" and "dapo" with β = 0.1, and "grpo"
    with β = 0 (ref_logprobs None), then its gradient when old_logprobs is logprobs itself."""
    fn = student_function("grpo_loss", fn)
    e = _loss_example()
    logprobs = e["logprobs"].clone().requires_grad_(True)
    outs = []
    for norm, beta in CALLS:
        ref = e["ref"] if beta else None
        try:
            out = call("grpo_loss", fn, logprobs, e["old"], e["adv"], e["mask"], 0.2, ref, beta, norm)
        except LabCheckError as err:
            if ref is not None or err.__cause__ is None:  # not the student's own exception (see core.student_error)
                raise
            raise LabCheckError("grpo_loss: it raised with beta = 0 and ref_logprobs = None — what the trainer "
                                "passes when there is no KL term; compute k3 only when beta > 0."
                                ) from err.__cause__
        outs.append(out)
    got = torch.stack([as_tensor("grpo_loss", out, ()) for out in outs])
    want = torch.stack([reference_loss(e["logprobs"], e["old"], e["adv"], e["mask"], 0.2,
                                       e["ref"] if beta else None, beta, norm) for norm, beta in CALLS])
    if not close(got, want):
        wrong("grpo_loss", got, _loss_mistakes(), f"with (norm, β) = {CALLS} expected {want.numpy().round(4)}, got "
              f"{got.numpy().round(4)}.")
    if not all(out.requires_grad for out in outs):
        raise LabCheckError("grpo_loss: right values, but no gradient reaches `logprobs` through the surrogate "
                            "(a .detach(), .item() or numpy round trip on the policy's side).")
    if not _on_policy_gradient_ok(fn, e):
        raise LabCheckError("grpo_loss: with old_logprobs = logprobs (one step per rollout: ρ = 1) your loss "
                            "gives no policy gradient — ρ = exp(log π − log π) has none unless you detach "
                            "old_logprobs: π_old is the policy that sampled, a constant.")
    return passed(f"grpo_loss = {got[0]:.4f} (grpo), {got[1]:.4f} (dapo), {got[2]:.4f} (β = 0): the clipped "
                  "surrogate, β·k3, both norms")


def _on_policy_gradient_ok(fn: Callable, e: dict) -> bool:
    """Whether the loss with old_logprobs = logprobs itself (not detached) has the reference's gradient."""
    leaf = e["logprobs"].clone().requires_grad_(True)
    out = call("grpo_loss", fn, leaf, leaf, e["adv"], e["mask"], 0.2, None, 0.0, "grpo")
    if out.requires_grad:
        out.backward()
    want = e["logprobs"].clone().requires_grad_(True)
    reference_loss(want, want.detach(), e["adv"], e["mask"], 0.2, None, 0.0, "grpo").backward()
    return leaf.grad is not None and close(leaf.grad, want.grad)


def _loss_inputs(g: torch.Generator) -> tuple:
    """Random right-padded completions (every one at least a token long), Â, ε, β (0: no ref) and norm."""
    B, T = int(torch.randint(1, 6, (), generator=g)), int(torch.randint(1, 9, (), generator=g))
    mask = (torch.arange(T)[None, :] < torch.randint(1, T + 1, (B,), generator=g)[:, None]).float()
    logprobs = -torch.rand(B, T, generator=g) * 3
    old, ref = logprobs + 0.3 * torch.randn(B, T, generator=g), logprobs + 0.3 * torch.randn(B, T, generator=g)
    beta = float(torch.rand((), generator=g)) * 0.2 if torch.rand((), generator=g) < 0.6 else 0.0
    return (logprobs, old, torch.randn(B, generator=g), mask, 0.1 + 0.2 * float(torch.rand((), generator=g)),
            ref if beta else None, beta, ("grpo", "dapo")[int(torch.randint(2, (), generator=g))])


def hidden_grpo_loss(fn: Callable | None = None, seed: int = 0) -> None:
    """grpo_loss against `losses.grpo_loss` on random padded batches, ε, β and both norms."""
    compare_random("grpo_loss", student_function("grpo_loss", fn), reference_loss, _loss_inputs, seed, trials=8)


# --- the run ------------------------------------------------------------------------------------


def grpo_objectives(grpo_advantages: Callable, grpo_loss: Callable) -> GRPOObjectives:
    """The student's two functions as the trainer's `GRPOObjectives`; the logged diagnostics (clip
    fraction, ratio, KL) come from `losses.grpo_loss`, computed beside the student's loss."""
    advantages, loss = guarded("grpo_advantages", grpo_advantages), guarded("grpo_loss", grpo_loss)

    def loss_and_metrics(logprobs, old_logprobs, adv, mask, clip_eps=0.2, ref_logprobs=None, beta=0.0, norm="grpo"):
        value = loss(logprobs, old_logprobs, adv, mask, clip_eps, ref_logprobs, beta, norm)
        with torch.no_grad():
            metrics = losses.grpo_loss(logprobs, old_logprobs, adv, mask, clip_eps, ref_logprobs, beta, norm)[1]
        return value, metrics
    return GRPOObjectives(grpo_advantages=advantages, grpo_loss=loss_and_metrics)


def _first_iteration(policy_path, prompts: list[str], reward_fn: Callable, config: GRPOConfig) -> tuple[dict, dict]:
    """Iteration 1 with the library's functions from the weights at `policy_path`: its history row,
    and the arguments of the last call of each function ("grpo_advantages", "grpo_loss")."""
    from .. import grpo, models
    calls: dict[str, tuple] = {}

    def spy(name: str, fn: Callable) -> Callable:
        def recorded(*args, **kwargs):  # the trainer passes the advantages' scale by name
            calls[name] = tuple(a.detach() if torch.is_tensor(a) else a for a in (*args, *kwargs.values()))
            return fn(*args, **kwargs)
        return recorded
    objectives = GRPOObjectives(spy("grpo_advantages", losses.grpo_advantages), spy("grpo_loss", losses.grpo_loss))
    policy, tok = models.load(policy_path, dtype=torch.float32)
    ref = models.load(policy_path, dtype=torch.float32)[0] if config.beta > 0 else None
    one = dataclasses.replace(config, steps=1, progress=False, checkpoint_dir=None)
    return grpo.train_grpo(policy, ref, tok, prompts, reward_fn, one, objectives=objectives)[0], calls


def check_grpo_run(history: list[dict], objectives: GRPOObjectives, policy_path, prompts: list[str],
                   reward_fn: Callable, config: GRPOConfig, tol: float = 1e-4) -> None:
    """A GRPO run with the student's `objectives` against the library's first iteration from the same
    weights and seed: every logged number finite; on the same rollout, the same advantages and the
    same loss (on its last minibatch, where ρ ≠ 1 and the KL is not 0); the same logged row."""
    for row in history:
        bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise LabCheckError(f"iteration {row['step']}: {', '.join(bad)} not finite; look for a division by a "
                                "std or a mask sum of 0.")
    library, calls = _first_iteration(policy_path, prompts, reward_fn, config)
    if history[0]["reward"] != library["reward"] or history[0]["length"] != library["length"]:
        raise LabCheckError("the run's first rollout is not the one the library samples from the same weights and "
                            "seed: run the cells above again, in order, without changing them.")
    rewards, G, scale = calls["grpo_advantages"]
    want = losses.grpo_advantages(rewards, G, scale)
    yours = objectives.grpo_advantages(rewards.clone(), G, scale=scale)
    if not close(as_tensor("grpo_advantages", yours, tuple(want.shape)), want, tol):
        raise LabCheckError(f"on the first rollout's {len(rewards)} rewards your advantages differ from the "
                            f"library's (max |difference| {(yours.double() - want).abs().max():.3g}); they pass "
                            "the check above, so look at what the trainer passes: the group size, the scale, dtypes.")
    theirs = float(losses.grpo_loss(*calls["grpo_loss"])[0])  # first: yours might edit the inputs in place
    mine = float(objectives.grpo_loss(*calls["grpo_loss"])[0])
    if not math.isclose(mine, theirs, rel_tol=tol, abs_tol=tol):
        raise LabCheckError(f"on the first iteration's last minibatch your loss is {mine:.6f}, the library's "
                            f"{theirs:.6f}; it passes the check above, so look at what the trainer passes: "
                            "shapes other than the example's, dtypes, in-place edits.")
    differ = [k for k in ("pg_loss", "ratio", "kl", "clip_frac") if k in library
              and not math.isclose(history[0][k], library[k], rel_tol=tol, abs_tol=tol)]
    if differ:
        raise LabCheckError(f"your functions give the library's values on the first rollout, but the run's first "
                            f"iteration logged other {', '.join(differ)}: the policy moved differently — look at "
                            "the gradient (what you detach, and where) and at in-place edits of the inputs.")
    return passed(f"{len(history)} GRPO iterations with your functions; on the first rollout your advantages and "
                  f"loss ({mine:+.5f}) match the library's; reward {history[0]['reward']:.3f} → "
                  f"{history[-1]['reward']:.3f}")
