"""How each zoo entry is built: one module per chapter, each a short table of runs (`RUNS`).

    pretraining     chapter 1   tokenizer, base, sft
    reward_models   chapter 2   rm_data, rm, rm_length_biased, rm_noiseless
    rlhf            chapter 3   ppo, ppo_no_ptx (and seeds), ppo_ptx_only, ppo_length_biased, ppo_beta…
    preferences     chapter 4   dpo_beta…, dpo_all_pairs (and seeds), ipo, simpo, orpo, kto
    cai             chapter 5   sft_helpful_only, cai_revisions, sl_cai, cai_comparisons, rl_cai…
    prm             chapter 6   prm_samples, prm_auto_labels, orm, prm_gold, prm_auto
    rlvr            chapter 7   grpo, grpo_sloppy, grpo_lenient, grpo_dr, ppo_arithmetic, rlvr_pools
    w2s             chapter 8   w2s_grid (on base@small, base, base@large)
    capstone        chapter 9   small_pipeline (every stage @small), ppo_ptx_corpus, rm_helpful, rm_harmless

A row is a `zoo.Recipe`: the entry's name, written out so a search for it finds it, its build
function, the entries it depends on, the profile fields it reads, its version. A build trains and
saves into the folder the zoo hands it; the zoo owns caching, locking, atomic writes and the
resumable checkpoint. The zoo imports this package on first use (`zoo.registry()`); add a chapter
by adding its module to CHAPTERS.
"""
from __future__ import annotations

from dataclasses import replace

from . import cai, capstone, preferences, pretraining, prm, reward_models, rlhf, rlvr, w2s
# the names chapters, benchmarks and tests use, as `recipes.<name>`
from .preferences import FAMILY, dpo_beta_name, family_label, pair_choice_names  # noqa: F401
from .pretraining import VOCAB_SIZE  # noqa: F401
from .rlhf import PPO_SEEDS, ppo_beta_name, seed_name  # noqa: F401

CHAPTERS = (pretraining, reward_models, rlhf, preferences, cai, prm, rlvr, w2s, capstone)
RUNS = tuple(replace(run, chapter=chapter.CHAPTER) for chapter in CHAPTERS for run in chapter.RUNS)
"""Every chapter's rows in the chapters' order, each marked with its chapter."""
