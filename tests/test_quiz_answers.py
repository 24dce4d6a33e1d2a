"""Every quiz answer that is a computation, recomputed with the library.

test_quiz.py checks that the banks say what the sources say; nothing there checks that the
sources are *right*: marking 0.3 instead of 0.5 as chapter 3's GAE answer passed every test.
Here one table maps each (chapter, question id) to a small function that recomputes the answer
from what the question states — GAE with `losses.gae`, k3 with `losses.kl_estimators`, π* with
`Bandit.optimal_policy`, log 2 as a DPO loss at π = π_ref — and one parametrised test asserts
(a) the readable source marks that answer right, within a tolerance no wider than the question
warrants, and (b) the checker the widgets use, on the encoded bank students load, accepts it
(and its rounding to the decimals the question asks for) and rejects a value just outside.
Choice questions whose right option is a computed fact are in the table too. A numeric question
without a row fails `test_every_numeric_question_has_a_recomputation`. Runs in about a second.
"""
from __future__ import annotations

import functools
import inspect
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from alignlab import bradley_terry as bt
from alignlab import (cai, cai_eval, capstone, evaluate, grpo, losses, overoptimization, prm, recipes, reward, rlvr_eval, search,
                      verifiers, w2s_eval, world)
from alignlab import multiobjective
from alignlab.bandit import Bandit
from alignlab.quiz import author, check, load_bank
from alignlab.quiz.bank import chapters, normalise

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def sources() -> dict[str, dict]:
    """Chapter id ('03') → its parsed readable source (cached: many tests read it)."""
    return author.sources()


def source_question(chapter: str, qid: str) -> dict:
    return next(q for q in sources()[chapter]["questions"] if q["id"] == qid)


def option_with_prefix(q: dict, prefix: str | None) -> str:
    """The one option of `q` whose text starts with `prefix`."""
    assert prefix is not None, f"{q['id']}: the computation contradicts every option"
    hits = [a["answer"] for a in q["answers"] if a["answer"].startswith(prefix)]
    assert len(hits) == 1, f"{q['id']}: {len(hits)} options start with {prefix!r}"
    return hits[0]


# --- chapter 0: how to use this book -------------------------------------------------------


def agreement(p: float) -> float:
    """Two independent labelers who each pick a with probability p agree with probability
    p² + (1 − p)² (alignlab/world/labelers.py; the expectation `agreement_stats` averages)."""
    return p ** 2 + (1 - p) ** 2


# --- chapter 1: pretraining and SFT as a KL --------------------------------------------------


def loss_floor_nats() -> float:
    """CE(q, p) at p = q is H(q) (chapter 1: CE = KL(q ‖ p) + H(q)), for q = (½, ¼, ¼)."""
    q = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    return losses.cross_entropy_decomposition(q, q.log())["cross_entropy"].item()


def undemonstrated_logit_gradient(p_v: float = 0.3) -> float:
    """∂H(q, p)/∂z_v = p(v) − q(v), by autograd through `nll_loss`: token 0 has p = 0.3 and the
    demonstration uses token 1."""
    logits = torch.tensor([[[math.log(p_v), math.log(1 - p_v)]]], requires_grad=True)  # (B=1, T=1, V=2)
    loss, _ = losses.nll_loss(logits, torch.tensor([[1]]), torch.ones(1, 1))
    loss.backward()
    return logits.grad[0, 0, 0].item()


def divergence_cross_entropy_minimises() -> str:
    """H(q, p) − H(q), the part that depends on the model, equals KL(q ‖ p) (not KL(p ‖ q))."""
    q = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    logits = torch.tensor([1.5, -1.0, 0.2], dtype=torch.float64)
    p = logits.softmax(-1)
    parts = losses.cross_entropy_decomposition(q, logits)
    model_part = (parts["cross_entropy"] - parts["entropy"]).item()
    candidates = {"KL(q ‖ p)": (q * (q / p).log()).sum().item(), "KL(p ‖ q)": (p * (p / q).log()).sum().item()}
    return min(candidates, key=lambda k: abs(candidates[k] - model_part))


# --- chapter 2: Bradley-Terry --------------------------------------------------------------


