"""Every training objective of the book, as a pure function of tensors.

Each loss takes tensors and returns `(loss, metrics)`: `loss` a 0-dim tensor to backpropagate,
`metrics` a dict of detached tensors (no `.item()`, so nothing syncs a GPU). Shapes are in the
docstrings: B batch, T time, V vocabulary. Later chapters add their objectives here.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

Metrics = dict[str, torch.Tensor]


def upcast(x: torch.Tensor) -> torch.Tensor:
    """x in at least float32: half precision (bf16, fp16) goes up, float64 stays float64 (`.float()`
    would round it down, so a float64 reference could not check a loss past float32's ~1e-7)."""
    return x if x.dtype == torch.float64 else x.float()


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(labels) under logits, in float32 (float64 if the logits are).

    logits (B, T, V) predicting labels (B, T) → (B, T). Labels outside the vocabulary (e.g. the
    -100 of HF's convention) are read as token 0; mask them out afterwards.
    """
    logp = F.log_softmax(upcast(logits), dim=-1)  # (B, T, V)
    return logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)


def nll_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
             num_tokens: torch.Tensor | float | None = None) -> tuple[torch.Tensor, Metrics]:
    """Masked token negative log-likelihood: the pretraining and SFT objective.

        L(θ) = − (1/N) Σ_{b,t} m_{b,t} · log p_θ(y_{b,t} | y_{b,<t})

    logits (B, T, V) already aligned with labels (B, T) (position t predicts labels[:, t]);
    mask (B, T) is 1 where a token counts — in SFT the prompt tokens are 0, so only the response
    is imitated. N = mask.sum(), or `num_tokens` when given: passing the token count of the whole
    optimizer step makes gradient accumulation over micro-batches equal one big batch.
    Minimising it over data q is minimising KL(q‖p_θ) + H(q) (chapter 1).
    """
    mask = mask.to(torch.float32)
    nll = -token_logprobs(logits, labels) * mask  # (B, T)
    n = mask.sum() if num_tokens is None else num_tokens
    loss = nll.sum() / n
    return loss, {"nll": (nll.sum() / mask.sum().clamp(min=1)).detach(), "tokens": mask.sum().detach()}


def cross_entropy_decomposition(q: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cross-entropy of a model p = softmax(logits) against a data distribution q, and its parts.

        CE(q, p) = −Σ_v q(v) log p(v) = KL(q ‖ p) + H(q)

    q (…, V) probabilities, logits (…, V) → each entry (…,), in nats. H(q) does not depend on
    the model, so minimising CE (pretraining, SFT) is minimising the forward KL from the data to
    the model — which rewards covering everything the data does, good behaviour and bad alike.
    """
    logp = F.log_softmax(upcast(logits), dim=-1)
    q = upcast(q)
    q_logq = torch.where(q > 0, q * q.clamp(min=1e-30).log(), torch.zeros_like(q))
    ce = -(q * logp).sum(-1)
    entropy = -q_logq.sum(-1)
    kl = (q_logq - q * logp).sum(-1)
    return {"cross_entropy": ce, "kl": kl, "entropy": entropy}


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor,
                       margin: torch.Tensor | None = None) -> tuple[torch.Tensor, Metrics]:
    """The reward model's loss: the negative log-likelihood of the labeler's choices under
    Bradley-Terry (1952), P(y_w ≻ y_l | x) = σ(r(x, y_w) − r(x, y_l)):

        L(r) = − (1/B) Σ_b log σ(r_w[b] − r_l[b] [− margin[b]])     (InstructGPT, eq. 1)

    r_chosen, r_rejected (B,) — or (B, 1) as HF's scalar heads give, squeezed here; margin (B,)
    optional (Llama 2's margin for "significantly better" pairs). Each pair weighs the same;
    weighting by prompt (InstructGPT's 1/C(K,2)) is the data pipeline's job. `logsigmoid`
    keeps it finite for large negative differences. Only r_w − r_l enters, so adding any
    function of the prompt to every reward leaves the loss unchanged.
    Metrics: `accuracy` = mean(r_w > r_l), `reward_margin` = mean(r_w − r_l) (without `margin`).
    """
    r_chosen, r_rejected = (r.squeeze(-1) if r.dim() == 2 and r.shape[-1] == 1 else r
                            for r in (r_chosen, r_rejected))
    dtype = torch.promote_types(r_chosen.dtype, torch.float32)  # float32, or float64 if given
    diff = r_chosen.to(dtype) - r_rejected.to(dtype)  # (B,)
    logits = diff if margin is None else diff - margin.to(dtype)
    loss = -F.logsigmoid(logits).mean()
    return loss, {"accuracy": (diff > 0).float().mean().detach(),
                  "reward_margin": diff.mean().detach()}


# --- chapter 3: KL-regularised RL with PPO ---------------------------------------------------
# All (B, T) tensors are right-padded with a contiguous 0/1 `mask`; only `logprobs` and `values`
# carry gradients, everything else is a constant of the update.


def _masked_mean(x: torch.Tensor, mask: torch.Tensor, num_tokens=None) -> torch.Tensor:
    n = mask.sum() if num_tokens is None else num_tokens
    return (x * mask).sum() / n


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float,
        mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016, eq. 16):

        δ_t = r_t + γ V(s_{t+1}) − V(s_t),      Â_t = Σ_{l≥0} (γλ)^l δ_{t+l}

    rewards, values, mask (B, T) → (advantages, returns), both (B, T). values[:, t] is the value
    of the state before token t; the value after the last unmasked token is 0 (the episode ends
    there, eos or not). returns = advantages + values. Both are 0 where mask is 0; no whitening
    here (the trainer whitens advantages over the whole batch).
    """
    mask = torch.ones_like(rewards) if mask is None else mask.to(rewards.dtype)
    rewards, values = rewards.detach() * mask, values.detach() * mask
    B, T = rewards.shape
    adv = torch.zeros_like(rewards)
    running = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(T)):
        alive_next = mask[:, t + 1] if t + 1 < T else torch.zeros_like(running)  # (B,)
        next_value = values[:, t + 1] * alive_next if t + 1 < T else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * alive_next * running
        adv[:, t] = running
    adv = adv * mask
    return adv, (adv + values) * mask


def ppo_clip_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                  mask: torch.Tensor, clip_eps: float = 0.2,
                  num_tokens: torch.Tensor | float | None = None) -> tuple[torch.Tensor, Metrics]:
    """PPO's clipped surrogate (Schulman et al., 2017, eq. 7), as a loss to minimise:

        L = (1/N) Σ_{b,t} m · max(−Â ρ, −Â clip(ρ, 1 − ε, 1 + ε)),   ρ = exp(log π_θ − log π_old)

    all (B, T); N = mask.sum(), or `num_tokens` (the whole optimizer step's tokens, so gradient
    accumulation equals one big batch). Metrics: clip_frac = masked mean of |ρ − 1| > ε, and
    approx_kl = masked mean of (ρ − 1) − log ρ (k3 of KL(π_old ‖ π_θ))."""
    mask = mask.to(torch.float32)
    log_ratio = upcast(logprobs) - upcast(old_logprobs).detach()
    ratio = torch.exp(log_ratio)
    adv = upcast(advantages).detach()
    per_token = torch.maximum(-adv * ratio, -adv * torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps))
    loss = _masked_mean(per_token, mask, num_tokens)
    with torch.no_grad():
        clip_frac = _masked_mean(((ratio - 1).abs() > clip_eps).float(), mask)
        approx_kl = _masked_mean((ratio - 1) - log_ratio, mask)
    return loss, {"clip_frac": clip_frac, "approx_kl": approx_kl}


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip_eps: float | None = 0.2,
               num_tokens: torch.Tensor | float | None = None) -> tuple[torch.Tensor, Metrics]:
    """The value head's loss, clipped around the rollout's values as in PPO's reference code:

        L_V = ½ · (1/N) Σ m · max((V − R)², (V_old + clip(V − V_old, −ε, ε) − R)²)

    all (B, T); `clip_eps=None` is the plain squared error. Metrics: vf_clip_frac, explained_var."""
    mask = mask.to(torch.float32)
    v, old, ret = upcast(values), upcast(old_values).detach(), upcast(returns).detach()
    err = (v - ret) ** 2
    if clip_eps is not None:
        clipped = old + torch.clamp(v - old, -clip_eps, clip_eps)
        err_clipped = (clipped - ret) ** 2
        frac = _masked_mean((err_clipped > err).float(), mask)
        err = torch.maximum(err, err_clipped)
    else:
        frac = torch.zeros(())
    loss = 0.5 * _masked_mean(err, mask, num_tokens)
    with torch.no_grad():
        var_ret = _masked_mean((ret - _masked_mean(ret, mask)) ** 2, mask)
        resid = _masked_mean((ret - v - _masked_mean(ret - v, mask)) ** 2, mask)
        explained = 1 - resid / var_ret.clamp(min=1e-8)
    return loss, {"vf_clip_frac": frac.detach(), "explained_var": explained}


def kl_estimators(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Schulman's (2020) per-token estimators of KL(π ‖ π_ref) for tokens sampled from π.

    With log r = log π_ref − log π (both (B, T), no masking here):
        k1 = −log r            unbiased, but negative whenever π_ref gives the token more mass;
        k2 = ½ (log r)²        biased, low variance (the f-divergence with f = ½ (log x)²);
        k3 = (r − 1) − log r   unbiased and ≥ 0 everywhere, since log x ≤ x − 1.
    """
    log_r = upcast(ref_logprobs) - upcast(logprobs)
    return {"k1": -log_r, "k2": 0.5 * log_r ** 2, "k3": torch.expm1(log_r) - log_r}


