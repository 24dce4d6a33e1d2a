"""Chapter 7's measures: pass@k from one pool of samples per problem, and what a verifier sees.

pass@k is the chance that at least one of k samples is right. Drawing k of the n samples of a
problem without replacement, with c of the n right, gives the unbiased estimator of Chen et al.
(2021, eq. 1):

    pass@k = 1 − C(n − c, k) / C(n, k)        averaged over problems

computed as a running product (no huge binomials). "Does RL add new solutions or sharpen the ones
it already samples?" (Yue et al., 2025) is read off two such curves: RL that only sharpens lifts
pass@1 and leaves pass@k at large k where it was, or lowers it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from . import verifiers
from .evaluate import mean_se
from .rollout import generate, sequence_kl, sequence_logprobs


def pass_at_k(correct, k: int) -> np.ndarray:
    """Unbiased pass@k per problem (Chen et al., 2021) from correct (P, n) bools → (P,), k ≤ n."""
    c = np.asarray(correct, dtype=bool)
    n, right = c.shape[1], c.sum(1)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the samples per problem ({n}), got {k}")
    # C(n − c, k) / C(n, k) = Π_{i = n − c + 1}^{n} (1 − k / i): the chance that k draws miss every right one
    out = np.empty(len(c))
    for p, cp in enumerate(right):
        out[p] = 1.0 if n - cp < k else 1.0 - np.prod(1.0 - k / np.arange(n - cp + 1, n + 1))
    return out


def pass_curve(correct, ks: Sequence[int]) -> dict[int, tuple[float, float]]:
    """k → (mean pass@k over problems, its standard error over problems)."""
    return {k: mean_se(pass_at_k(correct, k)) for k in ks}


def has_steps(response: str) -> bool:
    """Whether the response shows worked steps before its answer."""
    return "Step:" in response


def describe(prompts: Sequence[str], responses: Sequence[str]) -> dict[str, float]:
    """What the verifiers see in a set of responses: exact (pass@1), sloppy reward, the share that
    fools the sloppy verifier, lenient reward, the share without a readable answer, format, worked
    steps, and exact accuracy with and without steps."""
    exact = np.array([verifiers.exact_match(p, r) for p, r in zip(prompts, responses)])
    steps = np.array([has_steps(r) for r in responses])
    with_, without = exact[steps], exact[~steps]
    return {"exact": float(exact.mean()),
            "sloppy": float(np.mean([verifiers.sloppy_verifier(p, r) for p, r in zip(prompts, responses)])),
            "fools": float(np.mean([verifiers.fools(p, r) for p, r in zip(prompts, responses)])),
            "lenient": float(np.mean([verifiers.lenient_verifier(p, r) for p, r in zip(prompts, responses)])),
            "unreadable": float(np.mean([verifiers.final_number(r) is None for r in responses])),
            "format": float(np.mean([verifiers.format_reward(r) for r in responses])),
            "steps": float(steps.mean()),
            "exact_with_steps": float(with_.mean()) if len(with_) else float("nan"),
            "exact_without_steps": float(without.mean()) if len(without) else float("nan")}


def held_out(policy, tokenizer, prompts: list[str], max_new_tokens: int, seed: int = 0,
             batch_size: int = 256) -> dict[str, float]:
    """One sample per prompt (the same seed every call: common random numbers across a run's
    evaluations) → `describe` plus the mean response length in tokens."""
    ro = generate(policy, tokenizer, prompts, max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size)
    return {**describe(prompts, ro.texts), "length": float(ro.mask.sum(-1).float().mean())}


@torch.no_grad()
def sample_pool(policy, ref, tokenizer, problems: list[str], n: int, max_new_tokens: int, seed: int = 0,
                batch_size: int = 256) -> dict:
    """n samples per problem → {"responses": (P, n) texts, "kl": (P, n) sequence KL to `ref`
    (Σ_t log π − log π_ref on each sample: the k1 estimate, unbiased in its mean), "length"}."""
    rows = [p for p in problems for _ in range(n)]
    ro = generate(policy, tokenizer, rows, max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size)
    ref_logp, _ = sequence_logprobs(ref, tokenizer, rows, response_ids=ro.tokens, mask=ro.mask, batch_size=batch_size)
    # `evaluate.rollout_kl` would recompute the policy's log-probs teacher-forced; the sampler's own
    # are the same to 1e-4 (tests/test_rollout.py), so only the reference needs a forward here
    kl = sequence_kl(ro.logprobs, ref_logp, ro.mask.float())
    shape = lambda xs: [xs[i * n:(i + 1) * n] for i in range(len(problems))]
    return {"responses": shape(ro.texts), "kl": shape(kl.tolist()), "length": shape(ro.mask.sum(-1).tolist())}


def pool_correct(problems: Sequence[str], responses: Sequence[Sequence[str]],
                 verifier=verifiers.exact_match) -> np.ndarray:
    """(P, n) bools: which pool samples the verifier accepts."""
    return np.array([[verifier(p, r) == 1.0 for r in row] for p, row in zip(problems, responses)])


def along_run(meta: dict) -> list[dict]:
    """A chapter-7 run's held-out evaluations as rows (step 0 = the SFT start): step, exact,
    sloppy, fools, format, steps, length, …"""
    rows = [{"step": 0, **meta["start"]}]
    rows += [{"step": r["step"], **{k[len("heldout_"):]: v for k, v in r.items() if k.startswith("heldout_")}}
             for r in meta["history"] if "heldout_exact" in r]
    return rows
