"""How far the reward model is from the Bayes rate, and why: chapter 2's numbers in one JSON line.

    python bench/rm_gap.py [--profile ci|cpu|gpu] [--rm-epochs E] [--rm-prompts N] [--pretrain-steps S]

Builds (or reuses) the profile's zoo entries base, sft, rm_data, rm and rm_noiseless, then measures
on the held-out comparisons: the reward model's expected agreement with the typical labeler next
to the Bayes rate E[max(p, 1 − p)], its accuracy against gold, the same for the reward model
trained on noise-free rankings (label noise vs model limits), per-family expected agreement, and
the claim probe (AUC at telling true from false sycophancy claims) of the base and SFT language
models and both reward models — whether the backbone can judge what the reward should pay for.
`--rm-epochs`, `--rm-prompts` and `--pretrain-steps` override the profile's (more training, more
comparisons, a longer-pretrained backbone): the levers to try before blaming the model size; their
entries are cached under their own keys.
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


def _accuracy(acc: dict) -> dict:
    (m, se), (g, gse) = acc["labeler_expected"], acc["gold"]
    return {"labeler_expected": round(m, 4), "labeler_expected_se": round(se, 4), "gold": round(g, 4),
            "gold_se": round(gse, 4), "gap_to_bayes": round(acc["labeler_bayes"][0] - m, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--rm-epochs", type=int, help="passes over the ranked groups (default: the profile's)")
    parser.add_argument("--rm-prompts", type=int, help="training prompts of rm_data (default: the profile's)")
    parser.add_argument("--pretrain-steps", type=int, help="pretraining steps of the base model (default: the profile's)")
    args = parser.parse_args()
    import torch
    from alignlab import evaluate, models, profiles, reward, world, zoo
    profile = profiles.get_profile(args.profile)
    rm = {k: v for k, v in (("epochs", args.rm_epochs), ("prompts", args.rm_prompts)) if v}
    pretrain = {"steps": args.pretrain_steps} if args.pretrain_steps else {}
    profile = profile.replace(rm=rm, pretrain=pretrain)
    with contextlib.redirect_stdout(sys.stderr):  # build messages; stdout carries only JSON
        entries = {name: zoo.get(name, profile) for name in ("base", "sft", "rm_data", "rm", "rm_noiseless")}
    data, labeler = reward.load_groups(entries["rm_data"].path), world.Labeler(seed=0)
    lms = {name: entries[name].load(dtype=torch.float32)[0] for name in ("base", "sft")}
    rms = {name: reward.load_reward_model(entries[name].path) for name in ("rm", "rm_noiseless")}
    tok = rms["rm"][1]
    probes = evaluate.claim_probes(lms | {name: m for name, (m, _) in rms.items()}, tok)
    accs = {name: reward.pair_accuracy(m, tok, data["test"], labeler, seed=1) for name, (m, _) in rms.items()}
    device = next(iter(lms.values())).device
    row = {"bench": "rm_gap", "profile": profile.name, "pretrain_steps": profile.pretrain.steps,
           "rm_epochs": profile.rm.epochs, "rm_prompts": profile.rm.prompts,
           "date": datetime.date.today().isoformat(),
           "device": torch.cuda.get_device_name(device) if device.type == "cuda"
           else f"cpu: {platform.machine()}, {torch.get_num_threads()} threads",
           "n_params": models.n_params(lms["sft"]), "test_prompts": accs["rm"]["n_prompts"],
           "test_pairs": accs["rm"]["n_pairs"], "train_pairs": entries["rm"].meta["pairs"],
           "bayes": round(accs["rm"]["labeler_bayes"][0], 4),
           **{name: _accuracy(a) for name, a in accs.items()},
           "by_family": {k: {"rm": round(v["rm"], 3), "bayes": round(v["bayes"], 3), "n": v["n"]}
                         for k, v in reward.accuracy_breakdown(rms["rm"][0], tok, data["test"], labeler).items()
                         if k in world.FAMILIES},
           "claim_auc": {name: {k: {"auc": round(r["auc"], 3), "n": r["n"]} for k, r in res.items()}
                         for name, res in probes.items()},
           "build_seconds": {name: e.meta.get("build_seconds") for name, e in entries.items()}}
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
