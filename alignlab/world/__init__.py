"""The AlignLab world: a procedurally generated place whose true human preference is known.

Five task families (FAMILIES), a gold reward with inspectable components, simulated labelers,
a constitution, a pretraining corpus of mixed quality, and a few demonstrations. Everything is
seeded and deterministic. Prompts are raw text; `chat_prompt` adds the chat template.

    >>> from alignlab import world
    >>> p = world.eval_prompts("arithmetic", n=1)[0]
    >>> world.gold_reward(p, world.demonstration(p)) > world.gold_reward(p, " Answer: 7.")
    True
"""
from .common import COMPONENTS, Task
from .constitution import CONSTITUTION, Principle
from .corpus import (CRITIQUE_FAMILIES, chat_prompt, comparison_pairs, demo_covers, demonstration, eval_prompts,
                     pretraining_corpus, sample_response, sft_demonstrations, train_prompts)
from .gold import (BEHAVIOURS, EMPTY_REWARD, FAMILIES, WEIGHTS, behaviours, gold_components,
                   gold_reward, parse_prompt)
from .labelers import DEFAULT_TEMPERATURE, Labeler, agreement_stats

WORLD_VERSION = "2"
"""Bump when anything above changes what the world generates or how it scores: the zoo keys
every checkpoint by it, so stale models are rebuilt rather than silently reused."""

__all__ = [
    "BEHAVIOURS", "COMPONENTS", "CONSTITUTION", "CRITIQUE_FAMILIES", "DEFAULT_TEMPERATURE", "EMPTY_REWARD",
    "FAMILIES", "Labeler", "Principle", "Task", "WEIGHTS", "WORLD_VERSION", "agreement_stats", "behaviours",
    "chat_prompt", "comparison_pairs", "demo_covers", "demonstration", "eval_prompts", "gold_components",
    "gold_reward", "parse_prompt", "pretraining_corpus", "sample_response", "sft_demonstrations",
    "train_prompts",
]
