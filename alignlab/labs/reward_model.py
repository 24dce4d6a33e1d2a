"""Lab 2 (reward model): the Bradley-Terry loss and ranking → pairs, and the trainer wired to them.

The student writes `bradley_terry_loss(r_chosen, r_rejected)` and `ranking_to_pairs(ranking)`;
`rm_batches` and `rm_loss` plug them into `alignlab.train` where `reward.group_batches` and
`reward.rm_loss` use the library's.
"""
from __future__ import annotations

from itertools import combinations
from typing import Callable

import torch
import torch.nn.functional as F

from .. import losses
from ..reward import Group, group_batches
from ..train import Batch, BatchFn, LossFn
from .core import (REQUIRED_CELLS, LabCheckError, as_tensor, call, close, compare_random, expected, guarded,
                   passed, student_function, wrong)

REQUIRED_CELLS["lab2_reward_model"] = {"bradley_terry_loss": "code", "test_bradley_terry_loss": "code",
                                       "ranking_to_pairs": "code", "test_ranking_to_pairs": "code",
                                       "test_reward_model": "code"}


def reference_bt(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """The library's `losses.bradley_terry_loss`: mean of −log σ(r_w − r_l)."""
    return losses.bradley_terry_loss(r_chosen.double(), r_rejected.double())[0]


def _bt_example() -> tuple[torch.Tensor, torch.Tensor]:
    """Six pairs' rewards (chosen, rejected), each (6,)."""
    return torch.tensor([1.0, -0.5, 2.0, 0.3, 0.0, 1.5]), torch.tensor([0.2, 0.5, -1.0, 0.3, 1.0, 0.7])


def _bt_mistakes() -> dict[str, torch.Tensor]:
    """The loss each common mistake computes on the six pairs, with its feedback."""
    r_w, r_l = _bt_example()
    d = (r_w - r_l).double()
    return {
        "you swapped chosen and rejected: the loss is −log σ(r_chosen − r_rejected).": -F.logsigmoid(-d).mean(),
        "the sign is flipped: the loss is the NEGATIVE log-likelihood, −log σ(r_w − r_l).": F.logsigmoid(d).mean(),
        "you summed over pairs; average instead, so the loss (and learning rate) does not depend on the "
        "batch size (off by a factor of 6 here).": -F.logsigmoid(d).sum(),
        "you forgot the log: the loss is −log σ(r_w − r_l), not −σ(r_w − r_l).": -torch.sigmoid(d).mean(),
        "you left out the sigmoid: P(y_w ≻ y_l) = σ(r_w − r_l).": -d.mean(),
    }


def check_bradley_terry_loss(fn: Callable | None = None) -> None:
    """Check the loss on six pairs (two of them with large reward gaps, where a naive
    log(sigmoid(·)) overflows)."""
    fn = student_function("bradley_terry_loss", fn)
    r_w, r_l = _bt_example()
    out = call("bradley_terry_loss", fn, r_w.clone().requires_grad_(True), r_l)
    got = as_tensor("bradley_terry_loss", out, ())
    want = reference_bt(r_w, r_l)
    if not close(got, want):
        wrong("bradley_terry_loss", got, _bt_mistakes(), expected(got, want, "on six pairs"))
    if not out.requires_grad:
        raise LabCheckError("bradley_terry_loss: right value, but no gradient flows to the rewards.")
    far_w, far_l = torch.tensor([-60.0, 60.0]), torch.tensor([60.0, -60.0])
    big = as_tensor("bradley_terry_loss", call("bradley_terry_loss", fn, far_w, far_l), ())
    if not torch.isfinite(big) or not close(big, reference_bt(far_w, far_l)):
        raise LabCheckError(f"bradley_terry_loss: gives {float(big)} when the rejected response's reward is 120 "
                            "higher (expected 60.0): log(sigmoid(x)) underflows for very negative x; "
                            "use torch.nn.functional.logsigmoid.")
    return passed(f"bradley_terry_loss = {float(got):.4f}, and finite for large reward gaps")


def _bt_inputs(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    B = int(torch.randint(1, 17, (), generator=g))
    return torch.randn(B, generator=g) * 3, torch.randn(B, generator=g) * 3


def hidden_bradley_terry_loss(fn: Callable | None = None, seed: int = 0) -> None:
    """bradley_terry_loss against the library on random batches."""
    return compare_random("bradley_terry_loss", student_function("bradley_terry_loss", fn), reference_bt,
                          _bt_inputs, seed)


def reference_pairs(ranking: list[int]) -> list[tuple[int, int]]:
    """A ranking (best first) → its C(K, 2) (winner, loser) pairs."""
    return [(ranking[i], ranking[j]) for i, j in combinations(range(len(ranking)), 2)]


def _pairs_of(fn: Callable, ranking: list[int]) -> list[tuple[int, int]]:
    out = call("ranking_to_pairs", fn, list(ranking))
    try:
        return [(int(w), int(l)) for w, l in out]
    except (TypeError, ValueError):
        raise LabCheckError("ranking_to_pairs: return a list of (winner, loser) tuples of indices.") from None


def check_ranking_to_pairs(fn: Callable | None = None) -> None:
    """Check the pairs of the ranking [2, 0, 3, 1] (response 2 best, response 1 worst)."""
    fn = student_function("ranking_to_pairs", fn)
    ranking = [2, 0, 3, 1]
    got, want = _pairs_of(fn, ranking), reference_pairs(ranking)
    if sorted(got) == sorted(want):
        for r in ([0], [1, 0]):
            if sorted(_pairs_of(fn, r)) != sorted(reference_pairs(r)):
                raise LabCheckError(f"ranking_to_pairs: right for [2, 0, 3, 1] but {r} gives "
                                    f"{_pairs_of(fn, r)} (expected {reference_pairs(r)}).")
        return passed("ranking_to_pairs: a ranking of K = 4 gives its C(4, 2) = 6 pairs, winner first")
    if sorted((l, w) for w, l in got) == sorted(want):
        raise LabCheckError("ranking_to_pairs: your pairs are (loser, winner); put the preferred response first.")
    if len(got) == 3 and set(got) <= set(want):
        raise LabCheckError("ranking_to_pairs: you return only neighbouring pairs (K − 1 of them); a ranking "
                            "implies every pair, C(K, 2) = 6 for K = 4 (InstructGPT trains on all of them).")
    if any(w == l for w, l in got):
        raise LabCheckError("ranking_to_pairs: a response is paired with itself; pairs are of two distinct responses.")
    if len(got) == 12:
        raise LabCheckError("ranking_to_pairs: you return both orders of each pair (12 for K = 4); each pair "
                            "once, winner first, makes C(K, 2) = 6.")
    if sorted(got) == sorted(reference_pairs(list(range(4)))):
        raise LabCheckError("ranking_to_pairs: you paired positions, not responses: ranking[i] is the index "
                            "of the i-th best response.")
    raise LabCheckError(f"ranking_to_pairs([2, 0, 3, 1]) should give {want} (in any order), not {got}.")


def hidden_ranking_to_pairs(fn: Callable | None = None, seed: int = 0, trials: int = 5) -> None:
    """ranking_to_pairs against the reference on random permutations of K = 2…9 responses."""
    fn = student_function("ranking_to_pairs", fn)
    g = torch.Generator().manual_seed(seed)
    for t in range(trials):
        ranking = torch.randperm(int(torch.randint(2, 10, (), generator=g)), generator=g).tolist()
        if sorted(_pairs_of(fn, ranking)) != sorted(reference_pairs(ranking)):
            raise LabCheckError(f"ranking_to_pairs is wrong on the random ranking #{t + 1} of "
                                f"{len(ranking)} responses.")
    return passed(f"ranking_to_pairs matches the reference on {trials} random rankings")


def rm_batches(tokenizer, groups: list[Group], groups_per_batch: int, pairs_fn: Callable,
               seed: int = 0) -> BatchFn:
    """`reward.group_batches` with each group's pairs from `pairs_fn(ranking)` (the student's)."""
    return group_batches(tokenizer, groups, groups_per_batch, seed, guarded("ranking_to_pairs", pairs_fn))


def rm_loss(bt_fn: Callable) -> LossFn:
    """A `train` loss from the student's Bradley-Terry loss (as `reward.rm_loss`)."""
    bt_fn = guarded("bradley_terry_loss", bt_fn)
    def loss_fn(model, batch: Batch, num_pairs: torch.Tensor):
        r = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]  # (N,)
        loss = bt_fn(r[batch["chosen"]], r[batch["rejected"]])
        return loss * batch["count"] / num_pairs, {}
    return loss_fn


def check_reward_model(train_accuracy: dict, history: list[dict], chance_margin: float = 0.05) -> None:
    """The trained reward model learned from its pairs: the training loss ended below log 2
    (where every reward starts) and it agrees with the gold preference on its training prompts
    more often than a coin, by `chance_margin`. `train_accuracy`: `reward.pair_accuracy`'s dict."""
    log2 = float(torch.log(torch.tensor(2.0)))
    tail = [r["loss"] for r in history[-max(1, len(history) // 4):]]
    if not sum(tail) / len(tail) < log2:
        raise LabCheckError(f"the training loss ended at {sum(tail) / len(tail):.3f}, not below log 2 = {log2:.3f}: "
                            "the reward model learned nothing from the pairs.")
    gold, se = train_accuracy["gold"]
    if not gold > 0.5 + chance_margin:
        raise LabCheckError(f"on its training prompts the reward model agrees with the gold preference "
                            f"{gold:.3f} ± {se:.3f} of the time, no better than {0.5 + chance_margin:.2f}: "
                            "check the order of the pairs and the loss's sign.")
    return passed(f"training loss {tail[-1]:.3f} < log 2; gold accuracy on training prompts {gold:.3f} ± {se:.3f}")
