"""The benchmarks run end to end and each prints one JSON line. Nothing here asserts a time:
speed is read from bench/, on a known machine, never judged by a test."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from alignlab import profiles, world

ROOT = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str, env: dict | None = None) -> dict:
    """Run a benchmark on the ci profile; it must exit 0 and print exactly one JSON line on stdout."""
    # One thread: under `pytest -n 2` another worker shares the two cores (see conftest.py).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    cmd = [sys.executable, f"bench/{script}", "--profile", "ci", *args]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout[-3000:]  # everything else goes to stderr
    return json.loads(lines[0])


@pytest.mark.slow
def test_train_throughput_prints_one_json_line():
    row = run_bench("train_throughput.py", "--steps", "4", "--device", "cpu")
    ci = profiles.get_profile("ci")
    assert row["bench"] == "train_throughput" and row["profile"] == "ci"
    assert (row["steps"], row["seq_len"], row["batch"]) == (4, ci.policy.max_length, ci.pretrain.batch)
    assert row["n_params"] > 0 and row["device"].startswith("cpu")
    assert row["alignlab_tokens_per_s"] > 0 and row["trl_tokens_per_s"] > 0 and row["ratio"] > 0
    assert math.isfinite(row["alignlab_final_loss"]) and math.isfinite(row["trl_final_loss"])
    for key in ("date", "torch", "transformers", "trl"):
        assert row[key]


@pytest.mark.slow
def test_rollout_bench_prints_one_json_line():
    row = run_bench("rollout.py", "--batch", "16", "--new-tokens", "8", "--steps", "1", "--warmup", "1")
    assert row["bench"] == "rollout" and row["batch"] == 16 and row["new_tokens"] == 8
    for key in ("alignlab_new_tokens_per_s", "alignlab_static_new_tokens_per_s", "hf_generate_new_tokens_per_s",
                "ppo_completions_per_s", "grpo_completions_per_s", "generate_speedup", "rl_step_speedup"):
        assert row[key] > 0, key
    assert 0 < row["alignlab_new_tokens"] <= 16 * 8


@pytest.mark.slow
def test_dpo_bench_prints_one_json_line():
    row = run_bench("dpo.py", "--steps", "4", "--warmup", "1", "--batch", "4")
    assert row["bench"] == "dpo" and row["batch_pairs"] == 4 and row["steps"] == 4
    assert row["alignlab_pairs_per_s"] > 0 and row["trl_pairs_per_s"] > 0 and row["ratio"] > 0


@pytest.mark.slow
def test_grpo_bench_prints_one_json_line():
    row = run_bench("grpo.py", "--prompts", "2", "--new-tokens", "8", "--steps", "1", "--warmup", "1")
    assert row["bench"] == "grpo" and (row["prompts"], row["group"], row["new_tokens"], row["minibatch"]) == (2, 8, 8, 16)
    assert row["alignlab_completions_per_s"] > 0 and row["trl_completions_per_s"] > 0 and row["ratio"] > 0
    assert 0 < row["mean_length_alignlab"] <= 8 and 0 < row["mean_length_trl"] <= 8
    for side in ("alignlab", "trl"):
        phases = row[f"{side}_seconds_per_rollout"]
        assert phases["sampling"] > 0 and phases["loss_forward"] > 0 and phases["backward"] > 0, side
    assert row["torch_threads"] >= 1 and row["date"] and row["trl"]


@pytest.mark.slow
def test_ppo_seeds_prints_a_line_per_run_and_a_summary():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "bench/ppo_seeds.py", "--profile", "ci", "--seeds", "2", "--variants", "ppo_no_ptx"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    runs, summary = [json.loads(x) for x in out.stdout.strip().splitlines()[:-1]], json.loads(
        out.stdout.strip().splitlines()[-1])
    assert [r["run"] for r in runs] == ["ppo_no_ptx", "ppo_no_ptx_seed1"]  # stdout: JSON only
    assert all(math.isfinite(r["gain"]) and r["gain_se"] > 0 and r["kl"] >= 0 for r in runs)
    assert summary["variant"] == "ppo_no_ptx" and summary["seeds"] == 2
    assert summary["gain_mean"] == pytest.approx(sum(r["gain"] for r in runs) / 2, abs=1e-3)


@pytest.mark.slow
def test_rm_gap_prints_one_json_line(tmp_path):
    """Builds the ci zoo's reward models in an empty home (seconds) and reports chapter 2's gap."""
    row = run_bench("rm_gap.py", env={"ALIGNLAB_HOME": str(tmp_path / "home")})
    assert row["bench"] == "rm_gap" and row["profile"] == "ci" and row["test_pairs"] > 0
    ci = profiles.get_profile("ci")
    assert (row["pretrain_steps"], row["rm_epochs"], row["rm_prompts"]) == (ci.pretrain.steps, ci.rm.epochs, ci.rm.prompts)
    for name in ("rm", "rm_noiseless"):
        r = row[name]
        assert 0 <= r["labeler_expected"] <= row["bayes"] <= 1 and 0 <= r["gold"] <= 1
        assert r["gap_to_bayes"] == pytest.approx(row["bayes"] - r["labeler_expected"], abs=2e-4)
    assert set(row["by_family"]) <= set(world.FAMILIES) and set(row["claim_auc"]) == {"base", "sft", "rm", "rm_noiseless"}
    assert all(0 <= r["auc"] <= 1 for probe in row["claim_auc"].values() for r in probe.values())


@pytest.mark.slow
def test_cai_pilot_prints_one_json_line(tmp_path):
    row = run_bench("cai_pilot.py", "--rounds", "2", "--samples", "1", env={"ALIGNLAB_HOME": str(tmp_path / "home")})
    assert row["bench"] == "cai_pilot" and row["profile"] == "ci" and len(row["harmless_after_round"]) == 2
    assert row["helpful_only"]["harmful_compliance"][2] > 0 and 0 <= row["sft_refusal_held_out"]["benign"] <= 1
    assert row["pairs"]["ai_harmlessness"] + row["pairs"]["labeler_helpfulness"] > 0


@pytest.mark.slow
def test_prm_curve_prints_one_json_line():
    """On the ci zoo (built up front by `make test`, or built here once)."""
    row = run_bench("prm_curve.py", "--draws", "3")
    assert row["bench"] == "prm_curve" and row["profile"] == "ci" and row["pool"] == profiles.get_profile("ci").prm.samples
    bands = [r[f"N={row['pool']}"] for r in row["at_N"].values()]
    assert {"majority vote", "best-of-N, prm_gold", "pass@N (oracle)"} <= set(row["at_N"])
    assert all(lo <= m <= hi for m, lo, hi in bands) and row["search"]["beam"][1] > 0


@pytest.mark.slow
def test_w2s_prints_one_json_line():
    """On the ci zoo (built up front by `make test`, or built here once)."""
    row = run_bench("w2s.py")
    ci = profiles.get_profile("ci")
    assert row["bench"] == "w2s" and row["profile"] == "ci" and set(row["tasks"]) == set(ci.w2s.tasks)
    assert set(row["screen"]) == set(ci.w2s.screen) and set(row["n_params"]) == {"small", "policy", "large"}
    for task in row["tasks"].values():
        assert set(task["pgr"]) == {"small>policy", "small>large", "policy>large"}
        assert all(len(v) == 2 for by_loss in task["pgr"].values() for v in by_loss.values())


@pytest.mark.slow
def test_capstone_prints_one_json_line():
    """On the ci zoo (built up front by `make test`, or built here once)."""
    row = run_bench("capstone.py")
    assert row["bench"] == "capstone" and row["profile"] == "ci" and row["shots"] >= 1
    assert set(row["vs"]) == {"base, few-shot", "SFT"} and row["samples"] == row["vs"]["SFT"]["gold"]["n"]
    for judged in row["vs"].values():
        for r in judged.values():
            assert r["lo"] <= r["mean"] <= r["hi"] and 0 <= r["mean"] <= 1
    assert row["ratio"] == round(row["n_params"]["policy"] / row["n_params"]["small"], 2)
    assert row["small_pretrain_steps"] == row["policy_pretrain_steps"]  # the book's equal steps unless asked
    assert set(row["gold"]) == {"small base", "small SFT", "small PPO-ptx", "base", "SFT"}


@pytest.mark.slow
def test_capstone_pretrain_steps_pretrains_both_sizes_for_that_many_steps():
    steps = profiles.get_profile("ci").pretrain.steps + 7
    book, longer = run_bench("capstone.py"), run_bench("capstone.py", "--pretrain-steps", str(steps))
    assert longer["small_pretrain_steps"] == longer["policy_pretrain_steps"] == steps
    assert longer["pipeline_build_seconds"] is None  # the chapter's other small runs stay at the book's settings
    # both sizes are models of their own, not the book's: every mean gold reward moves
    assert all(longer["gold"][k] != book["gold"][k] for k in ("base", "SFT", "small base", "small PPO-ptx"))


def test_every_benchmark_goes_offline_before_it_imports_transformers():
    """`import offline` (bench/offline.py) must come before anything that loads transformers."""
    for script in sorted((ROOT / "bench").glob("*.py")):
        if script.name == "offline.py":
            continue
        lines = script.read_text().splitlines()
        heavy = [i for i, l in enumerate(lines) if re.match(r"\s*(import|from) (torch|transformers|trl|datasets|alignlab)\b", l)]
        if not heavy:  # a script that loads no model (notebook_times.py) has nothing to download
            continue
        first_offline = next((i for i, l in enumerate(lines) if l.startswith("import offline")), None)
        assert first_offline is not None, f"{script.name} does not import bench/offline.py"
        assert all(i > first_offline for i in heavy), f"{script.name} imports a library before going offline"
