"""The on-policy loop with a method other than PPO: a policy-only REINFORCE with a batch-mean
baseline (the shape of GRPO: no value model) plugs in through `online.Method`, trains, and an
interrupted run resumes to the same weights even when its rewards draw on the global generators."""
from __future__ import annotations

import copy
import random
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from alignlab import models, online, world
from alignlab.ppo import full_sequences, response_logprobs_values
from alignlab.rollout import generate
from alignlab.train import STATE_FILE

from conftest import TINY

PROMPTS = world.preference_prompts(8)


def noisy_count_e(responses: list[str]) -> torch.Tensor:
    """Letters 'e' plus noise from torch's, numpy's and python's global generators."""
    noise = torch.rand(len(responses)) + torch.from_numpy(np.random.rand(len(responses))).float() + random.random()
    return torch.tensor([float(r.count("e")) for r in responses]) + noise


@dataclass
class Experience:
    ids: torch.Tensor  # (B, L + T)
    attn: torch.Tensor  # (B, L + T)
    L: int
    tokens: torch.Tensor  # (B, T)
    mask: torch.Tensor  # (B, T)
    scores: torch.Tensor  # (B,)
    advantages: torch.Tensor  # (B,)

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class Reinforce(online.Method):
    """loss = −Σ_t (s − mean s) log π(y_t) / tokens: the whole method a test needs."""

    policy: torch.nn.Module
    tokenizer: object
    name = "REINFORCE"

    def models(self) -> online.Models:
        return {"policy": self.policy}

    @torch.no_grad()
    def experience(self, acc, models, prompts, seed):
        ro = generate(acc.unwrap_model(models["policy"]), self.tokenizer, prompts, max_new_tokens=8, seed=seed)
        ids, attn, L = full_sequences(ro.prompt_ids, ro.tokens, ro.mask, self.tokenizer.pad_token_id)
        scores = noisy_count_e(ro.texts)
        return Experience(ids, attn, L, ro.tokens, ro.mask.float(), scores, scores - scores.mean())

    def loss(self, acc, models, exp, idx, num_tokens, step):
        policy = models["policy"]
        logp, _ = response_logprobs_values(policy, None, exp.ids[idx], exp.attn[idx], exp.L, exp.tokens[idx])
        loss = -(exp.advantages[idx, None] * logp * exp.mask[idx]).sum() / num_tokens
        return loss, {"pg_loss": loss.detach()}

    def stats(self, acc, exp):
        return {"score": exp.scores.mean(), "length": exp.mask.sum(-1).mean()}


CONFIG = online.OnlineConfig(steps=3, batch_size=8, minibatch_size=4, ppo_epochs=2, lr=1e-2, progress=False)


def test_a_method_without_a_value_model_trains_through_the_loop(tok):
    policy = models.build_model(TINY, tok, seed=0)
    before = copy.deepcopy(policy.state_dict())
    history = online.train_online(Reinforce(policy, tok), PROMPTS, CONFIG)
    assert [list(h) for h in history] == [["step", "score", "length", "pg_loss", "seconds"]] * 3
    assert any(not torch.equal(a, before[k]) for k, a in policy.state_dict().items())
    assert not policy.training  # handed back in eval mode


def test_an_interrupted_run_resumes_with_the_random_state_of_its_checkpoint(tok, tmp_path):
    init = models.build_model(TINY, tok, seed=0)
    whole = copy.deepcopy(init)
    full = online.train_online(Reinforce(whole, tok), PROMPTS, CONFIG)

    def interrupt(step, _):
        if step == 2:
            raise KeyboardInterrupt
        return {}
    ckpt = online.OnlineConfig(**{**vars(CONFIG), "checkpoint_dir": str(tmp_path), "checkpoint_every": 1})
    with pytest.raises(KeyboardInterrupt):
        online.train_online(Reinforce(copy.deepcopy(init), tok), PROMPTS, ckpt, callback=interrupt)
    state = torch.load(tmp_path / STATE_FILE, weights_only=False)
    assert state["step"] == 1 and set(state["rng"][0]) >= {"python", "numpy", "torch"}
    resumed = copy.deepcopy(init)
    torch.manual_seed(5), np.random.seed(5), random.seed(5)  # a fresh process's state: overwritten
    history = online.train_online(Reinforce(resumed, tok), PROMPTS, ckpt)
    assert [h["score"] for h in history] == pytest.approx([h["score"] for h in full], abs=1e-6)
    for a, b in zip(resumed.parameters(), whole.parameters()):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()


def test_global_stats_average_tensors_and_keep_floats():
    from alignlab.train import accelerator
    out = online.global_stats(accelerator(), {"score": torch.tensor(2.0), "beta": 0.1})
    assert out == {"score": 2.0, "beta": 0.1} and list(out) == ["score", "beta"]


def test_prompt_batches_are_deterministic_per_step_and_rank():
    a = online.prompt_batch(PROMPTS, 6, step=3, rank=0, seed=1)
    assert a == online.prompt_batch(PROMPTS, 6, step=3, rank=0, seed=1) and set(a) <= set(PROMPTS)
    assert a != online.prompt_batch(PROMPTS, 6, step=3, rank=1, seed=1)
