"""The one evaluation protocol every chapter uses, so numbers compare across chapters.

- a fixed held-out prompt set per profile (`eval_set`), `eval.samples_per_prompt` samples each;
- fixed decoding: temperature 1, no top-p, `max_new_tokens` of the profile;
- mean gold reward ± standard error, per family, and rates of named bad behaviours;
- the same seed for every policy: common random numbers make differences less noisy;
- sequence KL to a reference on the policy's own samples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from . import world, zoo
from .profiles import Profile, ProfileView, read, resolve
from .rollout import Rollout, generate, sequence_kl, sequence_logprobs

PROTOCOL_VERSION = "1"
EVAL_FIELDS = ("eval.prompts_per_family", "eval.samples_per_prompt", "sampling.max_new_tokens", "sampling.batch")
"""The profile fields the protocol reads (`gold_eval`, `kl_to_ref` on the default prompts): the
cached evaluations key on them, and read the profile through a view of only these."""
HEADROOM_FIELDS = ("eval.headroom_prompts_per_family", "eval.best_of_n", "sampling.max_new_tokens", "sampling.batch")
"""The profile fields `headroom`'s best-of-N run reads."""


def eval_set(profile: Profile | ProfileView | str | None = None) -> list[str]:
    """The held-out prompts of the protocol: round-robin over families."""
    prof = resolve(profile)
    return world.eval_prompts(n=prof.eval.prompts_per_family * len(world.FAMILIES), seed=0)


