"""Tokenizer and tiny Llama-style models, in plain Hugging Face format.

Every model is a `transformers.LlamaForCausalLM` saved with `save_pretrained` next to its
`PreTrainedTokenizerFast`, so TRL, `accelerate` and any HF tool load it from the directory.

Text layout (shared by pretraining, SFT, sampling and every later method):

    ids(chat_prompt(prompt)) + ids(response) + [eos]        response starts with " "

The tokenizer is byte-level BPE with every digit its own token (" 95" → " 9", "5") (arithmetic stays learnable).
Pre-tokenisation splits before each space, so encoding the prompt and the response separately
gives the same ids as encoding their concatenation (`test_models.py` checks it).
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

from .profiles import ModelSize
from .world import chat_prompt

PAD, EOS, BOS = "<pad>", "<eos>", "<bos>"
CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}User: {{ m['content'] }}\nAssistant:"
    "{% elif m['role'] == 'assistant' %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)
"""The same layout as a Jinja chat template, for TRL's conversational datasets."""

hf_logging.disable_progress_bar()  # tiny checkpoints load instantly; the bars were only noise


@contextmanager
def head_from_backbone():
    """Silence transformers' "newly initialized weights" warning while a model with a new head is
    loaded from a causal-LM checkpoint (a reward model, a PRM): the new head is the point, not news."""
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def train_tokenizer(texts: list[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `texts`; a digit (with its leading space) is always one token."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r" ?[0-9]"), behavior="isolated"),  # one digit per token
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, EOS, BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS,
                                   bos_token=BOS, model_max_length=4096)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(size: ModelSize, tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> LlamaForCausalLM:
    """A freshly initialised Llama decoder of the given size (tied input/output embeddings)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=size.hidden_size,
        num_hidden_layers=size.num_layers, num_attention_heads=size.num_heads,
        num_key_value_heads=size.num_heads, intermediate_size=size.intermediate_size,
        max_position_embeddings=size.max_length, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id, rms_norm_eps=1e-5,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def n_params(model: torch.nn.Module) -> int:
    """Distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(device: torch.device | str) -> torch.dtype:
    """bf16 on a GPU that supports it, fp32 elsewhere (CPU bf16 is slow and lossy here)."""
    if torch.device(device).type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def save(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, path: str | Path) -> Path:
    """Save model and tokenizer side by side in HF format (fp32 weights, safetensors)."""
    path = Path(path)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast.from_pretrained(str(path))


def load(path: str | Path, device: torch.device | str | None = None,
         dtype: torch.dtype | None = None) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """Load (model, tokenizer) from a local directory; model in eval mode on `device`."""
    device = torch.device(device) if device is not None else pick_device()
    model = LlamaForCausalLM.from_pretrained(str(path), dtype=dtype or pick_dtype(device))
    return model.to(device).eval(), load_tokenizer(path)


def encode_dialog(tokenizer: PreTrainedTokenizerFast, prompt: str,
                  response: str) -> tuple[list[int], int]:
    """Token ids of one dialog (prompt, response, eos) and the number of prompt tokens."""
    p = tokenizer.encode(chat_prompt(prompt), add_special_tokens=False)
    r = tokenizer.encode(response, add_special_tokens=False)
    return p + r + [tokenizer.eos_token_id], len(p)


def encode_prompts(tokenizer: PreTrainedTokenizerFast, prompts: list[str]) -> list[list[int]]:
    """Token ids of each prompt with the chat template applied (what generation continues)."""
    return [tokenizer.encode(chat_prompt(p), add_special_tokens=False) for p in prompts]


def data_next_token_distribution(tokenizer: PreTrainedTokenizerFast, prompt: str, n: int = 4000,
                                 seed: int = 0) -> torch.Tensor:
    """q(v): the corpus's distribution of the first response token after `prompt`, estimated
    from n draws of the world's response generator (the data a model is trained to imitate).

    Returns (V,) probabilities, V = len(tokenizer).
    """
    import random

    from .world import sample_response

    rng, counts = random.Random(seed), torch.zeros(len(tokenizer))
    for _ in range(n):
        first = tokenizer.encode(sample_response(prompt, rng)[1], add_special_tokens=False)[0]
        counts[first] += 1
    return counts / counts.sum()


def right_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows aligned to the left → (ids, mask), both (B, T) long, T = longest row."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[b, :len(r)] = 1
    return ids, mask
