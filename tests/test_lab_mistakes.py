"""Each mistake a lab check names, made by a student written here, and a guard that none is missed.

A check recognises a mistake in two ways: by the wrong value it gives on the worked example (the
keys of the lab module's `_*_mistakes()` tables, passed to `core.wrong`), or by a `raise
LabCheckError` of its own (no gradient, an overflow, a pair of the wrong kind). Every one of them
gets a buggy student below, written the way a student would write it — not the table's value
returned back — and `test_every_mistake_a_check_names_has_a_student_here` fails when a check
gains a mistake without one. The correct students are in test_labs.py.
"""
from __future__ import annotations

import inspect
import math
import re
from collections import Counter
from itertools import combinations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alignlab import cai, labs
from alignlab.bandit import Bandit
from alignlab.world import CONSTITUTION

# --- lab 1: response_mask, masked_nll -------------------------------------------------------------


def _positions(attention_mask):  # (1, T)
    return torch.arange(attention_mask.shape[1])[None, :]


def _logp(logits, labels):  # (B, T) log-prob of each label
    return torch.log_softmax(logits, -1).gather(-1, labels[..., None])[..., 0]


def nll_through_item(logits, labels, mask):
    nll = -(_logp(logits, labels) * mask).sum().item()  # a float: the graph ends here
    return torch.tensor(nll / mask.sum().item())


LAB1 = [
    ("response_mask", lambda a, p: a.float(), "keeps the prompt", "keeps-the-prompt"),
    ("response_mask", lambda a, p: (_positions(a) >= p[:, None]).float(), "marks padding", "marks-padding"),
    ("response_mask", lambda a, p: ((_positions(a) > p[:, None]) & a.bool()).float(),
     "the condition is t ≥ prompt_length", "strict-inequality"),
    ("response_mask", lambda a, p: ((_positions(a) >= p[:, None] - 1) & a.bool()).float(),
     "the prompt's last token", "starts-at-the-prompts-last-token"),
    ("response_mask", lambda a, p: ((_positions(a) < p[:, None]) & a.bool()).float(), "reversed", "reversed"),
    ("masked_nll", lambda lo, la, m: (_logp(lo, la) * m).sum() / m.sum(), "wrong sign", "sign-flipped"),
    ("masked_nll", lambda lo, la, m: -(_logp(lo, la) * m).sum(), "without dividing", "summed"),
    ("masked_nll", lambda lo, la, m: -(_logp(lo, la) * m).mean(), "divided by every position", "mean-over-all"),
    ("masked_nll", lambda lo, la, m: (-(_logp(lo, la) * m).sum(-1) / m.sum(-1)).mean(),
     "averaged over each sequence", "per-sequence-mean"),
    ("masked_nll", lambda lo, la, m: F.cross_entropy(lo.flatten(0, 1), la.flatten()), "ignored the mask",
     "no-mask"),
    ("masked_nll", lambda lo, la, m: -(lo.gather(-1, la[..., None])[..., 0] * m).sum() / m.sum(), "raw logits",
     "logits-as-log-probs"),
    ("masked_nll", lambda lo, la, m: -(torch.softmax(lo, -1).gather(-1, la[..., None])[..., 0] * m).sum() / m.sum(),
     "probabilities instead", "probs-as-log-probs"),
    ("masked_nll", nll_through_item, "no gradient reaches the logits", "item-breaks-the-graph"),
]

# --- lab 2: bradley_terry_loss, ranking_to_pairs --------------------------------------------------


def bt_through_numpy(r_chosen, r_rejected):
    d = (r_chosen - r_rejected).detach().numpy()
    return torch.tensor(np.log1p(np.exp(-d)).mean())


def pairs_loser_first(ranking):
    return [(ranking[j], ranking[i]) for i in range(len(ranking)) for j in range(i + 1, len(ranking))]


def pairs_with_itself(ranking):  # the inner loop starts at i, not i + 1
    return [(ranking[i], ranking[j]) for i in range(len(ranking)) for j in range(i, len(ranking))]


LAB2 = [
    ("bradley_terry_loss", lambda w, l: -F.logsigmoid(l - w).mean(), "swapped", "swapped"),
    ("bradley_terry_loss", lambda w, l: F.logsigmoid(w - l).mean(), "sign is flipped", "sign-flipped"),
    ("bradley_terry_loss", lambda w, l: -F.logsigmoid(w - l).sum(), "summed over pairs", "summed"),
    ("bradley_terry_loss", lambda w, l: -torch.sigmoid(w - l).mean(), "forgot the log", "no-log"),
    ("bradley_terry_loss", lambda w, l: -(w - l).mean(), "left out the sigmoid", "no-sigmoid"),
    ("bradley_terry_loss", bt_through_numpy, "no gradient flows to the rewards", "numpy-breaks-the-graph"),
    ("bradley_terry_loss", lambda w, l: -torch.log(torch.sigmoid(w - l)).mean(), "logsigmoid",
     "log-of-sigmoid-underflows"),
    ("ranking_to_pairs", pairs_loser_first, "(loser, winner)", "loser-first"),
    ("ranking_to_pairs", lambda r: [(r[i], r[i + 1]) for i in range(len(r) - 1)], "neighbouring", "neighbours-only"),
    ("ranking_to_pairs", pairs_with_itself, "paired with itself", "self-pairs"),
    ("ranking_to_pairs", lambda r: [(a, b) for a in r for b in r if a != b], "both orders", "both-orders"),
    ("ranking_to_pairs", lambda r: list(combinations(range(len(r)), 2)), "paired positions", "positions"),
    ("ranking_to_pairs", lambda r: [(2, 0), (2, 3), (2, 1), (0, 3), (0, 1), (3, 1)], "right for [2, 0, 3, 1] but",
     "hard-coded-example"),
    ("ranking_to_pairs", lambda r: [(r[i], r[i + 1]) for i in range(0, len(r) - 1, 2)], "should give",
     "disjoint-couples-get-the-answer"),
]