def bt_loss_after_shifting_every_reward(shift: float = 5.0) -> str:
    """−log σ((r_w + c) − (r_l + c)) = −log σ(r_w − r_l): `bradley_terry_loss` before and after."""
    r_w = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    r_l = torch.tensor([0.1, 0.4, -0.5], dtype=torch.float64)
    change = (losses.bradley_terry_loss(r_w + shift, r_l + shift)[0] - losses.bradley_terry_loss(r_w, r_l)[0]).item()
    return "Nothing" if abs(change) < 1e-9 else ("It falls" if change < 0 else "It rises")


def ceiling_against_one_labeler() -> str:
    """The world's labelers (~73% agreement): Bayes accuracy E[max(p, 1 − p)] vs E[p² + (1 − p)²]."""
    stats = world.agreement_stats(world.comparison_pairs(500))
    if stats["bayes_accuracy"] <= stats["expected_agreement"]:
        return "Yes"
    return "No: a good enough model" if stats["bayes_accuracy"] >= 1 else "No: a model that predicts"


def assumption_the_decoy_breaks() -> str | None:
    """IIA (Luce): P(a)/P(b) does not depend on what else is shown. The world's decoy labeler's does."""
    prompt, target, competitor, decoy = world.decoy_example()
    labeler = world.DecoyLabeler()
    pair = labeler.choice_probs(prompt, [target, competitor])
    menu = labeler.choice_probs(prompt, [target, competitor, decoy])
    odds_move = not math.isclose(pair[0] / pair[1], menu[0] / menu[1], rel_tol=1e-6)
    return "Independence of irrelevant alternatives" if odds_move else None


def gumbel_facts() -> set[str]:
    """Utility + Gumbel noise, argmax (McFadden, 1974), simulated with `gumbel_choice`: 2 options →
    σ(u_a − u_b); k options → Luce's softmax; the difference of two Gumbels has excess kurtosis
    1.2 (logistic), not 0 (normal). Seeded; 200k draws put σ within ~0.001."""
    rng, u, n = np.random.default_rng(0), np.array([0.7, 0.0, -0.4]), 200_000
    true = set()
    if abs(bt.gumbel_choice(u[:2], n, rng)[0] - bt.sigmoid(u[0] - u[1])) < 0.005:
        true.add("With two options")
    if np.abs(bt.gumbel_choice(u, n, rng) - bt.luce_choice_probs(u, [0, 1, 2])).max() < 0.005:
        true.add("With many options")
    d = rng.gumbel(size=n) - rng.gumbel(size=n)
    if abs(((d - d.mean()) ** 4).mean() / d.var() ** 2 - 3) < 0.1:
        true.add("The difference of two Gumbel noises is normal")
    return true


# --- chapter 3: KL-regularised RL with PPO ---------------------------------------------------


def clip_gradient(rho: float = 1.3, eps: float = 0.2, advantage: float = 1.0) -> str:
    """∂/∂log π of PPO's clipped loss (Schulman et al., 2017, eq. 7) at ρ = 1.3 > 1 + ε, Â > 0."""
    logprobs = torch.tensor([[math.log(rho)]], requires_grad=True)  # log π_old = 0, so ρ = 1.3
    loss, _ = losses.ppo_clip_loss(logprobs, torch.zeros(1, 1), torch.tensor([[advantage]]), torch.ones(1, 1),
                                   clip_eps=eps)
    loss.backward()
    g = logprobs.grad.item()  # gradient descent moves log π by −g
    return "None" if g == 0 else ("A gradient pushing ρ higher" if g < 0 else "A gradient pushing ρ back down")


def k3_at(log_r: float = -0.5) -> float:
    """k3 = (r − 1) − log r (Schulman, 2020) for log r = log π_ref − log π = −0.5."""
    ks = losses.kl_estimators(logprobs=torch.zeros(1, 1), ref_logprobs=torch.full((1, 1), log_r))
    return ks["k3"].item()


def kl_estimators_that_go_negative() -> set[str]:
    """Each estimator on single tokens with log r from −3 to 3: which ever come out negative."""
    log_r = torch.linspace(-3, 3, 61)[None]  # (1, 61)
    ks = losses.kl_estimators(logprobs=torch.zeros_like(log_r), ref_logprobs=log_r)
    return {name for name, k in ks.items() if (k < 0).any()}  # option texts start "k1 =", "k2 =", "k3 ="


