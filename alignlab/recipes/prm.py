"""Chapter 6's entries: the SFT model's own multistep solutions, and reward models trained on them.

    sft ─► prm_samples ─┬─► orm            (final answer right?  one score per solution)
                        ├─► prm_gold       (the world's step labels, up to the first wrong step)
                        └─► prm_auto_labels ─► prm_auto   (Math-Shepherd: roll out from each step)

`prm_samples` holds a training split (the reward models learn from it) and a held-out pool of
`prm.samples` solutions per problem that every best-of-N and voting method draws from, as
Lightman et al. (2023) draw their N from one set of 1860 samples per problem.
"""
from __future__ import annotations

import json
import random
from functools import partial
from pathlib import Path

import torch

from .. import prm, train, world
from ..rollout import generate
from ..zoo import Job, Recipe

CHAPTER = "06_process_rewards"
SAMPLES_FILE, LABELS_FILE = "samples.json", "labels.json"
SAMPLING = ("sampling.max_new_tokens", "sampling.batch")
SCORER_FIELDS = ("prm.epochs", "prm.batch", "prm.lr")


def train_problems(n: int) -> list[str]:
    """`n` multistep training prompts (a fixed shuffle)."""
    prompts = list(world.train_prompts("multistep"))
    random.Random(6).shuffle(prompts)
    return prompts[:n]


def pool_problems(n: int) -> list[str]:
    """`n` distinct held-out multistep prompts: the pool's problems."""
    return list(dict.fromkeys(world.eval_prompts("multistep", n=n, seed=6)))


def samples(job: Job) -> dict:
    profile = job.profile
    model, tok = job.deps["sft"].load(dtype=torch.float32)
    sample = lambda prompts, k, seed: generate(model, tok, [p for p in prompts for _ in range(k)], seed=seed,
                                               max_new_tokens=profile.sampling.max_new_tokens,
                                               batch_size=profile.sampling.batch).texts
    xs, pool = train_problems(profile.prm.train_problems), pool_problems(profile.prm.problems)
    ys, M = sample(xs, profile.prm.train_samples, 1), profile.prm.samples
    flat = sample(pool, M, 2)
    data = {"train": [[x, y] for x, y in zip([x for x in xs for _ in range(profile.prm.train_samples)], ys)],
            "pool": {"prompts": pool, "responses": [flat[i * M:(i + 1) * M] for i in range(len(pool))]}}
    (job.out / SAMPLES_FILE).write_text(json.dumps(data))
    right = [prm.outcome_label(x, y) for x, ys_ in zip(pool, data["pool"]["responses"]) for y in ys_]
    return {"train_solutions": len(ys), "pool_problems": len(pool), "pool_samples": M,
            "pool_accuracy": sum(right) / len(right)}


def load_samples(path: Path) -> dict:
    """`prm_samples`' data: train [(prompt, response)], pool {prompts (P,), responses (P, M)}."""
    return json.loads((Path(path) / SAMPLES_FILE).read_text())


def auto_labels(job: Job) -> dict:
    """Math-Shepherd labels for the first `prm.auto_solutions` training solutions: the SFT model
    rolls out `prm.rollouts` completions from each step prefix (`prm.auto_step_labels`, rule any)."""
    profile = job.profile
    model, tok = job.deps["sft"].load(dtype=torch.float32)
    train_set = load_samples(job.deps["prm_samples"].path)["train"][:profile.prm.auto_solutions]
    xs, ys = [x for x, _ in train_set], [y for _, y in train_set]
    seeds = iter(range(1000, 10**6))
    complete = lambda texts: generate(model, tok, texts, profile.sampling.max_new_tokens, seed=next(seeds),
                                      batch_size=profile.sampling.batch, chat=False).texts
    labels = prm.auto_step_labels(xs, ys, complete, k=profile.prm.rollouts)
    (job.out / LABELS_FILE).write_text(json.dumps(labels))
    share, n = prm.label_agreement([prm.gold_step_labels(x, y) for x, y in zip(xs, ys)], labels)
    return {"solutions": len(ys), "rollouts": profile.prm.rollouts, "gold_agreement": share, "steps_compared": n}


def scorer(job: Job, labels_from: str) -> dict:
    """A scorer from the SFT checkpoint trained on the training solutions' labels: `outcome`
    (ORM), `gold` or `auto` steps (PRM; `auto` on the automatically labelled subset)."""
    profile = job.profile.prm
    data = load_samples(job.deps["prm_samples"].path)["train"]
    if labels_from == "auto":
        labels = json.loads((job.deps["prm_auto_labels"].path / LABELS_FILE).read_text())
        data = data[:len(labels)]
    else:
        label = (lambda x, y: [prm.outcome_label(x, y)]) if labels_from == "outcome" else prm.gold_step_labels
        labels = [label(x, y) for x, y in data]
    xs, ys = [x for x, _ in data], [y for _, y in data]
    model, tok = prm.scorer_from(job.deps["sft"].path), job.deps["sft"].tokenizer()
    steps = max(1, profile.epochs * len(xs) // profile.batch)
    config = train.TrainConfig(steps=steps, lr=profile.lr, warmup_steps=max(1, steps // 10),
                               desc=f"{job.name} ({job.profile.name})", checkpoint_every=max(1, steps // 3),
                               checkpoint_dir=str(job.checkpoint_dir))
    batches = prm.label_batches(tok, xs, ys, labels, profile.batch, outcome=labels_from == "outcome")
    history = train.train(model, batches, prm.step_loss, config)
    model.save_pretrained(job.out, safe_serialization=True)
    tok.save_pretrained(job.out)
    return {"history": history, "labels": labels_from, "solutions": len(xs),
            "labelled_steps": sum(l is not None for ls in labels for l in ls)}


RUNS = [
    Recipe("prm_samples", samples, sized=True, deps=("sft",),
           fields=("prm.problems", "prm.samples", "prm.train_problems", "prm.train_samples", *SAMPLING),
           why="the SFT model's own multistep solutions: a training split and the held-out pool"),
    Recipe("prm_auto_labels", auto_labels, sized=True, deps=("sft", "prm_samples"),
           fields=("prm.auto_solutions", "prm.rollouts", *SAMPLING),
           why="Math-Shepherd step labels: rollouts from every step prefix"),
    Recipe("orm", partial(scorer, labels_from="outcome"), sized=True, deps=("sft", "prm_samples"),
           fields=SCORER_FIELDS, why="outcome reward model: is the final answer right?"),
    Recipe("prm_gold", partial(scorer, labels_from="gold"), sized=True, deps=("sft", "prm_samples"),
           fields=SCORER_FIELDS, why="process reward model on the world's step labels"),
    Recipe("prm_auto", partial(scorer, labels_from="auto"), sized=True, deps=("sft", "prm_samples", "prm_auto_labels"),
           fields=SCORER_FIELDS, why="process reward model on automatic (Math-Shepherd) step labels"),
]
