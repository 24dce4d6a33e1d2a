"""The AlignLab world: a procedurally generated place whose true human preference is known.

Six task families (FAMILIES), a gold reward with inspectable components, simulated labelers,
a constitution (a data file, `constitution.toml`), instructions a prompt may carry, a
pretraining corpus of mixed quality, and a few demonstrations. Everything is
seeded and deterministic. Prompts are raw text; `chat_prompt` adds the chat template.

    >>> from alignlab import world
    >>> p = world.eval_prompts("arithmetic", n=1)[0]
    >>> world.gold_reward(p, world.demonstration(p)) > world.gold_reward(p, " Answer: 7.")
    True
"""
from .common import COMPONENTS, Task, step_truths
from .constitution import CONSTITUTION, ConstitutionError, Principle, load_constitution
from .corpus import (CRITIQUE_FAMILIES, JUDGING_HELD_OUT, chat_prompt, choice_prompt, comparison_pairs, demo_covers, demonstration, eval_prompts,
                     helpful_only_demonstration, preference_prompts, pretraining_corpus, sample_response, sft_demonstrations, train_prompts)
from .gold import (BEHAVIOURS, EMPTY_REWARD, FAMILIES, WEIGHTS, behaviours, gold_components,
                   gold_reward, parse_prompt)
from .instructions import INSTRUCTIONS, instruct, split_instruction
from .labelers import DEFAULT_TEMPERATURE, LENGTH_BIAS, Labeler, agreement_stats, length_biased_labeler
from .personas import (DIPLOMAT, MINIMALIST, PANEL, STICKLER, DecoyLabeler, Persona, condorcet_example,
                       decoy_example, hidden_context_example, panel_prob)

WORLD_VERSION = "3"
"""Bump when anything above changes what the world generates or how it scores: the zoo keys
every checkpoint by it, so stale models are rebuilt rather than silently reused. Version 3 (the
multi-step family, 32 + 32 harmful / benign requests held out by request, judging documents for
every family but one, the constitution as data, instructions) is the last: the world is frozen."""

__all__ = [
    "DIPLOMAT", "DecoyLabeler", "MINIMALIST", "PANEL", "Persona", "STICKLER", "condorcet_example",
    "decoy_example", "hidden_context_example", "panel_prob",
    "BEHAVIOURS", "COMPONENTS", "CONSTITUTION", "ConstitutionError", "CRITIQUE_FAMILIES", "INSTRUCTIONS",
    "JUDGING_HELD_OUT", "choice_prompt", "instruct", "load_constitution", "split_instruction", "step_truths", "DEFAULT_TEMPERATURE", "EMPTY_REWARD",
    "FAMILIES", "LENGTH_BIAS", "Labeler", "Principle", "Task", "WEIGHTS", "WORLD_VERSION", "agreement_stats", "behaviours",
    "chat_prompt", "comparison_pairs", "demo_covers", "demonstration", "eval_prompts", "gold_components",
    "gold_reward", "helpful_only_demonstration", "length_biased_labeler", "parse_prompt", "preference_prompts", "pretraining_corpus", "sample_response", "sft_demonstrations",
    "train_prompts",
]