def gae_first_token() -> float:
    """A₀ by `losses.gae` (Schulman et al., 2016, eq. 16): rewards (0, 1), V = (0.5, 0.8),
    γ = λ = 1, value 0 after the last token."""
    adv, _ = losses.gae(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.8]]), gamma=1.0, lam=1.0)
    return adv[0, 0].item()


INSTRUCTGPT_BETA = 0.02
"""Ouyang et al. (2022), appendix C: a fact, not a computation; the row still bounds its tolerance."""


# --- chapter 4: DPO --------------------------------------------------------------------------


def two_arm_optimum(beta: float = 0.5) -> float:
    """π*(y₁) = π_ref(y₁) e^{r₁/β} / Z for π_ref = (½, ½), r = (1, 0) (Rafailov et al., 2023, eq. 4)."""
    bandit = Bandit(torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64))
    return bandit.optimal_policy(beta)[0].item()


def dpo_loss_at_reference() -> float:
    """`dpo_loss` with π = π_ref: every log-ratio is 0, so −log σ(0) = log 2."""
    logps = torch.tensor([-3.0, -7.5])
    return losses.dpo_loss(logps, logps - 1, logps, logps - 1, beta=0.1)[0].item()


def standard_error_over_seeds() -> float:
    """sd / √n (ddof = 1) of the three seeds' gains, by `evaluate.mean_se`."""
    return evaluate.mean_se([0.017, -0.001, 0.053])[1]


def why_dpo_needs_no_reward_model(beta: float = 0.5) -> str | None:
    """β log π*/π_ref = r − β log Z (eq. 5), and the Bradley-Terry loss of those implicit rewards
    equals that of r: log Z cancels."""
    bandit = Bandit.example()
    implicit = beta * (bandit.optimal_policy(beta).log() - bandit.ref.log())
    w, l = torch.tensor([1, 0, 3, 0]), torch.tensor([2, 4, 1, 1])  # (winner, loser) index pairs
    same_loss = torch.isclose(losses.bradley_terry_loss(implicit[w], implicit[l])[0],
                              losses.bradley_terry_loss(bandit.reward[w], bandit.reward[l])[0])
    up_to_log_z = torch.allclose(bandit.reward - implicit, beta * bandit.log_partition(beta))
    return "The optimal policy determines the reward" if same_loss and up_to_log_z else None


def beta_limits() -> str | None:
    """π* ∝ π_ref e^{r/β} on the chapter's bandit at β = 1e-3 and β = 1e4."""
    bandit = Bandit.example()
    greedy = torch.nn.functional.one_hot(bandit.reward.argmax(), len(bandit.reward)).to(bandit.ref.dtype)
    small, large = bandit.optimal_policy(1e-3), bandit.optimal_policy(1e4)
    if torch.allclose(small, greedy, atol=1e-6) and torch.allclose(large, bandit.ref, atol=1e-3):
        return "β → 0: all mass"
    if torch.allclose(small, bandit.ref, atol=1e-3) and torch.allclose(large, greedy, atol=1e-6):
        return "β → 0: π* = π_ref"
    return "π* does not depend on β" if torch.allclose(small, large) else None


def what_a_reward_shift_changes(shift: float = 3.0, beta: float = 0.5) -> str:
    """π* of r and of r + 3, and the DPO loss of each π* on a pair (0 ≻ 2)."""
    bandit = Bandit.example()
    pis = [b.optimal_policy(beta).log() for b in (bandit, Bandit(bandit.ref, bandit.reward + shift))]
    ref = bandit.ref.log()
    dpo = [losses.dpo_loss(pi[:1], pi[2:3], ref[:1], ref[2:3], beta)[0] for pi in pis]
    if not torch.allclose(pis[0], pis[1]):
        return "π* moves"
    return "Neither changes" if torch.isclose(dpo[0], dpo[1]) else "π* is unchanged but the loss falls"


