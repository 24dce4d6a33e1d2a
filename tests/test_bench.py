"""The throughput benchmark runs end to end and prints one JSON line (no timing asserts)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_throughput_prints_json():
    env = {**os.environ, "ALIGNLAB_PROFILE": "ci", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "bench/train_throughput.py", "--profile", "ci", "--steps", "5"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [l for l in out.stdout.splitlines() if l.startswith("{\"bench\"")]
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert row["bench"] == "train_throughput" and row["profile"] == "ci"
    assert row["alignlab_tokens_per_s"] > 0 and row["trl_tokens_per_s"] > 0
    assert math.isfinite(row["alignlab_final_loss"]) and math.isfinite(row["trl_final_loss"])