def kl_penalized_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                         mask: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    """InstructGPT's shaped reward (Ouyang et al., 2022, eq. 2; Ziegler et al., 2019):

        r_t = −β · (log π(y_t) − log π_ref(y_t))  on every response token,
              + score(x, y)                        on the last one.

    scores (B,), logprobs / ref_logprobs / mask (B, T) → (B, T), 0 where mask is 0. β a float or a
    0-dim tensor (the adaptive controller's). Summed over t, the penalty is −β times the k1
    estimate of the sequence KL."""
    mask = mask.to(torch.float32)
    k1 = (upcast(logprobs) - upcast(ref_logprobs)).detach()
    rewards = -beta * k1 * mask
    last = (mask.sum(-1).long() - 1).clamp(min=0)  # (B,) index of the last response token
    has_tokens = (mask.sum(-1) > 0).to(rewards.dtype)
    rewards[torch.arange(len(last)), last] += upcast(scores).detach() * has_tokens
    return rewards


# --- chapter 4: direct preference optimisation and its family ---------------------------------
# Inputs are (B,) sequence log-probs computed by the caller: summed over response tokens for DPO,
# averaged per token where the variant says so (IPO as TRL and the IPO authors do, SimPO, ORPO).

_DPO_LOSSES = {
    # Rafailov et al. (2023), eq. 7: the Bradley-Terry likelihood of the implicit reward β·h
    "sigmoid": lambda h, beta: -F.logsigmoid(beta * h),
    # SLiC-style hinge on the same margin (Zhao et al., 2023)
    "hinge": lambda h, beta: torch.relu(1 - beta * h),
    # Azar et al. (2023), eq. 17, β playing IPO's τ: regress h onto 1/(2τ) instead of pushing it to ∞
    "ipo": lambda h, beta: (h - 1 / (2 * beta)) ** 2,
}


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float = 0.1,
             loss_type: str = "sigmoid") -> tuple[torch.Tensor, Metrics]:
    """DPO and its pairwise siblings on h = (log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l)):

        sigmoid: −log σ(β h)      hinge: relu(1 − β h)      ipo: (h − 1/(2β))²

    All inputs (B,); loss the 0-dim batch mean. Metrics: the implicit rewards β·log(π/π_ref) of
    chosen and rejected (means), accuracy (chosen reward > rejected), margin (mean difference)."""
    if loss_type not in _DPO_LOSSES:
        raise ValueError(f"loss_type must be one of {sorted(_DPO_LOSSES)}, not {loss_type!r}")
    chosen = upcast(policy_chosen_logps) - upcast(ref_chosen_logps).detach()
    rejected = upcast(policy_rejected_logps) - upcast(ref_rejected_logps).detach()
    loss = _DPO_LOSSES[loss_type](chosen - rejected, beta).mean()
    r_c, r_r = (beta * chosen).detach(), (beta * rejected).detach()
    return loss, {"chosen_reward": r_c.mean(), "rejected_reward": r_r.mean(),
                  "accuracy": (r_c > r_r).float().mean(), "margin": (r_c - r_r).mean()}


