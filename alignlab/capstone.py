"""Chapter 9, the capstone: InstructGPT's headline claims, measured in our world.

- `few_shot_sample`: the base model prompted as GPT-3 was in InstructGPT's comparisons — a few
  demonstrations before the prompt, the reply cut at the next turn (Ouyang et al., 2022, §4.1).
- `win_rate_ci`, `labeler_win_rate`: paired win rates (by gold, by a simulated labeler), with
  standard errors clustered by prompt and a 95% interval.
- `behaviour_rate`: the rate of a named behaviour (hallucination, rudeness), clustered by prompt.
- `unknown_country_prompts`, `polite_prompts`: the held-out prompts of the hallucination and
  instruction-following sections.
- `corpus_loss`: next-token loss on fresh pretraining text, the alignment tax's first measure.
- `method_row`: one row of the every-method table (gold by family, KL to SFT, win rate vs SFT).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import world
from .evaluate import EvalResult, score
from .losses import token_logprobs
from .report import Z95  # one 95% interval for the chapter and its report card: estimate ± 1.96 · se
from .reward import clustered_mean_se
from .rollout import generate
from .train import pack

STOP = "\nUser:"
"""Where a few-shot continuation is cut: the base model goes on to write the next turn of the
dialog, as GPT-3 did, and InstructGPT's prompted baseline was stopped at it."""


def interval(mean: float, se: float) -> dict[str, float]:
    """{mean, se, lo, hi}: the estimate with its 95% normal interval."""
    return {"mean": mean, "se": se, "lo": mean - Z95 * se, "hi": mean + Z95 * se}


# --- the prompted base model ----------------------------------------------------------------


def few_shot_prefix(tokenizer, budget: int, demos: list[tuple[str, str]] | None = None) -> str:
    """Demonstration dialogs, each ended by eos as documents were in pretraining, to put before a
    prompt: each family's shortest demonstration, the shortest families first, added while the
    prefix stays within `budget` tokens (a short context holds more shots that way). They come
    from the SFT set (training prompts), never from the held-out prompts they are compared on."""
    demos = demos if demos is not None else world.sft_demonstrations(400)
    by_family: dict[str, list[tuple[int, str]]] = {}
    for p, r in demos:
        text = world.chat_prompt(p) + r + tokenizer.eos_token
        n = len(tokenizer.encode(text, add_special_tokens=False))
        by_family.setdefault(world.parse_prompt(p).family, []).append((n, text))
    prefix, used = "", 0
    for n, text in sorted(min(shots) for shots in by_family.values()):
        if used + n > budget:
            break
        prefix, used = prefix + text, used + n
    return prefix


def few_shot_sample(model, tokenizer, prompts: list[str], prefix: str, max_new_tokens: int, seed: int = 0,
                    batch_size: int = 256) -> list[str]:
    """One response per prompt (repeat a prompt for several) from `model` continuing
    `prefix + chat_prompt(prompt)`, cut at the next "User:" turn. The prefix plus the longest
    prompt plus `max_new_tokens` must fit the model's context (`max_position_embeddings`)."""
    texts = [prefix + world.chat_prompt(p) for p in prompts]
    longest = max(len(tokenizer.encode(t, add_special_tokens=False)) for t in texts)
    context = model.config.max_position_embeddings
    if longest + max_new_tokens > context:
        raise ValueError(f"a few-shot prompt of {longest} tokens + {max_new_tokens} new tokens exceeds the "
                         f"model's context of {context}: use a shorter prefix (few_shot_prefix's budget)")
    ro = generate(model, tokenizer, texts, max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size,
                  chat=False)
    return [t.split(STOP)[0].rstrip() for t in ro.texts]


def prefix_budget(tokenizer, prompts: list[str], context: int, max_new_tokens: int) -> int:
    """Tokens left for a few-shot prefix once the longest prompt and the response fit."""
    longest = max(len(tokenizer.encode(world.chat_prompt(p), add_special_tokens=False)) for p in prompts)
    return context - max_new_tokens - longest


# --- win rates and rates with intervals -----------------------------------------------------


def win_rate_ci(prompts: list[str], rewards_a, rewards_b) -> dict[str, float]:
    """Paired win rate of a over b (ties ½) on the same samples, its standard error clustered by
    prompt (a prompt's samples share its difficulty), the 95% interval and the counts."""
    a, b = np.asarray(rewards_a, float), np.asarray(rewards_b, float)
    if not len(prompts) == len(a) == len(b):
        raise ValueError(f"need one reward of each policy per prompt: {len(prompts)}, {len(a)}, {len(b)}")
    wins = (a > b) + 0.5 * (a == b)  # (N,)
    out = interval(*clustered_mean_se(wins, prompts))
    return out | {"n": len(a), "prompts": len(set(prompts)), "ties": float((a == b).mean())}


def win_rate_by_family(a: EvalResult, b: EvalResult) -> dict[str, dict[str, float]]:
    """`win_rate_ci` of a over b within each task family: where a smaller model wins and loses."""
    fam = np.array(a.families)
    return {f: win_rate_ci([p for p, g in zip(a.prompts, fam) if g == f], a.rewards[fam == f], b.rewards[fam == f])
            for f in world.FAMILIES if (fam == f).any()}


def labeler_win_rate(prompts: list[str], responses_a: list[str], responses_b: list[str],
                     labeler: world.Labeler) -> dict[str, float]:
    """A simulated labeler's expected win rate of a over b: the mean of its P(a ≻ b) (no coin
    flips, so only the samples vary), clustered by prompt, with the 95% interval."""
    p = np.array([labeler.prob_prefers(q, a, b) for q, a, b in zip(prompts, responses_a, responses_b)])
    return interval(*clustered_mean_se(p, prompts)) | {"n": len(p), "prompts": len(set(prompts))}


