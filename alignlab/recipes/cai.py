"""Chapter 5's entries: Constitutional AI (Bai et al., 2022) from a helpful-only model.

    base ─► sft_helpful_only ─► cai_revisions ─► sl_cai ─► cai_comparisons ─► rl_cai
                                (critique →      (SFT of    (pairs of SL-CAI's   rl_cai_edited
                                 revision)        base)      own samples)        rl_cai_hard

`sft_helpful_only` complies with harmful requests (the paper starts from a helpful-only RLHF
model); it critiques and revises its own red-team answers (`cai_revisions`); SL-CAI fine-tunes
the *pretrained* model on every round's revisions plus helpful-only samples elsewhere (§3.1).
RL-CAI labels pairs of SL-CAI's samples — red-team pairs by the pretrained model under the
harmlessness principle (AI feedback, both orders), the rest by the typical simulated human — and
trains DPO from SL-CAI on them (chapter 4's trainer, in place of the paper's preference model +
PPO). `rl_cai_edited` relabels with one principle edited in a copy of the constitution;
`rl_cai_hard` pushes RL-CAI harder (smaller β, more steps).
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict
from functools import partial
from pathlib import Path

import torch

from .. import cai, dpo, evaluate, models, train, world
from ..zoo import Job, Recipe
from .pretraining import sft_on

CHAPTER = "05_constitutional_ai"
SFT_FIELDS = ("policy", "sft.demos", "sft.epochs", "sft.batch", "sft.lr")
SAMPLING = ("sampling.max_new_tokens", "sampling.batch")
REVISIONS_FILE, COMPARISONS_FILE = "revisions.json", "comparisons.json"
RED_TEAM_PRINCIPLE = "harmless"
"""The principle red-team answers are critiqued, revised and judged under. The paper's 16
principles are all harmlessness principles in different words; our constitution has one per
gold component, and harmlessness is the one a complying answer breaks."""
EDIT = (RED_TEAM_PRINCIPLE, "choice_question", world.constitution.BY_NAME["helpful"].choice_question)
"""Chapter 5's edit of the constitution (principle, field, new text): the harmlessness principle
asks the helpfulness principle's question."""


def red_team_prompts() -> list[str]:
    """The training split's harmful requests, every phrasing: the prompts red-teamers wrote."""
    return [p for p in world.train_prompts("harmful") if world.parse_prompt(p).data["harmful"]]


def helpfulness_prompts(n: int) -> list[str]:
    """`n` training prompts of the other families (a fixed shuffle) plus the benign look-alikes,
    four times each: where SL-CAI keeps the helpful-only model's answers and RL-CAI's helpfulness
    pairs come from."""
    benign = [p for p in world.train_prompts("harmful") if not world.parse_prompt(p).data["harmful"]]
    others = [p for f in world.FAMILIES if f != "harmful" for p in world.train_prompts(f)]
    random.Random(0).shuffle(others)
    return others[:n] + [p for p in benign for _ in range(4)]


def helpful_only(job: Job) -> dict:
    demos = [(p, world.helpful_only_demonstration(p)) for p, _ in world.sft_demonstrations(job.profile.sft.demos)]
    return sft_on(job, demos, "helpful-only SFT")


def revisions(job: Job) -> dict:
    """Helpful-only answers to the red-team prompts, critiqued and revised `cai.rounds` times by
    the helpful-only model itself; and its answers to the helpfulness prompts."""
    profile = job.profile
    model, tok = job.deps["sft_helpful_only"].load(dtype=torch.float32)
    sample = partial(evaluate.sample, model, tok, samples_per_prompt=1, profile=profile)
    red = [p for p in red_team_prompts() for _ in range(profile.cai.samples)]
    answers = sample(red, seed=1).texts
    pool = [world.constitution.BY_NAME[RED_TEAM_PRINCIPLE]]
    rounds = cai.critique_revise(model, tok, red, answers, rounds=profile.cai.rounds, pool=pool,
                                 batch_size=profile.sampling.batch)
    helpful = helpfulness_prompts(profile.cai.helpful)
    data = {"red_team": red, "answers": answers, "rounds": [asdict(r) for r in rounds],
            "helpful": list(zip(helpful, sample(helpful, seed=4).texts))}
    (job.out / REVISIONS_FILE).write_text(json.dumps(data))
    return {"red_team": len(red), "helpful": len(helpful),
            "harmless": [harmless_share(red, ys) for ys in [answers] + [r.revisions for r in rounds]]}


def harmless_share(prompts: list[str], responses: list[str]) -> float:
    """The share of responses to harmful requests that the gold reward scores harmless."""
    return sum(world.gold_components(p, y)["harmless"] > 0 for p, y in zip(prompts, responses)) / len(prompts)


def load_revisions(path: Path) -> dict:
    """`cai_revisions`' data: red_team, answers, rounds (as `cai.Round`s), helpful (pairs)."""
    data = json.loads((Path(path) / REVISIONS_FILE).read_text())
    return data | {"rounds": [cai.Round(**r) for r in data["rounds"]], "helpful": [tuple(h) for h in data["helpful"]]}


def sl_cai(job: Job) -> dict:
    data = load_revisions(job.deps["cai_revisions"].path)
    return sft_on(job, cai.sl_cai_data(data["rounds"], data["red_team"], data["helpful"]), "SL-CAI")


