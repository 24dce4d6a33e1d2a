#!/usr/bin/env bash
# The GPU benchmarks in one go, for one run on a machine with a CUDA GPU:
#     bash bench/gpu.sh [output-dir]        (default bench/out)
# Appends each benchmark's JSON line to <output-dir>/gpu.jsonl; record them in bench/RESULTS.md
# with the card and the date. Needs the package installed (pip install -e .) with trl and datasets.
set -euo pipefail
out=${1:-bench/out}
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible'"
python bench/rollout.py --profile gpu --batch 256 --new-tokens 64 | tee -a "$out/gpu.jsonl"
python bench/rollout.py --profile gpu --batch 256 --new-tokens 64 --skip-rl --zoo | tee -a "$out/gpu.jsonl"
python bench/train_throughput.py --profile gpu | tee -a "$out/gpu.jsonl"
python bench/dpo.py --profile gpu | tee -a "$out/gpu.jsonl"
python bench/rm_gap.py --profile gpu | tee -a "$out/gpu.jsonl"
python bench/cai_pilot.py --profile gpu | tee -a "$out/gpu.jsonl"    # chapter 5: does a gpu-size policy tell held-out harmful from benign requests?
python bench/prm_curve.py --profile gpu | tee -a "$out/gpu.jsonl"    # chapter 6: PRM vs ORM vs majority vote at N = 256
python bench/grpo.py --profile gpu --prompts 32 --new-tokens 32 | tee -a "$out/gpu.jsonl"    # chapter 7: GRPO completions/s vs TRL GRPOTrainer (goal ≥ 5×); ours samples with static_decode
python bench/w2s.py --profile gpu | tee -a "$out/gpu.jsonl"    # chapter 8: the weak-to-strong grid with every block fine-tuned (Burns et al.'s setting)
python bench/capstone.py --profile gpu | tee -a "$out/gpu.jsonl"    # chapter 9: small PPO-ptx vs the ≥ 8× larger base model, few-shot
# the gpu report card: runs each chapter's notebook whose gpu results are missing (minutes each), then writes it
python -m alignlab.cli report --profile gpu --results "$out/results" --compute --out "$out/REPORT_gpu.md"
