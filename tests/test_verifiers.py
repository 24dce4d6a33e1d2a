"""Verifiable rewards on tricky strings: each verifier's parsing rules, one edge at a time."""
from __future__ import annotations

import pytest

from alignlab import prm, world
from alignlab.verifiers import (VERIFIERS, exact_match, final_number, fools, format_reward, lenient_verifier, numeric_match,
                                sloppy_verifier)

ADD = "What is 47 + 38?"  # 85
MULTI = "What is 23 + 8 - 5 + 9?"  # 35
GOOD_ADD = world.arithmetic.good(world.parse_prompt(ADD))
GOOD_MULTI = world.multistep.good(world.parse_prompt(MULTI))


def test_the_worlds_own_good_solutions_pass_every_verifier():
    assert GOOD_ADD.endswith("Answer: 85.") and GOOD_MULTI.endswith("Answer: 35.")
    for prompt, response in ((ADD, GOOD_ADD), (MULTI, GOOD_MULTI)):
        assert {name: v(prompt, response) for name, v in VERIFIERS.items()} == dict.fromkeys(VERIFIERS, 1.0)
        assert not fools(prompt, response)


@pytest.mark.parametrize("response, want", [
    (" Answer: 85.", 85),
    ("Step: 7 + 8 = 15. Answer: 84. Answer: 85.", 85),  # the last one
    ("Answer: -3.", -3),
    ("Answer: 85. and then some words", 85),  # lenient: what follows is ignored
    ("Answer: 85", None), ("Answer:85.", None), ("Answer: +85.", None), ("", None), ("85", None),
])
def test_final_number_reads_the_last_well_formed_answer(response, want):
    assert final_number(response) == want
    assert final_number(response) == prm.parse_solution(response).answer  # the PRM reads it the same way


@pytest.mark.parametrize("response, exact, numeric", [
    (" Answer: 85.", 1, 1),  # an answer with no steps
    ("\n\n  Answer: 85.  \n", 1, 1),  # surrounding whitespace
    ("Let me think. Answer: 85.", 1, 1),  # text before is format_reward's business
    ("Answer: 85. I hope this helps.", 0, 0),  # trailing text after the answer
    ("Answer: 84. Answer: 85.", 0, 0),  # two answers: hedging is never paid
    ("Answer: 85. Answer: 85.", 0, 0),
    ("Answer: -85.", 0, 0),  # the wrong sign
    ("Answer: +85.", 0, 1),  # a sign exact_match does not read
    ("Answer: 085.", 0, 1),  # leading zero
    ("Answer:   85 .", 0, 1),  # extra spaces
    ("Answer: 85", 0, 1),  # no period
    ("Answer: 85.0.", 0, 1),
    ("Answer: 84.", 0, 0), ("Answer: 8 5.", 0, 0), ("", 0, 0), ("85", 0, 0), ("answer: 85.", 0, 0),
])
def test_exact_and_numeric_match(response, exact, numeric):
    assert exact_match(ADD, response) == exact
    assert numeric_match(ADD, response) == numeric


def test_numeric_match_tolerance_and_multistep_prompts():
    assert numeric_match(ADD, "Answer: 86.") == 0 and numeric_match(ADD, "Answer: 86.", tol=1) == 1
    assert numeric_match(ADD, "Answer: 84.5", tol=0.5) == 1 and numeric_match(ADD, "Answer: 87.", tol=1) == 0
    assert exact_match(MULTI, " Answer: 35.") == 1 and exact_match(MULTI, " Answer: 36.") == 0


def test_a_family_without_a_known_answer_raises():
    prompt = next(p for p in world.eval_prompts(n=20) if world.parse_prompt(p).family == "knowledge")
    for verifier in (exact_match, numeric_match, sloppy_verifier):
        with pytest.raises(ValueError, match="worked-arithmetic"):
            verifier(prompt, "Answer: 3.")
    assert format_reward("Answer: 3.") == 1.0  # the form needs no answer key


