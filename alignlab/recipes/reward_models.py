"""Chapter 2's entries: the responses labelers rank (`rm_data`) and reward models trained on
three labelers' rankings of them: a typical one, one who likes length, and a noise-free one."""
from __future__ import annotations

from dataclasses import asdict

from .. import reward, train, world
from ..zoo import Job, Recipe

CHAPTER = "02_bradley_terry"
RM_FIELDS = ("rm.epochs", "rm.batch", "rm.lr")
"""The profile fields a reward model's training reads."""


def rm_data(job: Job) -> dict:
    # Two policies, as InstructGPT's comparisons came from several models: the SFT model's
    # samples alone differ mostly in arithmetic and facts, which a small reward model learns
    # slowly; the base model adds the rude, padded and harmful answers SFT already suppresses.
    profile = job.profile
    (sft, tok), (base, _) = job.deps["sft"].load(), job.deps["base"].load()
    kw = dict(k=profile.rm.k, max_new_tokens=profile.sampling.max_new_tokens, batch_size=profile.sampling.batch)
    splits = {"train": reward.sample_groups([sft, base], tok, world.preference_prompts(profile.rm.prompts),
                                            seed=1, **kw),
              "test": reward.sample_groups([sft, base], tok, world.eval_prompts(n=profile.rm.eval_prompts, seed=1),
                                           seed=2, **kw)}
    reward.save_groups(job.out / reward.GROUPS_FILE, splits)
    return {split: {"prompts": len(g), "pairs": reward.n_pairs(g)} for split, g in splits.items()}


def reward_model(job: Job, labeler: world.Labeler, family: str | None = None) -> dict:
    """A reward model from the SFT checkpoint, trained on `labeler`'s rankings of rm_data (of one
    `family`'s prompts only, if given, with as many updates as on all of them)."""
    profile = job.profile
    groups = reward.load_groups(job.deps["rm_data"].path)["train"]
    if family is not None:
        groups = [g for g in groups if world.parse_prompt(g.prompt).family == family]
    groups = reward.rank_groups(groups, labeler)
    rm, tok = reward.reward_model_from(job.deps["sft"].path), job.deps["sft"].tokenizer()
    epochs = profile.rm.epochs * (len(world.FAMILIES) if family is not None else 1)
    steps = max(1, epochs * len(groups) // profile.rm.batch)
    config = train.TrainConfig(steps=steps, lr=profile.rm.lr, warmup_steps=max(1, steps // 10),
                               desc=f"{job.name} ({profile.name})", checkpoint_every=max(1, steps // 3),
                               checkpoint_dir=str(job.checkpoint_dir))
    history = reward.train_reward_model(rm, tok, groups, config, profile.rm.batch)
    rm.save_pretrained(job.out, safe_serialization=True)
    tok.save_pretrained(job.out)
    return {"history": history, "labeler": asdict(labeler), "pairs": reward.n_pairs(groups),
            "train": vars(config)}


RUNS = [
    Recipe("rm_data", rm_data, sized=True, deps=("sft", "base"),
           fields=("rm.prompts", "rm.k", "rm.eval_prompts", "sampling.max_new_tokens", "sampling.batch"),
           why="K responses per prompt, half from the SFT model and half from the base model, "
               "for labelers to rank"),
    Recipe("rm", lambda job: reward_model(job, world.Labeler(seed=0)), sized=True, deps=("sft", "rm_data"),
           fields=RM_FIELDS, why="reward model trained on a typical labeler's rankings"),
    Recipe("rm_length_biased", lambda job: reward_model(job, world.length_biased_labeler(seed=1)),
           sized=True, deps=("sft", "rm_data"), fields=RM_FIELDS,
           why="reward model trained on a labeler who likes longer answers"),
    # Temperature 0: every ranking is the gold order (ties broken at random), so whatever gap
    # to the Bayes rate remains is the reward model's, not the labels'.
    Recipe("rm_noiseless", lambda job: reward_model(job, world.Labeler(temperature=0.0, seed=0)),
           sized=True, deps=("sft", "rm_data"), fields=RM_FIELDS,
           why="reward model trained on noise-free rankings (the gold order), to tell label noise "
               "from model limits"),
]
