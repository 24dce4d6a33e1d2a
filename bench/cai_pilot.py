"""Chapter 5's pilot: Constitutional AI end to end in one JSON line (helpful-only → SL-CAI → RL-CAI).

    python bench/cai_pilot.py [--profile ci|cpu|gpu] [--rung policy|small|large] [--reviser helpful-only|base]
                              [--rounds R] [--samples S]

1. helpful-only SFT: the base model (at `--rung`) fine-tuned on the SFT demonstrations with every
   harmful request answered compliantly (`world.helpful_only_demonstration`), in memory;
2. critique → revision (`cai.critique_revise`, harmlessness principle) of S helpful-only answers
   to each red-team prompt (the training split's harmful requests), R rounds, by `--reviser`;
3. SL-CAI: the base model fine-tuned on every round's revisions plus helpful-only samples on the
   other training prompts (benign look-alikes four times each);
4. RL-CAI: DPO (β = 0.1, the profile's `dpo` steps) from SL-CAI on pairs of its own samples on the
   red-team prompts labelled by the pretrained model (`cai.ai_preferences`, both orders) and pairs
   on the other prompts labelled by the typical simulated labeler.
Each model's held-out harmful compliance and over-refusal (the protocol's samples) and gold reward;
the share of held-out harmful / benign requests the SFT model refuses (can it tell them apart?).
Prints one JSON line on stdout (build messages go to stderr).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import random
import sys

import offline  # noqa: E402,F401  (first: the Hugging Face offline variables, before transformers loads)


def fine_tune(entry, pairs, profile, what):
    """The base model `entry` fine-tuned on (prompt, response) pairs with the profile's SFT settings."""
    import torch
    from alignlab import train
    from alignlab.recipes.pretraining import sft_setup
    model, tok = entry.load(dtype=torch.float32)
    batches, config = sft_setup(profile, tok, pairs, what)
    train.train(model, batches, train.lm_loss, config)
    return model.eval()


def rates(model, tok, profile) -> dict:
    from alignlab import evaluate
    res = evaluate.gold_eval(model, tok, profile=profile)
    r = res.rates()
    return {"gold": round(res.mean, 4), "gold_se": round(res.se, 4),
            **{k: [round(r[k][0], 3), round(r[k][1], 3), r[k][2]] for k in ("harmful_compliance", "over_refusal")}}


def refusal_gap(model, tok, profile) -> dict:
    """The share of held-out harmful and benign requests (every one, each phrasing) the model refuses."""
    from alignlab import evaluate, world
    from alignlab.world import harmful as requests
    held = sorted({p for p in world.eval_prompts(n=4000) if world.parse_prompt(p).family == "harmful"})
    res = evaluate.sample(model, tok, held, profile.eval.samples_per_prompt, profile=profile)
    harmful = [world.parse_prompt(p).data["harmful"] for p in res.prompts]
    refused = [requests.REFUSAL.lower() in y.lower() for y in res.texts]
    share = lambda want: round(sum(r for r, h in zip(refused, harmful) if h == want) / max(1, harmful.count(want)), 3)
    return {"harmful": share(True), "benign": share(False), "samples": len(harmful)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--rung", default="policy", help="model size of every model (policy, small, large)")
    parser.add_argument("--reviser", default="helpful-only", choices=["helpful-only", "base"])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--samples", type=int, default=4, help="helpful-only answers per red-team prompt")
    args = parser.parse_args()
    import torch
    from alignlab import cai, dpo, evaluate, profiles, train, world, zoo
    profile, at = profiles.get_profile(args.profile), "" if args.rung == "policy" else f"@{args.rung}"
    with contextlib.redirect_stdout(sys.stderr):
        base_entry, sft_entry = zoo.get("base" + at, profile), zoo.get("sft" + at, profile)
        base, tok = base_entry.load(dtype=torch.float32)
        demos = [(p, world.helpful_only_demonstration(p)) for p, _ in world.sft_demonstrations(profile.sft.demos)]
        helpful_only = fine_tune(base_entry, demos, profile, "helpful-only SFT")
        harmless = [p for p in world.CONSTITUTION if p.name == "harmless"]
        red = [p for p in world.train_prompts("harmful") if world.parse_prompt(p).data["harmful"] for _ in range(args.samples)]
        answers = evaluate.sample(helpful_only, tok, red, 1, seed=1, profile=profile).texts
        rounds = cai.critique_revise(helpful_only if args.reviser == "helpful-only" else base, tok, red, answers,
                                     rounds=args.rounds, pool=harmless)
        benign = [p for p in world.train_prompts("harmful") if not world.parse_prompt(p).data["harmful"]]
        others = [p for f in world.FAMILIES for p in world.train_prompts(f) if f != "harmful"]
        random.Random(0).shuffle(others)
        others = others[:profile.sft.demos] + [p for p in benign for _ in range(4)]
        helpful = list(zip(others, evaluate.sample(helpful_only, tok, others, 1, seed=4, profile=profile).texts))
        sl_cai = fine_tune(base_entry, cai.sl_cai_data(rounds, red, helpful), profile, "SL-CAI")
        comps = []
        for seed in range(6):
            s = evaluate.sample(sl_cai, tok, red[::args.samples], 2, seed=10 + seed, profile=profile).texts
            comps += [(p, s[2 * i], s[2 * i + 1]) for i, p in enumerate(red[::args.samples]) if s[2 * i] != s[2 * i + 1]]
        labels = cai.ai_preferences(base, tok, comps, harmless * len(comps))
        s = evaluate.sample(sl_cai, tok, others, 2, seed=30, profile=profile).texts
        labeler = world.Labeler(seed=0)
        help_pairs = [(p, a, b) if labeler.compare(p, a, b) == 0 else (p, b, a)
                      for i, p in enumerate(others) for a, b in [(s[2 * i], s[2 * i + 1])] if a != b]
        pairs = cai.label_pairs(comps, labels["prefers_a"]) + help_pairs
        rl_cai, _ = base_entry.load(dtype=torch.float32)
        rl_cai.load_state_dict(sl_cai.state_dict())
        dpo.train_preferences(rl_cai, tok, pairs, dpo.reference_logps(sl_cai, tok, pairs),
                              train.TrainConfig(steps=profile.dpo.steps, lr=profile.dpo.lr,
                                                warmup_steps=max(1, profile.dpo.steps // 10), desc="RL-CAI (DPO)"),
                              beta=0.1, batch_size=profile.dpo.batch)
        sft, _ = sft_entry.load(dtype=torch.float32)
        models = {"sft": sft, "helpful_only": helpful_only, "sl_cai": sl_cai, "rl_cai": rl_cai.eval()}
        row = {"bench": "cai_pilot", "profile": profile.name, "rung": args.rung, "reviser": args.reviser,
               "date": datetime.date.today().isoformat(), "red_team_answers": len(red),
               "harmless_after_round": [round(sum(world.gold_components(p, y)["harmless"] > 0
                                                  for p, y in zip(red, r.revisions)) / len(red), 3) for r in rounds],
               "ai_label_gold_agreement": [round(x, 3) for x in cai.gold_agreement(comps, labels["prefers_a"])[:2]],
               "ai_label_position_bias": round(float(labels["position_bias"]), 3),
               "pairs": {"ai_harmlessness": len(pairs) - len(help_pairs), "labeler_helpfulness": len(help_pairs)},
               "rl_cai_kl": round(evaluate.kl_to_ref(rl_cai, sl_cai, tok, profile=profile)[0], 3),
               "sft_refusal_held_out": refusal_gap(sft, tok, profile),
               **{name: rates(m, tok, profile) for name, m in models.items()}}
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
