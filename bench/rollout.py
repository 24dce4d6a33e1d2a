"""Generation and RL-step throughput: `alignlab.rollout` vs `transformers` generate, and a PPO
iteration vs TRL's `GRPOTrainer` step, side by side in one run.

    python bench/rollout.py [--profile ci|cpu|gpu] [--batch 256] [--new-tokens 64] [--steps 4]

Generation. The same model (the profile's architecture with fresh weights, seed 0 — nothing is
downloaded or trained first; such a model rarely emits eos, so every row runs to
`max_new_tokens` and this measures the decode loop; `--zoo` takes the profile's SFT model from
the zoo instead, whose responses end early, which alignlab exploits), the same prompts
(the world's held-out prompts, left-padded), the same sampling (temperature 1, no top-k/top-p),
`max_new_tokens` each. HF's `generate` runs eager with its default dynamic KV cache and keeps
decoding finished rows until every row is done; `alignlab.rollout.generate` drops finished rows;
`alignlab.static_decode.generate_static` keeps static shapes (preallocated KV cache) and on a GPU
replays each decode step as one CUDA graph (on a CPU it runs the same step eagerly).
Both count only real new tokens (up to and including eos) and are timed after one warm-up call,
on the clock after a CUDA synchronize.

RL step. Completions per second of one training iteration on the same model and prompts, each
with `batch` completions of at most `new_tokens` tokens: alignlab's PPO iteration (rollout,
reference and value forward passes, reward, GAE, `ppo_epochs`=1 pass in minibatches of 16 with
a value model) against TRL's GRPO step (`num_generations` = 8 completions per prompt, the same
gold reward function, no vLLM, `beta`=0 as TRL defaults, gradient checkpointing off). GRPO has no
value model and, at β = 0, no reference pass; PPO does more work per completion here. Timed after
`--warmup` iterations. Prints one JSON line; no test asserts a time.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time

import offline  # noqa: E402,F401  (first: the Hugging Face offline variables, before transformers loads)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default=None, choices=["ci", "cpu", "gpu"])
    p.add_argument("--batch", type=int, default=None, help="sequences per batch (default: profile.sampling.batch)")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--steps", type=int, default=3, help="timed RL iterations per trainer")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--skip-rl", action="store_true", help="generation only")
    p.add_argument("--zoo", action="store_true", help="use the profile's SFT model (built if missing)")
    return p.parse_args(argv)


def _sync():
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bench_generate(model, tok, prompts, new_tokens: int) -> dict:
    import torch
    from alignlab import rollout
    from alignlab.models import encode_prompts

    def ours():
        ro = rollout.generate(model, tok, prompts, max_new_tokens=new_tokens, seed=0, batch_size=len(prompts))
        return int(ro.mask.sum())

    def static():
        from alignlab.static_decode import generate_static
        return int(generate_static(model, tok, prompts, max_new_tokens=new_tokens, seed=0).mask.sum())

    ids, attn = rollout.left_pad(encode_prompts(tok, prompts), tok.pad_token_id, model.device)

    @torch.inference_mode()
    def hf():
        out = model.generate(input_ids=ids, attention_mask=attn, do_sample=True, temperature=1.0, top_k=0,
                             top_p=1.0, max_new_tokens=new_tokens, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)
        new = out[:, ids.shape[1]:]
        return int(rollout.response_mask(new, tok.eos_token_id)[0].sum())

    result = {}
    for name, fn in (("alignlab", ours), ("alignlab_static", static), ("hf_generate", hf)):
        fn()  # warm-up
        _sync()
        t0 = time.perf_counter()
        n = fn()
        _sync()
        result[f"{name}_new_tokens_per_s"] = round(n / (time.perf_counter() - t0), 1)
        result[f"{name}_new_tokens"] = n
    result["generate_speedup"] = round(result["alignlab_new_tokens_per_s"] / result["hf_generate_new_tokens_per_s"], 2)
    result["static_speedup"] = round(result["alignlab_static_new_tokens_per_s"] / result["hf_generate_new_tokens_per_s"], 2)
    return result


def bench_ppo(path: str, tok, prompts, batch: int, new_tokens: int, steps: int, warmup: int) -> float:
    from alignlab import models, ppo, reward
    policy, _ = models.load(path, dtype=None)
    ref, _ = models.load(path, dtype=None)
    rm = reward.reward_model_from(path)
    with tempfile.TemporaryDirectory() as d:
        rm.save_pretrained(d)
        vm = ppo.value_model_from(d)
    times = []
    config = ppo.PPOConfig(steps=1, batch_size=batch, minibatch_size=16, ppo_epochs=1, max_new_tokens=new_tokens,
                           progress=False)
    for i in range(warmup + steps):
        _sync()
        t0 = time.perf_counter()
        ppo.train_ppo(policy, ref, vm, tok, prompts, ppo.gold_reward_fn, config.__class__(**{**vars(config), "seed": i}))
        _sync()
        times.append(time.perf_counter() - t0)
    return batch / (sum(times[warmup:]) / steps)


def bench_grpo(path: str, tok, prompts, batch: int, new_tokens: int, steps: int, warmup: int) -> float:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from alignlab import world

    stamps = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            _sync()
            stamps.append(time.perf_counter())

    def gold(prompts, completions, **kw):
        return [world.gold_reward(p.split("User: ", 1)[1].rsplit("\nAssistant:", 1)[0], c)
                for p, c in zip(prompts, completions)]

    ds = Dataset.from_list([{"prompt": world.chat_prompt(p)} for p in prompts])
    args = GRPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=batch, num_generations=8,
                      max_completion_length=new_tokens, max_steps=warmup + steps, logging_steps=1, report_to=[],
                      save_strategy="no", gradient_checkpointing=False, use_cpu=not torch.cuda.is_available(),
                      bf16=torch.cuda.is_available(), disable_tqdm=True, top_k=0, temperature=1.0)
    trainer = GRPOTrainer(model=path, reward_funcs=gold, args=args, train_dataset=ds, processing_class=tok,
                          callbacks=[Clock()])
    _sync()
    stamps.append(time.perf_counter())
    trainer.train()
    return batch * steps / (stamps[-1] - stamps[warmup])


def main(argv=None) -> dict:
    import contextlib
    with contextlib.redirect_stdout(sys.stderr):  # trainers' logs; stdout carries the JSON only
        out = measure(parse_args(argv))
    print(json.dumps(out), flush=True)
    return out


def measure(args: argparse.Namespace) -> dict:
    import torch

    from alignlab import models, profiles, world
    prof = profiles.get_profile(args.profile)
    batch = args.batch or prof.sampling.batch
    if args.zoo:
        from alignlab import zoo
        model, tok = zoo.get("sft", prof).load(dtype=torch.float32)
    else:
        tok = models.train_tokenizer(world.pretraining_corpus(2000), 1024)
        model = models.build_model(prof.policy, tok, seed=0).to(models.pick_device())
    model = model.to(models.pick_dtype(model.device)).eval()
    prompts = world.eval_prompts(n=batch)
    out = {"bench": "rollout", "profile": prof.name, "date": datetime.date.today().isoformat(),
           "device": torch.cuda.get_device_name() if torch.cuda.is_available()
           else f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
           "weights": "zoo sft" if args.zoo else "fresh", "n_params": models.n_params(model), "batch": batch, "new_tokens": args.new_tokens}
    out.update(bench_generate(model, tok, prompts, args.new_tokens))
    if not args.skip_rl:
        with tempfile.TemporaryDirectory() as d:
            models.save(model.float(), tok, d)
            out["ppo_completions_per_s"] = round(bench_ppo(d, tok, prompts, batch, args.new_tokens, args.steps, args.warmup), 2)
            out["grpo_completions_per_s"] = round(bench_grpo(d, tok, prompts, batch, args.new_tokens, args.steps, args.warmup), 2)
        out["rl_step_speedup"] = round(out["ppo_completions_per_s"] / out["grpo_completions_per_s"], 2)
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    import transformers
    import trl
    out.update(torch=torch.__version__, transformers=transformers.__version__, trl=trl.__version__)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
