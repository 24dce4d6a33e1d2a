"""Every training objective of the book, as a pure function of tensors.

Each loss takes tensors and returns `(loss, metrics)`: `loss` a 0-dim tensor to backpropagate,
`metrics` a dict of detached tensors (no `.item()`, so nothing syncs a GPU). Shapes are in the
docstrings: B batch, T time, V vocabulary. Later chapters add their objectives here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

Metrics = dict[str, torch.Tensor]


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(labels) under logits, in float32.

    logits (B, T, V) predicting labels (B, T) → (B, T). Labels outside the vocabulary (e.g. the
    -100 of HF's convention) are read as token 0; mask them out afterwards.
    """
    logp = F.log_softmax(logits.float(), dim=-1)  # (B, T, V)
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
    logp = F.log_softmax(logits.float(), dim=-1)
    q = q.float()
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
    log_ratio = logprobs.float() - old_logprobs.float().detach()
    ratio = torch.exp(log_ratio)
    adv = advantages.float().detach()
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
    v, old, ret = values.float(), old_values.float().detach(), returns.float().detach()
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
    log_r = ref_logprobs.float() - logprobs.float()
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
    k1 = (logprobs.float() - ref_logprobs.float()).detach()
    rewards = -beta * k1 * mask
    last = (mask.sum(-1).long() - 1).clamp(min=0)  # (B,) index of the last response token
    has_tokens = (mask.sum(-1) > 0).to(rewards.dtype)
    rewards[torch.arange(len(last)), last] += scores.float().detach() * has_tokens
    return rewards
