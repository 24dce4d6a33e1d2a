"""DPO and its family, trained with `alignlab.train` on the world's preference pairs.

    pairs = preference_pairs(rank_groups(groups, Labeler()))      # (prompt, chosen, rejected)
    ref_logps = reference_logps(ref, tok, pairs)                   # once, before training
    history = train_preferences(policy, tok, pairs, ref_logps, config, method="dpo", beta=0.1)

A batch holds B pairs as 2B right-padded dialogs, chosen rows first (TRL's layout); each row's
sequence log-prob sums log π over its response tokens and the closing eos (`mask`). The
reference model is run once over all pairs (Rafailov et al. precompute it too), so training
holds one model. Methods: "dpo", "hinge", "ipo" (`losses.dpo_loss`), "simpo", "orpo", "kto".

Conventions that differ from a paper, as TRL does them (tests check the losses equal TRL's):
IPO's log-ratios are per-token means (the IPO authors' own code, and TRL); KTO's reference point
z₀ is the batch's clamped mean log-ratio on mismatched (prompt, response) pairs, not a separate
dataset, and paired data is made unpaired (chosen desirable, rejected undesirable).
"""
from __future__ import annotations

from itertools import chain, combinations
from typing import Callable

import torch

from . import losses, world
from .models import encode_dialog, right_pad
from .reward import Group, ranking_to_pairs
from .train import Batch, BatchFn, TrainConfig, batch_rows, train

Pair = tuple[str, str, str]  # (prompt, chosen, rejected)


def preference_pairs(groups: list[Group], min_gap: int = 1) -> list[Pair]:
    """The (winner, loser) pairs of each ranked group, as text: every pair (`min_gap` = 1, the
    C(K, 2) of InstructGPT) or only those at least `min_gap` places apart in the ranking. A noisy
    labeler's far-apart pairs are its most reliable ones (`label_quality_by_gap` measures how much)."""
    return [(g.prompt, g.responses[w], g.responses[l]) for g in groups
            for w, l in g.pairs(lambda ranking: ranking_to_pairs(ranking, min_gap))]


def subset(pairs: list[Pair], n: int, seed: int) -> list[Pair]:
    """`n` of `pairs` drawn at random by `seed`, kept in their original order: the pairs a
    chapter-4 run trains on (its meta records `pairs` = n and `seed`), so anyone can rebuild them."""
    keep = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed))[:n]
    return [pairs[i] for i in sorted(keep.tolist())]


def label_quality_by_gap(groups: list[Group], gaps: tuple[int, ...] = (1, 2, 3, 4, 5, 6)) -> list[dict]:
    """For pairs at least `gap` places apart in the labeler's ranking: how many there are, and the
    fraction whose label agrees with the gold reward (`agree`), contradicts it (`disagree`) or
    that gold scores as a tie (`tie`) — the label noise a preference method trains on."""
    gap, diff = [], []  # per pair: places apart in the ranking, gold(chosen) − gold(rejected)
    for g in groups:
        gold = [world.gold_reward(g.prompt, y) for y in g.responses]  # once per response, not per pair
        for i, j in g.pairs(lambda ranking: list(combinations(range(len(ranking)), 2))):  # positions
            gap.append(j - i)
            diff.append(gold[g.ranking[i]] - gold[g.ranking[j]])
    gap, diff = torch.tensor(gap), torch.tensor(diff)
    rows = []
    for k in gaps:
        d = diff[gap >= k]
        if not len(d):
            break
        rows.append({"min_gap": k, "pairs": len(d), "agree": (d > 0).float().mean().item(),
                     "tie": (d == 0).float().mean().item(), "disagree": (d < 0).float().mean().item()})
    return rows


def pair_batch(tokenizer, pairs: list[Pair]) -> Batch:
    """B pairs → input_ids, attention_mask, labels, mask (2B, T): chosen rows, then rejected;
    `mask` marks response tokens (targets) only; `count` () = B."""
    encoded = [encode_dialog(tokenizer, p, y) for p, y in chain(((p, c) for p, c, _ in pairs),
                                                                ((p, r) for p, _, r in pairs))]
    x, attn = right_pad([ids for ids, _ in encoded], tokenizer.pad_token_id)  # (2B, T + 1)
    m = attn.clone()
    for b, (_, n_prompt) in enumerate(encoded):
        m[b, :n_prompt] = 0
    return {"input_ids": x[:, :-1], "attention_mask": attn[:, :-1], "labels": x[:, 1:], "mask": m[:, 1:],
            "count": torch.tensor(float(len(pairs)))}


def sequence_logps(model, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed, per-token mean) log π of each row's response → both (2B,)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    lp = losses.token_logprobs(logits, batch["labels"]) * batch["mask"]  # (2B, T)
    n = batch["mask"].sum(-1).clamp(min=1)
    return lp.sum(-1), lp.sum(-1) / n


def mismatched(pairs: list[Pair]) -> list[Pair]:
    """Pair j's prompt with pair j+1's responses (cyclically): KTO's reference point is the
    policy/reference log-ratio on such unrelated (prompt, response) pairs (Ethayarajh et al., §4.1)."""
    return [(p, c, r) for (p, _, _), (_, c, r) in zip(pairs, pairs[1:] + pairs[:1])]