def dpo_progress_while_chosen_falls(beta: float = 0.1) -> str:
    """Log-ratios chosen −1, rejected −5: chosen's implicit reward fell, yet the loss is below log 2."""
    zero = torch.zeros(1)
    start, _ = losses.dpo_loss(zero, zero, zero, zero, beta)
    later, metrics = losses.dpo_loss(torch.tensor([-1.0]), torch.tensor([-5.0]), zero, zero, beta)
    return "Not necessarily" if metrics["chosen_reward"] < 0 and later < start else "Yes: the chosen"


def objectives_taking_a_reference() -> set[str]:
    """Which of the library's losses take reference log-probs (IPO is `dpo_loss(loss_type="ipo")`)."""
    fns = {"DPO": losses.dpo_loss, "IPO": losses.dpo_loss, "KTO": losses.kto_loss,
           "SimPO": losses.simpo_loss, "ORPO": losses.orpo_loss}
    return {name for name, fn in fns.items() if any(p.startswith("ref") for p in inspect.signature(fn).parameters)}


def dpo_gradient_weight(margin: float = 100.0, beta: float = 0.1) -> float:
    """∂L/∂h = −β σ(−β h) (Rafailov et al., 2023, §4): the weight σ(r̂_l − r̂_w) at a wide margin."""
    chosen = torch.tensor([margin], requires_grad=True)
    zero = torch.zeros(1)
    losses.dpo_loss(chosen, zero, zero, zero, beta)[0].backward()
    return -chosen.grad.item() / beta


def normalised_letter_probability() -> float:
    """`cai.choice_probability` on a vocabulary of four: ℓ_A = 2, ℓ_B = 0, two other tokens large."""
    return cai.choice_probability(torch.tensor([[2.0, 0.0, 9.0, 9.0]]), 0, 1).item()


def both_orders(p_a_first: float = 0.8, p_a_second: float = 0.6) -> dict[str, float]:
    out = cai.combine_orders(torch.tensor([p_a_first]), torch.tensor([p_a_second]))
    return {"label": out["prefers_a"].item(), "bias": out["position_bias"].item()}


def what_sl_cai_fine_tunes() -> str | None:
    """The model `sl_cai` starts from: the recipe's deps name it."""
    deps = next(r.deps for r in recipes.RUNS if r.name == "sl_cai")
    return {"base": "The pretrained model", "sft_helpful_only": "The helpful-only model", "sft": "Chapter 1"}.get(
        next(d for d in deps if d in ("base", "sft_helpful_only", "sft")))


PRM_PROBS = [0.9, 0.8, 1.0, 0.5]


def labelled_units(labels=(True, False, True, True)) -> int:
    """Units Lightman et al.'s labelling keeps: up to and including the first wrong one."""
    return sum(label is not None for label in prm.first_wrong_masked(list(labels)))


def unfaithful_scorer() -> str | None:
    """Which label sees an unfaithful solution: its outcome label is right, its step labels are not."""
    x = "What is 23 + 8 - 5 + 9?"
    y = " Step: 23 + 8 = 31. Step: 31 - 5 = 27. Step: 26 + 9 = 35. Answer: 35."
    return "The PRM" if prm.outcome_label(x, y) and False in prm.gold_step_labels(x, y) else None


def majority_answer() -> int:
    answers = [35, 36, 35, 34, 36, None, 35, 36]
    return answers[int(search.majority_vote(np.array([answers], dtype=object))[0])]


# --- chapter 7: RL with verifiable rewards, GRPO --------------------------------------------


def right_response_advantage(rewards=(1.0, 0.0, 0.0, 1.0)) -> float:
    """Â of the group's first (right) response by `grpo_advantages`: (r − mean)/(unbiased std + ε)."""
    return losses.grpo_advantages(torch.tensor(rewards), len(rewards))[0].item()


def flat_group_contribution(G: int = 8) -> str:
    """A group of G equal rewards: its advantages, and the gradient of `grpo_loss` (β = 0) they give."""
    adv = losses.grpo_advantages(torch.ones(G), G)
    logprobs = torch.full((G, 5), -1.0, requires_grad=True)
    loss, _ = losses.grpo_loss(logprobs, logprobs.detach() - 0.1, adv, torch.ones(G, 5))
    loss.backward()
    if adv.isnan().any() or loss.isnan():
        return "NaN"
    return "Nothing" if (adv == 0).all() and (logprobs.grad == 0).all() else "A push up"