# --- lab 3: kl_penalized_rewards, gae, ppo_clip_loss -----------------------------------------------


def _score_on_last_token(rewards, scores, mask):
    rewards[torch.arange(len(scores)), mask.sum(-1).long() - 1] += scores
    return rewards


def kl_score_on_last_column(scores, logprobs, ref_logprobs, mask, beta):
    rewards = -beta * (logprobs - ref_logprobs) * mask
    rewards[:, -1] += scores
    return rewards


def kl_score_on_first_token(scores, logprobs, ref_logprobs, mask, beta):
    rewards = -beta * (logprobs - ref_logprobs) * mask
    rewards[:, 0] += scores
    return rewards


def gae_decaying_by(decay):
    """A student's backwards GAE loop with the recursion Â_t = δ_t + decay(γ, λ)·Â_{t+1}; γλ is right."""
    def gae(rewards, values, gamma, lam, mask):
        T = rewards.shape[1]
        alive_next = torch.cat([mask[:, 1:], torch.zeros(len(mask), 1)], 1)  # (B, T) 0 after a row's end
        adv, running = torch.zeros_like(rewards), torch.zeros(len(rewards))
        for t in reversed(range(T)):
            next_value = values[:, t + 1] if t + 1 < T else 0.0
            delta = rewards[:, t] + gamma * next_value * alive_next[:, t] - values[:, t]
            running = delta + decay(gamma, lam) * alive_next[:, t] * running
            adv[:, t] = running
        return adv * mask, (adv + values) * mask
    return gae


good_gae = gae_decaying_by(lambda gamma, lam: gamma * lam)


def gae_one_step(rewards, values, gamma, lam, mask):
    next_values = torch.cat([values[:, 1:] * mask[:, 1:], torch.zeros(len(values), 1)], 1)
    adv = (rewards + gamma * next_values - values) * mask
    return adv, (adv + values) * mask


def gae_without_mask(rewards, values, gamma, lam, mask):
    adv = good_gae(rewards, values, gamma, lam, torch.ones_like(mask))[0] * mask  # masked only at the end
    return adv, (adv + values) * mask


def _pessimistic(ratio, advantages, eps):  # min(ρÂ, clip(ρ)Â) per token
    return torch.min(ratio * advantages, ratio.clamp(1 - eps, 1 + eps) * advantages)


def clip_optimistic(logprobs, old_logprobs, advantages, mask, eps):
    ratio = (logprobs - old_logprobs).exp()
    objective = torch.max(ratio * advantages, ratio.clamp(1 - eps, 1 + eps) * advantages)
    return -(objective * mask).sum() / mask.sum()


LAB3 = [
    ("kl_penalized_rewards", lambda s, lp, ref, m, b: _score_on_last_token(b * (lp - ref) * m, s, m), "wrong sign",
     "penalty-sign-flipped"),
    ("kl_penalized_rewards", kl_score_on_last_column, "at the last column", "score-on-last-column"),
    ("kl_penalized_rewards", kl_score_on_first_token, "on the first token", "score-on-first-token"),
    ("kl_penalized_rewards", lambda s, lp, ref, m, b: -b * (lp - ref) * m + s[:, None] * m, "to every token",
     "score-on-every-token"),
    ("kl_penalized_rewards", lambda s, lp, ref, m, b: _score_on_last_token(-b * (lp - ref), s, m), "not masked",
     "penalty-unmasked"),
    ("kl_penalized_rewards", lambda s, lp, ref, m, b: _score_on_last_token(-(lp - ref) * m, s, m), "left out β",
     "no-beta"),
    ("gae", gae_one_step, "ignored λ", "one-step-td-error"),
    ("gae", gae_decaying_by(lambda gamma, lam: gamma), "λ = 1", "recursion-by-gamma-only"),
    ("gae", gae_decaying_by(lambda gamma, lam: 1.0), "without discounting", "undiscounted-recursion"),
    ("gae", gae_without_mask, "padding leaks in", "mask-applied-only-at-the-end"),
    ("gae", lambda *args: good_gae(*args)[0], "return a pair", "advantages-only"),
    ("gae", lambda *args: (good_gae(*args)[0],) * 2, "returns are the advantages", "returns-are-advantages"),
    ("gae", lambda r, v, g, lam, m: (good_gae(r, v, g, lam, m)[0], good_gae(r, v, g, lam, m)[0] + v),
     "advantages right, returns wrong", "returns-unmasked"),
    ("ppo_clip_loss", lambda lp, old, a, m, eps: (-a * (lp - old).exp() * m).sum() / m.sum(), "no clipping",
     "no-clipping"),
    ("ppo_clip_loss", clip_optimistic, "optimistic bound", "optimistic-bound"),
    ("ppo_clip_loss", lambda lp, old, a, m, eps: (_pessimistic((lp - old).exp(), a, eps) * m).sum() / m.sum(),
     "sign is flipped", "objective-not-loss"),
    ("ppo_clip_loss", lambda lp, old, a, m, eps: -(_pessimistic(lp - old, a, eps) * m).sum() / m.sum(),
     "log-ratio as ρ", "log-ratio-as-ratio"),
    ("ppo_clip_loss", lambda lp, old, a, m, eps: -(_pessimistic((old - lp).exp(), a, eps) * m).sum() / m.sum(),
     "upside down", "ratio-upside-down"),
    ("ppo_clip_loss", lambda lp, old, a, m, eps: -(_pessimistic((lp - old).exp(), a, eps) * m).mean(),
     "every position", "mean-over-all-positions"),
    ("ppo_clip_loss", lambda lp, old, a, m, eps: -_pessimistic((lp - old).exp(), a, eps).mean(), "did not mask",
     "no-mask"),
    ("ppo_clip_loss", lambda lp, old, a, m, eps: -(_pessimistic((lp.detach() - old).exp(), a, eps) * m).sum() / m.sum(),
     "no gradient reaches the log-probs", "detached-log-probs"),
]

