"""Batched sampling with a KV cache, and teacher-forced log-probs.

Layout of every sequence: ids(chat_prompt(prompt)) + ids(response) + [eos] (see `models`).

Prompts are left-padded so every row's last prompt token sits in the same column and decoding
proceeds in lock-step; explicit position ids (cumulative sum of the attention mask, minus one)
make each row's positions start at 0 whatever its padding, so padding never changes a log-prob. (Llama's
rotary embeddings only see position differences, so shifted positions would cost only rounding;
explicit ids make the batched computation the same as the unbatched one, and keep positions
within the context length.)

Sampling is by inverse CDF with uniforms drawn up front from a generator seeded by `seed`, one
row per prompt: two policies sampled with the same seed on the same prompts see the same random
numbers (common random numbers), so a comparison between them has much less variance than two
independent runs, and a row's sample does not depend on the batch it was put in.
Rows that finish (emit eos) are dropped from the batch and from its cache, so no work is wasted.

This is the plain eager loop over the Hugging Face forward: simple, any device and dtype.
Log-probs are always float32 and at temperature 1 (the policy's own distribution, what KL
penalties and PPO ratios need), whatever temperature or top-p the tokens were drawn with.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM, PreTrainedTokenizerBase

from .models import encode_prompts, right_pad

# transformers 5.24 renamed `past_key_values` to `cache` (the GPU image has 5.17); accept both.
CACHE_KW = "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"


@dataclass
class Rollout:
    """Sampled responses: B rows, T = the longest response (≤ max_new_tokens)."""

    prompts: list[str]  # B raw prompts (no chat template)
    prompt_ids: list[list[int]]  # B token-id lists of chat_prompt(prompt)
    tokens: torch.Tensor  # (B, T) long: response ids incl. eos, right-padded with pad id
    logprobs: torch.Tensor  # (B, T) float32: log π_θ(token) at temperature 1; 0 where masked
    mask: torch.Tensor  # (B, T) long: 1 for response tokens up to and including eos
    texts: list[str]  # B decoded responses without eos, leading space kept
    finished: torch.Tensor  # (B,) bool: ended with eos before max_new_tokens ran out

    def __len__(self) -> int:
        return len(self.prompts)


def left_pad(rows: list[list[int]], pad_id: int,
             device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Rows aligned to the right → (ids, attention_mask), both (B, L) long, L = longest row."""
    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), L), dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, L - len(r):] = torch.tensor(r, dtype=torch.long)
        attn[b, L - len(r):] = 1
    return ids.to(device), attn.to(device)


def positions(attn: torch.Tensor) -> torch.Tensor:
    """Position ids (B, L) from an attention mask (B, L): 0 at each row's first real token."""
    return (attn.cumsum(-1) - 1).clamp(min=0)


FAST_K = 16
"""Candidates `sample_token` ranks before falling back to a full sort of the vocabulary: a trained
model's sample is nearly always among its 16 likeliest tokens, and on a CPU `topk(16)` costs
about a tenth of a full sort (which was half the time of a ci-sized decode step)."""


def _nucleus(sorted_p: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tail of descending probabilities (B, k): keep a token while the mass before it
    is < top_p (the smallest prefix whose mass reaches top_p, at least one token)."""
    return sorted_p if top_p >= 1 else sorted_p * ((sorted_p.cumsum(-1) - sorted_p) < top_p)


def _at_quantile(cdf: torch.Tensor, order: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The first token whose cumulative mass cdf (B, k) reaches target (B,) → (B,) ids from order."""
    target = torch.minimum(target, cdf[:, -1])  # float sums may leave a hair above the last step
    return order.gather(-1, torch.searchsorted(cdf, target[:, None])).squeeze(-1)


def _target(u: torch.Tensor, cdf: torch.Tensor, top_p: float) -> torch.Tensor:
    """The cumulative mass (B,) to find: u, or with top-p, u times the kept mass (the last column
    of cdf once the nucleus ends inside it) instead of renormalising the probabilities."""
    return u.to(cdf) if top_p >= 1 else u.to(cdf) * cdf[:, -1]


def sample_token_sorted(probs: torch.Tensor, u: torch.Tensor, top_p: float = 1.0) -> torch.Tensor:
    """Inverse CDF over the probabilities (B, V) sorted in descending order; u (B,) → (B,) ids.

    The reference `sample_token` must match (tests check), and its slow path.
    """
    sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)  # (B, V); stable: ties reproducible
    cdf = _nucleus(sorted_p, top_p).cumsum(-1)  # (B, V)
    return _at_quantile(cdf, order, _target(u, cdf, top_p))


