"""Lab 1 (SFT): the prompt mask and the masked NLL, and the trainer wired to the student's pair.

The student writes `response_mask(attention_mask, prompt_lengths)` and
`masked_nll(logits, labels, mask)`; `sft_batches` and `sft_loss` plug them into `alignlab.train`
exactly where `train.sft_batches` and `train.lm_loss` use the library's.
"""
from __future__ import annotations

from typing import Callable

import torch

from .. import losses, train
from ..train import Batch, BatchFn, LossFn
from .core import (REQUIRED_CELLS, LabCheckError, as_tensor, call, close, compare_random, expected, guarded,
                   passed, student_function, wrong)

REQUIRED_CELLS["lab1_sft"] = {"response_mask": "code", "test_response_mask": "code", "masked_nll": "code",
                              "test_masked_nll": "code", "test_sft_run": "code"}


def reference_response_mask(attention_mask: torch.Tensor, prompt_lengths: torch.Tensor) -> torch.Tensor:
    """The library's `train.response_mask`: 1 where t ≥ prompt_lengths[b] and the token is real,
    else 0 → (B, T) float."""
    return train.response_mask(attention_mask, prompt_lengths).float()


def _mask_example() -> tuple[torch.Tensor, torch.Tensor]:
    lengths, prompts = torch.tensor([7, 5, 6]), torch.tensor([3, 2, 1])
    attn = (torch.arange(7)[None, :] < lengths[:, None]).long()  # (3, 7), right-padded
    return attn, prompts


def _mask_mistakes() -> dict[str, torch.Tensor]:
    """The mask each common mistake gives on the worked example, with its feedback."""
    attn, prompts = _mask_example()
    t = torch.arange(attn.shape[1])[None, :]  # (1, T)
    return {
        "your mask keeps the prompt tokens: SFT imitates the response only, so zero every t < prompt_length.":
            attn.double(),
        "your mask marks padding after the end of the dialog as a response token: multiply by attention_mask.":
            (t >= prompts[:, None]).double(),
        "off by one: the first response token sits at index prompt_length, so the condition is t ≥ prompt_length.":
            ((t > prompts[:, None]) & attn.bool()).double(),
        "off by one: index prompt_length − 1 is the prompt's last token, not a response token; "
        "use t ≥ prompt_length.":
            ((t >= prompts[:, None] - 1) & attn.bool()).double(),
        "your mask is reversed: it marks the prompt; it should mark the response.":
            ((t < prompts[:, None]) & attn.bool()).double(),
    }


def check_response_mask(fn: Callable | None = None) -> None:
    """Check `response_mask` on a worked example of three right-padded dialogs."""
    fn = student_function("response_mask", fn)
    attn, prompts = _mask_example()
    want = reference_response_mask(attn, prompts)
    got = as_tensor("response_mask", call("response_mask", fn, attn, prompts), tuple(attn.shape))
    if close(got, want):
        return passed("response_mask: 1 on response tokens, 0 on the prompt and on padding")
    wrong("response_mask", got, _mask_mistakes(), "wrong on the worked example.\n"
          f"attention_mask =\n{attn}\nprompt_lengths = {prompts.tolist()}\n"
          f"expected =\n{want.long()}\nyours =\n{got.long()}")


def _mask_inputs(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    B, T = int(torch.randint(1, 6, (), generator=g)), int(torch.randint(2, 12, (), generator=g))
    lengths = torch.randint(2, T + 1, (B,), generator=g)
    prompts = (torch.rand(B, generator=g) * (lengths - 1)).long() + 1  # 1 ≤ prompt < length
    return (torch.arange(T)[None, :] < lengths[:, None]).long(), prompts


def hidden_response_mask(fn: Callable | None = None, seed: int = 0) -> None:
    """response_mask against the reference on random shapes, lengths and prompt lengths."""
    return compare_random("response_mask", student_function("response_mask", fn), reference_response_mask,
                          _mask_inputs, seed)


def reference_masked_nll(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The library's `losses.nll_loss`: Σ m·(−log p) / Σ m."""
    return losses.nll_loss(logits.double(), labels, mask)[0]


def _nll_example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=g)  # (B, T, V)
    labels = torch.randint(0, 11, (3, 6), generator=g)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0]], dtype=torch.float32)
    return logits, labels, mask