# --- lab 4: dpo_loss, implicit_reward -------------------------------------------------------------


def _h(pc, pr, rc, rr):  # (B,) the policy's log-ratio margin over the reference's
    return (pc - rc) - (pr - rr)


def dpo_adding_the_reference_ratio(pc, pr, rc, rr, beta):
    pi_logratios, ref_logratios = pc - pr, rc - rr
    return -F.logsigmoid(beta * (pi_logratios + ref_logratios)).mean()


LAB4 = [
    ("dpo_loss", lambda pc, pr, rc, rr, b: -F.logsigmoid(b * (pc - pr)).mean(), "left out the reference",
     "no-reference"),
    ("dpo_loss", lambda pc, pr, rc, rr, b: -F.logsigmoid(b * _h(pr, pc, rr, rc)).mean(), "swapped", "swapped"),
    ("dpo_loss", lambda pc, pr, rc, rr, b: -b * F.logsigmoid(_h(pc, pr, rc, rr)).mean(), "β is outside",
     "beta-outside-the-sigmoid"),
    ("dpo_loss", lambda pc, pr, rc, rr, b: -F.logsigmoid(_h(pc, pr, rc, rr)).mean(), "you left out β.", "no-beta"),
    ("dpo_loss", lambda pc, pr, rc, rr, b: -F.logsigmoid(b * _h(pc, pr, rc, rr)).sum(), "summed", "summed"),
    ("dpo_loss", lambda pc, pr, rc, rr, b: F.logsigmoid(b * _h(pc, pr, rc, rr)).mean(), "sign is flipped",
     "sign-flipped"),
    ("dpo_loss", dpo_adding_the_reference_ratio, "wrong way round", "reference-ratio-added"),
    ("dpo_loss", lambda pc, pr, rc, rr, b: -F.logsigmoid(b * _h(pc, pr, rc, rr).detach()).mean(),
     "no gradient reaches the policy", "detached-margin"),
    ("dpo_loss", lambda pc, pr, rc, rr, b: -torch.log(torch.sigmoid(b * _h(pc, pr, rc, rr))).mean(), "logsigmoid",
     "log-of-sigmoid-overflows"),
    ("implicit_reward", lambda pi, ref, beta: pi.log() - ref.log(), "left out β", "no-beta"),
    ("implicit_reward", lambda pi, ref, beta: beta * (ref / pi).log(), "upside down", "ratio-upside-down"),
    ("implicit_reward", lambda pi, ref, beta: beta * pi / ref, "without the log", "no-log"),
    ("implicit_reward", lambda pi, ref, beta: beta * (pi / ref).log() + beta * Bandit.example().log_partition(beta),
     "added β·log Z", "plus-beta-log-z"),
]

# --- lab 5: ai_preference, critique_and_revise ----------------------------------------------------


def _p(logits, i, j):  # P(token i) normalised over tokens i and j
    return torch.sigmoid(logits[:, i] - logits[:, j])


def _first(texts):
    return [t.split("\n")[0] for t in texts]


def _round(critique_prompt, revision_prompt, cut=_first, calls=2):
    """A student's critique → revision built from the two prompt makers given, cutting with `cut`."""
    def student(prompts, responses, principles, continue_texts):
        critiques = cut(continue_texts([critique_prompt(*args) for args in zip(prompts, responses, principles)]))
        if calls == 1:
            return critiques, critiques
        revisions = cut(continue_texts([revision_prompt(*args) for args in zip(prompts, responses, principles, critiques)]))
        return critiques, revisions
    return student


def _swapped(prompts, responses, principles, continue_texts):
    critiques, revisions = _round(cai.critique_prompt, cai.revision_prompt)(prompts, responses, principles, continue_texts)
    return revisions, critiques


def _as_strings(prompts, responses, principles, continue_texts):
    critiques, revisions = _round(cai.critique_prompt, cai.revision_prompt)(prompts, responses, principles, continue_texts)
    return " ".join(critiques), " ".join(revisions)


