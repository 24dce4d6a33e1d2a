"""DPO training throughput: alignlab's trainer vs TRL's `DPOTrainer`, side by side in one run.

    python bench/dpo.py [--profile ci|cpu|gpu] [--steps 20] [--warmup 3] [--batch B]

Same model (the profile's architecture, fresh weights, seed 0; a copy is the reference), same
pairs (the world's comparisons: each prompt's responses from the world's generator, ranked by the
typical labeler), same batch of B pairs per step, AdamW, no gradient accumulation. Best settings
for both: reference log-probs precomputed once (alignlab always; TRL `precompute_ref_log_probs`),
bf16 on a GPU, gradient checkpointing off. Pairs/s are timed from the end of step `warmup` to
the end of step `steps` (a CUDA synchronize first). Prints one JSON line on stdout.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import random
import sys
import tempfile
import time

import offline  # noqa: E402,F401  (first: the Hugging Face offline variables, before transformers loads)


def _sync():
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def world_pairs(n: int) -> list[tuple[str, str, str]]:
    from alignlab import dpo, world
    from alignlab.reward import Group, rank_groups
    rng, groups = random.Random(0), []
    for p in world.preference_prompts(n):
        resp = list(dict.fromkeys(world.sample_response(p, rng)[1] for _ in range(4)))
        if len(resp) >= 2:
            groups.append(Group(p, resp))
    return dpo.preference_pairs(rank_groups(groups, world.Labeler()))


def bench_alignlab(path, pairs, batch, steps, warmup) -> float:
    import torch

    from alignlab import dpo, models, train
    policy, tok = models.load(path, dtype=torch.float32)
    ref, _ = models.load(path)
    ref_lp = dpo.reference_logps(ref, tok, pairs)
    stamps = []
    batches = dpo.pair_batches(tok, pairs, ref_lp, batch)

    def timed(i):
        if i in (warmup, steps):
            _sync()
            stamps.append(time.perf_counter())
        return batches(min(i, steps - 1))
    config = train.TrainConfig(steps=steps + 1, lr=1e-4, progress=False, log_every=steps)
    train.train(policy, timed, dpo.METHODS["dpo"](beta=0.1), config)
    return batch * (steps - warmup) / (stamps[1] - stamps[0])


def bench_trl(path, pairs, batch, steps, warmup) -> float:
    import torch
    from transformers import TrainerCallback

    from alignlab import dpo, models
    policy, tok = models.load(path, dtype=torch.float32)
    ref, _ = models.load(path)
    stamps = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step in (warmup, steps):
                _sync()
                stamps.append(time.perf_counter())
    trainer = dpo.trl_dpo_trainer(policy, ref, tok, pairs, tempfile.mkdtemp(), per_device_train_batch_size=batch,
                                  max_steps=steps, precompute_ref_log_probs=True, logging_steps=steps,
                                  learning_rate=1e-4)
    trainer.add_callback(Clock())
    trainer.train()
    return batch * (steps - warmup) / (stamps[1] - stamps[0])


def measure(args) -> dict:
    import torch
    import transformers
    import trl

    from alignlab import models, profiles, world
    prof = profiles.get_profile(args.profile)
    batch = args.batch or prof.dpo.batch
    pairs = world_pairs(max(200, batch * (args.steps + 2)))
    tok = models.train_tokenizer(world.pretraining_corpus(2000), 1024)
    model = models.build_model(prof.policy, tok, seed=0)
    with tempfile.TemporaryDirectory() as d:
        models.save(model, tok, d)
        ours = bench_alignlab(d, pairs, batch, args.steps, args.warmup)
        theirs = bench_trl(d, pairs, batch, args.steps, args.warmup)
    return {"bench": "dpo", "profile": prof.name, "date": datetime.date.today().isoformat(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available()
            else f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "n_params": models.n_params(model), "batch_pairs": batch, "steps": args.steps, "warmup": args.warmup,
            "alignlab_pairs_per_s": round(ours, 2), "trl_pairs_per_s": round(theirs, 2),
            "ratio": round(ours / theirs, 2), "load_avg_1m": round(os.getloadavg()[0], 2),
            "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default=None, choices=["ci", "cpu", "gpu"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=None, help="pairs per step (default: profile.dpo.batch)")
    args = p.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):
        out = measure(args)
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