def _nll_mistakes() -> dict[str, torch.Tensor]:
    """The loss each common mistake computes on the worked example, with its feedback."""
    logits, labels, mask = _nll_example()
    nll = -torch.log_softmax(logits.double(), -1).gather(-1, labels[..., None])[..., 0]  # (B, T)
    m = mask.double()
    n = m.sum()
    per_seq = ((nll * m).sum(-1) / m.sum(-1)).mean()
    raw = -logits.double().gather(-1, labels[..., None])[..., 0]
    return {
        "your loss has the wrong sign: minimise the negative log-likelihood, −log p.": -(nll * m).sum() / n,
        "you summed the masked NLL without dividing by the number of response tokens (mask.sum()).":
            (nll * m).sum(),
        "you divided by every position (B·T), prompt and padding included; divide by the number of response "
        "tokens, mask.sum().": (nll * m).sum() / m.numel(),
        "you averaged over each sequence and then over sequences, so a short response weighs as much as a long "
        "one; average over tokens: Σ m·nll / Σ m.": per_seq,
        "you ignored the mask: prompt and padding tokens are not targets.": nll.mean(),
        "you used raw logits as log-probabilities; take log_softmax over the vocabulary first.":
            (raw * m).sum() / n,
        "you used probabilities instead of log-probabilities: the loss is −log p.":
            -(torch.softmax(logits.double(), -1).gather(-1, labels[..., None])[..., 0] * m).sum() / n,
    }


def check_masked_nll(fn: Callable | None = None) -> None:
    """Check `masked_nll` on a worked example where every common mistake gives a different loss."""
    fn = student_function("masked_nll", fn)
    logits, labels, mask = _nll_example()
    want = reference_masked_nll(logits, labels, mask)
    leaf = logits.clone().requires_grad_(True)
    out = call("masked_nll", fn, leaf, labels, mask)
    got = as_tensor("masked_nll", out, ())
    if close(got, want):
        if not out.requires_grad:
            raise LabCheckError("masked_nll: right value, but no gradient reaches the logits "
                                "(a .item(), .detach() or numpy step breaks the graph).")
        return passed(f"masked_nll = {float(got):.4f}: the mean NLL over response tokens")
    wrong("masked_nll", got, _nll_mistakes(), expected(got, want, "on the worked example"))


def _nll_inputs(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    B, T, V = (int(torch.randint(lo, hi, (), generator=g)) for lo, hi in ((1, 5), (2, 10), (3, 20)))
    mask = (torch.rand(B, T, generator=g) < 0.6).float()
    mask[0, -1] = 1.0  # at least one target
    return torch.randn(B, T, V, generator=g) * 3, torch.randint(0, V, (B, T), generator=g), mask


def hidden_masked_nll(fn: Callable | None = None, seed: int = 0) -> None:
    """masked_nll against `losses.nll_loss` on random shapes and masks."""
    return compare_random("masked_nll", student_function("masked_nll", fn), reference_masked_nll,
                          _nll_inputs, seed)


def sft_batches(tokenizer, pairs: list[tuple[str, str]], batch_size: int, max_length: int,
                mask_fn: Callable, seed: int = 0) -> BatchFn:
    """`train.sft_batches` with the targets chosen by the student's `mask_fn(attention_mask,
    prompt_lengths)`, applied to the whole dialog (B, T + 1) and then shifted with the labels."""
    mask_fn = guarded("response_mask", mask_fn)
    return train.sft_batches(tokenizer, pairs, batch_size, max_length, seed,
                             mask_fn=lambda attn, prompts: mask_fn(attn, prompts).float())


def sft_loss(nll_fn: Callable) -> LossFn:
    """A `train` loss from the student's masked NLL; rescaled from the micro-batch's token count
    to the step's, so accumulation over micro-batches matches one big batch (`losses.nll_loss`)."""
    nll_fn = guarded("masked_nll", nll_fn)
    def loss_fn(model, batch: Batch, num_tokens: torch.Tensor):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = nll_fn(logits, batch["labels"], batch["mask"])
        return loss * batch["mask"].sum() / num_tokens, {}
    return loss_fn


@torch.no_grad()
def batch_loss(model, batch: Batch, loss_fn: LossFn) -> float:
    """`loss_fn` on one fixed batch, in eval mode (to measure a loss before and after training)."""
    was_training = model.training
    model.eval()
    batch = {k: v.to(model.device) for k, v in batch.items()}
    loss, _ = loss_fn(model, batch, batch["mask"].sum())
    model.train(was_training)
    return float(loss)


def check_sft_run(nll_before: float, nll_after: float, before, after) -> None:
    """The fine-tuning run: the NLL of a fixed batch of demonstrations fell, and the held-out gold
    reward rose. `before`, `after`: `evaluate.EvalResult`s of the same prompts and seed."""
    if not nll_after < nll_before:
        raise LabCheckError(f"the NLL of the demonstrations did not fall ({nll_before:.3f} → {nll_after:.3f}); "
                            "check masked_nll's sign and that response_mask selects the response.")
    if not after.mean > before.mean:
        raise LabCheckError(f"the gold reward did not rise ({before.mean:+.3f} → {after.mean:+.3f}): "
                            "the model imitated something other than the demonstrations' responses.")
    return passed(f"demonstration NLL {nll_before:.3f} → {nll_after:.3f}; "
                  f"gold reward {before.mean:+.3f} → {after.mean:+.3f}")