LAB5 = [
    ("ai_preference", lambda ab, ba, a, b: (torch.softmax(ab, -1)[:, a] + torch.softmax(ba, -1)[:, b]) / 2,
     "did not normalise over the two letters", "softmax-over-the-vocabulary"),
    ("ai_preference", lambda ab, ba, a, b: _p(ab, a, b), "one order only", "one-order"),
    ("ai_preference", lambda ab, ba, a, b: (_p(ab, a, b) + _p(ba, a, b)) / 2, "use P(B) there", "p-of-a-in-both"),
    ("ai_preference", lambda ab, ba, a, b: torch.sigmoid(((ab[:, a] - ab[:, b]) + (ba[:, b] - ba[:, a])) / 2),
     "averaged logit differences", "average-of-logits"),
    ("ai_preference", lambda ab, ba, a, b: (_p(ab, b, a) + _p(ba, a, b)) / 2, "P(b ≻ a)", "prefers-b"),
    ("critique_and_revise", _as_strings, "two lists", "strings-not-lists"),
    ("critique_and_revise", _round(cai.critique_prompt, cai.revision_prompt, calls=1), "call continue_texts twice",
     "one-call"),
    ("critique_and_revise", _round(lambda p, y, pr: f"User: {p}\nAssistant:{y}\nCritique:", cai.revision_prompt),
     "not the critique prompts", "no-critique-request"),
    ("critique_and_revise", _swapped, "(revisions, critiques)", "swapped"),
    ("critique_and_revise", _round(cai.critique_prompt, cai.revision_prompt, cut=list), "first newline", "no-cut"),
    ("critique_and_revise", _round(cai.critique_prompt, lambda p, y, pr, c: cai.revision_prompt(p, y, pr, "")),
     "must hold the critique", "revision-without-critique"),
    ("critique_and_revise", _round(cai.critique_prompt, lambda p, y, pr, c: cai.revision_prompt(p, y, CONSTITUTION[0], c)),
     "not the revision prompts", "one-principle-for-every-revision"),
]

# --- lab 6: score_solution, select_best_of_n -------------------------------------------------------


def _product_or(product, minimum=min):
    """A student's score_solution: `product(p)` for how="product", `minimum(p)` for how="min"."""
    return lambda p, how: product(p) if how == "product" else minimum(p)


def _no_steps_return(value):
    def student(step_probs, how):
        if not step_probs:
            return value
        return math.prod(step_probs) if how == "product" else min(step_probs)
    return student


def _votes(answers, count_none=False):
    return Counter(a for a in answers if a is not None or count_none)


def _tied_carriers(answers, counts):
    """Every candidate whose answer is tied for the most votes."""
    top = max(counts.values())
    return [n for n, a in enumerate(answers) if a in counts and counts[a] == top]


def _vote_then(pick=max, count_none=False, no_answer=lambda scores: 0):
    """A student's select_best_of_n: the best (by `pick`) candidate among the tied answers' carriers."""
    def student(answers, scores):
        counts = _votes(answers, count_none)
        if not counts:
            return no_answer(scores)
        return pick(_tied_carriers(answers, counts), key=lambda n: scores[n])
    return student


def _most_common_winner(answers, scores):
    return _votes(answers).most_common(1)[0][0]   # ties: the first to appear


def _right_winner(answers, scores):
    return answers[_vote_then()(answers, scores)]


def _best_carrier(winner_of):
    def student(answers, scores):
        winner = winner_of(answers, scores)
        return max((n for n, a in enumerate(answers) if a == winner), key=lambda n: scores[n])
    return student


def _first_carrier(winner_of):
    return lambda answers, scores: answers.index(winner_of(answers, scores))


def _weighted_winner(answers, scores):
    totals = Counter()
    for a, s in zip(answers, scores):
        if a is not None:
            totals[a] += s
    return max(totals, key=totals.get)


def _tie_by_total_winner(answers, scores):
    counts = _votes(answers)
    tied = [a for a in counts if counts[a] == max(counts.values())]
    return max(tied, key=lambda a: sum(s for b, s in zip(answers, scores) if b == a))


def _best_score(answers, scores):
    winner = _most_common_winner(answers, scores)
    return max(s for a, s in zip(answers, scores) if a == winner)


def _unguarded(answers, scores):
    counts = _votes(answers)
    top = max(counts.values())   # ValueError when every answer is None
    return max((n for n, a in enumerate(answers) if a is not None and counts[a] == top), key=lambda n: scores[n])