def simpo_loss(chosen_avg_logps: torch.Tensor, rejected_avg_logps: torch.Tensor, beta: float = 2.0,
               gamma: float = 1.0) -> tuple[torch.Tensor, Metrics]:
    """SimPO (Meng et al., 2024, eq. 6): no reference model; the reward is the length-averaged
    log-prob, and the chosen must win by a margin γ:

        L = −log σ(β/|y_w| · log π(y_w) − β/|y_l| · log π(y_l) − γ)

    chosen_avg_logps, rejected_avg_logps (B,): log π(y) / |y| (per-token means)."""
    r_c, r_r = beta * upcast(chosen_avg_logps), beta * upcast(rejected_avg_logps)
    loss = -F.logsigmoid(r_c - r_r - gamma).mean()
    return loss, {"chosen_reward": r_c.detach().mean(), "rejected_reward": r_r.detach().mean(),
                  "accuracy": (r_c > r_r).float().mean().detach(), "margin": (r_c - r_r).detach().mean()}


def orpo_loss(chosen_avg_logps: torch.Tensor, rejected_avg_logps: torch.Tensor, chosen_nll: torch.Tensor,
              lam: float = 0.1) -> tuple[torch.Tensor, Metrics]:
    """ORPO (Hong et al., 2024, eqs. 6-7): SFT on the chosen response plus an odds-ratio penalty,
    no reference model:

        L = L_NLL(y_w) − λ · log σ(log odds(y_w) − log odds(y_l)),   odds(y) = P(y) / (1 − P(y))

    with P(y) = exp(mean token log-prob). chosen_avg_logps, rejected_avg_logps (B,) per-token
    means (< 0); chosen_nll the 0-dim SFT loss on the chosen responses, computed by the caller."""
    def log_odds(avg):  # log P − log(1 − P), stable for P near 0 and 1
        return avg - torch.log1p(-torch.exp(avg.clamp(max=-1e-6)))
    ratio = log_odds(upcast(chosen_avg_logps)) - log_odds(upcast(rejected_avg_logps))
    or_loss = -F.logsigmoid(ratio).mean()
    return chosen_nll + lam * or_loss, {"nll": chosen_nll.detach(), "or_loss": or_loss.detach(),
                                       "log_odds_ratio": ratio.detach().mean(),
                                       "accuracy": (ratio > 0).float().mean().detach()}


