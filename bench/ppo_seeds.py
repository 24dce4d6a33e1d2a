"""How much one PPO run varies: chapter 3's PPO-ptx run and its no-ptx twin, retrained with other seeds.

    python bench/ppo_seeds.py [--profile cpu] [--seeds 3] [--variants ppo ppo_no_ptx]
    python bench/ppo_seeds.py --profile cpu --seeds 1 --variants ppo_ptx_only   # the zero-reward control

Each run is a zoo entry (seed 0 is the chapter's own run; the others are built on a miss and cached
afterwards, a few minutes each in the `cpu` profile), evaluated with the book's protocol: held-out
gold reward paired with the SFT model's samples, and KL to the SFT model. Prints one JSON line per
run, then one per variant with the mean and standard deviation of the gain over seeds — the spread a
single run's evaluation error bar does not show.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import statistics
import sys

import offline  # noqa: E402,F401  (first: the Hugging Face offline variables, before transformers loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 … n−1 (at most recipes.PPO_SEEDS)")
    parser.add_argument("--variants", nargs="+", default=["ppo", "ppo_no_ptx"])
    args = parser.parse_args()
    import torch
    from alignlab import evaluate, profiles, recipes, zoo
    if not 1 <= args.seeds <= recipes.PPO_SEEDS:
        parser.error(f"--seeds must be between 1 and {recipes.PPO_SEEDS}")
    missing = [recipes.seed_name(v, s) for v in args.variants for s in range(args.seeds)
               if recipes.seed_name(v, s) not in zoo.registry()]
    if missing:
        parser.error(f"no zoo recipe for {missing}: seeds 1+ exist for ppo and ppo_no_ptx only")
    profile = profiles.get_profile(args.profile)
    with contextlib.redirect_stdout(sys.stderr):
        sft, tok = zoo.get("sft", profile).load(dtype=torch.float32)
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads"
    for variant in args.variants:
        gains = []
        for seed in range(args.seeds):
            name = recipes.seed_name(variant, seed)
            with contextlib.redirect_stdout(sys.stderr):  # build messages; stdout carries only JSON
                r = evaluate.entry_report(name, sft, tok, profile)
            gains.append(r["gain"])
            print(json.dumps({"bench": "ppo_seeds", "run": name, "seed": seed, "profile": profile.name,
                              "gain": round(r["gain"], 4), "gain_se": round(r["gain_se"], 4),
                              "kl": round(r["kl"], 3), "kl_se": round(r["kl_se"], 3),
                              "gold_by_family": {f: round(m, 3) for f, (m, _, _) in r["by_family"].items()},
                              "target_kl": profile.ppo.target_kl}), flush=True)
        print(json.dumps({"bench": "ppo_seeds", "variant": variant, "profile": profile.name, "seeds": args.seeds,
                          "gain_mean": round(statistics.mean(gains), 4),
                          "gain_sd": round(statistics.stdev(gains), 4) if len(gains) > 1 else None,
                          "device": machine, "date": datetime.date.today().isoformat()}), flush=True)


if __name__ == "__main__":
    main()