def sample_token(logits: torch.Tensor, u: torch.Tensor, temperature: float = 1.0,
                 top_p: float = 1.0) -> torch.Tensor:
    """One token per row by inverse CDF. logits (B, V), u (B,) uniforms in [0, 1) → (B,) ids.

    Same distribution as `torch.multinomial(nucleus(softmax(logits / temperature)), 1)`, but a
    given u picks the same quantile (from the likeliest token down) under any policy: common
    random numbers. temperature 0 is greedy. Equals `sample_token_sorted` (the naive version);
    only rows whose quantile lies beyond the top FAST_K tokens pay for the full sort.
    """
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, -1)  # (B, V)
    top, order = probs.topk(min(FAST_K, probs.shape[-1]), dim=-1)  # (B, k): the head of the full sort
    cdf = _nucleus(top, top_p).cumsum(-1)  # (B, k)
    target = _target(u, cdf, top_p)  # (B,)
    tok = _at_quantile(cdf, order, target)
    slow = target > cdf[:, -1]  # the quantile lies past the head
    if top_p < 1:  # or the nucleus does not end inside the head
        slow |= top.cumsum(-1)[:, -1] < top_p
    if bool(slow.any()):
        tok[slow] = sample_token_sorted(probs[slow], u[slow], top_p)
    return tok