def pass_at_k_one(n: int = 8, c: int = 2, k: int = 4) -> float:
    """`rlvr_eval.pass_at_k` (Chen et al., 2021) for one problem with c of n samples right."""
    return float(rlvr_eval.pass_at_k([[True] * c + [False] * (n - c)], k)[0])


def models_grpo_holds() -> set[str]:
    """The networks a `grpo.GRPO` method holds (its nn.Module fields): the reward is a verifier, a function."""
    held = {f.name for f in fields(grpo.GRPO) if "Module" in str(f.type)}
    names = {"policy": "The policy", "ref": "The reference model", "value_model": "A value model",
             "reward_model": "A reward model"}
    return {names[h] for h in held}


def clip_on_first_pass() -> str | None:
    """`grpo_loss` on the first pass (π_θ = π_old): ρ = 1 everywhere and the clip never binds."""
    logprobs = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]])
    _, metrics = losses.grpo_loss(logprobs, logprobs, torch.tensor([2.0, -2.0]), torch.ones(2, 2))
    return "On the first pass" if metrics["ratio"] == 1 and metrics["clip_frac"] == 0 else None


def responses_that_fool(qid: str = "sloppy-fools") -> set[str]:
    """The options of the question (responses) that `verifiers.fools` flags for the prompt it names."""
    q = source_question("07", qid)
    prompt = re.search(r"What is [^?]+\?", q["question"])[0]
    return {a["answer"] for a in q["answers"] if verifiers.fools(prompt, a["answer"])}


def unfaithful_exact_match() -> str:
    """`exact_match` on a solution with a wrong step (31 − 5 = 27) and the right answer."""
    x = "What is 23 + 8 - 5 + 9?"
    y = "Step: 23 + 8 = 31. Step: 31 - 5 = 27. Step: 26 + 9 = 35. Answer: 35."
    return f"{verifiers.exact_match(x, y):.0f}:"


def token_gradients(lengths=(10, 40), advantage: float = -1.0, norm: str = "grpo") -> list[float]:
    """|∂ grpo_loss/∂ log π| of one token of each response (equal Â, ρ = 1), by autograd."""
    T = max(lengths)
    mask = torch.tensor([[1.0] * n + [0.0] * (T - n) for n in lengths])
    logprobs = torch.zeros(len(lengths), T, requires_grad=True)
    loss, _ = losses.grpo_loss(logprobs, logprobs.detach(), torch.full((len(lengths),), advantage), mask, norm=norm)
    loss.backward()
    return [logprobs.grad[i, 0].abs().item() for i in range(len(lengths))]


def harder_pushed_wrong_response() -> str:
    short, long = token_gradients()
    return "Both the same" if math.isclose(short, long) else ("The 10-token" if short > long else "The 40-token")


def norms_weighing_tokens_alike() -> set[str]:
    return {f"{norm}:" for norm in ("grpo", "dapo", "dr_grpo") if math.isclose(*token_gradients(norm=norm))}


