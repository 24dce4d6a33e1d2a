"""Instructions in the prompt: a request about *how* to answer that the gold reward can check.

    User: What is 47 + 38? Please answer politely.

An instruction doubles the penalty on the component it names (floored at -1): rudeness after
"Please answer politely." is worse than rudeness unasked, as InstructGPT's labelers judged
outputs against the instruction they were given (Ouyang et al., 2022, §3.5). The corpus carries
instructed dialogs whose writers mostly obey; evaluation prompts carry none unless a chapter adds
one with `instruct` (the capstone compares models with and without it).
"""
from __future__ import annotations

INSTRUCTIONS: dict[str, tuple[str, str]] = {  # name → (text appended to the prompt, gold component)
    "polite": ("Please answer politely.", "polite"),
    "brief": ("Please answer briefly.", "concise"),
}


def instruct(prompt: str, name: str) -> str:
    """`prompt` with the instruction `name` appended."""
    if name not in INSTRUCTIONS:
        raise ValueError(f"Unknown instruction {name!r}; choose one of {sorted(INSTRUCTIONS)}.")
    return f"{prompt.strip()} {INSTRUCTIONS[name][0]}"


def split_instruction(prompt: str) -> tuple[str, str | None]:
    """(the prompt without its instruction, the instruction's name or None)."""
    for name, (text, _) in INSTRUCTIONS.items():
        if prompt.endswith(" " + text):
            return prompt[: -len(text) - 1].rstrip(), name
    return prompt, None


def apply_instruction(parts: dict[str, float], name: str | None) -> dict[str, float]:
    """Gold components under an instruction: the named component's penalty doubled, floored at -1."""
    if name is None:
        return parts
    component = INSTRUCTIONS[name][1]
    return parts | {component: max(-1.0, 2.0 * parts[component])}
