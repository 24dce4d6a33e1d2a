"""Lab 5 (Constitutional AI): an AI preference label read in both orders, and one critique → revision.

The student writes `ai_preference(logits_ab, logits_ba, a_id, b_id)` — P(a ≻ b) from a feedback
model's next-token logits with a shown first and second (Bai et al., 2022, §4.1) — and
`critique_and_revise(prompt, response, principle, continue_text)` — one round of §3.1 given a
function that continues a text. The lab runs both on the book's pretrained model; the library's
versions (the references of the hidden tests) are `cai.combine_orders`/`cai.choice_probability`
and `cai.critique_then_revise`.
"""
from __future__ import annotations

import random
from typing import Callable

import torch

from .. import cai, world
from ..world import CONSTITUTION, Principle
from .core import (REQUIRED_CELLS, LabCheckError, as_tensor, call, close, compare_random, passed, student_function,
                   wrong)

REQUIRED_CELLS["lab5_cai"] = {"ai_preference": "code", "test_ai_preference": "code",
                              "critique_and_revise": "code", "test_critique_and_revise": "code",
                              "test_cai_run": "code"}


def reference_ai_preference(logits_ab, logits_ba, a_id: int, b_id: int) -> torch.Tensor:
    """½[P(A | a first) + P(B | a second)], each normalised over the two letters → (N,)."""
    first, second = (cai.choice_probability(x.double(), a_id, b_id) for x in (logits_ab, logits_ba))
    return cai.combine_orders(first, second)["prefers_a"]


def _pref_example() -> tuple:
    """Three comparisons' logits in both orders (3, 5): "A" is token 1, "B" token 2, and token 4
    is loud, so a softmax over the whole vocabulary gives other numbers than one over A and B."""
    ab = torch.tensor([[0.0, 2.0, 0.5, -1.0, 4.0], [0.0, -0.5, 1.0, 0.0, 3.0], [0.0, 1.0, 1.0, 0.0, 5.0]])
    ba = torch.tensor([[0.0, 0.0, 1.5, 0.0, 4.0], [0.0, 1.5, 0.0, -1.0, 3.0], [0.0, 2.0, 0.0, 0.0, 5.0]])
    return ab, ba, 1, 2


def _pref_mistakes() -> dict[str, torch.Tensor]:
    """The label each common mistake computes on the three comparisons, with its feedback."""
    ab, ba, a, b = (*(x.double() for x in _pref_example()[:2]), *_pref_example()[2:])
    p_ab, p_ba = torch.sigmoid(ab[:, a] - ab[:, b]), torch.sigmoid(ba[:, a] - ba[:, b])  # P("A") in each order
    return {
        "you did not normalise over the two letters: P(A) = e^l_A / (e^l_A + e^l_B), not a softmax over "
        "every token.": (torch.softmax(ab, -1)[:, a] + torch.softmax(ba, -1)[:, b]) / 2,
        "you read one order only: average with the swapped order (a shown as (B)) to cancel the judge's "
        "preference for a position.": p_ab,
        "in the swapped order a is shown as (B): use P(B) there, not P(A).": (p_ab + p_ba) / 2,
        "you averaged logit differences, not probabilities: the label is ½[P(A) + P'(B)].":
            torch.sigmoid(((ab[:, a] - ab[:, b]) + (ba[:, b] - ba[:, a])) / 2),
        "you returned P(b ≻ a): the label is the probability that a is preferred.": 1 - (p_ab + 1 - p_ba) / 2,
    }


def check_ai_preference(fn: Callable | None = None) -> None:
    """Check the label of three comparisons, read in both orders."""
    fn = student_function("ai_preference", fn)
    ab, ba, a, b = _pref_example()
    got = as_tensor("ai_preference", call("ai_preference", fn, ab, ba, a, b), (3,))
    want = reference_ai_preference(ab, ba, a, b)
    if not close(got, want):
        wrong("ai_preference", got, _pref_mistakes(),
              f"expected {[round(x, 4) for x in want.tolist()]} on three comparisons, got "
              f"{[round(x, 4) for x in got.tolist()]}.")
    return passed(f"ai_preference = {[round(x, 4) for x in got.tolist()]}: both orders, each normalised over A and B")


def _pref_inputs(g: torch.Generator) -> tuple:
    N, V = int(torch.randint(1, 9, (), generator=g)), int(torch.randint(3, 12, (), generator=g))
    a, b = torch.randperm(V, generator=g)[:2].tolist()
    return torch.randn(N, V, generator=g) * 3, torch.randn(N, V, generator=g) * 3, a, b


def hidden_ai_preference(fn: Callable | None = None, seed: int = 0) -> None:
    """ai_preference against the reference on random logits, vocabulary sizes and letter ids."""
    return compare_random("ai_preference", student_function("ai_preference", fn), reference_ai_preference,
                          _pref_inputs, seed)


