"""Run by tests/test_distributed.py under `accelerate launch`: a few PPO iterations on tiny
models, then every process saves a digest of its parameters. Not a test module itself."""
from __future__ import annotations

import copy
import sys
import tempfile

import torch

from alignlab import models, ppo, reward, world
from alignlab.profiles import ModelSize

TINY = ModelSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_length=96)


def main(out: str) -> None:
    torch.set_num_threads(1)
    tok = models.train_tokenizer(world.pretraining_corpus(300), 512)
    lm = models.build_model(TINY, tok, seed=0).eval()
    with tempfile.TemporaryDirectory() as d:
        models.save(lm, tok, d)
        rm = reward.reward_model_from(d, device="cpu")
        rm.save_pretrained(d)
        vm = ppo.value_model_from(d, device="cpu")
    config = ppo.PPOConfig(steps=2, batch_size=4, minibatch_size=2, ppo_epochs=1, max_new_tokens=8,
                           lr=1e-3, progress=False, target_kl=1.0)
    policy = copy.deepcopy(lm)
    hist = ppo.train_ppo(policy, lm, vm, tok, world.preference_prompts(16), ppo.gold_reward_fn, config,
                         gold_fn=ppo.gold_reward_fn)
    from accelerate import PartialState
    state = PartialState()
    torch.save({"params": [p.detach().cpu() for p in list(policy.parameters()) + list(vm.parameters())],
                "history": hist, "world_size": state.num_processes}, f"{out}.{state.process_index}")


if __name__ == "__main__":
    main(sys.argv[1])
