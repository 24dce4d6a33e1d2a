"""Reward models: a language model with a scalar head, trained on ranked comparisons.

    rm = reward_model_from(sft_path)                     # LlamaForSequenceClassification, 1 label
    groups = sample_groups(sft, tok, prompts, k=8)       # K responses per prompt
    ranked = rank_groups(groups, Labeler())              # a simulated human ranks them
    history = train_reward_model(rm, tok, ranked, config)

The reward of (x, y) is the head's output at the last non-pad token of ids(x) + ids(y) + [eos]
(HF's `AutoModelForSequenceClassification` convention, so TRL's `RewardTrainer` and any HF tool
load the checkpoint). A ranking of K responses gives C(K, 2) pairs; InstructGPT (Ouyang et al.,
2022, §3.5) puts all pairs of one prompt in one batch element: each response needs one forward
pass instead of K − 1, and the correlated pairs of a prompt never straddle a train/test split.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from transformers import LlamaForSequenceClassification, PreTrainedTokenizerFast

from .losses import Metrics, bradley_terry_loss
from .models import encode_dialog, head_from_backbone, pick_device, right_pad
from .rollout import generate
from .train import Batch, BatchFn, TrainConfig, train
from .world import Labeler


@dataclass
class Group:
    """One prompt's K distinct responses and a labeler's ranking of them (best first)."""

    prompt: str
    responses: list[str]
    ranking: list[int] | None = None  # indices into responses, best first; None = unranked

    def pairs(self, pairs_fn: Callable[[list[int]], list[tuple[int, int]]] | None = None) -> list[tuple[int, int]]:
        """(winner, loser) indices: the pairs `pairs_fn(ranking)` gives (default: all C(K, 2))."""
        if self.ranking is None:
            raise ValueError("this group has not been ranked yet; call rank_groups first")
        return (pairs_fn or ranking_to_pairs)(list(self.ranking))


def flatten(groups: list[Group]) -> tuple[list[str], list[str]]:
    """(prompts, responses): one entry per response of every group, a prompt repeated per response."""
    return [g.prompt for g in groups for _ in g.responses], [y for g in groups for y in g.responses]


def ranking_to_pairs(ranking: list[int], min_gap: int = 1) -> list[tuple[int, int]]:
    """A ranking (best first) of K items → its C(K, 2) (winner, loser) pairs, or only those at
    least `min_gap` places apart."""
    return [(ranking[i], ranking[j]) for i, j in combinations(range(len(ranking)), 2) if j - i >= min_gap]


# --- the model ----------------------------------------------------------------------------


def reward_model_from(path: str | Path, device=None, dtype=torch.float32) -> LlamaForSequenceClassification:
    """A reward model initialised from a causal LM checkpoint: its backbone, plus a scalar head
    initialised to zero (every reward starts at 0, so the first loss is log 2)."""
    with head_from_backbone():
        rm = LlamaForSequenceClassification.from_pretrained(str(path), num_labels=1, dtype=dtype)
    torch.nn.init.zeros_(rm.score.weight)
    return rm.to(device or pick_device()).eval()


def load_reward_model(path: str | Path, device=None, dtype=torch.float32):
    """(reward model, tokenizer) saved by a zoo entry."""
    from .models import load_tokenizer
    rm = LlamaForSequenceClassification.from_pretrained(str(path), dtype=dtype)
    return rm.to(device or pick_device()).eval(), load_tokenizer(path)


def encode_responses(tokenizer: PreTrainedTokenizerFast, prompts: list[str],
                     responses: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Dialogs as the reward model reads them → (input_ids, attention_mask), both (N, T), right-padded."""
    return right_pad([encode_dialog(tokenizer, p, r)[0] for p, r in zip(prompts, responses)],
                     tokenizer.pad_token_id)


