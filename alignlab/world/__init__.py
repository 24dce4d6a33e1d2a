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
                     preference_prompts, pretraining_corpus, sample_response, sft_demonstrations, train_prompts)
from .gold import (BEHAVIOURS, EMPTY_REWARD, FAMILIES, WEIGHTS, behaviours, gold_components,
                   gold_reward, parse_prompt)
from .labelers import DEFAULT_TEMPERATURE, LENGTH_BIAS, Labeler, agreement_stats, length_biased_labeler
from .personas import (DIPLOMAT, MINIMALIST, PANEL, STICKLER, DecoyLabeler, Persona, condorcet_example,
                       decoy_example, hidden_context_example, panel_prob)

WORLD_VERSION = "2"
"""Bump when anything above changes what the world generates or how it scores: the zoo keys
every checkpoint by it, so stale models are rebuilt rather than silently reused."""

__all__ = [
    "DIPLOMAT", "DecoyLabeler", "MINIMALIST", "PANEL", "Persona", "STICKLER", "condorcet_example",
    "decoy_example", "hidden_context_example", "panel_prob",
    "BEHAVIOURS", "COMPONENTS", "CONSTITUTION", "CRITIQUE_FAMILIES", "DEFAULT_TEMPERATURE", "EMPTY_REWARD",
    "FAMILIES", "LENGTH_BIAS", "Labeler", "Principle", "Task", "WEIGHTS", "WORLD_VERSION", "agreement_stats", "behaviours",
    "chat_prompt", "comparison_pairs", "demo_covers", "demonstration", "eval_prompts", "gold_components",
    "gold_reward", "length_biased_labeler", "parse_prompt", "preference_prompts", "pretraining_corpus", "sample_response", "sft_demonstrations",
    "train_prompts",
]