LAB6 = [
    ("score_solution", _product_or(sum), "summed the step probabilities", "sum"),
    ("score_solution", _product_or(lambda p: sum(p) / len(p)), "averaged the step probabilities", "mean"),
    ("score_solution", _product_or(lambda p: math.prod(p) ** (1 / len(p))), "geometric mean", "geometric-mean"),
    ("score_solution", _product_or(lambda p: sum(math.log(x) for x in p)), "exponentiate", "log-without-exp"),
    ("score_solution", _product_or(min, math.prod), "swapped", "min-and-product-swapped"),
    ("score_solution", lambda p, how: math.prod(p), "the product for how=\"min\" too", "always-product"),
    ("score_solution", lambda p, how: min(p), "the minimum for how=\"product\" too", "always-min"),
    ("score_solution", _product_or(np.cumprod), "return one number", "running-product"),
    ("score_solution", _product_or(lambda p: float(np.prod(p)), lambda p: float(np.min(p))),
     "it raised on a solution with no scored step", "empty-raises"),
    ("score_solution", _product_or(math.prod, lambda p: min(p) if p else 0.0), "you return 1", "empty-is-one"),
    ("score_solution", _no_steps_return(None), "return 0.0 for both", "empty-is-none"),
    ("select_best_of_n", _vote_then(count_none=True), "does not vote", "none-votes"),
    ("select_best_of_n", lambda answers, scores: int(np.argmax(scores)), "ignored the vote", "argmax"),
    ("select_best_of_n", lambda answers, scores: int(np.argmin(scores)), "lowest-scoring candidate", "argmin"),
    ("select_best_of_n", _vote_then(pick=min), "lowest scores in the vote", "vote-by-min"),
    ("select_best_of_n", _best_carrier(_most_common_winner), "Counter.most_common", "tie-by-first-appearance"),
    ("select_best_of_n", _first_carrier(_most_common_winner), "returned its first candidate; break",
     "first-answer-first-candidate"),
    ("select_best_of_n", _first_carrier(_right_winner), "right answer wins", "first-candidate-of-winner"),
    ("select_best_of_n", _best_carrier(_weighted_winner), "weighted majority", "weighted-by-score"),
    ("select_best_of_n", _best_carrier(_tie_by_total_winner), "total scores", "tie-by-total-score"),
    ("select_best_of_n", _right_winner, "the winning answer itself", "answer-not-index"),
    ("select_best_of_n", _best_score, "(an int), not a float", "returns-the-score"),
    ("select_best_of_n", _unguarded, "it raised when no candidate has an answer", "no-answer-raises"),
    ("select_best_of_n", _vote_then(no_answer=lambda scores: int(np.argmax(scores))), "return 0 (the first",
     "no-answer-argmax"),
]

# --- lab 7: grpo_advantages, grpo_loss ----------------------------------------------------------------


def _unbiased(r, dim, eps):
    return r.std(dim, keepdim=True) + eps


def advantages_by(std=_unbiased, view=lambda r, G: r.view(-1, G), dim=-1, scale_none_too=False):
    """A student's grpo_advantages: centre the groups (the rows of `view`, over `dim`) and, for
    scale="group" (or always), divide by `std`."""
    def grpo_advantages(rewards, group_size, scale="group", eps=1e-4):
        r = view(rewards, group_size)
        adv = r - r.mean(dim, keepdim=True)
        if scale == "group" or scale_none_too:
            adv = adv / std(r, dim, eps)
        return adv.reshape(-1)
    return grpo_advantages


def advantages_by_batch_std(rewards, group_size, scale="group", eps=1e-4):
    r = rewards.view(-1, group_size)
    adv = r - r.mean(-1, keepdim=True)
    return (adv / (rewards.std() + eps) if scale == "group" else adv).flatten()


def advantages_never_scaled(rewards, group_size, scale="group", eps=1e-4):
    r = rewards.view(-1, group_size)
    return (r - r.mean(-1, keepdim=True)).flatten()


def advantages_std_where_nonzero(rewards, group_size, scale="group", eps=1e-4):
    r = rewards.view(-1, group_size)
    adv, std = r - r.mean(-1, keepdim=True), r.std(-1, keepdim=True)
    if scale == "group":
        adv = torch.where(std > 0, adv / std, torch.zeros_like(adv))  # no NaN, and no eps either
    return adv.flatten()


def advantages_in_place(rewards, group_size, scale="group", eps=1e-4):
    r = rewards.view(-1, group_size)
    std = r.std(-1, keepdim=True)
    r -= r.mean(-1, keepdim=True)
    if scale == "group":
        r /= std + eps
    return rewards


def _k3(logprobs, ref_logprobs):
    d = ref_logprobs - logprobs
    return d.exp() - d - 1


def _per_completion(x, mask):
    return ((x * mask).sum(-1) / mask.sum(-1)).mean()


def _per_token(x, mask):
    return (x * mask).sum() / mask.sum()


def grpo_loss_by(surrogate=lambda rho, a, c: -torch.min(rho * a, c * a), ratio=lambda lp, old: (lp - old).exp(),
                 kl=_k3, beta_times=lambda beta, k: beta * k, grpo=_per_completion, dapo=_per_token,
                 detach_old=True, kl_always=False):
    """A student's grpo_loss: `surrogate(ρ, Â, clip(ρ))` + `beta_times(β, kl)` per token, averaged by
    `grpo` or `dapo` (norm); the KL only when β > 0 unless `kl_always`."""
    def grpo_loss(logprobs, old_logprobs, advantages, mask, clip_eps=0.2, ref_logprobs=None, beta=0.0, norm="grpo"):
        rho = ratio(logprobs, old_logprobs.detach() if detach_old else old_logprobs)
        a = advantages[:, None]  # (B, 1): every token of a completion gets its advantage
        per_token = surrogate(rho, a, rho.clamp(1 - clip_eps, 1 + clip_eps))
        if beta > 0 or kl_always:
            per_token = per_token + beta_times(beta, kl(logprobs, ref_logprobs))
        return grpo(per_token, mask) if norm == "grpo" else dapo(per_token, mask)
    return grpo_loss