class ScriptedModel:
    """A stand-in for the model in the checks: continues each critique prompt with `critique` and
    each revision prompt with `revision`, each followed by the next part of a document (as a
    model trained on the corpus writes it), and records every batch of texts it was given."""

    def __init__(self, critique: str = " The response helps with something that could hurt someone.",
                 revision: str = " I can't help with that. It could hurt someone."):
        self.critique, self.revision, self.calls = critique, revision, []

    def __call__(self, texts: list[str]) -> list[str]:
        self.calls.append(list(texts))
        return [f"{self.critique}\nRevision request: Rewrite the response.\nRevision: Sure!" if t.endswith("Critique:")
                else f"{self.revision}\nCritique request: Point out anything rude." for t in texts]


def _critique_case() -> tuple[list[str], list[str], list[Principle]]:
    """A harmful request and a sum, answered the helpful-only way, under two different principles."""
    prompts = ["Tell me how to get revenge on my ex.", "What is 12 + 30?"]
    principles = [next(p for p in CONSTITUTION if p.name == name) for name in ("harmless", "helpful")]
    return prompts, [world.helpful_only_demonstration(p) for p in prompts], principles


def check_critique_and_revise(fn: Callable | None = None) -> None:
    """One round on two responses, with a scripted model that writes past the line it was asked for."""
    fn = student_function("critique_and_revise", fn)
    prompts, responses, principles = _critique_case()
    model = ScriptedModel()
    out = call("critique_and_revise", fn, prompts, responses, principles, model)
    if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(x, list) and len(x) == 2 for x in out)):
        raise LabCheckError("critique_and_revise: return a tuple (critiques, revisions) of two lists, one string per prompt.")
    critiques, revisions = out
    if len(model.calls) != 2:
        raise LabCheckError(f"critique_and_revise: call continue_texts twice (all critiques, then all revisions), "
                            f"not {len(model.calls)} times.")
    if model.calls[0] != [cai.critique_prompt(p, y, pr) for p, y, pr in zip(prompts, responses, principles)]:
        raise LabCheckError("critique_and_revise: the first batch is not the critique prompts, each under its own "
                            "principle: cai.critique_prompt(prompt, response, principle) for each.")
    if (critiques, revisions) == ([model.revision] * 2, [model.critique] * 2):
        raise LabCheckError("critique_and_revise: you returned (revisions, critiques); return (critiques, revisions).")
    if any("\n" in x for x in critiques + revisions):
        raise LabCheckError("critique_and_revise: cut each continuation at its first newline (cai.first_line): "
                            "the model goes on to write the next part of the document.")
    if model.calls[1] == [cai.revision_prompt(p, y, pr, "") for p, y, pr in zip(prompts, responses, principles)]:
        raise LabCheckError("critique_and_revise: each revision prompt must hold the critique you sampled: "
                            "cai.revision_prompt(prompt, response, principle, critique).")
    if model.calls[1] != [cai.revision_prompt(p, y, pr, c) for p, y, pr, c in zip(prompts, responses, principles, critiques)]:
        raise LabCheckError("critique_and_revise: the second batch is not the revision prompts; build each with "
                            "cai.revision_prompt(prompt, response, principle, critique).")
    return passed(f"critique {critiques[0]!r} → revision {revisions[0]!r}")


def hidden_critique_and_revise(fn: Callable | None = None, seed: int = 0, trials: int = 5) -> None:
    """critique_and_revise against the reference on random prompts, principles and continuations."""
    fn = student_function("critique_and_revise", fn)
    rng = random.Random(seed)
    words = [" it", " is", " rude", " wrong", "\n", " Revision:", " fine", "."]
    for t in range(trials):
        prompts = [rng.choice(world.train_prompts(rng.choice(world.FAMILIES))) for _ in range(rng.randint(1, 4))]
        responses = [world.helpful_only_demonstration(p) for p in prompts]
        principles = [rng.choice(CONSTITUTION) for _ in prompts]
        script: dict[str, str] = {}   # one continuation per text: the reference sees what the student saw

        def continue_texts(texts: list[str]) -> list[str]:
            return [script.setdefault(x, "".join(rng.choice(words) for _ in range(8))) for x in texts]
        if call("critique_and_revise", fn, prompts, responses, principles, continue_texts) != \
                cai.critique_then_revise(prompts, responses, principles, continue_texts):
            raise LabCheckError(f"critique_and_revise differs from the reference on random case #{t + 1}.")
    return passed(f"critique_and_revise matches the reference on {trials} random cases")


def check_cai_run(yours: torch.Tensor, library: torch.Tensor, agreement: tuple) -> None:
    """Your labels of the pretrained model's judgments equal the library's (`cai.ai_preferences`)."""
    yours, library = torch.as_tensor(yours).double(), torch.as_tensor(library).double()
    if yours.shape != library.shape or not close(yours, library, 1e-5):
        raise LabCheckError("your labels of the model's judgments differ from the library's on the same "
                            "comparisons; each function passed its own check, so look at which logits go where.")
    return passed(f"{len(yours)} labels match the library's; they agree with gold on "
                  f"{agreement[0]:.3f} ± {agreement[1]:.3f} of {agreement[2]} comparisons")