def kto_loss(policy_logps: torch.Tensor, ref_logps: torch.Tensor, desirable: torch.Tensor,
             reference_point: torch.Tensor | float, beta: float = 0.1, lambda_d: float = 1.0,
             lambda_u: float = 1.0) -> tuple[torch.Tensor, Metrics]:
    """KTO (Ethayarajh et al., 2024, eq. 8): unpaired feedback, a prospect-theory value around a
    reference point z₀ (an estimate of KL(π‖π_ref), treated as a constant):

        r = log π(y) − log π_ref(y)
        v = λ_D σ(β (r − z₀)) if y is desirable,  λ_U σ(β (z₀ − r)) otherwise
        L = mean(λ_y − v)

    policy_logps, ref_logps (B,) summed log-probs; desirable (B,) bool; reference_point z₀
    (TRL: the clamped-at-0 mean log-ratio on mismatched prompt/response pairs)."""
    r = upcast(policy_logps) - upcast(ref_logps).detach()
    z0 = torch.as_tensor(reference_point, dtype=r.dtype, device=r.device).detach()
    desirable = desirable.bool()
    value = torch.where(desirable, lambda_d * torch.sigmoid(beta * (r - z0)),
                        lambda_u * torch.sigmoid(beta * (z0 - r)))
    lam = torch.where(desirable, torch.full_like(r, lambda_d), torch.full_like(r, lambda_u))
    loss = (lam - value).mean()
    rewards = (beta * r).detach()
    nan = torch.tensor(float("nan"))
    return loss, {"desirable_reward": rewards[desirable].mean() if desirable.any() else nan,
                  "undesirable_reward": rewards[~desirable].mean() if (~desirable).any() else nan,
                  "reference_point": z0}


