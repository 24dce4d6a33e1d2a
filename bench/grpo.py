"""GRPO throughput: `alignlab.grpo` vs TRL's `GRPOTrainer` (no vLLM), side by side in one run.

    python bench/grpo.py [--profile ci|cpu|gpu] [--prompts 16] [--group 8] [--new-tokens 64]
                         [--steps 4] [--warmup 1] [--minibatch M] [--epochs 1] [--static-decode auto]

What is held equal. The same weights (the profile's SFT model from the zoo when it is already
built, else a fresh model of the profile's policy size, seed 0 — which rarely emits eos, so nearly
every completion runs to `--new-tokens`), each backend loading its own fp32 copy; the same prompts
(`world.train_prompts("arithmetic")`, P per rollout) and verifier
(`verifiers.exact_match`); G = 8 completions per prompt at temperature 1, no top-k/top-p; and one
`grpo.GRPOConfig` for both, TRL's made from it by `grpo_trl.trl_grpo_config`: β = 0 (no reference
model, no reference forward in either), μ = `--epochs` passes, minibatches of M rows (default the
whole rollout: one optimizer step per rollout, TRL's default), AdamW (0.9, 0.95), constant lr, no
gradient checkpointing; bf16 autocast on a GPU for both. With μ = 1 and one step per rollout both
skip the old-log-prob forward (ρ = 1). Not equal, and what is being compared: each backend's
sampler (ours drops finished rows; on a GPU it is `static_decode`, CUDA graphs, unless
`--static-decode off`; HF `generate` decodes every row to the end), ours running each group's
prompt once in its log-prob forwards (`grpo.group_logprobs`), and the work TRL always does (token
entropy on every forward; its fused head scores the prompt positions too on a CPU).
`mean_length_*` says how long the completions were.

Timing. One run per backend (alignlab first), `--warmup` rollouts not timed. completions/s =
P·G × timed rollouts ÷ the wall time between the log rows that end them. On a CPU the same is also
given per second of this process's CPU time (`clock_*`): with one thread that is what an idle
machine would show, while the wall clock of a shared machine also counts the time other
processes held the core — compare `ratio` with `clock_ratio`. Where the time goes: the same
phases wrapped in both, summed over the timed rollouts, per rollout, on that clock (wall after a
CUDA synchronize on a GPU): sampling (our `grpo._sample` / TRL's `_generate`: tokenize, decode
loop, decode to text), logp_no_grad (old or reference log-probs), reward, loss_forward (the
loss's forward with gradients), backward, optimizer, other (the rest: advantages, logging, data
loading). Threads are torch's default; set OMP_NUM_THREADS=1 on a shared machine (see
bench/train_throughput.py). Prints one JSON line on stdout, everything else on stderr; no test
asserts a time.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import sys
import tempfile
import time

import offline  # noqa: E402,F401  (first: the Hugging Face offline variables, before transformers loads)

PHASES = ("sampling", "logp_no_grad", "reward", "loss_forward", "backward", "optimizer")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default=None, choices=["ci", "cpu", "gpu"])
    p.add_argument("--prompts", type=int, default=16, help="prompts per rollout")
    p.add_argument("--group", type=int, default=8, help="completions per prompt (G)")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--steps", type=int, default=4, help="timed rollouts per backend")
    p.add_argument("--warmup", type=int, default=1, help="untimed rollouts first (at least 1)")
    p.add_argument("--minibatch", type=int, default=None, help="rows per optimizer step (default: the rollout)")
    p.add_argument("--epochs", type=int, default=1, help="passes over each rollout (μ)")
    p.add_argument("--static-decode", default="auto", choices=["auto", "on", "off"],
                   help="alignlab samples with static_decode (CUDA graphs); auto: on a GPU only")
    args = p.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        p.error("--warmup and --steps must be at least 1")
    return args


def clock() -> float:
    """The phase clock: wall time after a CUDA synchronize on a GPU; this process's CPU time on a
    CPU (with one thread it is the wall time an idle machine would show; on a shared machine the
    wall clock also counts the time other processes held the core)."""
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


@contextlib.contextmanager
def phase_clock(phases: dict, targets: list[tuple[object, str, str]]):
    """Wrap each `owner.attr` so its `clock()` time adds to phases[label] ("logp_no_grad" counts
    as "loss_forward" when gradients are on); restore them on exit."""
    import torch
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in targets]

    def wrap(fn, label):
        def timed(*a, **kw):
            name = "loss_forward" if label == "logp_no_grad" and torch.is_grad_enabled() else label
            t0 = clock()
            try:
                return fn(*a, **kw)
            finally:
                phases[name] = phases.get(name, 0.0) + clock() - t0
        return timed
    for (owner, attr, fn), (_, _, label) in zip(saved, targets):
        setattr(owner, attr, wrap(fn, label))
    try:
        yield phases
    finally:
        for owner, attr, fn in reversed(saved):
            setattr(owner, attr, fn)


def common_targets() -> list[tuple[object, str, str]]:
    import torch
    from accelerate import Accelerator
    return [(Accelerator, "backward", "backward"), (torch.optim.AdamW, "step", "optimizer")]


class Stamps:
    """(wall, clock) at the end of each rollout; the phase sums restart after the warm-up ones."""

    def __init__(self, warmup: int):
        self.warmup, self.wall, self.clock, self.phases = warmup, [], [], {}

    def __call__(self) -> None:
        self.wall.append(time.perf_counter())
        self.clock.append(clock())
        if len(self.wall) == self.warmup:
            self.phases.clear()

    def summary(self, rows: int, lengths: list[float]) -> dict:
        """Completions/s (wall) and per second of the phase clock over the timed rollouts, their
        mean completion length, and the phase clock's seconds per rollout by phase."""
        n, w = len(self.wall) - self.warmup, self.warmup - 1
        wall = self.wall[-1] - self.wall[w]
        total = (self.clock[-1] - self.clock[w]) / n
        per = {k: self.phases.get(k, 0.0) / n for k in PHASES}
        per["other"] = total - sum(per.values())
        return {"completions_per_s": rows * n / wall, "clock_completions_per_s": rows / total,
                "mean_length": sum(lengths[self.warmup:]) / n,
                "seconds_per_rollout": {k: round(v, 4) for k, v in per.items()}}


