"""Chapter 9's headline in one JSON line: the small aligned model against the larger base model.

    python bench/capstone.py [--profile ci|cpu|gpu]

Builds (or reuses) the small rung's whole pipeline (`small_pipeline`: pretraining → SFT → reward
model → PPO-ptx, and the chapter's other small runs), then reports the gold and simulated-labeler
win rates, with 95% intervals clustered by prompt, of the small PPO-ptx model against the
policy-size base model prompted few-shot (InstructGPT's comparison) and against the policy-size
SFT model, on the book's protocol; the mean gold reward of each model; the parameter ratio; and the
seconds each part took. In `gpu` the base model is at least 8× the small one, in `cpu` at least 4×.
`--compute-matched` pretrains the small rung's chain for as many FLOPs as the policy's (its steps
× the parameter ratio; a chain of its own in the zoo, the book's entries untouched).
`--pretrain-steps N` pretrains *both* sizes for N steps — the paper's equal tokens, each model
trained longer than the book's one pass (the policy-size base and SFT models are then entries of
their own too). One JSON line on stdout (build messages go to stderr).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import sys
import time

import offline  # noqa: E402,F401  (first: the Hugging Face offline variables, before transformers loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--compute-matched", action="store_true",
                        help="pretrain the small rung's chain with the policy's pretraining compute (steps × the "
                             "parameter ratio), not the book's equal steps")
    parser.add_argument("--pretrain-steps", type=int, default=None,
                        help="pretrain both the small rung and the policy-size models for this many steps "
                             "(equal tokens, as the paper's models were), not the profile's")
    args = parser.parse_args()
    import torch
    from alignlab import capstone, evaluate, profiles, report, world, zoo
    profile = profiles.get_profile(args.profile)
    if args.pretrain_steps:
        profile = profile.replace(pretrain={"steps": args.pretrain_steps})
    t0 = time.time()
    with contextlib.redirect_stdout(sys.stderr):
        # the whole small pipeline (the chapter's other small runs too) at the book's settings only
        pipeline = None if args.pretrain_steps else zoo.get("small_pipeline", profile)
        base_entry = zoo.get("base", profile)
        n_small, n_policy = zoo.get("base@small", profile).meta["n_params"], base_entry.meta["n_params"]
        # the same chain, its pretraining as long as the policy's in FLOPs (≈ 6 N D: D × n_policy / n_small)
        steps = round(profile.pretrain.steps * n_policy / n_small) if args.compute_matched else profile.pretrain.steps
        small_profile = profile.replace(pretrain={"steps": steps})
        small, sft = evaluate.evaluate_entry("ppo@small", small_profile), evaluate.evaluate_entry("sft", profile)
        gold = {"small base": evaluate.evaluate_entry("base@small", small_profile).mean,
                "small SFT": evaluate.evaluate_entry("sft@small", small_profile).mean, "small PPO-ptx": small.mean,
                "base": evaluate.evaluate_entry("base", profile).mean, "SFT": sft.mean}
    t1 = time.time()
    prompts = evaluate.eval_set(profile)
    flat = [p for p in prompts for _ in range(profile.eval.samples_per_prompt)]
    base, tok = base_entry.load(dtype=torch.float32)
    budget = capstone.prefix_budget(tok, prompts, base.config.max_position_embeddings, profile.sampling.max_new_tokens)
    prefix = capstone.few_shot_prefix(tok, budget)
    few = evaluate.score(flat, capstone.few_shot_sample(base, tok, flat, prefix, profile.sampling.max_new_tokens,
                                                        batch_size=profile.sampling.batch))
    t2 = time.time()
    r3 = lambda d: {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}  # noqa: E731
    vs = {name: {"gold": r3(capstone.win_rate_ci(flat, small.rewards, other.rewards)),
                 "labeler": r3(capstone.labeler_win_rate(flat, small.responses, other.responses, world.Labeler(seed=0)))}
          for name, other in (("base, few-shot", few), ("SFT", sft))}
    row = {"bench": "capstone", "profile": profile.name, "date": datetime.date.today().isoformat(),
           "machine": report.stamp()["GPU" if torch.cuda.is_available() else "machine"],
           "n_params": {"small": n_small, "policy": n_policy}, "ratio": round(n_policy / n_small, 2),
           "small_pretrain_steps": steps, "policy_pretrain_steps": profile.pretrain.steps,
           "gold": {k: round(v, 4) for k, v in gold.items()},
           "shots": prefix.count(tok.eos_token), "samples": len(flat), "prompts": len(prompts), "vs": vs,
           "seconds": {"pipeline_and_evals": round(t1 - t0, 1), "few_shot_base": round(t2 - t1, 1)},
           "pipeline_build_seconds": pipeline and {s: r["build_seconds"] for s, r in pipeline.meta["stages"].items()},
           "policy_base_build_seconds": base_entry.meta["build_seconds"],
           "small_chain_build_seconds": {s: zoo.get(f"{s}@small", small_profile).meta["build_seconds"]
                                         for s in ("base", "sft", "rm_data", "rm", "ppo")}}
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
