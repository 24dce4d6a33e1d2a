"""AlignLab: an interactive textbook and lab on aligning language models with human preferences.

The package, in the order data flows through it:
world (tasks, gold reward, labelers) → models (tokenizer, tiny Llama) → zoo (cached checkpoints)
→ train (the offline loop) and online (the on-policy loop) + losses (every objective) + rollout
(sampling) → evaluate (gold reward, KL). `profiles` holds each chapter's settings and the model
sizes; `recipes` each chapter's table of zoo entries (the zoo loads it on first use); `cache` the
home folder and safe writes that the zoo and the quiz share. Importing the package, the zoo or the
quiz loads no torch: the trainers load when something is trained or loaded.
"""
__version__ = "0.1.0"