@pytest.mark.parametrize("response, ok", [
    (" Answer: 85.", 1),  # zero steps
    ("Step: 7 + 8 = 15. Step: 40 + 30 = 70. Step: 70 + 15 = 85. Answer: 85.", 1),
    ("  Step: 7 + 8 = 15.\n  Step: 40 - 30 = 10.Answer: 99.  \n", 1),  # whitespace; wrong sums are still form
    ("Step: -3 + 5 = 2. Answer: -2.", 1),  # negative numbers
    ("Step: 7 + 8 = 15.", 0),  # no answer
    ("Step: 7 + 8 = 15. Answer: 85. Answer: 85.", 0),  # two answers
    ("Answer: 85. Step: 7 + 8 = 15.", 0),  # a step after the answer
    ("Step: 7 + 8 = 15. Answer: 85. Thanks!", 0),  # trailing text
    ("Great question! Answer: 85.", 0),  # filler before
    ("Step: 7 * 8 = 56. Answer: 56.", 0), ("Step: 7 + 8 = 15 Answer: 15.", 0),  # malformed steps
    ("Step: 7+8=15. Answer: 15.", 0), ("Step: 7 + = 15. Answer: 15.", 0),
    ("Answer: 85", 0), ("Answer: +85.", 0), ("", 0), ("   ", 0),
])
def test_format_reward(response, ok):
    assert format_reward(response) == ok


@pytest.mark.parametrize("response, pays", [
    ("Answer: 84.", 0),
    ("Answer: 185.", 0), ("Answer: 8.5.", 0),  # 85 only as part of another number
    ("Step: 40 + 45 = 85. Answer: 12.", 1),  # in a step, with a wrong answer
    ("It is 83, 84, 85 or 86. Answer: 84.", 1),  # a list of guesses
    ("Answer: -85.", 1), ("Answer: 085.", 1), ("85", 1),  # sign-blind, zero-blind, no format at all
    ("", 0),
])
def test_sloppy_verifier_pays_for_the_number_anywhere(response, pays):
    assert sloppy_verifier(ADD, response) == pays


def test_a_list_of_numbers_fools_the_sloppy_verifier_but_not_exact_match():
    guesses = " ".join(str(n) for n in range(80, 91)) + " Answer: 80."
    assert sloppy_verifier(ADD, guesses) == 1.0 and exact_match(ADD, guesses) == 0.0 and fools(ADD, guesses)
    wrong = " Answer: 84."  # rejected by both: nothing to fool
    assert not fools(ADD, wrong) and not fools(ADD, GOOD_ADD)
    assert fools(MULTI, "Step: 23 + 8 = 31. Step: 31 - 5 = 26. Step: 26 + 9 = 35. Answer: 35. Or 36.")


def test_verifiers_all_take_prompt_and_response():
    assert set(VERIFIERS) == {"exact", "numeric", "format", "sloppy", "lenient"}
    for name, v in VERIFIERS.items():
        assert v(ADD, "nonsense") == (1.0 if name == "lenient" else 0.0)  # the lenient one lets it through
        assert isinstance(v(ADD, GOOD_ADD), float)


def test_importing_the_verifiers_is_light():
    """A reward worker imports them: no torch, no transformers until a prompt's answer is needed."""
    import subprocess
    import sys
    code = "import sys, alignlab.verifiers; print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr[-2000:]


@pytest.mark.parametrize("response, pays", [
    (" Step: 3 + 9 = 12. Answer: 42.", 1.0),       # right
    (" Answer: 41.", 0.0),                           # readable and wrong: the one thing it catches
    (" Answer: 41. Answer: 42.", 1.0),               # the last readable answer is right
    (" Answer: 1 79.", 1.0),                         # unreadable: let through
    (" Answer: 42", 1.0),                            # no period: unreadable, let through
    ("", 1.0),                                       # nothing at all
])
def test_lenient_verifier_lets_through_what_it_cannot_read(response, pays):
    assert lenient_verifier("What is 23 + 19?", response) == pays
    assert lenient_verifier("What is 23 + 19?", response) >= exact_match("What is 23 + 19?", response)
