"""Two processes (accelerate, CPU, gloo) train exactly like one process that accumulates the
same two micro-batches per step."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
def test_two_processes_equal_one_process_with_accumulation(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    single, multi = tmp_path / "single.pt", tmp_path / "multi.pt"
    subprocess.run([sys.executable, str(HERE / "accelerate_worker.py"), str(single), "2"],
                   check=True, env=env, timeout=300)
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    out = subprocess.run([launcher, "launch", "--num_processes", "2", "--cpu", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no",
                          str(HERE / "accelerate_worker.py"), str(multi), "1"],
                         env=env, timeout=300, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    a, b = torch.load(single), torch.load(multi)
    assert [h["loss"] for h in a["history"]] == pytest.approx([h["loss"] for h in b["history"]], rel=1e-4)
    for pa, pb in zip(a["params"], b["params"]):
        assert torch.allclose(pa, pb, atol=1e-5)
