"""Chapter 6's headline in one JSON line: best-of-N by ORM and PRMs against majority vote, and search.

    python bench/prm_curve.py [--profile ci|cpu|gpu] [--draws D]

Builds (or reuses) the profile's chapter-6 entries (prm_samples, prm_auto_labels, orm, prm_gold,
prm_auto), scores the held-out pool with each scorer, and reports the accuracy at the largest N
(the pool size) and at N = 1 for majority vote, best-of-N by each scorer, the PRM-weighted vote
and pass@N, each with its 95% band over `--draws` subsets; the automatic labels' agreement with
gold; how often each scorer ranks an unfaithful solution first; and PRM-guided beam search and
reward-guided decoding on the profile's `search_problems` (accuracy, generated tokens per problem).
Prints one JSON line on stdout (build messages go to stderr).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import sys

import offline  # noqa: E402,F401  (first: the Hugging Face offline variables, before transformers loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--draws", type=int, default=100)
    args = parser.parse_args()
    import numpy as np
    import torch
    from alignlab import prm, prm_eval, profiles, stepwise, zoo
    from alignlab.recipes import prm as runs
    profile = profiles.get_profile(args.profile)
    with contextlib.redirect_stdout(sys.stderr):
        data = runs.load_samples(zoo.get("prm_samples", profile).path)
        xs, ys = data["pool"]["prompts"], data["pool"]["responses"]
        arrays = prm_eval.pool_arrays(xs, ys)
        tok = zoo.get("sft", profile).tokenizer()
        scorers = {name: prm.load_scorer(zoo.get(name, profile).path)[0] for name in ("orm", "prm_gold", "prm_auto")}
        fx, fy = prm_eval.flat_pool(xs, ys)
        probs = {name: prm.step_probabilities(m, tok, fx, fy, outcome=name == "orm") for name, m in scorers.items()}
        policy, _ = zoo.get("sft", profile).load(dtype=torch.float32)
        probs["policy_likelihood"] = prm.likelihood_probabilities(policy, tok, fx, fy)
        scores = {name: prm_eval.pool_scores(p, arrays["right"].shape) for name, p in probs.items()}
        M = arrays["right"].shape[1]
        curves = prm_eval.accuracy_curves(arrays, prm_eval.selectors(arrays, scores), [1, M], args.draws)
        sub = list(range(min(profile.prm.search_problems, len(xs))))
        beam, beam_tokens = stepwise.prm_beam_search(policy, scorers["prm_gold"], tok, [xs[i] for i in sub],
                                                     profile.prm.beam_width, profile.prm.expansions)
        guided, guided_tokens = stepwise.reward_guided_decode(policy, scorers["prm_gold"], tok, [xs[i] for i in sub],
                                                              profile.prm.guide_weight)
        right = lambda texts: float(np.mean([prm.outcome_label(xs[i], y) for i, y in zip(sub, texts)]))
        auto = zoo.get("prm_auto_labels", profile).meta
    row = {"bench": "prm_curve", "profile": profile.name, "date": datetime.date.today().isoformat(),
           "machine": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
           "problems": len(xs), "pool": M, "pool_accuracy": round(float(arrays["right"].mean()), 4),
           "auto_label_agreement": round(auto["gold_agreement"], 4),
           "step_auc": {name: round(prm_eval.step_quality(probs[name], fx, fy)["auc"], 4)
                        for name in ("prm_gold", "prm_auto", "policy_likelihood")},
           "at_N": {name: {"N=1": round(float(c[0, 0]), 4), f"N={M}": [round(float(v), 4) for v in c[-1]]}
                    for name, c in curves.items()},
           "unfaithful_first": {k: round(v[0], 4) for k, v in prm_eval.unfaithful_first(arrays, scores).items()},
           "search": {"problems": len(sub), "beam": [right(beam), round(beam_tokens / len(sub), 1)],
                      "guided": [right(guided), round(guided_tokens / len(sub), 1)]}}
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