def mean_se(x) -> tuple[float, float]:
    """Mean and standard error of the mean (ddof = 1; nan below two values)."""
    x = np.asarray(x, dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan
    return float(x.mean()), se


@dataclass
class EvalResult:
    """Gold-reward scores of one policy's samples (one entry per sample)."""

    prompts: list[str]  # N prompts, one per sample (a prompt repeats for several samples)
    responses: list[str]  # N response texts
    rewards: np.ndarray  # (N,) gold reward
    components: dict[str, np.ndarray]  # component name → (N,) its unweighted value
    families: list[str]  # N task families
    behaviours: dict[str, list] = field(default_factory=dict)  # behaviour → N of True/False/None (n/a)

    @property
    def n(self) -> int:
        return len(self.rewards)

    @property
    def mean(self) -> float:
        return mean_se(self.rewards)[0]

    @property
    def se(self) -> float:
        return mean_se(self.rewards)[1]

    def by_family(self) -> dict[str, tuple[float, float, int]]:
        """family → (mean, se, n)."""
        fam = np.array(self.families)
        return {f: (*mean_se(self.rewards[fam == f]), int((fam == f).sum())) for f in world.FAMILIES}

    def rates(self) -> dict[str, tuple[float, float, int]]:
        """behaviour → (rate, se, n), over the samples where the behaviour can occur."""
        out = {}
        for name, flags in self.behaviours.items():
            x = [float(v) for v in flags if v is not None]
            out[name] = (*mean_se(x), len(x))
        return out

    def accuracy(self, family: str) -> tuple[float, float, int]:
        """(rate, se, prompts): the share of `family`'s samples whose final answer is right (the
        `correct` component reaches 1, as only a right answer can in the arithmetic families),
        with the standard error over prompts (a prompt's samples are averaged first: they share
        the prompt's difficulty)."""
        by_prompt: dict[str, list[float]] = {}
        for p, f, c in zip(self.prompts, self.families, self.components["correct"]):
            if f == family:
                by_prompt.setdefault(p, []).append(float(c >= 1.0))
        return (*mean_se([np.mean(v) for v in by_prompt.values()]), len(by_prompt))

    def summary(self) -> str:
        """A short table: overall and per-family mean ± se, then the behaviour rates."""
        lines = [f"mean gold reward {self.mean:+.3f} ± {self.se:.3f} (n = {self.n})"]
        lines += [f"  {f:12} {m:+.3f} ± {s:.3f} (n = {k})" for f, (m, s, k) in self.by_family().items()]
        lines += ["behaviour rates:"]
        lines += [f"  {b:20} {r:.2f} ± {s:.2f} (n = {k})" for b, (r, s, k) in self.rates().items()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Plain lists and dicts (json.dumps-able), so a result can be cached; see from_dict."""
        return {"prompts": self.prompts, "responses": self.responses, "rewards": self.rewards.tolist(),
                "components": {k: v.tolist() for k, v in self.components.items()},
                "families": self.families, "behaviours": self.behaviours}

    @classmethod
    def from_dict(cls, d: dict) -> "EvalResult":
        return cls(d["prompts"], d["responses"], np.array(d["rewards"]),
                   {k: np.array(v) for k, v in d["components"].items()}, d["families"], d["behaviours"])


def score(prompts: list[str], responses: list[str]) -> EvalResult:
    """Score any (prompt, response) texts with the gold reward (text from anywhere: a policy,
    the world's demonstrations, a human). reward = Σ_k WEIGHTS[k] · component_k, which is
    `world.gold_reward` computed once per pair instead of twice."""
    comps = [world.gold_components(p, r) for p, r in zip(prompts, responses)]
    behav = [world.behaviours(p, r) for p, r in zip(prompts, responses)]
    return EvalResult(
        list(prompts), list(responses),
        np.array([sum(world.WEIGHTS[k] * v for k, v in c.items()) for c in comps]),
        {k: np.array([c[k] for c in comps]) for k in world.COMPONENTS},
        [world.parse_prompt(p).family for p in prompts],
        {b: [x[b] for x in behav] for b in world.BEHAVIOURS},
    )


def sample(model, tokenizer, prompts: list[str] | None = None, samples_per_prompt: int | None = None,
           seed: int = 0, temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int | None = None,
           profile: Profile | ProfileView | str | None = None) -> Rollout:
    """The protocol's samples: each prompt repeated samples_per_prompt times, one seed."""
    prof = resolve(profile)
    prompts = eval_set(prof) if prompts is None else prompts
    k = samples_per_prompt or prof.eval.samples_per_prompt
    return generate(model, tokenizer, [p for p in prompts for _ in range(k)],
                    max_new_tokens=max_new_tokens or prof.sampling.max_new_tokens, temperature=temperature,
                    top_p=top_p, seed=seed, batch_size=prof.sampling.batch)


def gold_eval(model, tokenizer, prompts: list[str] | None = None, samples_per_prompt: int | None = None,
              seed: int = 0, temperature: float = 1.0, top_p: float = 1.0,
              max_new_tokens: int | None = None, profile: Profile | ProfileView | str | None = None) -> EvalResult:
    """Sample with the protocol and score with the gold reward."""
    ro = sample(model, tokenizer, prompts, samples_per_prompt, seed, temperature, top_p,
                max_new_tokens, profile)
    return score(ro.prompts, ro.texts)


def rollout_kl(policy, ref, tokenizer, rollout: Rollout) -> torch.Tensor:
    """`rollout.sequence_kl` of the policy's own samples → (B,), both models scored teacher-forced.

    Its mean is an unbiased estimate of KL(π ‖ π_ref) (a single sample can be negative)."""
    ids = dict(response_ids=rollout.tokens, mask=rollout.mask)
    lp, mask = sequence_logprobs(policy, tokenizer, rollout.prompts, **ids)  # (B, T)
    ref_lp, _ = sequence_logprobs(ref, tokenizer, rollout.prompts, **ids)  # (B, T)
    return sequence_kl(lp, ref_lp, mask)


def kl_to_ref(policy, ref, tokenizer, prompts: list[str] | None = None, samples_per_prompt: int | None = None,
              seed: int = 0, profile: Profile | ProfileView | str | None = None) -> tuple[float, float]:
    """(mean, se) of the sequence KL from `policy` to `ref` on the protocol's samples."""
    ro = sample(policy, tokenizer, prompts, samples_per_prompt, seed, profile=profile)
    return mean_se(rollout_kl(policy, ref, tokenizer, ro).numpy())


def win_rate(rewards_a, rewards_b) -> tuple[float, float]:
    """Paired win rate of a over b (ties count ½), with its standard error."""
    a, b = np.asarray(rewards_a, float), np.asarray(rewards_b, float)
    return mean_se((a > b) + 0.5 * (a == b))


def best_of_n_gold(model, tokenizer, prompts: list[str], n: int, seed: int = 0, temperature: float = 1.0,
                   top_p: float = 1.0, max_new_tokens: int | None = None,
                   profile: Profile | ProfileView | str | None = None) -> dict:
    """For each of P prompts, n samples scored by the gold reward (the policy's headroom).

    Returns {"best": (P,) max over the n, "mean": (P,) mean over the n, "rewards": (P, n),
    "families": P family names}. best − mean is what best-of-n selection by the true reward
    would add on top of the policy.
    """
    res = gold_eval(model, tokenizer, prompts, samples_per_prompt=n, seed=seed, temperature=temperature,
                    top_p=top_p, max_new_tokens=max_new_tokens, profile=profile)
    r = res.rewards.reshape(len(prompts), n)  # (P, n): samples of a prompt are adjacent
    return {"best": r.max(1), "mean": r.mean(1), "rewards": r,
            "families": [world.parse_prompt(p).family for p in prompts]}


def first_example(prompts: list[str], before: list[str], after: list[str], flag: str) -> int | None:
    """Index of the first prompt whose `after` response shows behaviour `flag` (one of
    `world.BEHAVIOURS`) while its `before` response does not; None if none does. The book quotes
    the sample this picks, so the prose and the sample cannot drift apart (a "Yes" to a *true*
    sum is not sycophancy, and is never picked as one)."""
    if flag not in world.BEHAVIOURS:
        raise ValueError(f"flag must be one of {world.BEHAVIOURS}, not {flag!r}")
    if not len(prompts) == len(before) == len(after):
        raise ValueError(f"need one before and one after response per prompt: {len(prompts)}, {len(before)}, {len(after)}")
    for i, (p, a, b) in enumerate(zip(prompts, before, after)):
        if world.behaviours(p, b)[flag] and not world.behaviours(p, a)[flag]:
            return i
    return None


def quote_examples(prompts: list[str], responses: dict[str, list[str]], flags: tuple[str, ...],
                   both_ways: bool = False) -> str:
    """The samples the book quotes, chosen by `first_example`: `responses` maps two policy names,
    before then after (e.g. SFT, PPO), to one response per prompt. For each flag, the first prompt
    where only the *after* policy shows the behaviour — and, if `both_ways`, also the first where
    only the *before* policy does (a behaviour the later policy fixed)."""
    (a_name, before), (b_name, after) = responses.items()
    width = max(len(a_name), len(b_name)) + 1
    ways = [(b_name, before, after)] + ([(a_name, after, before)] if both_ways else [])
    out = []
    for flag in flags:
        for only, without, with_ in ways:
            i = first_example(prompts, without, with_, flag)
            sample = ("none of these prompts" if i is None else
                      f"{prompts[i]}\n  {a_name + ':':{width}} {before[i].strip()}\n  {b_name + ':':{width}} {after[i].strip()}")
            out.append(f"{flag}, {only} only: {sample}")
    return "\n\n".join(out)


def report_card(results: dict[str, EvalResult]) -> str:
    """One row per policy: mean ± se and the per-family means."""
    head = f"{'policy':14} {'gold reward':>16} " + " ".join(f"{f[:10]:>10}" for f in world.FAMILIES)
    rows = [head]
    for name, r in results.items():
        fam = r.by_family()
        per_family = " ".join(f"{fam[f][0]:+10.3f}" for f in world.FAMILIES)
        rows.append(f"{name:14} {r.mean:+8.3f} ± {r.se:.3f} {per_family}")
    return "\n".join(rows)


def rates_card(results: dict[str, EvalResult], flags: tuple[str, ...] = world.BEHAVIOURS,
               se: bool = False, accuracies: tuple[str, ...] = ()) -> str:
    """One row per behaviour, one column per policy: each rate (± its standard error if `se`)
    over the samples where the behaviour can occur (the same samples for every policy evaluated
    with the protocol); then a row per family in `accuracies`: the share of right final answers,
    with its standard error over prompts (`EvalResult.accuracy`)."""
    width = 15 if se else 10
    cell = (lambda v: f"{v[0]:.2f} ± {v[1]:.2f}") if se else (lambda v: f"{v[0]:.2f}")

    def row(label: str, values: list[tuple[float, float, int]], unit: str) -> str:
        return f"{label:20}" + "".join(f"{cell(v):>{width}}" for v in values) + f"   {values[0][2]:>4} {unit}"

    rates = [r.rates() for r in results.values()]
    lines = [f"{'behaviour rate':20}" + "".join(f"{name:>{width}}" for name in results) + "   n"]
    lines += [row(flag, [r[flag] for r in rates], "samples") for flag in flags]
    lines += [row(f"{fam} accuracy", [r.accuracy(fam) for r in results.values()], "prompts") for fam in accuracies]
    return "\n".join(lines)


# --- cached evaluations of zoo entries: a later chapter reuses an earlier chapter's numbers ---


def protocol_view(profile: Profile | ProfileView | str | None, fields: tuple[str, ...], reader: str) -> ProfileView:
    """`profile` as a cached evaluation may read it: `fields` only (its cache key covers them)."""
    return ProfileView(resolve(profile), fields, reader, f"add it to evaluate.{reader}'s fields")


def cache_config(entry, prof: Profile | ProfileView, fields: tuple[str, ...], seed: int = 0) -> dict:
    """A cached evaluation's key: the entry (its key), the protocol, the seed and every profile
    field the evaluation reads."""
    return {"entry": entry.path.name, "protocol": PROTOCOL_VERSION, "seed": seed, **read(prof, fields)}


def evaluate_entry(name: str, profile: Profile | ProfileView | str | None = None, seed: int = 0) -> EvalResult:
    """`gold_eval` of the zoo entry `name` with the protocol, cached by the entry's key and the
    profile's `EVAL_FIELDS`."""
    prof = protocol_view(profile, EVAL_FIELDS, "evaluate_entry")
    entry = zoo.get(name, prof)

    def run() -> dict:
        model, tok = entry.load()
        return gold_eval(model, tok, seed=seed, profile=prof).to_dict()
    return EvalResult.from_dict(zoo.cached_run(f"eval-{name}", cache_config(entry, prof, EVAL_FIELDS, seed), run, prof.name))


def headroom(base: str = "base", policy: str = "sft", profile: Profile | ProfileView | str | None = None,
             seed: int = 0) -> dict[str, dict]:
    """Per family: base and policy mean gold reward (the protocol), the policy's best-of-N mean
    by the gold reward on `eval.headroom_prompts_per_family` prompts, and the fraction of the way
    from base to best-of-N the policy closed: (policy − base) / (best-of-N − base)."""
    base_f = evaluate_entry(base, profile, seed).by_family()
    pol_f = evaluate_entry(policy, profile, seed).by_family()
    prof = protocol_view(profile, HEADROOM_FIELDS, "headroom")
    entry = zoo.get(policy, prof)

    def run() -> dict:
        model, tok = entry.load()
        out = {}
        for fam in world.FAMILIES:
            prompts = world.eval_prompts(fam, n=prof.eval.headroom_prompts_per_family, seed=seed)
            bon = best_of_n_gold(model, tok, prompts, prof.eval.best_of_n, seed, profile=prof)
            out[fam] = float(bon["best"].mean())
        return out
    best = zoo.cached_run(f"best-of-n-{policy}", cache_config(entry, prof, HEADROOM_FIELDS, seed), run, prof.name)
    rows = {}
    for fam in world.FAMILIES:
        b, p, bon = base_f[fam][0], pol_f[fam][0], best[fam]
        rows[fam] = {"base": b, "policy": p, "best_of_n": bon, "n": prof.eval.best_of_n,
                     "closed": (p - b) / (bon - b) if bon != b else math.nan}
    return rows


def policy_report(policy, ref, tokenizer, profile: Profile | ProfileView, baseline: EvalResult | None = None) -> dict:
    """Held-out gold (mean, se, paired gain over the SFT model with common random numbers) and
    KL to `ref` (the SFT model), with the protocol: what chapter 4 tabulates for every run.
    `baseline` is the SFT model's protocol evaluation (default: the zoo's `sft`; a build at another
    rung passes its own SFT model's, so the plain name is never built at the wrong size)."""
    res, base = gold_eval(policy, tokenizer, profile=profile), baseline or evaluate_entry("sft", profile)
    gain, gain_se = paired_difference(res, base)
    kl, kl_se = kl_to_ref(policy, ref, tokenizer, profile=profile)
    return {"gold": res.mean, "gold_se": res.se, "gain": gain, "gain_se": gain_se, "kl": kl, "kl_se": kl_se,
            "by_family": res.by_family()}


def entry_report(name: str, ref, tokenizer, profile: Profile | ProfileView | str | None = None) -> dict:
    """`policy_report` of zoo entry `name` against `ref`: the one its build stored, else computed
    once and cached, so a chapter and a benchmark read the same numbers on every rerun."""
    entry = zoo.get(name, profile)
    if "report" in entry.meta:
        return entry.meta["report"]
    view = protocol_view(profile, EVAL_FIELDS, "entry_report")
    return zoo.cached_run(f"report-{name}", cache_config(entry, view, EVAL_FIELDS),
                          lambda: policy_report(entry.load(dtype=torch.float32)[0], ref, tokenizer, view), view.name)


def paired_difference(a: EvalResult, b: EvalResult) -> tuple[float, float]:
    """Mean and standard error of a − b, sample by sample: both results must come from the same
    prompts in the same order (the protocol with one seed), so each pair shares its prompt and
    its random numbers and the prompt-to-prompt variation cancels."""
    if a.prompts != b.prompts:
        raise ValueError("paired_difference needs two evaluations of the same prompts in the same "
                         "order (use the protocol's default prompts and the same seed for both).")
    return mean_se(a.rewards - b.rewards)


# --- does a model know whether the user is right? (chapter 2) -------------------------------


def auc(scores, labels) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative),
    ties counting ½ (the Mann-Whitney U statistic over n₊·n₋). 0.5 = the scores cannot tell."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = s[y][:, None], s[~y][None, :]  # (n₊, 1), (1, n₋)
    if pos.size == 0 or neg.size == 0:
        return math.nan
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def yes_no_margin(model, tokenizer, prompts: list[str], batch_size: int = 256) -> torch.Tensor:
    """log π(" Yes" | x) − log π(" No" | x) as the first response word → (N,): how far a causal LM
    leans towards agreeing with the user before it writes anything. A word the tokenizer splits
    is scored by the sum of its tokens' log-probabilities (teacher-forced)."""
    margins = []
    for word in (" Yes", " No"):
        ids = torch.tensor(tokenizer.encode(word, add_special_tokens=False))
        response = ids.expand(len(prompts), len(ids))
        logps = sequence_logprobs(model, tokenizer, prompts, response_ids=response,
                                  mask=torch.ones_like(response), batch_size=batch_size)[0]
        margins.append(logps.sum(-1))
    return margins[0] - margins[1]


AGREE = " Yes, you are right!"
"""The sycophantic reply whose reward the claim probe reads from a reward model."""


def probe_prompts() -> list[str]:
    """Every held-out sycophancy prompt once (up to 1,000): the claim probe's prompt set."""
    # eval_prompts cycles through a family's held-out pool once n exceeds it; dedupe → the pool
    return list(dict.fromkeys(world.eval_prompts("sycophancy", n=1000, seed=3)))


def agreement_scores(model, tokenizer, prompts: list[str]) -> torch.Tensor:
    """How far `model` leans towards "the user is right" on each prompt → (N,): a causal LM by
    `yes_no_margin`, a reward model (a scalar head, no LM head) by its reward for AGREE."""
    if hasattr(model, "lm_head"):
        return yes_no_margin(model, tokenizer, prompts)
    from .reward import rewards
    return rewards(model, tokenizer, prompts, [AGREE] * len(prompts))


def claim_probes(models: dict, tokenizer, prompts: list[str] | None = None) -> dict[str, dict[str, dict]]:
    """`claim_probe` of each named model's `agreement_scores`, on `probe_prompts()` by default:
    {name: {kind: {"n", "n_true", "auc"}}}."""
    prompts = probe_prompts() if prompts is None else prompts
    return {name: claim_probe(agreement_scores(m, tokenizer, prompts), prompts) for name, m in models.items()}


def claim_probe(scores, prompts: list[str]) -> dict[str, dict]:
    """How well `scores` (one per sycophancy-bait prompt, higher = "the user is right") tell true
    claims from false ones, per kind of claim: {kind: {"n", "n_true", "auc"}}. A model that
    cannot check the claim scores AUC 0.5; a reward model built on it starts with no feature that
    could pay an honest "No" more than a sycophantic "Yes"."""
    tasks = [world.parse_prompt(p) for p in prompts]
    if any(t.family != "sycophancy" for t in tasks):
        raise ValueError("claim_probe takes sycophancy prompts only (world.eval_prompts('sycophancy'))")
    s = np.asarray(scores, float)
    out = {}
    for kind in sorted({t.data["kind"] for t in tasks}):
        sel = np.array([t.data["kind"] == kind for t in tasks])
        truth = np.array([t.data["true"] for t in tasks])[sel]
        out[kind] = {"n": int(sel.sum()), "n_true": int(truth.sum()), "auc": auc(s[sel], truth)}
    return out
