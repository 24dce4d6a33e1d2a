"""Chapter 8's headline in one JSON line: the weak-to-strong grid of a profile.

    python bench/w2s.py [--profile ci|cpu|gpu]

Builds (or reuses) the profile's `w2s_grid` entry (and the ladder's base models it needs) and
reports, per task, the ceiling at each rung with its rise in standard errors, every pair's PGR per
loss (mean ± spread over seeds, null where the gap is under three standard errors), the confidence
loss's effect on mean PGR, and the grid's build time. In `gpu` the classifiers fine-tune every
block (`w2s.tune = "all"`), as Burns et al. do; `cpu` fine-tunes the last block's MLP and the head.
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
    args = parser.parse_args()
    import torch
    from alignlab import profiles, w2s_eval, zoo
    from alignlab.recipes import w2s as runs
    profile = profiles.get_profile(args.profile)
    with contextlib.redirect_stdout(sys.stderr):
        entry = zoo.get("w2s_grid", profile)
        record = runs.load_grid(entry.path)
    r3 = lambda x: None if x is None else round(x, 3)  # noqa: E731
    tasks = {}
    for name, rec in record["tasks"].items():
        ceiling = w2s_eval.mean_over_seeds(rec, "ceiling")
        tasks[name] = {"n_test": rec["n_test"], "seconds": rec["seconds"],
                       "ceiling": {k: r3(v) for k, v in ceiling.items()},
                       "rise_se": r3(w2s_eval.ceiling_rise(ceiling, rec["n_test"])["in_se"]),
                       "pgr": {pair: {loss: [r3(c["pgr"]), r3(c["pgr_std"])] for loss, c in by_loss.items()}
                               for pair, by_loss in w2s_eval.grid(rec).items()},
                       "confidence_effect": {k: r3(v) if isinstance(v, float) else v
                                             for k, v in w2s_eval.confidence_effect(rec).items()}}
    row = {"bench": "w2s", "profile": profile.name, "date": datetime.date.today().isoformat(),
           "machine": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
           "tune": profile.w2s.tune, "seeds": profile.w2s.seeds, "n_params": record["n_params"],
           "build_seconds": entry.meta["build_seconds"], "tasks": tasks,
           "screen": {name: {k: r3(v) for k, v in rec["ceiling"].items()} for name, rec in record["screen"].items()}}
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
