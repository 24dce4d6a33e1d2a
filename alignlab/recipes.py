"""How each zoo entry is built: world → tokenizer → base (pretraining) → sft.

Each recipe is a function `(out_dir, profile, deps) -> meta` registered with `zoo.register`;
the zoo owns caching, locking and atomic writes, so a recipe only trains and saves. Bump a
recipe's `version` when you change what it builds. Later chapters register theirs (rm, ppo, …).
"""
from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from . import evaluate, models, ppo, reward, train, world
from .profiles import Profile, ProfileView
from .zoo import Entry, partial_dir, register

VOCAB_SIZE = 1024


@register("tokenizer", version="1", why="byte-level BPE trained on the world's corpus",
          fields=("corpus_dialogs",))
def build_tokenizer(out: Path, profile: Profile, deps: dict[str, Entry]) -> dict:
    tok = models.train_tokenizer(world.pretraining_corpus(profile.corpus_dialogs), VOCAB_SIZE)
    tok.save_pretrained(out)
    return {"vocab_size": len(tok)}


def _train_and_save(name: str, model, tok, batch_fn, config: train.TrainConfig,
                    out: Path, profile: Profile) -> dict:
    """Train with a resumable checkpoint outside `out`, then save in HF format."""
    config.checkpoint_dir = str(partial_dir(name, profile))
    history = train.train(model, batch_fn, train.lm_loss, config)
    models.save(model, tok, out)
    shutil.rmtree(config.checkpoint_dir, ignore_errors=True)  # the finished model supersedes it
    return {"history": history, "n_params": models.n_params(model), "train": vars(config)}


@register("base", deps=("tokenizer",), version="1",
          why="pretraining on the world's corpus: capable but uncontrolled",
          fields=("model", "corpus_dialogs", "pretrain_steps", "pretrain_batch", "pretrain_lr"))
