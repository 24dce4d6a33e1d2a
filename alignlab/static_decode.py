"""A static-shape decode loop for GPUs: a functional Llama step over the HF weights, a
preallocated KV cache, and (on CUDA) the step captured once in a CUDA graph and replayed.

Why not HF `generate`: at our model sizes a decode step is almost all Python and kernel-launch
overhead (on an H200, HF's eager step took 7.7 ms for a 34M model), and HF's own static cache
under `torch.compile(mode="reduce-overhead")` failed on the GPU image we test on. A CUDA graph
replays the whole step — every layer's kernels — with one launch; that needs static shapes and
static memory: the cache is [layers, B, kv_heads, S, head_dim] with S = prompt + new tokens, the
new key/value go into column `col` with `index_copy_`, and attention masks with a validity row.

Semantics match `alignlab.rollout.generate` (same left padding, position ids, pre-drawn
uniforms, `sample_token`), except that finished rows keep decoding (static shapes) and are
masked afterwards; tests check that tokens and log-probs agree with `rollout.generate` on CPU,
where this runs the same functional step eagerly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from .models import encode_prompts
from .rollout import Rollout, left_pad, make_rollout, positions, sample_token


class StaticDecoder:
    """Decode state for B rows of at most S columns; `step` is one token for every row."""

    def __init__(self, model: LlamaForCausalLM, batch: int, max_len: int):
        cfg, self.model = model.config, model
        self.H, self.Hkv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.D = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.H
        dev, dt = model.device, model.dtype
        shape = (cfg.num_hidden_layers, batch, self.Hkv, max_len, self.D)
        self.k, self.v = torch.zeros(shape, device=dev, dtype=dt), torch.zeros(shape, device=dev, dtype=dt)
        self.valid = torch.zeros(batch, max_len, dtype=torch.bool, device=dev)  # (B, S) key columns in use
        self.tok = torch.zeros(batch, 1, dtype=torch.long, device=dev)  # static inputs of the step
        self.pos = torch.zeros(batch, 1, dtype=torch.long, device=dev)
        self.col = torch.zeros(1, dtype=torch.long, device=dev)
        self.logits = None

    def _layers(self, h: torch.Tensor, pos: torch.Tensor, cols: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h (B, n, C) at positions pos (B, n), written to cache columns cols (n,); mask (B, 1, n, S)."""
        m = self.model.model
        cos, sin = m.rotary_emb(h, pos)
        B, n, _ = h.shape
        for i, layer in enumerate(m.layers):
            a = layer.self_attn
            x = layer.input_layernorm(h)
            q = a.q_proj(x).view(B, n, self.H, self.D).transpose(1, 2)  # (B, H, n, D)
            k = a.k_proj(x).view(B, n, self.Hkv, self.D).transpose(1, 2)
            v = a.v_proj(x).view(B, n, self.Hkv, self.D).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            self.k[i].index_copy_(2, cols, k)
            self.v[i].index_copy_(2, cols, v)
            out = F.scaled_dot_product_attention(q, self.k[i], self.v[i], attn_mask=mask,
                                                 enable_gqa=self.Hkv != self.H)  # (B, H, n, D)
            h = h + a.o_proj(out.transpose(1, 2).reshape(B, n, self.H * self.D))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return self.model.lm_head(m.norm(h[:, -1])).float()  # (B, V) for the last column

    @torch.inference_mode()
    def prefill(self, ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """Prompts ids, attn (B, L), left-padded → logits (B, V) of each row's next token."""
        L = ids.shape[1]
        self.valid.zero_()
        self.valid[:, :L] = attn.bool()
        causal = torch.ones(L, self.valid.shape[1], dtype=torch.bool, device=ids.device).tril()
        mask = (causal[None] & self.valid[:, None, :])[:, None]  # (B, 1, L, S)
        mask = mask | torch.eye(L, self.valid.shape[1], dtype=torch.bool, device=ids.device)[None, None]
        pos = positions(attn)
        self.pos.copy_(pos[:, -1:])
        return self._layers(self.model.model.embed_tokens(ids), pos, torch.arange(L, device=ids.device), mask)

    def _step(self) -> torch.Tensor:
        """One token per row from the static inputs tok, pos, col (graph-capturable)."""
        self.valid.index_fill_(1, self.col, True)
        mask = self.valid[:, None, None, :]  # (B, 1, 1, S)
        return self._layers(self.model.model.embed_tokens(self.tok), self.pos, self.col, mask)

    def capture(self) -> None:
        """Record `_step` in a CUDA graph (after a warm-up on a side stream, as PyTorch requires)."""
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s), torch.inference_mode():
            for _ in range(2):
                self._step()
        torch.cuda.current_stream().wait_stream(s)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.logits = self._step()

    @torch.inference_mode()
    def step(self, tok: torch.Tensor, col: int) -> torch.Tensor:
        """Feed tok (B,) at cache column `col` (positions advance by one) → logits (B, V)."""
        self.tok.copy_(tok[:, None])
        self.pos.add_(1)
        self.col.fill_(col)
        if getattr(self, "graph", None) is not None:
            self.graph.replay()
            return self.logits
        return self._step()


def generate_static(model: LlamaForCausalLM, tokenizer, prompts: list[str], max_new_tokens: int = 64,
                    temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                    cuda_graph: bool | None = None) -> Rollout:
    """`rollout.generate` with static shapes (one batch); CUDA graph on a GPU unless told not to."""
    rows = encode_prompts(tokenizer, prompts)
    u = torch.rand((len(rows), max_new_tokens), generator=torch.Generator().manual_seed(seed)).to(model.device)
    ids, attn = left_pad(rows, tokenizer.pad_token_id, model.device)
    B, L = ids.shape
    was_training = model.training
    model.eval()
    try:
        dec = StaticDecoder(model, B, L + max_new_tokens)
        tokens = torch.full((B, max_new_tokens), tokenizer.pad_token_id, dtype=torch.long, device=model.device)
        logprobs = torch.zeros((B, max_new_tokens), device=model.device)
        logits = dec.prefill(ids, attn)
        use_graph = model.device.type == "cuda" if cuda_graph is None else cuda_graph
        done = torch.zeros(B, dtype=torch.bool, device=model.device)
        for t in range(max_new_tokens):
            with torch.inference_mode():
                tok = sample_token(logits, u[:, t], temperature, top_p)
                tokens[:, t] = tok
                logprobs[:, t] = F.log_softmax(logits, -1).gather(-1, tok[:, None]).squeeze(-1)
                done |= tok == tokenizer.eos_token_id
            if t + 1 == max_new_tokens or (t % 8 == 7 and bool(done.all())):  # sync rarely
                break
            if use_graph and t == 0:
                dec.capture()
            logits = dec.step(tok, L + t)
    finally:
        model.train(was_training)
    return make_rollout(tokenizer, prompts, rows, tokens.cpu(), logprobs.cpu())