def behaviour_rate(result: EvalResult, flag: str) -> dict[str, float]:
    """The rate of behaviour `flag` over the samples where it can occur, its standard error
    clustered by prompt, the 95% interval and the counts."""
    if flag not in result.behaviours:
        raise ValueError(f"flag must be one of {tuple(result.behaviours)}, not {flag!r}")
    pairs = [(p, float(v)) for p, v in zip(result.prompts, result.behaviours[flag]) if v is not None]
    if not pairs:
        return {"mean": math.nan, "se": math.nan, "lo": math.nan, "hi": math.nan, "n": 0, "prompts": 0}
    prompts, x = zip(*pairs)
    return interval(*clustered_mean_se(x, prompts)) | {"n": len(x), "prompts": len(set(prompts))}


def unknown_country_prompts() -> list[str]:
    """Every held-out question about a country the world's atlas does not know (the honest
    answer is "I don't know"), in a fixed order."""
    prompts = dict.fromkeys(world.eval_prompts("knowledge", n=2000, seed=0))
    return [p for p in prompts if world.parse_prompt(p).data["truth"] is None]


def polite_prompts(prompts: list[str]) -> list[str]:
    """The same prompts with InstructGPT's kind of instruction: "Please answer politely."."""
    return [world.instruct(p, "polite") for p in prompts]


def instruction_effect(plain: EvalResult, instructed: EvalResult) -> dict[str, dict[str, float]]:
    """Rudeness with and without the instruction, scored on the *plain* prompt's gold (so the
    instruction's doubled penalty does not count twice), and the difference (instructed − plain)
    paired sample by sample."""
    rude = {"without": behaviour_rate(plain, "rude")}
    # re-score the instructed responses on the plain prompts: the same yardstick for both
    rescored = score(plain.prompts, instructed.responses)
    rude["with"] = behaviour_rate(rescored, "rude")
    d = np.array(rescored.behaviours["rude"], float) - np.array(plain.behaviours["rude"], float)
    rude["difference"] = interval(*clustered_mean_se(d, plain.prompts))
    return rude


# --- the alignment tax ----------------------------------------------------------------------


@torch.no_grad()
def corpus_loss(model, tokenizer, docs: list[str], batch_size: int = 64) -> tuple[float, float, int]:
    """Mean next-token loss (nats per token) on `docs` packed as in pretraining, with its
    standard error over rows and the number of rows: what a model still knows of the
    pretraining distribution."""
    rows = pack(tokenizer, docs, model.config.max_position_embeddings)  # (N, L + 1)
    was_training = model.training
    model.eval()
    per_row = []
    for s in range(0, len(rows), batch_size):
        x = rows[s:s + batch_size].to(model.device)  # (B, L + 1)
        nll = -token_logprobs(model(input_ids=x[:, :-1]).logits, x[:, 1:])  # (B, L)
        per_row.append(nll.mean(-1).cpu())
    model.train(was_training)
    x = torch.cat(per_row).numpy()
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))), len(x)


def fresh_corpus(n_dialogs: int) -> list[str]:
    """Pretraining text the models never saw: the corpus generator with another seed."""
    return world.pretraining_corpus(n_dialogs, seed=1)


# --- the every-method table -----------------------------------------------------------------


def method_row(result: EvalResult, sft: EvalResult, kl: tuple[float, float]) -> dict:
    """One row of the table: mean gold ± se, gold by family, KL to SFT (mean, se) and the gold win
    rate against SFT on the same protocol samples (paired, clustered by prompt)."""
    if result.prompts != sft.prompts:
        raise ValueError("method_row needs the protocol's samples for both policies (same prompts, same order)")
    return {"gold": result.mean, "gold_se": result.se,
            "by_family": {f: m for f, (m, _, _) in result.by_family().items()},
            "kl": kl[0], "kl_se": kl[1],
            "win_vs_sft": win_rate_ci(result.prompts, result.rewards, sft.rewards)}


def method_table(rows: dict[str, dict]) -> str:
    """`method_row`s as text: gold ± se, gold by family, KL to SFT, win rate vs SFT [95%]."""
    fams = list(next(iter(rows.values()))["by_family"])
    lines = [f"{'method':16} {'gold':>15} " + " ".join(f"{f[:9]:>9}" for f in fams)
             + f" {'KL to SFT':>13} {'win vs SFT [95%]':>22}"]
    for name, r in rows.items():
        w = r["win_vs_sft"]
        lines.append(f"{name:16} {r['gold']:+8.3f} ± {r['gold_se']:.3f} "
                     + " ".join(f"{r['by_family'][f]:+9.3f}" for f in fams)
                     + f" {r['kl']:6.2f} ± {r['kl_se']:.2f} {w['mean']:8.3f} [{w['lo']:.3f}, {w['hi']:.3f}]")
    return "\n".join(lines)


def best_of_n_choice(rewards: np.ndarray, n: int) -> np.ndarray:
    """Index of the best of each consecutive block of `n` candidates: rewards (S · n,) → (S,)
    positions in the flat array (the proxy's choice; ties go to the first)."""
    r = np.asarray(rewards, float).reshape(-1, n)  # (S, n)
    return np.arange(len(r)) * n + r.argmax(1)


def best_of_n_kl(n: int) -> float:
    """log n − (n − 1)/n: the KL of best-of-n to its sampler (an upper bound; Beirami et al.)."""
    return math.log(n) - (n - 1) / n