@torch.no_grad()
def rewards(rm, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 256) -> torch.Tensor:
    """r(x, y) for each (prompt, response) → (N,) float32 on CPU."""
    out = []
    for s in range(0, len(prompts), batch_size):
        ids, attn = encode_responses(tokenizer, prompts[s:s + batch_size], responses[s:s + batch_size])
        out.append(rm(input_ids=ids.to(rm.device), attention_mask=attn.to(rm.device)).logits[:, 0].float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


# --- preference data ----------------------------------------------------------------------

GROUPS_FILE = "groups.json"


def save_groups(path: str | Path, splits: dict[str, list[Group]]) -> None:
    """Write {split: groups} as JSON (responses only; rankings are redrawn by each labeler)."""
    import json
    Path(path).write_text(json.dumps({k: [[g.prompt, g.responses] for g in v] for k, v in splits.items()}))


def load_groups(path: str | Path) -> dict[str, list[Group]]:
    """{split: unranked groups} from a directory (a zoo entry) or file written by save_groups."""
    import json
    path = Path(path)
    data = json.loads((path / GROUPS_FILE if path.is_dir() else path).read_text())
    return {k: [Group(p, r) for p, r in v] for k, v in data.items()}



def sample_groups(policies, tokenizer, prompts: list[str], k: int, seed: int = 0, max_new_tokens: int = 64,
                  temperature: float = 1.0, batch_size: int = 256) -> list[Group]:
    """K samples per prompt, split evenly over `policies` (one model or several: InstructGPT's
    labelers compared outputs of several models). Duplicates are dropped (an identical pair
    carries no preference) and prompts left with fewer than two distinct responses skipped."""
    policies = list(policies) if isinstance(policies, (list, tuple)) else [policies]
    each = [k // len(policies) + (i < k % len(policies)) for i in range(len(policies))]
    texts: list[list[str]] = [[] for _ in prompts]
    for j, (model, kj) in enumerate(zip(policies, each)):
        ro = generate(model, tokenizer, [p for p in prompts for _ in range(kj)], max_new_tokens=max_new_tokens,
                      temperature=temperature, seed=seed + 1000 * j, batch_size=batch_size)
        for i in range(len(prompts)):
            texts[i] += ro.texts[i * kj:(i + 1) * kj]
    groups = [Group(p, list(dict.fromkeys(t))) for p, t in zip(prompts, texts)]
    return [g for g in groups if len(g.responses) >= 2]


def rank_groups(groups: list[Group], labeler: Labeler) -> list[Group]:
    """Each group ranked by `labeler` (a full Plackett-Luce ranking, as InstructGPT's labelers
    ranked K = 4-9 responses at once)."""
    return [Group(g.prompt, g.responses, labeler.rank(g.prompt, g.responses)) for g in groups]


def n_pairs(groups: list[Group]) -> int:
    """How many comparisons (pairs) the groups hold."""
    return sum(len(g.responses) * (len(g.responses) - 1) // 2 for g in groups)


def take_pairs(groups: list[Group], n: int, seed: int = 0) -> list[Group]:
    """Whole groups, in a seeded random order, until they hold at least `n` pairs (for curves of
    accuracy against the number of comparisons; a prompt's pairs are never split)."""
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    out, total = [], 0
    for i in order:
        if total >= n:
            break
        out.append(groups[i])
        total += n_pairs([groups[i]])
    return out


def group_batch(tokenizer, groups: list[Group],
                pairs_fn: Callable[[list[int]], list[tuple[int, int]]] | None = None) -> Batch:
    """One batch element per group: all responses of the groups as rows, and the pairs
    `pairs_fn(ranking)` gives as row indices (default: all C(K, 2)). input_ids, attention_mask
    (N, T); chosen, rejected (P,) rows; count () = P."""
    chosen, rejected, base = [], [], 0
    for g in groups:
        for w, l in g.pairs(pairs_fn):
            chosen.append(base + w)
            rejected.append(base + l)
        base += len(g.responses)
    ids, attn = encode_responses(tokenizer, *flatten(groups))
    return {"input_ids": ids, "attention_mask": attn, "chosen": torch.tensor(chosen),
            "rejected": torch.tensor(rejected), "count": torch.tensor(float(len(chosen)))}


def group_batches(tokenizer, groups: list[Group], groups_per_batch: int, seed: int = 0,
                  pairs_fn: Callable[[list[int]], list[tuple[int, int]]] | None = None) -> BatchFn:
    """Micro-batch i: `groups_per_batch` groups, a fresh shuffle every epoch (deterministic in i),
    each group's pairs from `pairs_fn(ranking)` (default: all C(K, 2))."""
    from .train import batch_rows

    def batch_fn(i: int) -> Batch:
        chosen = batch_rows(i, groups_per_batch, len(groups), seed).tolist()
        return group_batch(tokenizer, [groups[j] for j in chosen], pairs_fn)
    return batch_fn


def rm_loss(model, batch: Batch, num_pairs: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
    """Bradley-Terry loss of a `group_batch`, normalised by the pairs of the whole optimizer step
    (so gradient accumulation over micro-batches equals one big batch)."""
    r = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]  # (N,)
    loss, metrics = bradley_terry_loss(r[batch["chosen"]], r[batch["rejected"]])
    return loss * batch["count"] / num_pairs, metrics


def train_reward_model(rm, tokenizer, groups: list[Group], config: TrainConfig,
                       groups_per_batch: int = 8, seed: int = 0) -> list[dict]:
    """Train `rm` in place on ranked groups with `alignlab.train`; returns the loss history."""
    return train(rm, group_batches(tokenizer, groups, groups_per_batch, seed), rm_loss, config)


# --- evaluation ---------------------------------------------------------------------------


def clustered_mean_se(x, clusters) -> tuple[float, float]:
    """Mean of x and its standard error when items of one cluster (one prompt's pairs) are
    correlated: the cluster-robust (sandwich) estimate, √(Σ_g (Σ_{i∈g} (x_i − x̄))²) / n."""
    x, clusters = np.asarray(x, float), np.asarray(clusters)
    m = x.mean()
    sums = np.array([(x[clusters == c] - m).sum() for c in np.unique(clusters)])
    return float(m), float(np.sqrt((sums ** 2).sum()) / len(x))


def eval_pairs(groups: list[Group]) -> list[tuple[int, str, str, str]]:
    """Every pair of responses of each (held-out) group: (group index, prompt, a, b)."""
    return [(gi, g.prompt, g.responses[i], g.responses[j])
            for gi, g in enumerate(groups) for i, j in combinations(range(len(g.responses)), 2)]


def pair_accuracy(rm, tokenizer, groups: list[Group], labeler: Labeler, seed: int = 0) -> dict:
    """Held-out accuracy of the reward model on all pairs of `groups` (mean, se clustered by prompt):
    - `labeler`: agreement with choices the labeler makes on these pairs (fresh draws);
    - `labeler_bayes`: the best any reward model can do against those choices, E[max(p, 1 − p)];
    - `labeler_expected`: the RM's expected agreement, E[p if it picks a else 1 − p];
    - `gold`: agreement with the gold preference, on pairs whose gold rewards differ (ceiling 1).
    """
    from .world import gold_reward
    pairs = eval_pairs(groups)
    cl, prompts, a, b = zip(*pairs)
    ra, rb = rewards(rm, tokenizer, list(prompts), list(a)), rewards(rm, tokenizer, list(prompts), list(b))
    picks_a = (ra > rb).numpy()
    chooser = Labeler(labeler.temperature, labeler.length_bias, labeler.agreement_bias, seed=seed)
    p = np.array([labeler.prob_prefers(*t[1:]) for t in pairs])
    said_a = np.array([chooser.compare(*t[1:]) == 0 for t in pairs])
    gold = np.array([gold_reward(x, y) - gold_reward(x, z) for _, x, y, z in pairs])
    differ = gold != 0
    return {"n_pairs": len(pairs), "n_prompts": len(groups),
            "labeler": clustered_mean_se(picks_a == said_a, cl),
            "labeler_bayes": clustered_mean_se(np.maximum(p, 1 - p), cl),
            "labeler_expected": clustered_mean_se(np.where(picks_a, p, 1 - p), cl),
            "gold": clustered_mean_se(picks_a[differ] == (gold[differ] > 0), np.array(cl)[differ]),
            "n_gold_pairs": int(differ.sum())}


def accuracy_breakdown(rm, tokenizer, groups: list[Group], labeler: Labeler) -> dict[str, dict]:
    """Where the reward model is right: its expected agreement with `labeler` (E[p if it picks a
    else 1 − p]) next to the Bayes rate, per family and per gold component that differs within
    the pair (a pair where several differ counts under each). {name: {n, rm, bayes}}."""
    from .world import COMPONENTS, gold_components, parse_prompt
    pairs = eval_pairs(groups)
    _, prompts, a, b = zip(*pairs)
    picks_a = (rewards(rm, tokenizer, list(prompts), list(a)) > rewards(rm, tokenizer, list(prompts), list(b))).numpy()
    rows: dict[str, list[tuple[float, float]]] = {}
    for (_, x, y, z), pick in zip(pairs, picks_a):
        p = labeler.prob_prefers(x, y, z)
        cy, cz = gold_components(x, y), gold_components(x, z)
        keys = [parse_prompt(x).family] + [f"differs in {c}" for c in COMPONENTS if cy[c] != cz[c]]
        for k in keys:
            rows.setdefault(k, []).append((p if pick else 1 - p, max(p, 1 - p)))
    from .world import FAMILIES
    order = [f for f in FAMILIES if f in rows] + [f"differs in {c}" for c in COMPONENTS if f"differs in {c}" in rows]
    return {k: {"n": len(rows[k]), "rm": float(np.mean([r for r, _ in rows[k]])),
                "bayes": float(np.mean([q for _, q in rows[k]]))} for k in order}


@torch.no_grad()
def group_loss(rm, tokenizer, groups: list[Group], shift=None) -> tuple[float, float]:
    """(Bradley-Terry loss, accuracy) of `rm` on all pairs of ranked groups, optionally adding
    `shift(prompt)` to every reward of that prompt: only differences enter, so it changes nothing."""
    batch = group_batch(tokenizer, groups)
    prompts, responses = flatten(groups)
    r = rewards(rm, tokenizer, prompts, responses).double()  # (N,)
    if shift is not None:
        r = r + torch.tensor([float(shift(x)) for x in prompts], dtype=torch.double)
    loss, m = bradley_terry_loss(r[batch["chosen"]], r[batch["rejected"]])
    return loss.item(), m["accuracy"].item()


def accuracy_curve(init_path: str | Path, tokenizer, train_groups: list[Group], test_groups: list[Group],
                   sizes: tuple[int, ...], seeds: int, labeler: Labeler, epochs: int, batch: int,
                   lr: float, min_steps: int = 20) -> list[dict]:
    """Held-out accuracy of reward models trained on n comparisons, for each n in `sizes` and
    `seeds` random subsets (whole prompts) each: the data-scaling curve of Gao et al. (2023, fig. 5)
    in miniature. Each model trains `epochs` passes, at least `min_steps` steps."""
    rows = []
    for n in sizes:
        for seed in range(seeds):
            groups = take_pairs(train_groups, n, seed=seed)
            rm = reward_model_from(init_path)
            steps = max(min_steps, epochs * len(groups) // batch)
            config = TrainConfig(steps=steps, lr=lr, seed=seed, warmup_steps=max(1, steps // 10),
                                 progress=False, log_every=steps)
            train_reward_model(rm, tokenizer, groups, config, batch, seed=seed)
            acc = pair_accuracy(rm, tokenizer, test_groups, labeler, seed=100 + seed)
            rows.append({"target": n, "comparisons": n_pairs(groups), "seed": seed, "steps": steps,
                         **{k: acc[k][0] for k in ("gold", "labeler", "labeler_expected", "labeler_bayes")}})
    return rows


def length_correlation(rm, tokenizer, groups: list[Group]) -> dict:
    """On every response of `groups`: Pearson correlation of the learned reward with response
    length (words) and with the gold reward, within prompts (each centred on its prompt's mean,
    since a reward model's offset per prompt is arbitrary), plus the arrays for plotting."""
    from .world import gold_reward
    prompts, responses = flatten(groups)
    r = rewards(rm, tokenizer, prompts, responses).numpy()
    words = np.array([len(y.split()) for y in responses], dtype=float)
    gold = np.array([gold_reward(x, y) for x, y in zip(prompts, responses)])
    ids = np.repeat(np.arange(len(groups)), [len(g.responses) for g in groups])

    def centred(x: np.ndarray) -> np.ndarray:
        return x - (np.bincount(ids, x) / np.bincount(ids))[ids]
    rc = centred(r)
    return {"corr_length": float(np.corrcoef(rc, centred(words))[0, 1]),
            "corr_gold": float(np.corrcoef(rc, centred(gold))[0, 1]),
            "reward": r, "words": words, "gold": gold}


# --- the alternative backend: TRL's RewardTrainer -------------------------------------------


def pairs_dataset(groups: list[Group]):
    """Ranked groups as TRL's preference format: one row per pair, {prompt, chosen, rejected},
    with the chat template applied to the prompt (TRL appends eos and tokenizes prompt + answer)."""
    from datasets import Dataset

    from .world import chat_prompt
    rows = [{"prompt": chat_prompt(g.prompt), "chosen": g.responses[w], "rejected": g.responses[l]}
            for g in groups for w, l in g.pairs()]
    return Dataset.from_list(rows)


def trl_reward_trainer(rm, tokenizer, groups: list[Group], output_dir: str | Path, **config):
    """TRL's `RewardTrainer` on the same ranked groups, as flat pairs (TRL's collator puts the
    chosen halves first, then the rejected ones). `config` overrides `RewardConfig` fields."""
    from trl import RewardConfig, RewardTrainer
    args = RewardConfig(output_dir=str(output_dir), report_to=[], save_strategy="no", logging_steps=10,
                        use_cpu=not torch.cuda.is_available(), disable_tqdm=True,
                        **{"per_device_train_batch_size": 32, "max_steps": 100, "learning_rate": 1e-4,
                           "bf16": torch.cuda.is_available(), **config})
    return RewardTrainer(model=rm, args=args, train_dataset=pairs_dataset(groups), processing_class=tokenizer)
