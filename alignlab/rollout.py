"""Batched sampling with a KV cache, and teacher-forced log-probs.

Prompts are left-padded so every row's last prompt token sits in the same column and decoding
proceeds in lock-step; explicit position ids (cumulative sum of the attention mask) make each
row's positions start at 0 whatever its padding, so padding never changes a log-prob.

Sampling uses the inverse CDF with uniforms drawn up front from a seeded generator: two policies
sampled with the same seed on the same prompts see the same random numbers (common random
numbers), so a comparison between them has much less variance than two independent runs.
Rows that finish (emit eos) are dropped from the batch and its cache, so no work is wasted on
them.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM

from .models import encode_dialog, encode_prompts


# transformers ≥ 5.24 renamed `past_key_values` to `cache`; accept both.
CACHE_KW = "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"


@dataclass
class Rollout:
    """Sampled responses. B rows, T = the longest response (≤ max_new_tokens)."""

    prompts: list[str]
    prompt_ids: list[list[int]]
    tokens: torch.Tensor  # (B, T) response ids incl. eos, right-padded with pad id
    logprobs: torch.Tensor  # (B, T) float32 log π_θ(token), temperature 1; 0 where masked
    mask: torch.Tensor  # (B, T) 1 for response tokens up to and including eos
    texts: list[str]  # decoded responses without eos, leading space kept
    finished: torch.Tensor  # (B,) bool: ended with eos

    def __len__(self) -> int:
        return len(self.prompts)


def left_pad(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention_mask), both (B, L), rows aligned to the right."""
    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), L), dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, L - len(r):] = torch.tensor(r)
        attn[b, L - len(r):] = 1
    return ids.to(device), attn.to(device)


def positions(attn: torch.Tensor) -> torch.Tensor:
    """Position ids from an attention mask: 0 at each row's first real token."""
    return (attn.cumsum(-1) - 1).clamp(min=0)


def _select(cache, keep: torch.Tensor):
    """Keep batch rows `keep` of a transformers KV cache (in place)."""
    for layer in cache.layers:
        layer.keys = layer.keys.index_select(0, keep)
        layer.values = layer.values.index_select(0, keep)
    return cache


