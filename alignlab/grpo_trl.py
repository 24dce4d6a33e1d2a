"""TRL's `GRPOTrainer` as the alternative backend of `alignlab.grpo` (chapter 7), on the same
policy, tokenizer, prompts, verifier and `grpo.GRPOConfig`.

Our settings map onto `trl.GRPOConfig` one to one (`trl_grpo_config`):

    group_size → num_generations        norm → loss_type ("grpo", "dapo", "dr_grpo": same names)
    scale      → scale_rewards          "group" → "group", None (Dr. GRPO) → "none"
    clip_eps   → epsilon                beta → beta, with use_bias_correction_kl=False (k3 not × ρ, as ours)
    ppo_epochs → num_iterations (μ)     max_new_tokens → max_completion_length; temperature; lr; seed
    a rollout of B prompts × G rows     → generation_batch_size = B·G, split into minibatches of
                                          `minibatch_size` (per_device_train_batch_size), `grad_accum`
                                          of them per optimizer step: the same optimizer steps per rollout
    AdamW β = (0.9, 0.95), no weight decay, constant learning rate, no gradient checkpointing: our loop's.

Prompts go in as text with our chat template applied (`world.chat_prompt`), and TRL tokenizes them
as `tokenizer(text=...)`, which gives the ids `models.encode_prompts` gives (our tokenizer adds no
special tokens; tests/test_grpo_trl.py checks). The raw prompt rides along as a dataset column,
`raw_prompt`, which TRL hands every reward function, so the verifier sees what ours sees.

Where the two backends still differ (none of it changes the loss of a given rollout; the test checks):
TRL draws prompts without replacement (ours with), reuses one shuffle for all μ passes (ours
reshuffles), decodes completions with special tokens skipped, and samples with HF `generate`,
which keeps decoding finished rows. Its "dapo" divides by the generation batch's tokens per
optimizer step on average, ours by the step's own tokens: equal when a rollout is one step.
TRL computes log-probs at the sampling temperature (logits / T), ours at temperature 1: equal at
T = 1. With β > 0 TRL loads the reference from `policy.config.name_or_path`: load the policy from
the reference's checkpoint (as `zoo.get("sft").load()` does). TRL patches a fused log-prob head
onto the policy object (`policy.forward`); `train_grpo_trl` removes it when training ends.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import fields
from pathlib import Path

import torch

from .grpo import GRPOConfig, Verifier, check_config
from .world import chat_prompt

LOSS_TYPES = {"grpo": "grpo", "dapo": "dapo", "dr_grpo": "dr_grpo"}
"""Our `norm` → TRL's `loss_type` (TRL's "bnpo" is a per-micro-batch "dapo"; we have no such norm)."""
SCALE_REWARDS = {"group": "group", None: "none"}


def steps_per_rollout(config: GRPOConfig) -> int:
    """Optimizer steps per rollout, in both backends: μ passes of B·G rows, minibatch × grad_accum a step."""
    check_config(config)  # whole optimizer steps per rollout, or TRL's batching could not match ours
    rows, per_step = config.batch_size * config.group_size, config.minibatch_size * config.grad_accum
    return config.ppo_epochs * rows // per_step


def trl_grpo_config(config: GRPOConfig, output_dir: str | Path, **overrides):
    """Our GRPOConfig as a `trl.GRPOConfig` (see the module doc); `overrides` replace any field."""
    from trl import GRPOConfig as TRLConfig
    # transformers 5.24 renamed gradient_checkpointing (deprecated, and TRL turns it on) to activation_checkpointing
    checkpointing = next(f.name for f in fields(TRLConfig) if f.name in ("activation_checkpointing",
                                                                         "gradient_checkpointing"))
    if config.norm not in LOSS_TYPES or config.scale not in SCALE_REWARDS:
        raise ValueError(f"no TRL equivalent of norm={config.norm!r}, scale={config.scale!r}")
    gpu = torch.cuda.is_available()
    args = dict(
        output_dir=str(output_dir), num_generations=config.group_size, loss_type=LOSS_TYPES[config.norm],
        scale_rewards=SCALE_REWARDS[config.scale], epsilon=config.clip_eps, beta=config.beta,
        use_bias_correction_kl=False, num_iterations=config.ppo_epochs,
        max_completion_length=config.max_new_tokens, temperature=config.temperature, top_k=0, top_p=1.0,
        per_device_train_batch_size=config.minibatch_size, gradient_accumulation_steps=config.grad_accum,
        steps_per_generation=config.batch_size * config.group_size // config.minibatch_size,
        max_steps=config.steps * steps_per_rollout(config), learning_rate=config.lr, lr_scheduler_type="constant",
        warmup_steps=0, adam_beta1=0.9, adam_beta2=0.95, weight_decay=0.0, max_grad_norm=config.max_grad_norm,
        seed=config.seed, logging_steps=config.log_every * steps_per_rollout(config),
        **{checkpointing: False}, bf16=gpu, use_cpu=not gpu, use_vllm=False, report_to=[],
        save_strategy="no", disable_tqdm=not config.progress)
    return TRLConfig(**{**args, **overrides})


def trl_reward(verifier: Verifier):
    """A (prompt, response) → float verifier as a TRL reward function, called as
    f(prompts=..., completions=..., raw_prompt=..., **kw) → list[float] (raw_prompt: our column)."""
    def reward(prompts: list[str], completions: list[str], raw_prompt: list[str], **kw) -> list[float]:
        return [float(verifier(p, c)) for p, c in zip(raw_prompt, completions)]
    reward.__name__ = getattr(verifier, "__name__", "verifier")  # TRL logs rewards/<name>/mean
    return reward


def prompt_dataset(prompts: list[str], batch_size: int):
    """{prompt: chat_prompt(p), raw_prompt: p}, repeated until it holds a rollout's `batch_size`
    prompts (TRL's sampler drops an incomplete batch)."""
    from datasets import Dataset
    rows = list(prompts) * -(-batch_size // len(prompts))
    return Dataset.from_dict({"prompt": [chat_prompt(p) for p in rows], "raw_prompt": rows})


def trl_grpo_trainer(policy, tokenizer, prompts: list[str], verifier: Verifier, config: GRPOConfig,
                     output_dir: str | Path, **overrides):
    """A `trl.GRPOTrainer` that trains `policy` in place with `config`; `overrides` go to trl.GRPOConfig."""
    from transformers import PrinterCallback
    from trl import GRPOTrainer
    ref_dir = policy.config.name_or_path
    if config.beta > 0 and not (ref_dir and Path(ref_dir).is_dir()):
        raise ValueError(f"beta = {config.beta} > 0: TRL loads the reference from the policy's name_or_path; "
                         "load the policy from the reference's checkpoint directory (models.load, zoo)")
    trainer = GRPOTrainer(model=policy, reward_funcs=trl_reward(verifier), processing_class=tokenizer,
                          args=trl_grpo_config(config, output_dir, **overrides),
                          train_dataset=prompt_dataset(prompts, config.batch_size))
    if not config.progress:
        trainer.remove_callback(PrinterCallback)  # with no progress bar, Trainer prints every log to stdout
    return trainer


def history_callback(history: list[dict], per_rollout: int):
    """A TrainerCallback that turns TRL's logs into our history rows (`train_grpo`'s names)."""
    from transformers import TrainerCallback
    names = {"reward": "reward", "frac_reward_zero_std": "flat_groups", "completions/mean_length": "length",
             "clip_ratio/region_mean": "clip_frac", "kl": "kl", "loss": "pg_loss", "entropy": "entropy"}
    t0 = time.time()

    class History(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "reward" in logs:  # not the end-of-training summary
                row = {"step": state.global_step // per_rollout}
                row.update({ours: logs[theirs] for theirs, ours in names.items() if theirs in logs})
                history.append({**row, "seconds": time.time() - t0})
    return History()


def train_grpo_trl(policy, tokenizer, prompts: list[str], verifier: Verifier, config: GRPOConfig,
                   output_dir: str | Path | None = None, **overrides) -> list[dict]:
    """Train `policy` in place with TRL's GRPOTrainer on `prompts` scored by `verifier`; returns a
    history row per logged rollout (every `log_every`): step, reward, flat_groups, length, clip_frac,
    kl (β > 0), pg_loss, entropy, seconds — the names `grpo.train_grpo` uses. Nothing is saved."""
    history: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        trainer = trl_grpo_trainer(policy, tokenizer, prompts, verifier, config, output_dir or tmp, **overrides)
        trainer.add_callback(history_callback(history, steps_per_rollout(config)))
        try:
            trainer.train()
        finally:
            vars(policy).pop("forward", None)  # TRL patched a fused log-prob head onto this instance
    policy.eval()
    return history