def bench_alignlab(path, prompts, config, warmup: int) -> dict:
    import torch

    from alignlab import grpo, models, verifiers
    policy, tok = models.load(path, dtype=torch.float32)
    stamps = Stamps(warmup)
    with phase_clock(stamps.phases, [(grpo, "_sample", "sampling"), (grpo, "group_logprobs", "logp_no_grad"),
                                     (verifiers, "exact_match", "reward"), *common_targets()]):
        history = grpo.train_grpo(policy, None, tok, prompts, grpo.verifier_reward(verifiers.exact_match), config,
                                  callback=lambda step, pol: stamps() or {})
    return stamps.summary(config.batch_size * config.group_size, [r["length"] for r in history])


def bench_trl(path, prompts, config, warmup: int) -> dict:
    import torch
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from alignlab import grpo_trl, models, verifiers
    policy, tok = models.load(path, dtype=torch.float32)
    stamps, history = Stamps(warmup), []

    class Stamp(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "reward" in logs:  # one log row per rollout, after its last optimizer step
                stamps()
    with tempfile.TemporaryDirectory() as d, phase_clock(stamps.phases, [
            (GRPOTrainer, "_generate", "sampling"), (GRPOTrainer, "_get_per_token_logps_and_entropies", "logp_no_grad"),
            (verifiers, "exact_match", "reward"), *common_targets()]):
        trainer = grpo_trl.trl_grpo_trainer(policy, tok, prompts, lambda p, r: verifiers.exact_match(p, r), config, d)
        trainer.add_callback(grpo_trl.history_callback(history, grpo_trl.steps_per_rollout(config)))
        trainer.add_callback(Stamp())
        trainer.train()
    return stamps.summary(config.batch_size * config.group_size, [r["length"] for r in history])


def policy_dir(prof, tmp: str) -> tuple[str, str]:
    """(directory, "zoo sft" | "fresh"): the profile's SFT entry if it is already built (never built here)."""
    from alignlab import models, world, zoo
    path = zoo.entry_path("sft", prof)
    if path.exists() and zoo.verify(path) is None:
        return str(path), "zoo sft"
    tok = models.train_tokenizer(world.pretraining_corpus(2000), 1024)
    models.save(models.build_model(prof.policy, tok, seed=0), tok, tmp)
    return tmp, "fresh"


def measure(args: argparse.Namespace) -> dict:
    import torch
    import transformers
    import trl

    from alignlab import grpo, profiles, world
    prof = profiles.get_profile(args.profile)
    P, G = args.prompts, args.group
    static = {"on": True, "off": False}.get(args.static_decode, torch.cuda.is_available())
    config = grpo.GRPOConfig(steps=args.warmup + args.steps, batch_size=P, group_size=G,
                             minibatch_size=args.minibatch or P * G, ppo_epochs=args.epochs, beta=0.0,
                             max_new_tokens=args.new_tokens, lr=1e-4, progress=False, static_decode=static)
    prompts = list(world.train_prompts("arithmetic"))
    with tempfile.TemporaryDirectory() as tmp:
        path, weights = policy_dir(prof, tmp)
        ours = bench_alignlab(path, prompts, config, args.warmup)
        theirs = bench_trl(path, prompts, config, args.warmup)
    return {"bench": "grpo", "profile": prof.name, "date": datetime.date.today().isoformat(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available()
            else f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "torch_threads": torch.get_num_threads(), "weights": weights, "prompts": P, "group": G,
            "new_tokens": args.new_tokens, "minibatch": config.minibatch_size, "epochs": args.epochs,
            "static_decode": config.static_decode,
            "steps": args.steps, "warmup": args.warmup,
            "alignlab_completions_per_s": round(ours["completions_per_s"], 2),
            "trl_completions_per_s": round(theirs["completions_per_s"], 2),
            "ratio": round(ours["completions_per_s"] / theirs["completions_per_s"], 2),
            "mean_length_alignlab": round(ours["mean_length"], 2), "mean_length_trl": round(theirs["mean_length"], 2),
            "clock": "wall (CUDA synchronized)" if torch.cuda.is_available() else "process CPU time",
            "alignlab_clock_completions_per_s": round(ours["clock_completions_per_s"], 2),
            "trl_clock_completions_per_s": round(theirs["clock_completions_per_s"], 2),
            "clock_ratio": round(ours["clock_completions_per_s"] / theirs["clock_completions_per_s"], 2),
            "alignlab_seconds_per_rollout": ours["seconds_per_rollout"],
            "trl_seconds_per_rollout": theirs["seconds_per_rollout"],
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}


def main(argv=None) -> dict:
    with contextlib.redirect_stdout(sys.stderr):  # trainers' logs; stdout carries the JSON only
        out = measure(parse_args(argv))
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
