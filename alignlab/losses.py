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
