"""Two processes (CPU, gloo) train exactly like one process that accumulates the same two
micro-batches per step. `accelerate launch` needs mpirun for several CPU processes, so the test
starts them with torchrun, which `accelerate.Accelerator` picks up the same way."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one_process_with_accumulation(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    single, multi = tmp_path / "single.pt", tmp_path / "multi.pt"
    subprocess.run([sys.executable, str(HERE / "accelerate_worker.py"), str(single), "2"],
                   check=True, env=env, timeout=300)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                          str(HERE / "accelerate_worker.py"), str(multi), "1"],
                         env=env, timeout=300, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    a, b = torch.load(single), torch.load(multi)
    assert b["world_size"] == 2 and a["world_size"] == 1
    exits = [(tmp_path / f"multi.pt.exit-{rank}").read_text() for rank in (0, 1)]
    assert exits == ["still in group: False"] * 2, "leave the process group before shutdown"
    assert [h["loss"] for h in a["history"]] == pytest.approx([h["loss"] for h in b["history"]], rel=1e-5)
    for pa, pb in zip(a["params"], b["params"]):
        assert torch.allclose(pa, pb, atol=1e-6)


@pytest.mark.slow
def test_ppo_under_accelerate_launch_keeps_processes_in_sync(tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` with no GPU visible: accelerate starts the
    processes with torchrun and the trainer's Accelerator(cpu=True) joins them over gloo (its
    `--cpu` flag would instead want mpirun). Both processes sample different prompts, yet DDP
    keeps their weights identical and the logged (globally reduced) statistics agree; a run
    resumed from a checkpoint ends where the uninterrupted one did."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent), "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                          "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                          "--dynamo_backend", "no", "--main_process_port", str(free_port()),
                          str(HERE / "ppo_worker.py"), str(tmp_path / "ppo")],
                         env=env, timeout=300, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    a, b = torch.load(tmp_path / "ppo.0"), torch.load(tmp_path / "ppo.1")
    assert a["world_size"] == b["world_size"] == 2
    assert [h["score"] for h in a["history"]] == pytest.approx([h["score"] for h in b["history"]])
    assert a["history"][-1]["beta"] == b["history"][-1]["beta"]
    for pa, pb in zip(a["params"], b["params"]):
        assert torch.equal(pa, pb)
    # stopped after a checkpoint and resumed, with each process's random state restored (its
    # rewards draw on the global generator): the same weights as the run left alone
    assert a["rng_states"] == b["rng_states"] == 2
    for pa, pb in zip(a["params"], a["resumed"]):
        assert torch.allclose(pa, pb, atol=1e-6), (pa - pb).abs().max()