def sharpening_on_pass_at_k(n: int = 16) -> str | None:
    """A toy of RL that only sharpens: each problem the base model solves in at least a quarter of its
    samples becomes always solved, the rarer ones never (it stops sampling their rare right answers),
    and none is newly solved. Base: 4, 1 and 0 right of 16."""
    def pool(cs):
        return [[True] * c + [False] * (n - c) for c in cs]
    base, rl = pool([4, 1, 0]), pool([n if c >= n // 4 else 0 for c in (4, 1, 0)])
    at = lambda correct, k: rlvr_eval.pass_at_k(correct, k).mean()
    if at(rl, 1) > at(base, 1) and at(rl, n) <= at(base, n):
        return "The RL model is higher at k = 1"
    return None


# --- the table -------------------------------------------------------------------------------


def hardened_positives(n: int = 10, weak_share: float = 0.3) -> float:
    """`losses.confidence_loss` (α = 1) on a batch the student calls positive throughout, with distinct
    confidences, and weak labels whose positive probabilities average `weak_share`: how many harden to 1."""
    logits = torch.stack([torch.zeros(n), torch.linspace(1.0, 3.0, n)], -1)
    p = torch.full((n,), weak_share)
    _, metrics = losses.confidence_loss(logits, torch.stack([1 - p, p], -1), 1.0)
    return round(float(metrics["hard_positive"]) * n)


def confidence_loss_at_alpha_zero() -> str | None:
    logits = torch.randn(12, 2, generator=torch.Generator().manual_seed(0))
    weak = torch.rand(12, generator=torch.Generator().manual_seed(1))
    weak = torch.stack([1 - weak, weak], -1)
    if torch.isclose(losses.confidence_loss(logits, weak, 0.0)[0], torch.nn.functional.cross_entropy(logits, weak)):
        return "Cross-entropy to the weak labels"
    return None


def reported_pgr(weak: float = 0.62, ceiling: float = 0.64, student: float = 0.70, n: int = 2000) -> str:
    """What the chapter's rule (`w2s_eval.MIN_SE`) reports for one pair."""
    if ceiling - weak < w2s_eval.MIN_SE * w2s_eval.diff_se(weak, ceiling, n):
        return "n/a"
    return f"{losses.pgr(weak, student, ceiling):.1f}"


# --- chapter 9: the capstone ----------------------------------------------------------------


def win_rate_with_ties() -> float:
    """4 wins, 2 ties, 2 losses, by `capstone.win_rate_ci` (ties count ½)."""
    return capstone.win_rate_ci(list("abcdefgh"), [1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 1])["mean"]


def lower_end(mean: float = 0.58, se: float = 0.03) -> float:
    return capstone.interval(mean, se)["lo"]


def lambda_after_a_violation() -> str:
    """One step of `multiobjective.lagrangian_choice` from λ = 1 with the picks' cost above the bound."""
    help_z, cost_z = np.array([[1.0, 0.0]]), np.array([[1.0, 0.5]])  # the pick at λ = 1 costs 1 > 0
    lam = multiobjective.lagrangian_choice(help_z, cost_z, limit=0.0, steps=1, lam=1.0)["lambda"]
    return "It rises" if lam > 1.0 else ("It falls" if lam > 0 else "It is reset")


def pareto_points() -> set[str]:
    points = {"A": (0.9, 0.6), "B": (0.7, 0.8), "C": (0.6, 0.6), "D": (1.0, 0.5)}
    mask = multiobjective.pareto_mask(np.array(list(points.values())))
    return {name for name, keep in zip(points, mask) if keep}


@dataclass(frozen=True)
class Row:
    compute: Callable[[], object]
    """Numeric: the value. multiple_choice: the right option's prefix. many_choice: the set of
    right options' prefixes. string: a number the answer text must be."""
    tol: float = 0.0
    """The widest tolerance the question warrants; the source's may be narrower, never wider."""
    decimals: int | None = None
    """The rounding the question asks for: the answer typed that way must be accepted."""


ANSWERS: dict[tuple[str, str], Row] = {
    ("00", "bayes-rate"): Row(lambda: agreement(0.8), tol=0.005),
    ("01", "ce-entropy"): Row(loss_floor_nats, tol=0.006, decimals=2),
    ("01", "logit-gradient"): Row(undemonstrated_logit_gradient, tol=0.001),
    ("01", "which-kl"): Row(divergence_cross_entropy_minimises),
    ("02", "pairs-from-ranking"): Row(lambda: len(reward.ranking_to_pairs(list(range(6))))),  # C(6, 2)
    ("02", "bt-probability"): Row(lambda: bt.bt_probs(np.array([1.0, 0.0]))[0, 1], tol=0.002, decimals=3),  # σ(1)
    ("02", "labeler-agreement"): Row(lambda: agreement(0.9), tol=0.005),
    ("02", "shift-invariance"): Row(bt_loss_after_shifting_every_reward),
    ("02", "agreement-not-ceiling"): Row(ceiling_against_one_labeler),
    ("02", "decoy-assumption"): Row(assumption_the_decoy_breaks),
    ("02", "gumbel"): Row(gumbel_facts),
    ("03", "clip-gradient"): Row(clip_gradient),
    ("03", "k3-value"): Row(k3_at, tol=0.002, decimals=3),
    ("03", "negative-estimators"): Row(kl_estimators_that_go_negative),
    ("03", "bon-kl"): Row(lambda: float(overoptimization.bon_kl_bound(4)), tol=0.003, decimals=3),
    ("03", "gae-one-episode"): Row(gae_first_token, tol=0.001),
    ("03", "instructgpt-beta"): Row(lambda: INSTRUCTGPT_BETA, tol=0.0001),
    ("04", "why-no-rm"): Row(why_dpo_needs_no_reward_model),
    ("04", "beta-limits"): Row(beta_limits),
    ("04", "bandit-optimum"): Row(two_arm_optimum, tol=0.002, decimals=3),
    ("04", "initial-loss"): Row(dpo_loss_at_reference, tol=0.002, decimals=3),
    ("04", "shift-dpo"): Row(what_a_reward_shift_changes),
    ("04", "chosen-falls"): Row(dpo_progress_while_chosen_falls),
    ("04", "needs-reference"): Row(objectives_taking_a_reference),
    ("04", "gradient-weight"): Row(dpo_gradient_weight),
    ("04", "seed-spread"): Row(standard_error_over_seeds, tol=0.0015, decimals=3),
    ("05", "normalise-letters"): Row(normalised_letter_probability, tol=0.002, decimals=3),
    ("05", "both-orders"): Row(lambda: both_orders()["label"], tol=0.005, decimals=2),
    ("05", "position-bias"): Row(lambda: both_orders()["bias"], tol=0.005, decimals=2),
    ("05", "sl-cai-start"): Row(what_sl_cai_fine_tunes),
    ("05", "clustered-se"): Row(lambda: cai_eval.clustered_rate([1, 1, 0, 0, 1, 0], list("aabbcc"))[1], tol=0.002,
                                decimals=3),
    ("06", "prm-product"): Row(lambda: prm.solution_score(PRM_PROBS), tol=0.005, decimals=2),
    ("06", "prm-min"): Row(lambda: prm.solution_score(PRM_PROBS, "min"), tol=0.005, decimals=1),
    ("06", "masked-steps"): Row(labelled_units),
    ("06", "unfaithful"): Row(unfaithful_scorer),
    ("06", "majority-answer"): Row(majority_answer),
    ("06", "bon-kl-bound"): Row(lambda: float(overoptimization.bon_kl_bound(16)), tol=0.002, decimals=3),
    ("07", "group-advantage"): Row(right_response_advantage, tol=0.002, decimals=3),
    ("07", "rare-success"): Row(lambda: right_response_advantage((1.0, 0.0, 0.0, 0.0)), tol=0.005, decimals=2),
    ("07", "flat-group"): Row(flat_group_contribution),
    ("07", "pass-at-k"): Row(pass_at_k_one, tol=0.002, decimals=3),
    ("07", "models-in-memory"): Row(models_grpo_holds),
    ("07", "first-pass-clip"): Row(clip_on_first_pass),
    ("07", "sloppy-fools"): Row(responses_that_fool),
    ("07", "unfaithful-reward"): Row(unfaithful_exact_match),
    ("07", "length-bias"): Row(harder_pushed_wrong_response),
    ("07", "length-norms"): Row(norms_weighing_tokens_alike),
    ("07", "sharpen-passk"): Row(sharpening_on_pass_at_k),
    ("08", "pgr-by-hand"): Row(lambda: losses.pgr(0.60, 0.72, 0.80), tol=0.002, decimals=2),
    ("08", "hardened-share"): Row(hardened_positives, decimals=0),
    ("08", "alpha-zero"): Row(confidence_loss_at_alpha_zero),
    ("08", "pgr-na"): Row(reported_pgr),
    ("09", "win-rate-ties"): Row(win_rate_with_ties, tol=0.006, decimals=2),
    ("09", "interval"): Row(lower_end, tol=0.002, decimals=2),
    ("09", "lagrange"): Row(lambda_after_a_violation),
    ("09", "pareto"): Row(pareto_points),
}


# --- checks per question type ----------------------------------------------------------------


def first_matching_rule(rules: list[dict], x: float) -> dict | None:
    """The source's numeric rule that decides x: the first whose value ± tolerance or range holds it."""
    for rule in rules:
        lo, hi = rule["range"] if "range" in rule else (rule["value"] - rule.get("tolerance", 0),
                                                        rule["value"] + rule.get("tolerance", 0))
        if lo - 1e-12 <= x <= hi + 1e-12:
            return rule
    return None


def verify_numeric(chapter: str, q: dict, row: Row, value: float) -> None:
    rule = first_matching_rule(q["answers"], value)
    assert rule is not None and rule.get("correct"), f"source does not mark {value:.6g} correct (decides: {rule})"
    width = (rule["range"][1] - rule["range"][0]) / 2 if "range" in rule else rule.get("tolerance", 0)
    assert width <= row.tol, f"source tolerance ±{width} is wider than the question warrants (±{row.tol})"
    bank = load_bank(chapter)
    assert check(bank, q["id"], value).correct, f"the encoded bank rejects {value:.6g}"
    if row.decimals is not None:
        typed = f"{value:.{row.decimals}f}"
        assert check(bank, q["id"], typed).correct, f"the encoded bank rejects {typed}, the rounding asked for"
    off = 2 * row.tol or 1e-3
    for x in (value - off, value + off):
        assert not check(bank, q["id"], x).correct, f"the encoded bank accepts {x:.6g}, {off} from {value:.6g}"


def verify_single(chapter: str, q: dict, row: Row, prefix: str) -> None:
    right = option_with_prefix(q, prefix)
    marked = [a["answer"] for a in q["answers"] if a.get("correct")]
    assert marked == [right], f"source marks {marked}; the computation says {right!r}"
    bank = load_bank(chapter)
    for a in q["answers"]:
        assert check(bank, q["id"], a["answer"]).correct == (a["answer"] == right), a["answer"]


def verify_many(chapter: str, q: dict, row: Row, prefixes: set[str]) -> None:
    right = {option_with_prefix(q, p) for p in prefixes}
    marked = {a["answer"] for a in q["answers"] if a.get("correct")}
    assert marked == right, f"source marks {sorted(marked)}; the computation says {sorted(right)}"
    bank = load_bank(chapter)
    assert check(bank, q["id"], sorted(right)).correct, "the encoded bank rejects the computed set"
    for a in q["answers"]:  # one option more or one fewer is wrong
        flipped = right ^ {a["answer"]}
        assert not flipped or not check(bank, q["id"], sorted(flipped)).correct, f"accepts {sorted(flipped)}"


def verify_string(chapter: str, q: dict, row: Row, value: float) -> None:
    typed, wrong = f"{round(value)}", f"{round(value) + 1}"
    accepted = {normalise(a["answer"]) for a in q["answers"] if a.get("correct")}
    assert normalise(typed) in accepted, f"source does not accept {typed!r} (computed {value:.3g})"
    bank = load_bank(chapter)
    assert check(bank, q["id"], typed).correct and not check(bank, q["id"], wrong).correct


VERIFY = {"numeric": verify_numeric, "multiple_choice": verify_single, "many_choice": verify_many,
          "string": verify_string}


@pytest.mark.parametrize("chapter,qid", list(ANSWERS), ids=[f"ch{c}-{q}" for c, q in ANSWERS])
def test_quiz_answer_is_what_the_library_computes(chapter, qid):
    q, row = source_question(chapter, qid), ANSWERS[chapter, qid]
    VERIFY[q["type"]](chapter, q, row, row.compute())


def test_every_numeric_question_has_a_recomputation():
    numeric = {(c, q["id"]) for c in chapters() for q in load_bank(c).questions if q["type"] == "numeric"}
    missing = sorted(numeric - ANSWERS.keys())
    assert not missing, f"numeric questions with no row in ANSWERS (add one that recomputes the answer): {missing}"


def test_every_row_names_a_question():
    ids = {(c, q["id"]) for c in chapters() for q in load_bank(c).questions}
    assert not sorted(ANSWERS.keys() - ids), "rows for questions that no bank has"
