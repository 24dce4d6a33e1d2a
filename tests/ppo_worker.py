"""Run by tests/test_distributed.py under `accelerate launch`: a few PPO iterations on tiny
models, then the same run interrupted after a checkpoint and resumed; every process saves its
parameters from both and the checkpoint's random states. Not a test module itself."""
from __future__ import annotations

import copy
import sys
import tempfile

import torch

from alignlab import models, ppo, reward, train, world
from alignlab.profiles import ModelSize

TINY = ModelSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_length=96)


def noisy_gold(prompts: list[str], responses: list[str]) -> torch.Tensor:
    """The gold reward plus noise from the global generator; process r draws r numbers more, so
    the processes' random states differ and a resumed run must give each its own back."""
    from accelerate import PartialState
    n = len(responses)
    return ppo.gold_reward_fn(prompts, responses) + torch.rand(n + PartialState().process_index)[:n]


def interrupt(step: int, _) -> dict:
    if step == 2:
        raise KeyboardInterrupt
    return {}


def main(out: str) -> None:
    torch.set_num_threads(1)
    tok = models.train_tokenizer(world.pretraining_corpus(300), 512)
    lm = models.build_model(TINY, tok, seed=0).eval()
    with tempfile.TemporaryDirectory() as d:
        models.save(lm, tok, d)
        rm = reward.reward_model_from(d, device="cpu")
        rm.save_pretrained(d)
        vm = ppo.value_model_from(d, device="cpu")
    config = ppo.PPOConfig(steps=3, batch_size=4, minibatch_size=2, ppo_epochs=1, max_new_tokens=8,
                           lr=1e-3, progress=False, target_kl=1.0)
    prompts, ref, runs = world.preference_prompts(16), copy.deepcopy(lm), {}  # lm stays trainable
    policy, value = copy.deepcopy(lm), copy.deepcopy(vm)
    hist = ppo.train_ppo(policy, ref, value, tok, prompts, noisy_gold, config, gold_fn=ppo.gold_reward_fn)
    runs["whole"] = [p.detach().cpu() for p in list(policy.parameters()) + list(value.parameters())]
    ckpt = ppo.PPOConfig(**{**vars(config), "checkpoint_dir": f"{out}.ckpt", "checkpoint_every": 1})
    try:  # stopped after its checkpoint at iteration 1, then resumed from it
        ppo.train_ppo(copy.deepcopy(lm), ref, copy.deepcopy(vm), tok, prompts, noisy_gold, ckpt, callback=interrupt)
    except KeyboardInterrupt:
        pass
    rng = train.load_checkpoint(ckpt.checkpoint_dir)["rng"]
    policy, value = copy.deepcopy(lm), copy.deepcopy(vm)
    ppo.train_ppo(policy, ref, value, tok, prompts, noisy_gold, ckpt)
    runs["resumed"] = [p.detach().cpu() for p in list(policy.parameters()) + list(value.parameters())]
    from accelerate import PartialState
    state = PartialState()
    torch.save({"params": runs["whole"], "resumed": runs["resumed"], "rng_states": len(rng), "history": hist,
                "world_size": state.num_processes}, f"{out}.{state.process_index}")


if __name__ == "__main__":
    main(sys.argv[1])