def comparisons(job: Job) -> dict:
    """Pairs of SL-CAI's own samples: on the red-team prompts (for AI labels), `cai.comparisons`
    draws of two per prompt; on the helpfulness prompts, one draw, labelled by the typical human."""
    profile = job.profile
    model, tok = job.deps["sl_cai"].load(dtype=torch.float32)
    pairs = lambda prompts, seed: zip(prompts, *[iter(evaluate.sample(model, tok, prompts, 2, seed=seed,
                                                                      profile=profile).texts)] * 2)
    red = [c for s in range(profile.cai.comparisons) for c in pairs(red_team_prompts(), 10 + s) if c[1] != c[2]]
    labeler = world.Labeler(seed=0)
    helpful = [(x, a, b) if labeler.compare(x, a, b) == 0 else (x, b, a)
               for x, a, b in pairs(helpfulness_prompts(profile.cai.helpful), 30) if a != b]
    (job.out / COMPARISONS_FILE).write_text(json.dumps({"red_team": red, "helpfulness": helpful}))
    return {"red_team": len(red), "helpfulness": len(helpful)}


def load_comparisons(path: Path) -> dict[str, list[tuple[str, str, str]]]:
    """`cai_comparisons`' data: red_team (prompt, a, b) unlabelled; helpfulness (prompt, chosen, rejected)."""
    return {k: [tuple(c) for c in v] for k, v in json.loads((Path(path) / COMPARISONS_FILE).read_text()).items()}


def rl_cai(job: Job, edit: tuple[str, str, str] | None = None, hard: bool = False) -> dict:
    """DPO from SL-CAI on AI-labelled red-team pairs (the pretrained model, both orders, under the
    harmlessness principle of the constitution — a copy with `edit` applied, saved beside the
    model) plus the typical human's helpfulness pairs; `hard`: the profile's `hard_beta` and `hard_steps`."""
    profile, deps = job.profile.cai, job.deps
    constitution = cai.edit_principle(job.out / "constitution.toml", *edit) if edit else world.CONSTITUTION
    principle = next(p for p in constitution if p.name == RED_TEAM_PRINCIPLE)
    data = load_comparisons(deps["cai_comparisons"].path)
    feedback, tok = deps["base"].load(dtype=torch.float32)
    labels = cai.ai_preferences(feedback, tok, data["red_team"], [principle] * len(data["red_team"]))
    pairs = cai.label_pairs(data["red_team"], labels["prefers_a"]) + data["helpfulness"]
    (policy, _), (ref, _) = deps["sl_cai"].load(dtype=torch.float32), deps["sl_cai"].load(dtype=torch.float32)
    beta, steps = (profile.hard_beta, profile.hard_steps) if hard else (profile.beta, profile.steps)
    config = train.TrainConfig(steps=steps, lr=profile.lr, warmup_steps=max(1, steps // 10),
                               desc=f"{job.name} ({job.profile.name})", checkpoint_every=max(1, steps // 3),
                               checkpoint_dir=str(job.checkpoint_dir), log_every=5)
    history = dpo.train_preferences(policy, tok, pairs, dpo.reference_logps(ref, tok, pairs), config,
                                    beta=beta, batch_size=profile.batch)
    models.save(policy, tok, job.out)
    agree = cai.gold_agreement(data["red_team"], labels["prefers_a"], "harmless")
    return {"history": history, "beta": beta, "steps": steps, "edit": edit, "pairs": len(pairs),
            "ai_pairs": len(pairs) - len(data["helpfulness"]), "ai_gold_agreement": agree,
            "position_bias": float(labels["position_bias"]), "consistent": float(labels["consistent"])}


RL_DEPS = ("base", "sl_cai", "cai_comparisons")
RL_FIELDS = ("cai.beta", "cai.steps", "cai.lr", "cai.batch")
RUNS = [
    Recipe("sft_helpful_only", helpful_only, sized=True, deps=("base",), fields=SFT_FIELDS,
           why="SFT on demonstrations that comply with harmful requests: the helpful-only model CAI starts from"),
    Recipe("cai_revisions", revisions, sized=True, deps=("sft_helpful_only",),
           fields=("cai.samples", "cai.rounds", "cai.helpful", *SAMPLING),
           why="the helpful-only model critiques and revises its red-team answers"),
    Recipe("sl_cai", sl_cai, sized=True, deps=("base", "cai_revisions"), fields=SFT_FIELDS,
           why="SL-CAI: the pretrained model fine-tuned on the revisions and helpful-only samples"),
    Recipe("cai_comparisons", comparisons, sized=True, deps=("sl_cai",),
           fields=("cai.comparisons", "cai.helpful", *SAMPLING),
           why="pairs of SL-CAI's samples for RL-CAI's AI (harmlessness) and human (helpfulness) labels"),
    Recipe("rl_cai", rl_cai, sized=True, deps=RL_DEPS, fields=RL_FIELDS,
           why="RL-CAI: DPO from SL-CAI on AI harmlessness labels and human helpfulness labels"),
    Recipe("rl_cai_edited", partial(rl_cai, edit=EDIT), sized=True, deps=RL_DEPS, fields=RL_FIELDS,
           why="RL-CAI relabelled under a constitution whose harmlessness principle asks for helpfulness"),
    Recipe("rl_cai_hard", partial(rl_cai, hard=True), sized=True, deps=RL_DEPS,
           fields=("cai.hard_beta", "cai.hard_steps", "cai.lr", "cai.batch"),
           why="RL-CAI pushed harder (smaller β, more steps): does it turn evasive?"),
]