LAB7 = [
    ("grpo_advantages", advantages_by(lambda r, d, eps: r.std(d, keepdim=True, unbiased=False) + eps),
     "population std", "population-std"),
    ("grpo_advantages", advantages_by(view=lambda r, G: r[None, :]), "over the whole batch", "batch-normalised"),
    ("grpo_advantages", advantages_by_batch_std, "std of the whole batch", "batch-std"),
    ("grpo_advantages", advantages_by(dim=0), "wrong axis", "across-prompts"),
    ("grpo_advantages", advantages_by(view=lambda r, G: r.view(G, -1), dim=0), "strided", "strided-groups"),
    ("grpo_advantages", advantages_by(scale_none_too=True), "for scale=None too", "scale-ignored"),
    ("grpo_advantages", advantages_never_scaled, "did not divide by the group's std", "never-scaled"),
    ("grpo_advantages", advantages_std_where_nonzero, "the std alone", "no-eps-no-nan"),
    ("grpo_advantages", advantages_by(lambda r, d, eps: (r.var(d, keepdim=True) + eps).sqrt()),
     "under the square root", "eps-under-sqrt"),
    ("grpo_advantages", advantages_by(lambda r, d, eps: r.std(d, keepdim=True)), "NaN", "nan-on-equal-rewards"),
    ("grpo_advantages", advantages_in_place, "in place", "in-place"),
    ("grpo_loss", grpo_loss_by(surrogate=lambda rho, a, c: -c * a), "only the clipped term", "no-min"),
    ("grpo_loss", grpo_loss_by(surrogate=lambda rho, a, c: -rho * a), "no clipping", "no-clipping"),
    ("grpo_loss", grpo_loss_by(surrogate=lambda rho, a, c: -torch.max(rho * a, c * a)), "optimistic",
     "optimistic-bound"),
    ("grpo_loss", grpo_loss_by(surrogate=lambda rho, a, c: torch.min(rho * a, c * a),
                               beta_times=lambda beta, k: -beta * k), "sign is flipped", "objective-not-loss"),
    ("grpo_loss", grpo_loss_by(ratio=lambda lp, old: (old - lp).exp()), "upside down", "ratio-upside-down"),
    ("grpo_loss", grpo_loss_by(beta_times=lambda beta, k: -beta * k), "KL term has the wrong sign", "kl-sign"),
    ("grpo_loss", grpo_loss_by(kl=lambda lp, ref: lp - ref), "k1", "k1-not-k3"),
    ("grpo_loss", grpo_loss_by(kl=lambda lp, ref: _k3(ref, lp)), "wrong way round", "k3-reversed"),
    ("grpo_loss", grpo_loss_by(beta_times=lambda beta, k: k), "left out β", "no-beta"),
    ("grpo_loss", grpo_loss_by(beta_times=lambda beta, k: 0 * k), "left out the KL term", "no-kl"),
    ("grpo_loss", grpo_loss_by(grpo=_per_token), "for norm=\"grpo\" you averaged over every token", "always-dapo"),
    ("grpo_loss", grpo_loss_by(dapo=_per_completion), "for norm=\"dapo\" you averaged each", "always-grpo"),
    ("grpo_loss", grpo_loss_by(grpo=_per_token, dapo=_per_completion), "swapped", "norms-swapped"),
    ("grpo_loss", grpo_loss_by(grpo=lambda x, m: x.mean(-1).mean(), dapo=lambda x, m: x.mean()), "did not mask",
     "no-mask"),
    ("grpo_loss", grpo_loss_by(grpo=lambda x, m: ((x * m).sum(-1) / m.shape[-1]).mean(),
                               dapo=lambda x, m: (x * m).mean()), "every position", "mean-over-all-positions"),
    ("grpo_loss", grpo_loss_by(grpo=lambda x, m: (x * m).sum(-1).mean()), "summed each completion",
     "summed-per-completion"),
    ("grpo_loss", grpo_loss_by(kl_always=True), "ref_logprobs = None", "kl-without-ref"),
    ("grpo_loss", grpo_loss_by(ratio=lambda lp, old: (lp.detach() - old).exp()), "no gradient reaches",
     "detached-log-probs"),
    ("grpo_loss", grpo_loss_by(detach_old=False), "detach old_logprobs", "old-log-probs-not-detached"),
]

# --- lab 8: pgr, confidence_loss ---------------------------------------------------------------------


def pgr_by(formula):
    """A student's pgr with numpy on whole arrays and a ValueError without a gap, its `formula(w, s, c)` changed."""
    def pgr(weak_acc, w2s_acc, ceiling_acc):
        weak, student, ceiling = (np.asarray(x, dtype=float) for x in (weak_acc, w2s_acc, ceiling_acc))
        if np.any(~(ceiling - weak > 0)):
            raise ValueError("no gap to recover")
        out = formula(weak, student, ceiling)
        return float(out) if out.ndim == 0 else out
    return pgr


def pgr_guarded_by(no_gap):
    """A student's pgr that raises only where `no_gap(ceiling − weak)` says so (or never: None)."""
    def pgr(weak_acc, w2s_acc, ceiling_acc):
        weak, student, ceiling = (np.asarray(x, dtype=float) for x in (weak_acc, w2s_acc, ceiling_acc))
        if no_gap is not None and no_gap(ceiling - weak):
            raise ValueError("no gap to recover")
        out = (student - weak) / (ceiling - weak)
        return float(out) if out.ndim == 0 else out
    return pgr


