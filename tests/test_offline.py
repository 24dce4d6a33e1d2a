"""Nothing downloads at run time: the chapters' code paths run with every socket blocked."""
from __future__ import annotations

import socket

import pytest

from alignlab import evaluate, rollout, world, zoo


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise NetworkBlocked(f"network access attempted: {args[:2]}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_the_blocker_blocks(no_network):
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("example.org", 80))


def test_chapter_code_runs_offline(no_network, alignlab_home, tiny_profile, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # prove it, rather than ask for it
    model, tok = zoo.get("sft", tiny_profile).load(device="cpu")
    ro = rollout.generate(model, tok, world.eval_prompts(n=5), max_new_tokens=8)
    assert len(ro.texts) == 5
    assert evaluate.evaluate_entry("base", tiny_profile).n > 0


def test_reward_model_and_ppo_chapters_run_offline(no_network, alignlab_home, tiny_profile, monkeypatch, tmp_path):
    """Chapters 2-3: comparison data, reward models (ours and TRL's trainer), PPO — no network."""
    from alignlab import reward
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    prof = tiny_profile.replace(ppo={"steps": 1, "batch": 4, "minibatch": 4})
    assert zoo.get("ppo", prof).meta["history"]
    rm, tok = reward.load_reward_model(zoo.get("rm", prof).path, device="cpu")
    groups = reward.rank_groups(reward.load_groups(zoo.get("rm_data", prof).path)["train"][:2], world.Labeler())
    trainer = reward.trl_reward_trainer(rm, tok, groups, tmp_path / "trl")
    assert len(trainer.train_dataset) == reward.n_pairs(groups)