def build_base(out: Path, profile: Profile, deps: dict[str, Entry]) -> dict:
    tok = deps["tokenizer"].tokenizer()
    rows = train.pack(tok, world.pretraining_corpus(profile.corpus_dialogs), profile.model.max_length)
    model = models.build_model(profile.model, tok).to(models.pick_device())
    config = train.TrainConfig(steps=profile.pretrain_steps, lr=profile.pretrain_lr,
                               desc=f"pretrain base ({profile.name})",
                               checkpoint_every=max(1, profile.pretrain_steps // 6))
    meta = _train_and_save("base", model, tok, train.packed_batches(rows, profile.pretrain_batch),
                           config, out, profile)
    return meta | {"corpus_rows": len(rows)}


@register("sft", deps=("base",), version="1",
          why="supervised fine-tuning on the world's few demonstrations",
          fields=("model", "sft_demos", "sft_epochs", "sft_batch", "sft_lr"))
def build_sft(out: Path, profile: Profile, deps: dict[str, Entry]) -> dict:
    model, tok = deps["base"].load(dtype=torch.float32)  # fp32 master weights; autocast does bf16
    pairs = world.sft_demonstrations(profile.sft_demos)
    steps = max(1, profile.sft_epochs * len(pairs) // profile.sft_batch)
    config = train.TrainConfig(steps=steps, lr=profile.sft_lr, warmup_steps=max(1, steps // 10),
                               desc=f"SFT ({profile.name})", checkpoint_every=max(1, steps // 3))
    batches = train.sft_batches(tok, pairs, profile.sft_batch, profile.model.max_length)
    return _train_and_save("sft", model, tok, batches, config, out, profile) | {"demos": len(pairs)}


@register("rm_data", deps=("sft", "base"), version="1",
          why="K responses per prompt, half from the SFT model and half from the base model, for labelers to rank",
          fields=("rm_prompts", "rm_k", "rm_eval_prompts", "max_new_tokens", "gen_batch"))
def build_rm_data(out: Path, profile: Profile, deps: dict[str, Entry]) -> dict:
    # Two policies, as InstructGPT's comparisons came from several models: the SFT model's
    # samples alone differ mostly in arithmetic and facts, which a small reward model learns
    # slowly; the base model adds the rude, padded and harmful answers SFT already suppresses.
    (sft, tok), (base, _) = deps["sft"].load(), deps["base"].load()
    kw = dict(k=profile.rm_k, max_new_tokens=profile.max_new_tokens, batch_size=profile.gen_batch)
    splits = {"train": reward.sample_groups([sft, base], tok, world.preference_prompts(profile.rm_prompts),
                                            seed=1, **kw),
              "test": reward.sample_groups([sft, base], tok, world.eval_prompts(n=profile.rm_eval_prompts, seed=1),
                                           seed=2, **kw)}
    reward.save_groups(out / reward.GROUPS_FILE, splits)
    return {split: {"prompts": len(g), "pairs": reward.n_pairs(g)} for split, g in splits.items()}


def _build_rm(name: str, labeler: world.Labeler, out: Path, profile: Profile, deps: dict[str, Entry]) -> dict:
    """A reward model from the SFT checkpoint, trained on `labeler`'s rankings of rm_data."""
    groups = reward.rank_groups(reward.load_groups(deps["rm_data"].path)["train"], labeler)
    rm, tok = reward.reward_model_from(deps["sft"].path), deps["sft"].tokenizer()
    steps = max(1, profile.rm_epochs * len(groups) // profile.rm_batch)
    config = train.TrainConfig(steps=steps, lr=profile.rm_lr, warmup_steps=max(1, steps // 10),
                               desc=f"{name} ({profile.name})", checkpoint_every=max(1, steps // 3),
                               checkpoint_dir=str(partial_dir(name, profile)))
    history = reward.train_reward_model(rm, tok, groups, config, profile.rm_batch)
    rm.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    shutil.rmtree(config.checkpoint_dir, ignore_errors=True)
    return {"history": history, "labeler": asdict(labeler), "pairs": reward.n_pairs(groups),
            "train": vars(config)}


RM_FIELDS = ("rm_epochs", "rm_batch", "rm_lr")


@register("rm", deps=("sft", "rm_data"), version="1",
          why="reward model trained on a typical labeler's rankings", fields=RM_FIELDS)
def build_rm(out: Path, profile: Profile, deps: dict[str, Entry]) -> dict:
    return _build_rm("rm", world.Labeler(seed=0), out, profile, deps)


@register("rm_length_biased", deps=("sft", "rm_data"), version="1",
          why="reward model trained on a labeler who likes longer answers", fields=RM_FIELDS)
def build_rm_length_biased(out: Path, profile: Profile, deps: dict[str, Entry]) -> dict:
    return _build_rm("rm_length_biased", world.length_biased_labeler(seed=1), out, profile, deps)


@register("rm_noiseless", deps=("sft", "rm_data"), version="1",
          why="reward model trained on noise-free rankings (the gold order), to tell label noise from model limits",
          fields=RM_FIELDS)
def build_rm_noiseless(out: Path, profile: Profile, deps: dict[str, Entry]) -> dict:
    # Temperature 0: every ranking is the gold order (ties broken at random), so whatever gap
    # to the Bayes rate remains is the reward model's, not the labels'.
    return _build_rm("rm_noiseless", world.Labeler(temperature=0.0, seed=0), out, profile, deps)


PTX_FIELDS = ("ppo_ptx_coef", "sft_demos", "model")
PPO_FIELDS = ("ppo_steps", "ppo_batch", "ppo_minibatch", "ppo_lr", "ppo_eval_every", "max_new_tokens",
              "eval_prompts_per_family", "gen_batch")


def _build_ppo(name: str, rm_name: str, beta: float, out: Path, profile: Profile, deps: dict[str, Entry],
               steps: int | None = None, target_kl: float | None = None, ptx_coef: float = 0.0,
               seed: int = 0, reward_weight: float = 1.0) -> dict:
    """PPO from the SFT model against reward model `rm_name` (scores normalised on SFT-era
    samples of rm_data), the value model initialised from it; held-out gold every few steps.
    With `target_kl`, β adapts (Ziegler et al.) by up to ±20% per `ppo_kl_horizon` iterations. With
    `ptx_coef`, PPO-ptx: the next-token loss on the SFT demonstrations joins every update.
    `reward_weight` scales the reward model's score (0: a control with the KL penalty and ptx only)."""
    steps = steps or profile.ppo_steps
    (policy, tok), (ref, _) = deps["sft"].load(dtype=torch.float32), deps["sft"].load(dtype=torch.float32)
    rm, _ = reward.load_reward_model(deps[rm_name].path)
    groups = reward.load_groups(deps["rm_data"].path)["train"][:100]
    fn = ppo.rm_reward_fn(rm, tok, reward.flatten(groups))
    score_fn = fn if reward_weight == 1.0 else (lambda p, r: reward_weight * fn(p, r))
    held_out_prompts = world.eval_prompts(n=profile.eval_prompts_per_family * len(world.FAMILIES), seed=7)

    def held_out(pol) -> evaluate.EvalResult:  # one sample per prompt, the same seed every time
        return evaluate.gold_eval(pol, tok, held_out_prompts, samples_per_prompt=1, seed=0,
                                  max_new_tokens=profile.max_new_tokens, profile=profile)
    start = held_out(policy)  # the SFT model: R(0) of the run

    def held_out_gold(step: int, pol) -> dict:
        if step % profile.ppo_eval_every and step != steps:
            return {}
        res = held_out(pol)
        gain, gain_se = evaluate.paired_difference(res, start)  # common random numbers: paired
        return {"heldout_gold": res.mean, "heldout_gold_se": res.se, "heldout_gain": gain, "heldout_gain_se": gain_se}
    horizon = profile.ppo_kl_horizon * profile.ppo_batch if target_kl is not None else ppo.PPOConfig.kl_horizon
    config = ppo.PPOConfig(steps=steps, batch_size=profile.ppo_batch, minibatch_size=profile.ppo_minibatch,
                           lr=profile.ppo_lr, beta=beta, target_kl=target_kl, kl_horizon=horizon,
                           max_new_tokens=profile.max_new_tokens, checkpoint_dir=str(partial_dir(name, profile)),
                           checkpoint_every=max(1, steps // 6), ptx_coef=ptx_coef, seed=seed)
    # InstructGPT mixed in pretraining text; the demonstrations are cheaper here and hold the
    # behaviour SFT taught, which is what a reward model's blind spots let PPO unlearn.
    ptx = train.sft_batches(tok, world.sft_demonstrations(profile.sft_demos), profile.ppo_minibatch,
                            profile.model.max_length, seed=1) if ptx_coef > 0 else None
    history = ppo.train_ppo(policy, ref, ppo.value_model_from(deps[rm_name].path), tok,
                            world.preference_prompts(4 * profile.rm_prompts, seed=5), score_fn, config,
                            gold_fn=ppo.gold_reward_fn, ptx_fn=ptx, callback=held_out_gold)
    models.save(policy, tok, out)
    shutil.rmtree(config.checkpoint_dir, ignore_errors=True)  # the saved policy supersedes it
    return {"history": history, "ppo": asdict(config), "reward_model": rm_name,
            "start": {"heldout_gold": start.mean, "heldout_gold_se": start.se},
            "rm_normalisation": {"mean": fn.mean, "std": fn.std}}


MAIN_PPO_FIELDS = PPO_FIELDS + ("ppo_beta", "ppo_target_kl", "ppo_kl_horizon", "rm_prompts")
PPO_SEEDS = 3
"""Seeds of chapter 3's main run and its no-ptx twin that bench/ppo_seeds.py compares (seed 0 is
the chapter's own run; the others are built only when asked for)."""


def seed_name(name: str, seed: int) -> str:
    """Zoo name of run `name` retrained with another seed (seed 0: the run itself)."""
    return name + (f"_seed{seed}" if seed else "")


def _register_main_ppo_runs() -> None:
    runs = {"ppo": ("3", True, "PPO-ptx against the chapter-2 reward model, β adapted to a target KL"),
            "ppo_no_ptx": ("1", False, "the same PPO run without ptx, to show what mixing in the demonstrations buys")}
    for base, (version, ptx, why) in runs.items():
        for seed in range(PPO_SEEDS):
            name = seed_name(base, seed)
            register(name, deps=("sft", "rm", "rm_data"), version=version,
                     fields=MAIN_PPO_FIELDS + (PTX_FIELDS if ptx else ()),
                     why=why + (f", seed {seed} (bench/ppo_seeds.py)" if seed else ""),
                     used_by=(lambda p: False) if seed else None)(
                lambda out, profile, deps, name=name, ptx=ptx, seed=seed: _build_ppo(
                    name, "rm", profile.ppo_beta, out, profile, deps, target_kl=profile.ppo_target_kl,
                    ptx_coef=profile.ppo_ptx_coef if ptx else 0.0, seed=seed))


_register_main_ppo_runs()


@register("ppo_ptx_only", deps=("sft", "rm", "rm_data"), version="1",
          fields=MAIN_PPO_FIELDS + PTX_FIELDS,
          why="the PPO-ptx run with the reward set to zero (bench/ppo_seeds.py: is the gain only more SFT?)",
          used_by=lambda p: False)
def build_ppo_ptx_only(out: Path, profile: Profile, deps: dict[str, Entry]) -> dict:
    return _build_ppo("ppo_ptx_only", "rm", profile.ppo_beta, out, profile, deps, target_kl=profile.ppo_target_kl,
                      ptx_coef=profile.ppo_ptx_coef, reward_weight=0.0)


@register("ppo_length_biased", deps=("sft", "rm_length_biased", "rm_data"), version="2",
          fields=PPO_FIELDS + ("ppo_beta", "rm_prompts"), why="PPO against the length-biased reward model")
def build_ppo_length_biased(out: Path, profile: Profile, deps: dict[str, Entry]) -> dict:
    return _build_ppo("ppo_length_biased", "rm_length_biased", profile.ppo_beta, out, profile, deps)


def ppo_beta_name(beta: float) -> str:
    """Zoo name of chapter 3's fixed-β PPO run (the β sweep; chapter 4's frontier reuses them)."""
    return f"ppo_beta{beta:g}"


def _register_beta_sweep() -> None:
    from .profiles import PROFILES
    for beta in sorted({b for p in PROFILES.values() for b in p.ppo_betas}):
        register(ppo_beta_name(beta), deps=("sft", "rm", "rm_data"), version="3",
                 fields=PPO_FIELDS + PTX_FIELDS + ("rm_prompts", "ppo_sweep_steps"),
                 why=f"PPO-ptx against the reward model with β fixed at {beta:g} (the β sweep)",
                 used_by=lambda p, beta=beta: beta in p.ppo_betas)(
            lambda out, profile, deps, beta=beta: _build_ppo(ppo_beta_name(beta), "rm", beta, out, profile, deps,
                                                             steps=profile.ppo_sweep_steps,
                                                             ptx_coef=profile.ppo_ptx_coef))


_register_beta_sweep()


DPO_FIELDS = ("dpo_steps", "dpo_batch", "dpo_lr", "dpo_min_gap", "eval_prompts_per_family",
              "eval_samples_per_prompt", "max_new_tokens", "gen_batch")
FAMILY = {"ipo": {"beta": 0.1}, "simpo": {"beta": 2.0, "gamma": 1.0}, "orpo": {"beta": 0.1}, "kto": {"beta": 0.1}}
"""Chapter 4's family runs and their hyperparameters (β is IPO's τ and ORPO's λ)."""


def policy_report(policy, ref, tok, profile: Profile | ProfileView) -> dict:
    """Held-out gold (mean, se, paired gain over the SFT model with common random numbers) and
    KL to `ref` (the SFT model), with the book's evaluation protocol."""
    res, base = evaluate.gold_eval(policy, tok, profile=profile), evaluate.evaluate_entry("sft", profile)
    gain, gain_se = evaluate.paired_difference(res, base)
    kl, kl_se = evaluate.kl_to_ref(policy, ref, tok, profile=profile)
    return {"gold": res.mean, "gold_se": res.se, "gain": gain, "gain_se": gain_se, "kl": kl, "kl_se": kl_se,
            "by_family": res.by_family()}


def entry_report(name: str, ref, tok, profile: Profile) -> dict:
    """`policy_report` of zoo entry `name` against `ref`: the one its build stored, else computed
    once and cached, so a chapter and a benchmark read the same numbers on every rerun."""
    from . import zoo
    entry = zoo.get(name, profile)
    if "report" in entry.meta:
        return entry.meta["report"]
    view = evaluate.protocol_view(profile, evaluate.EVAL_FIELDS, "entry_report")
    return zoo.cached_run(f"report-{name}", evaluate.cache_config(entry, view, evaluate.EVAL_FIELDS),
                          lambda: policy_report(entry.load(dtype=torch.float32)[0], ref, tok, view), view.name)


def _build_preference(name: str, method: str, out: Path, profile: Profile, deps: dict[str, Entry],
                      min_gap: int | None = None, seed: int = 0, **kw) -> dict:
    """A chapter-4 run from the SFT model on the typical labeler's rankings of rm_data, on pairs at
    least `min_gap` (default: the profile's `dpo_min_gap`) places apart in each ranking; `seed`
    picks the subset of pairs and their order."""
    from . import dpo
    min_gap = profile.dpo_min_gap if min_gap is None else min_gap
    (policy, tok), (ref, _) = deps["sft"].load(dtype=torch.float32), deps["sft"].load(dtype=torch.float32)
    # only pairs far apart in the ranking: their labels agree with gold far more often (chapter 4, §5)
    pairs = dpo.preference_pairs(reward.rank_groups(reward.load_groups(deps["rm_data"].path)["train"],
                                                    world.Labeler(seed=0)), min_gap=min_gap)
    # one pass over a random subset as large as the run uses: the reference pass costs as much
    # as training, so it is spent only on pairs the run will see
    pairs = dpo.subset(pairs, min(len(pairs), profile.dpo_steps * profile.dpo_batch), seed)
    ref_lp = dpo.reference_logps(ref, tok, pairs, with_mismatched=method == "kto")
    config = train.TrainConfig(steps=profile.dpo_steps, lr=profile.dpo_lr, warmup_steps=max(1, profile.dpo_steps // 10),
                               desc=f"{name} ({profile.name})", checkpoint_every=max(1, profile.dpo_steps // 3),
                               checkpoint_dir=str(partial_dir(name, profile)), log_every=5, seed=seed)
    history = dpo.train_preferences(policy, tok, pairs, ref_lp, config, method=method,
                                    batch_size=profile.dpo_batch, **kw)
    models.save(policy, tok, out)
    shutil.rmtree(config.checkpoint_dir, ignore_errors=True)
    return {"history": history, "method": method, "hyper": kw, "pairs": len(pairs), "min_gap": min_gap, "seed": seed,
            "report": policy_report(policy, ref, tok, profile)}


def dpo_beta_name(beta: float) -> str:
    """Zoo name of chapter 4's DPO run with this β."""
    return f"dpo_beta{beta:g}"


def pair_choice_names(seed: int) -> dict[str, str]:
    """Zoo names of chapter 4's DPO (β = 0.1) runs with this seed: on the profile's far-apart pairs
    (`far`; seed 0 is the β sweep's own run) and on all pairs (`all`)."""
    return {"far": seed_name(dpo_beta_name(0.1), seed), "all": seed_name("dpo_all_pairs", seed)}


def _register_preference_runs() -> None:
    from .profiles import PROFILES
    for beta in sorted({b for p in PROFILES.values() for b in p.dpo_betas}):
        register(dpo_beta_name(beta), deps=("sft", "rm_data"), version="2", fields=DPO_FIELDS,
                 why=f"DPO with β = {beta:g}", used_by=lambda p, beta=beta: beta in p.dpo_betas)(
            lambda out, profile, deps, beta=beta: _build_preference(dpo_beta_name(beta), "dpo", out, profile,
                                                                    deps, beta=beta))
    for seed in range(max(p.dpo_seeds for p in PROFILES.values())):
        for kind, name in pair_choice_names(seed).items():
            if name == dpo_beta_name(0.1):
                continue  # the β sweep's own run
            gap = 1 if kind == "all" else None
            register(name, deps=("sft", "rm_data"), version="1", fields=DPO_FIELDS,
                     why=f"DPO with β = 0.1, {'all C(K, 2)' if gap == 1 else 'far-apart'} pairs, seed {seed} "
                         "(chapter 4: which pairs, and how much one run varies)",
                     used_by=lambda p, seed=seed: seed < p.dpo_seeds)(
                lambda out, profile, deps, name=name, gap=gap, seed=seed: _build_preference(
                    name, "dpo", out, profile, deps, min_gap=gap, seed=seed, beta=0.1))
    for method, kw in FAMILY.items():
        register(method, deps=("sft", "rm_data"), version="2", fields=DPO_FIELDS, why=f"{method.upper()} (chapter 4)")(
            lambda out, profile, deps, method=method, kw=kw: _build_preference(method, method, out, profile, deps, **kw))


_register_preference_runs()