def pgr_without_return(weak_acc, w2s_acc, ceiling_acc):
    gap = ceiling_acc - weak_acc
    if gap <= 0:
        raise ValueError("no gap to recover")
    recovered = (w2s_acc - weak_acc) / gap  # noqa: F841 (computed, never returned)


def pgr_with_float(weak_acc, w2s_acc, ceiling_acc):
    weak, student, ceiling = float(weak_acc), float(w2s_acc), float(ceiling_acc)
    if not ceiling - weak > 0:
        raise ValueError("no gap to recover")
    return (student - weak) / (ceiling - weak)


def pgr_with_max(weak_acc, w2s_acc, ceiling_acc):
    gap = max(ceiling_acc - weak_acc, 0.0)
    if gap == 0:
        raise ValueError("no gap to recover")
    return (w2s_acc - weak_acc) / gap


def pgr_of_the_mean_seed(weak_acc, w2s_acc, ceiling_acc):
    weak, student, ceiling = np.mean(weak_acc), np.mean(w2s_acc), np.mean(ceiling_acc)  # one number per run
    if not ceiling - weak > 0:
        raise ValueError("no gap to recover")
    return float((student - weak) / (ceiling - weak))


def pgr_plain_division(weak_acc, w2s_acc, ceiling_acc):
    return (w2s_acc - weak_acc) / (ceiling_acc - weak_acc)


def pgr_asserting(weak_acc, w2s_acc, ceiling_acc):
    weak, student, ceiling = (np.asarray(x, dtype=float) for x in (weak_acc, w2s_acc, ceiling_acc))
    assert np.all(ceiling > weak), "no gap to recover"
    out = (student - weak) / (ceiling - weak)
    return float(out) if out.ndim == 0 else out


def confidence_loss_by(share=lambda w: w[:, 1].mean(), columns=lambda p0, t: (p0 >= t, p0 < t),
                       mix=lambda a, w, h: (1 - a) * w + a * h, hard_weak=False, reduction="mean", sign=1):
    """A student's confidence_loss: hardened at the quantile `share(weak)` of f[:, 0] (None: at ½),
    one-hot `columns(f[:, 0], threshold)`, the target `mix(α, weak, hard)`, then F.cross_entropy."""
    def confidence_loss(student_logits, weak_probs, alpha):
        weak = F.one_hot(weak_probs.argmax(-1), 2).float() if hard_weak else weak_probs
        probs = student_logits.detach().softmax(-1)
        q = share(weak)
        threshold = 0.5 if q is None else torch.quantile(probs[:, 0], q)
        hard = torch.stack(columns(probs[:, 0], threshold), dim=-1).float()
        return sign * F.cross_entropy(student_logits, mix(alpha, weak, hard), reduction=reduction)
    return confidence_loss


def _hardened(probs, weak_probs):  # the right one-hot, (B, 2)
    threshold = torch.quantile(probs[:, 0], weak_probs[:, 1].mean())
    return torch.stack([probs[:, 0] >= threshold, probs[:, 0] < threshold], dim=-1).float()


def confidence_by_argmax(student_logits, weak_probs, alpha):
    hard = F.one_hot(student_logits.argmax(-1), 2).float()
    return F.cross_entropy(student_logits, (1 - alpha) * weak_probs + alpha * hard)


def confidence_to_soft_self(student_logits, weak_probs, alpha):
    probs = student_logits.softmax(-1)  # neither hardened nor detached
    return F.cross_entropy(student_logits, (1 - alpha) * weak_probs + alpha * probs)


def confidence_straight_through(student_logits, weak_probs, alpha):
    probs = student_logits.softmax(-1)
    hard = _hardened(probs.detach(), weak_probs)
    hard = hard + probs - probs.detach()  # the one-hot's value, the probabilities' gradient
    return F.cross_entropy(student_logits, (1 - alpha) * weak_probs + alpha * hard)


def confidence_of_probabilities(student_logits, weak_probs, alpha):
    probs = student_logits.softmax(-1)
    return F.cross_entropy(probs, (1 - alpha) * weak_probs + alpha * _hardened(probs.detach(), weak_probs))


def confidence_from_detached_probs(student_logits, weak_probs, alpha):
    probs = student_logits.detach().softmax(-1)  # detached once, used for the target and the loss alike
    target = (1 - alpha) * weak_probs + alpha * _hardened(probs, weak_probs)
    return -(target * probs.log()).sum(-1).mean()