# --- chapter 7: GRPO, RL on verifiable rewards without a value model ----------------------------
# A prompt is sampled G times; each completion's one scalar reward is compared with its group's, and
# that advantage is every token's. Rows are grouped consecutively: group g is rows g·G … g·G + G − 1.

_ADVANTAGE_SCALES = ("group", None)


def grpo_advantages(rewards: torch.Tensor, group_size: int, scale: str | None = "group",
                    eps: float = 1e-4) -> torch.Tensor:
    """GRPO's outcome advantages (Shao et al., 2024, DeepSeekMath §4.1.2), one per completion:

        scale="group":  Â_i = (r_i − mean(r)) / (std(r) + eps)     over the G completions of i's prompt
        scale=None:     Â_i =  r_i − mean(r)                        (Dr. GRPO, Liu et al., 2025, §3.2)

    rewards (B,), B = n_prompts × group_size → (B,), detached. std is the unbiased (Bessel) one and
    eps is added to it, not under the square root — TRL's convention (`nanstd`, then ÷ (std + 1e-4)).
    Dr. GRPO drops the ÷ std: it weights prompts the policy almost always (or never) solves more than
    the rest. A group of equal rewards has nothing to learn from and gets exactly 0 (never NaN)."""
    if scale not in _ADVANTAGE_SCALES:
        raise ValueError(f"scale must be 'group' (÷ the group's std) or None (Dr. GRPO), not {scale!r}")
    if group_size < 2:
        raise ValueError(f"group_size must be at least 2, got {group_size}: the baseline is the group's mean "
                         "reward, and a group of one completion has nothing to be compared with")
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be one (B,) row of G = group_size = {group_size} completions per prompt, "
                         f"consecutive; got shape {tuple(rewards.shape)}, not a multiple of {group_size}")
    r = upcast(rewards).detach().view(-1, group_size)  # (n_prompts, G)
    adv = r - r.mean(-1, keepdim=True)
    if scale == "group":
        adv = adv / (r.std(-1, keepdim=True) + eps)  # torch.std is Bessel-corrected by default
    flat = (r == r[:, :1]).all(-1, keepdim=True)  # the mean of equal floats can miss them by an ulp
    return torch.where(flat, torch.zeros_like(adv), adv).view(-1)


def _seq_then_batch_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return ((x * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()


_GRPO_NORMS = {
    # DeepSeekMath eq. 3: (1/G) Σ_i (1/|o_i|) Σ_t — each completion's token mean, then the mean of those
    "grpo": _seq_then_batch_mean,
    # DAPO eq. 12 (Yu et al., 2025), TRL 1.16's default: one mean over every completion token of the batch
    "dapo": lambda x, mask: (x * mask).sum() / mask.sum().clamp(min=1),
    # Dr. GRPO §3.2: a constant divisor, B × T (T the padded width, TRL's max_completion_length)
    "dr_grpo": lambda x, mask: (x * mask).sum() / mask.numel(),
}


def grpo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
              clip_eps: float = 0.2, ref_logprobs: torch.Tensor | None = None, beta: float = 0.0,
              norm: str = "grpo") -> tuple[torch.Tensor, Metrics]:
    """GRPO's objective (Shao et al., 2024, DeepSeekMath eq. 3), as a loss to minimise. Per token,

        ℓ_t = −min(ρ_t Â, clip(ρ_t, 1 − ε, 1 + ε) Â) + β k3_t,     ρ_t = exp(log π_θ − log π_old)
        k3_t = exp(log π_ref − log π_θ) − (log π_ref − log π_θ) − 1           (eq. 4; Schulman's k3)

    then aggregated over the mask by `norm`: "grpo" (eq. 3) mean over each completion's tokens,
    then over completions; "dapo" Σ ℓ / (mask tokens in the batch); "dr_grpo" Σ ℓ / (B × T).
    logprobs, old_logprobs, ref_logprobs, mask (B, T), mask 1 on completion tokens; advantages (B,)
    from `grpo_advantages`. The KL is in the loss, not the reward, and k3 is not multiplied by ρ
    (TRL's `use_bias_correction_kl=False`). Only `logprobs` carries a gradient.
    Metrics (masked means): clip_frac = tokens where the clip binds (ρ beyond 1 ± ε on the side
    Â pushes it, TRL's clip_ratio/region_mean — unlike ppo_clip_loss's |ρ − 1| > ε), ratio, and kl
    (k3) whenever ref_logprobs is given."""
    if norm not in _GRPO_NORMS:
        raise ValueError(f"norm must be one of {sorted(_GRPO_NORMS)}, not {norm!r}")
    if beta > 0 and ref_logprobs is None:
        raise ValueError(f"beta = {beta} > 0 puts a KL to the reference policy in the loss: pass ref_logprobs")
    mask = mask.to(torch.float32)
    logp = upcast(logprobs)
    ratio = torch.exp(logp - upcast(old_logprobs).detach())  # (B, T)
    adv = upcast(advantages).detach().unsqueeze(-1)  # (B, 1): every token gets its completion's advantage
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps)
    per_token = -torch.minimum(ratio * adv, clipped * adv)
    kl = None if ref_logprobs is None else kl_estimators(logp, ref_logprobs.detach())["k3"]
    if beta > 0:
        per_token = per_token + beta * kl
    loss = _GRPO_NORMS[norm](per_token, mask)
    with torch.no_grad():
        n = mask.sum().clamp(min=1)
        binds = ((ratio < 1 - clip_eps) & (adv < 0)) | ((ratio > 1 + clip_eps) & (adv > 0))
        metrics = {"clip_frac": (binds * mask).sum() / n, "ratio": (ratio * mask).sum() / n}
        if kl is not None:
            metrics["kl"] = (kl * mask).sum() / n
    return loss, metrics