@torch.no_grad()
def reference_logps(ref, tokenizer, pairs: list[Pair], batch_size: int = 64,
                    with_mismatched: bool = True) -> torch.Tensor:
    """(N, 6) log π_ref: [sum_c, sum_r, mean_c, mean_r] of each pair, then the summed log-probs of
    its `mismatched` chosen and rejected (for KTO; NaN when `with_mismatched` is False)."""
    out = []
    for s in range(0, len(pairs), batch_size):
        cols = []
        for chunk in (pairs[s:s + batch_size], mismatched(pairs)[s:s + batch_size] if with_mismatched else None):
            if chunk is None:
                cols += [torch.full((len(cols[0]),), float("nan"))] * 2
                continue
            batch = {k: v.to(ref.device) for k, v in pair_batch(tokenizer, chunk).items()}
            total, mean = sequence_logps(ref, batch)
            cols += [*total.float().cpu().chunk(2), *mean.float().cpu().chunk(2)]
        out.append(torch.stack(cols[:4] + cols[4:6], 1))
    return torch.cat(out)


def pair_batches(tokenizer, pairs: list[Pair], ref: torch.Tensor, batch_size: int, seed: int = 0) -> BatchFn:
    """Micro-batch i of `batch_size` pairs (a fresh shuffle each epoch) with their reference log-probs."""
    off = mismatched(pairs)

    def batch_fn(i: int) -> Batch:
        idx = batch_rows(i, batch_size, len(pairs), seed).tolist()
        kl = {f"kl_{k}": v for k, v in pair_batch(tokenizer, [off[j] for j in idx]).items() if k != "count"}
        return pair_batch(tokenizer, [pairs[j] for j in idx]) | kl | {"ref": ref[idx]}
    return batch_fn


def _dpo(loss_type: str, beta: float, average: bool = False):
    def fn(model, batch, n_pairs):
        total, mean = sequence_logps(model, batch)
        lp, ref = (mean, batch["ref"][:, 2:4]) if average else (total, batch["ref"][:, :2])
        c, r = lp.chunk(2)
        loss, m = losses.dpo_loss(c, r, ref[:, 0], ref[:, 1], beta, loss_type)
        return loss * batch["count"] / n_pairs, m
    return fn


def _simpo(beta: float, gamma: float):
    def fn(model, batch, n_pairs):
        c, r = sequence_logps(model, batch)[1].chunk(2)
        loss, m = losses.simpo_loss(c, r, beta, gamma)
        return loss * batch["count"] / n_pairs, m
    return fn


def _orpo(lam: float):
    def fn(model, batch, n_pairs):
        total, mean = sequence_logps(model, batch)
        B = len(total) // 2
        nll = -total[:B].sum() / batch["mask"][:B].sum()  # SFT loss on the chosen tokens
        c, r = mean.chunk(2)
        loss, m = losses.orpo_loss(c, r, nll, lam)
        return loss * batch["count"] / n_pairs, m
    return fn


def _kto(beta: float):
    """KTO on paired data made unpaired: chosen responses are desirable, rejected undesirable."""
    def fn(model, batch, n_pairs):
        total, _ = sequence_logps(model, batch)  # (2B,) chosen rows, then rejected
        with torch.no_grad():  # z₀: the batch's log-ratio on mismatched pairs, clamped at 0 (as TRL)
            kl_total, _ = sequence_logps(model, {k[3:]: v for k, v in batch.items() if k.startswith("kl_")})
            z0 = (kl_total - batch["ref"][:, 4:6].T.reshape(-1)).mean().clamp(min=0)
        B = len(total) // 2
        desirable = torch.arange(2 * B, device=total.device) < B
        loss, m = losses.kto_loss(total, batch["ref"][:, :2].T.reshape(-1), desirable, z0, beta)
        return loss * batch["count"] / n_pairs, m
    return fn


METHODS: dict[str, Callable[..., Callable]] = {
    "dpo": lambda beta, **_: _dpo("sigmoid", beta),
    "hinge": lambda beta, **_: _dpo("hinge", beta),
    "ipo": lambda beta, **_: _dpo("ipo", beta, average=True),  # length-averaged, as IPO's authors and TRL
    "simpo": lambda beta, gamma=1.0, **_: _simpo(beta, gamma),
    "orpo": lambda beta, **_: _orpo(beta),  # β plays ORPO's λ
    "kto": lambda beta, **_: _kto(beta),
}


def train_preferences(policy, tokenizer, pairs: list[Pair], ref_logps: torch.Tensor, config: TrainConfig,
                      method: str = "dpo", beta: float = 0.1, batch_size: int = 16, **kw) -> list[dict]:
    """Train `policy` in place with one of METHODS; returns the history (loss, implicit rewards…)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, not {method!r}")
    return train(policy, pair_batches(tokenizer, pairs, ref_logps, batch_size, config.seed),
                 METHODS[method](beta=beta, **kw), config)


def trl_dpo_trainer(policy, ref, tokenizer, pairs: list[Pair], output_dir, **config):
    """TRL's `DPOTrainer` on the same pairs (prompt with the chat template applied; TRL appends
    eos to each completion). `config` overrides `DPOConfig` fields (beta, loss_type, …)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from .world import chat_prompt
    ds = Dataset.from_list([{"prompt": chat_prompt(p), "chosen": c, "rejected": r} for p, c, r in pairs])
    args = DPOConfig(output_dir=str(output_dir), report_to=[], save_strategy="no", disable_tqdm=True,
                     use_cpu=not torch.cuda.is_available(), gradient_checkpointing=False,
                     **{"per_device_train_batch_size": 16, "max_steps": 10, "bf16": torch.cuda.is_available(), **config})
    return DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=ds, processing_class=tokenizer)