LAB8 = [
    ("pgr", pgr_by(lambda w, s, c: (c - w) / (s - w)), "swapped numerator and denominator", "swapped"),
    ("pgr", pgr_by(lambda w, s, c: (c - s) / (c - w)), "1 − PGR", "one-minus-pgr"),
    ("pgr", pgr_by(lambda w, s, c: 100 * (s - w) / (c - w)), "percentage", "percentage"),
    ("pgr", pgr_by(lambda w, s, c: np.clip((s - w) / (c - w), 0, 1)), "clipped PGR at 0", "clipped"),
    ("pgr", pgr_by(lambda w, s, c: (s - w) / (1 - w)), "divided by 1 − weak", "gap-to-perfect"),
    ("pgr", pgr_without_return, "return one number", "no-return"),
    ("pgr", pgr_with_float, "raised on arrays", "float-on-arrays"),
    ("pgr", pgr_with_max, "raised on arrays", "max-on-arrays"),
    ("pgr", pgr_of_the_mean_seed, "an array of three PGRs", "mean-over-seeds"),
    ("pgr", pgr_by(lambda w, s, c: (s - w) / np.mean(c - w)), "not elementwise on arrays", "mean-gap"),
    ("pgr", pgr_guarded_by(None), "no error where there is no gap", "inf-on-zero-gap"),
    ("pgr", pgr_guarded_by(lambda gap: np.any(gap <= 0)), "a NaN ceiling", "nan-passes"),
    ("pgr", pgr_guarded_by(lambda gap: np.all(~(gap > 0))), "one seed of three has no gap", "all-not-any"),
    ("pgr", pgr_plain_division, "not ZeroDivisionError", "zero-division"),
    ("pgr", pgr_asserting, "not AssertionError", "assert"),
    ("confidence_loss", confidence_loss_by(share=lambda w: None), "by argmax (a fixed threshold of ½",
     "fixed-half-threshold"),
    ("confidence_loss", confidence_by_argmax, "by argmax (a fixed threshold of ½", "argmax"),
    ("confidence_loss", confidence_loss_by(share=lambda w: 0.5), "median", "median-threshold"),
    ("confidence_loss", confidence_loss_by(share=lambda w: w[:, 0].mean()), "negative share", "negative-share"),
    ("confidence_loss", confidence_loss_by(columns=lambda p0, t: (p0 < t, p0 >= t)), "columns are the wrong way",
     "columns-swapped"),
    ("confidence_loss", confidence_loss_by(mix=lambda a, w, h: a * w + (1 - a) * h), "α weights the wrong term",
     "alpha-swapped"),
    ("confidence_loss", confidence_to_soft_self, "soft probabilities", "soft-self-target"),
    ("confidence_loss", confidence_loss_by(hard_weak=True), "hardened the weak labels", "hard-weak-labels"),
    ("confidence_loss", confidence_loss_by(reduction="sum"), "summed over the batch", "summed"),
    ("confidence_loss", confidence_loss_by(sign=-1), "sign is flipped", "sign-flipped"),
    ("confidence_loss", confidence_of_probabilities, "passed probabilities", "probabilities-as-logits"),
    ("confidence_loss", confidence_from_detached_probs, "no gradient reaches", "detached-logits"),
    ("confidence_loss", confidence_straight_through, "carries gradient", "target-not-detached"),
]

MISTAKES = [pytest.param(f, student, says, id=f"{f}-{id_}")
            for f, student, says, id_ in LAB1 + LAB2 + LAB3 + LAB4 + LAB5 + LAB6 + LAB7 + LAB8]


def feedback(function: str, student) -> str:
    """What `check_<function>` says to `student` (which must not pass)."""
    with pytest.raises(labs.LabCheckError) as err:
        getattr(labs, f"check_{function}")(student)
    return str(err.value)


@pytest.mark.parametrize("function, student, says", MISTAKES)
def test_check_names_the_mistake(function, student, says):
    assert says in feedback(function, student)


# --- every mistake a check can name has a student above ---------------------------------------------

CHECKS = {name: check for name, check in vars(labs).items()
          if name.startswith("check_") and "fn" in inspect.signature(check).parameters}
# Raised by a check, but no student can reach it: an r̂ that passes the value check (to 1e-9) gives
# r − r̂ = β log Z well within this test's 1e-5; it guards the bandit's algebra, not the student.
UNREACHABLE = {"implicit_reward: r − r̂ is not the same constant for every response."}
RAISED = re.compile(r'raise LabCheckError\(f?"([^"{]+)')  # a raise's message, up to its first {…}


def table_mistakes() -> set[str]:
    """The keys of every lab module's `_*_mistakes()` tables (each built on its check's worked example)."""
    modules = (labs.sft, labs.reward_model, labs.ppo, labs.dpo, labs.cai, labs.prm, labs.grpo, labs.w2s)
    return {message for module in modules for name, table in vars(module).items()
            if name.endswith("_mistakes") for message in table()}


def raised_mistakes() -> set[str]:
    """The text each check's own `raise LabCheckError(...)` starts with, up to its first {…}."""
    return {start for check in CHECKS.values()
            for start in RAISED.findall(inspect.getsource(check))} - UNREACHABLE


def test_checks_keep_their_mistakes_where_this_file_can_list_them():
    for name, check in CHECKS.items():
        source = inspect.getsource(check)
        assert len(RAISED.findall(source)) == source.count("raise LabCheckError"), \
            f"{name} raises a message that does not start with literal text"
        assert len(re.findall(r'wrong\("\w+", \w+, _\w+_mistakes\(', source)) == source.count("wrong("), \
            f"{name} passes `wrong` a table that is not a module-level `_*_mistakes()`"


def test_every_mistake_a_check_names_has_a_student_here():
    known = table_mistakes() | raised_mistakes()
    named = set()
    for case in MISTAKES:
        function, student, _ = case.values
        message = feedback(function, student)
        hits = {k for k in known if k in message}
        assert len(hits) == 1, f"{case.id}: {message!r} matches {len(hits)} known mistakes"
        named |= hits
    assert known - named == set(), "mistakes no student in this file makes"