# --- chapter 8: weak-to-strong generalization (Burns et al., 2023) -------------------------------


def pgr(weak_acc, w2s_acc, ceiling_acc):
    """Performance gap recovered (Burns et al., 2023, §3):

        PGR = (weak-to-strong − weak) / (strong ceiling − weak)

    1 = the student trained on weak labels does as well as the strong model trained on ground truth;
    0 = no better than its weak supervisor. Floats → a float; arrays (one entry per seed, pair, …) →
    an array, elementwise. ValueError where the ceiling does not exceed the weak model: there is no
    gap to recover, and the ratio would be meaningless or infinite."""
    weak, w2s, ceiling = (np.asarray(x, dtype=float) for x in (weak_acc, w2s_acc, ceiling_acc))
    gap = ceiling - weak
    if np.any(~(gap > 0)):
        raise ValueError(f"PGR needs a strong ceiling above the weak model (ceiling − weak = {gap}); "
                         "with no gap there is nothing to recover")
    out = (w2s - weak) / gap
    return float(out) if out.ndim == 0 else out


def confidence_loss(student_logits: torch.Tensor, weak_probs: torch.Tensor, alpha: float) -> tuple[torch.Tensor, Metrics]:
    """Burns et al.'s auxiliary confidence loss (§4.3.2, eq. 1), to minimise:

        L = (1 − α) · CE(f, f_w) + α · CE(f, hard(f))

    f = softmax(student_logits) (B, 2), f_w = weak_probs (B, 2) the weak supervisor's soft labels,
    hard(f) the student's own predictions hardened to one-hot by a threshold on f[:, 0] at the
    quantile equal to the weak labels' positive share, so that the hardened positive rate matches
    the weak labels' in the batch (their code, `weak_to_strong/loss.py:99-105`: it stops the student
    from collapsing onto one class). hard(f) is detached: a target, never a path for gradients. As
    CE is linear in its target this is one CE to the target (1 − α) f_w + α hard(f), as their code
    computes it. α's warm-up (their code: α · step_frac for the first 10% of steps) is the trainer's.
    α = 0 is plain cross-entropy to the weak labels. Metrics: hard_positive (the hardened positive
    rate), agreement (student argmax = weak argmax)."""
    logits = upcast(student_logits)
    weak = upcast(weak_probs).detach()
    probs = logits.softmax(-1).detach()  # (B, 2)
    threshold = torch.quantile(probs[:, 0], weak[:, 1].mean())
    hard = torch.stack([probs[:, 0] >= threshold, probs[:, 0] < threshold], dim=-1).to(logits.dtype)  # (B, 2)
    target = (1 - alpha) * weak + alpha * hard
    loss = F.cross_entropy(logits, target)
    return loss, {"hard_positive": hard[:, 1].mean(),
                  "agreement": (logits.argmax(-1) == weak.argmax(-1)).float().mean().detach()}