def _pick(logits: torch.Tensor, u: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Sample one token per row by inverse CDF. logits (B, V), u (B,) uniforms → (B,)."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, -1)
    sorted_p, order = probs.sort(-1, descending=True)
    if top_p < 1.0:  # keep the smallest prefix whose mass reaches top_p (always ≥ 1 token)
        keep = (sorted_p.cumsum(-1) - sorted_p) < top_p
        sorted_p = sorted_p * keep
        sorted_p = sorted_p / sorted_p.sum(-1, keepdim=True)
    idx = torch.searchsorted(sorted_p.cumsum(-1), u[:, None]).clamp(max=probs.shape[-1] - 1)
    return order.gather(-1, idx).squeeze(-1)


@torch.inference_mode()
def _generate_chunk(model, tokenizer, rows: list[list[int]], u: torch.Tensor, max_new_tokens: int,
                    temperature: float, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample up to max_new_tokens for each row → tokens (B, T) and logprobs (B, T)."""
    dev, eos, B = model.device, tokenizer.eos_token_id, len(rows)
    ids, attn = left_pad(rows, tokenizer.pad_token_id, dev)
    out_tok = torch.full((B, max_new_tokens), tokenizer.pad_token_id, dtype=torch.long)
    out_lp = torch.zeros((B, max_new_tokens))
    alive = torch.arange(B, device=dev)  # original row of each active row
    step_in, pos = ids, positions(attn)
    cache = None
    for t in range(max_new_tokens):
        res = model(input_ids=step_in, attention_mask=attn, position_ids=pos, use_cache=True,
                    logits_to_keep=1, **{CACHE_KW: cache})
        cache, logits = getattr(res, CACHE_KW), res.logits[:, -1].float()  # (b, V)
        tok = _pick(logits, u[alive.cpu(), t].to(dev), temperature, top_p)  # (b,)
        lp = F.log_softmax(logits, -1).gather(-1, tok[:, None]).squeeze(-1)
        out_tok[alive.cpu(), t], out_lp[alive.cpu(), t] = tok.cpu(), lp.cpu()
        keep = (tok != eos).nonzero().squeeze(-1)
        if len(keep) == 0:
            break
        if len(keep) < len(alive):  # drop finished rows from the batch and its cache
            alive, tok, cache = alive[keep], tok[keep], _select(cache, keep)
            attn, pos = attn[keep], pos[keep]
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], 1)
        step_in, pos = tok[:, None], pos[:, -1:] + 1
    return out_tok, out_lp


def response_mask(tokens: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask, finished): mask (B, T) is 1 up to and including the first eos (or everywhere)."""
    is_eos = tokens == eos_id
    before = is_eos.long().cumsum(-1) - is_eos.long()  # eos seen strictly before t
    return (before == 0).long(), is_eos.any(-1)


def decode_responses(tokenizer, tokens: torch.Tensor, mask: torch.Tensor) -> list[str]:
    """Response text of each row: masked tokens, without eos."""
    eos = tokenizer.eos_token_id
    return [tokenizer.decode([t for t, m in zip(row.tolist(), ms.tolist()) if m and t != eos])
            for row, ms in zip(tokens, mask)]


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 64, temperature: float = 1.0,
             top_p: float = 1.0, seed: int = 0, batch_size: int = 256) -> Rollout:
    """Sample one response per prompt (repeat a prompt to get several). See the module doc."""
    was_training = model.training
    model.eval()
    rows = encode_prompts(tokenizer, prompts)
    u = torch.rand((len(prompts), max_new_tokens), generator=torch.Generator().manual_seed(seed))
    toks, lps = [], []
    for s in range(0, len(prompts), batch_size):
        t, lp = _generate_chunk(model, tokenizer, rows[s:s + batch_size], u[s:s + batch_size],
                                max_new_tokens, temperature, top_p)
        toks.append(t)
        lps.append(lp)
    model.train(was_training)
    tokens = torch.cat(toks)
    mask, finished = response_mask(tokens, tokenizer.eos_token_id)
    T = max(1, int(mask.sum(-1).max()))
    tokens, mask = tokens[:, :T], mask[:, :T]
    logprobs = torch.cat(lps)[:, :T] * mask
    return Rollout(list(prompts), rows, tokens, logprobs, mask,
                   decode_responses(tokenizer, tokens, mask), finished)


@torch.no_grad()
def sequence_logprobs(model, tokenizer, prompts: list[str], responses: list[str] | None = None, *,
                      response_ids: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                      batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced log π(y_t | x, y_<t) of given responses → (logprobs, mask), both (B, T).

    Give either `responses` (text; encoded as ids(response) + [eos]) or `response_ids` + `mask`
    as in a Rollout. Left-padded prompts, right-padded responses, explicit position ids.
    """
    if responses is not None:
        enc = [encode_dialog(tokenizer, p, r) for p, r in zip(prompts, responses)]
        resp = [ids[n:] for ids, n in enc]
        T = max(len(r) for r in resp)
        response_ids = torch.full((len(resp), T), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(resp), T), dtype=torch.long)
        for b, r in enumerate(resp):
            response_ids[b, : len(r)], mask[b, : len(r)] = torch.tensor(r), 1
    rows, out = encode_prompts(tokenizer, prompts), []
    for s in range(0, len(rows), batch_size):
        ids, attn = left_pad(rows[s:s + batch_size], tokenizer.pad_token_id, model.device)
        r_ids, r_m = response_ids[s:s + batch_size].to(model.device), mask[s:s + batch_size].to(model.device)
        full, full_attn = torch.cat([ids, r_ids], 1), torch.cat([attn, r_m], 1)  # (b, L+T)
        logits = model(input_ids=full, attention_mask=full_attn, position_ids=positions(full_attn)).logits
        L = ids.shape[1]
        logp = F.log_softmax(logits[:, L - 1:-1].float(), -1)  # predicts response tokens
        out.append((logp.gather(-1, r_ids[..., None]).squeeze(-1) * r_m).cpu())
    return torch.cat(out), mask.cpu()
