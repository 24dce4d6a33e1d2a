"""AlignLab: an interactive textbook and lab on aligning language models with human preferences.

The package, in the order data flows through it:
world (tasks, gold reward, labelers) → models (tokenizer, tiny Llama) → zoo (cached checkpoints)
→ train (one loop) + losses (every objective) + rollout (sampling) → evaluate (gold reward, KL).
"""
__version__ = "0.1.0"