@torch.inference_mode()
def _generate_chunk(model, tokenizer, rows: list[list[int]], u: torch.Tensor, temperature: float,
                    top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample for one chunk of B prompts; u (B, N) → tokens (B, N) and logprobs (B, N), on CPU."""
    dev, eos, pad = model.device, tokenizer.eos_token_id, tokenizer.pad_token_id
    ids, attn = left_pad(rows, pad, dev)  # (B, L)
    B, N = u.shape
    tokens = torch.full((B, N), pad, dtype=torch.long, device=dev)
    logprobs = torch.zeros((B, N), dtype=torch.float32, device=dev)
    u, alive = u.to(dev), torch.arange(B, device=dev)  # alive: original row of each row still going
    step_in, pos, cache = ids, positions(attn), None
    for t in range(N):
        out = model(input_ids=step_in, attention_mask=attn, position_ids=pos, use_cache=True,
                    logits_to_keep=1, **{CACHE_KW: cache})
        cache, logits = getattr(out, CACHE_KW), out.logits[:, -1].float()  # (b, V)
        tok = sample_token(logits, u[alive, t], temperature, top_p)  # (b,)
        tokens[alive, t] = tok
        logprobs[alive, t] = F.log_softmax(logits, -1).gather(-1, tok[:, None]).squeeze(-1)
        going = tok != eos  # (b,)
        if not bool(going.all()):  # drop finished rows from the batch and from its cache
            keep = going.nonzero().squeeze(-1)
            if len(keep) == 0:
                break
            alive, tok, attn, pos = alive[keep], tok[keep], attn[keep], pos[keep]
            cache.batch_select_indices(keep)
        attn = torch.cat([attn, attn.new_ones(len(alive), 1)], 1)  # (b, L + t + 1)
        step_in, pos = tok[:, None], pos[:, -1:] + 1  # (b, 1) each
    return tokens.cpu(), logprobs.cpu()


def response_mask(tokens: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens (B, T) → (mask (B, T), finished (B,)): mask is 1 up to and including the first eos
    (everywhere when a row has none); finished says the row has an eos."""
    is_eos = (tokens == eos_id).long()
    before = is_eos.cumsum(-1) - is_eos  # (B, T): eos seen strictly before t
    return (before == 0).long(), is_eos.bool().any(-1)


def decode_responses(tokenizer: PreTrainedTokenizerBase, tokens: torch.Tensor,
                     mask: torch.Tensor) -> list[str]:
    """Response text of each row of tokens (B, T): the masked tokens without eos, leading space kept."""
    eos = tokenizer.eos_token_id
    rows = [[t for t, m in zip(row, ms) if m and t != eos] for row, ms in zip(tokens.tolist(), mask.tolist())]
    return tokenizer.batch_decode(rows, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def generate(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase, prompts: list[str],
             max_new_tokens: int = 64, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
             batch_size: int = 256, chat: bool = True) -> Rollout:
    """Sample one response per prompt (repeat a prompt to get several); see the module doc.
    `chat=False` continues each prompt's raw text instead of its chat template (chapter 5's
    critiques and revisions continue a document, not a dialog turn).

    Runs in eval mode under inference_mode and restores the model's training flag afterwards.
    """
    assert max_new_tokens >= 1, "max_new_tokens must be at least 1"
    rows = (encode_prompts(tokenizer, prompts) if chat else
            [tokenizer.encode(p, add_special_tokens=False) for p in prompts])
    # (B_total, N), drawn before any chunking: row b's numbers depend only on (seed, b)
    u = torch.rand((len(rows), max_new_tokens), generator=torch.Generator().manual_seed(seed))
    was_training = model.training
    model.eval()
    try:
        chunks = [_generate_chunk(model, tokenizer, rows[s:s + batch_size], u[s:s + batch_size],
                                  temperature, top_p) for s in range(0, len(rows), batch_size)]
    finally:
        model.train(was_training)
    tokens = torch.cat([c[0] for c in chunks]) if chunks else torch.zeros((0, 1), dtype=torch.long)
    logprobs = torch.cat([c[1] for c in chunks]) if chunks else torch.zeros((0, 1))
    return make_rollout(tokenizer, prompts, rows, tokens, logprobs)


def make_rollout(tokenizer: PreTrainedTokenizerBase, prompts: list[str], rows: list[list[int]],
                 tokens: torch.Tensor, logprobs: torch.Tensor) -> Rollout:
    """A sampler's raw output → a Rollout: tokens, logprobs (B, N) on CPU, as drawn, each row up
    to its first eos and anything after it. Masks after eos (pad id, log-prob 0), trims the
    columns no row used and decodes; every sampler ends with it (`static_decode` too)."""
    mask, finished = response_mask(tokens, tokenizer.eos_token_id)
    T = max([1] + mask.sum(-1).tolist())
    tokens, mask, logprobs = tokens[:, :T], mask[:, :T], logprobs[:, :T] * mask[:, :T]
    tokens = torch.where(mask.bool(), tokens, torch.full_like(tokens, tokenizer.pad_token_id))
    return Rollout(list(prompts), rows, tokens, logprobs, mask, decode_responses(tokenizer, tokens, mask), finished)


def _teacher_forced(model, pad_id: int, rows: list[list[int]], r_ids: torch.Tensor,
                    r_mask: torch.Tensor) -> torch.Tensor:
    """log π(y_t | x, y_<t) for one chunk: prompts `rows`, responses r_ids (b, T) → (b, T) on CPU."""
    ids, attn = left_pad(rows, pad_id, model.device)  # (b, L)
    r_ids, r_mask = r_ids.to(model.device), r_mask.to(model.device).long()  # (b, T)
    full, full_attn = torch.cat([ids, r_ids], 1), torch.cat([attn, r_mask], 1)  # (b, L + T)
    T = r_ids.shape[1]
    # logits of the last prompt token and of every response token: (b, T + 1, V)
    logits = model(input_ids=full, attention_mask=full_attn, position_ids=positions(full_attn),
                   logits_to_keep=T + 1).logits
    logp = F.log_softmax(logits[:, :-1].float(), -1)  # (b, T, V): column t predicts response token t
    return (logp.gather(-1, r_ids[..., None]).squeeze(-1) * r_mask).cpu()


@torch.no_grad()
def sequence_logprobs(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase, prompts: list[str],
                      responses: list[str] | None = None, *, response_ids: torch.Tensor | None = None,
                      mask: torch.Tensor | None = None,
                      batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced log π(y_t | x, y_<t), float32 → (logprobs, mask), both (B, T) on CPU.

    Give either `responses` (text, encoded as ids(response) + [eos]) or `response_ids` (B, T)
    + `mask` (B, T) as in a Rollout. On a rollout's own tokens it equals `Rollout.logprobs`
    (one forward over the whole sequence vs one cached step per token; tests check to 1e-4).
    Logprobs are 0 where mask is 0. Runs in the model's current mode, without gradients.
    """
    if responses is not None:
        enc = [tokenizer.encode(r, add_special_tokens=False) + [tokenizer.eos_token_id] for r in responses]
        response_ids, mask = right_pad(enc, tokenizer.pad_token_id)
    elif response_ids is None or mask is None:
        raise ValueError("give `responses`, or `response_ids` and `mask`")
    rows = encode_prompts(tokenizer, prompts)
    out = [_teacher_forced(model, tokenizer.pad_token_id, rows[s:s + batch_size],
                           response_ids[s:s + batch_size], mask[s:s + batch_size])
           for s in range(0, len(rows), batch_size)]
    return torch.cat(out), mask.cpu().long()


def sequence_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ_t (log π − log π_ref)(y_t) over each response → (B,), from logprobs, ref_logprobs, mask (B, T).

    On the policy's own samples its mean is the k1 estimate of KL(π ‖ π_ref): unbiased, though a
    single response's value can be negative."""
    return ((logprobs - ref_logprobs) * mask).sum(-1)
