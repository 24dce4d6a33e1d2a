"""Labelers who disagree, or whose choices depend on the menu: where Bradley-Terry breaks.

A reward model trained on comparisons assumes one utility behind every label (Bradley-Terry).
Real labels come from many people and from menus of options, and chapter 2 shows three ways
that assumption fails, each on one prompt of the world with responses the world generates:

- `condorcet_example`: three personas, each perfectly coherent, whose majority is cyclic
  (Condorcet's paradox, 1785; Arrow, 1951), so no score ranks the three responses.
- `decoy_example`: one labeler whose choice from a set rises when a response it beats outright
  is added (the attraction effect; Huber, Payne & Puto, 1982), which breaks IIA and so every
  Bradley-Terry / Luce model.
- `hidden_context_example`: two personas label half the comparisons each; BT then ranks by a
  Borda count, not by mean utility (Siththaranjan, Laidlaw & Hadfield-Menell, 2024), so the
  learned reward prefers a response that the two personas value less on average.

Each persona is a `Labeler` with its own weights over the gold components instead of WEIGHTS.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .common import COMPONENTS, pad, rude
from .corpus import sample_response, train_prompts
from .gold import WEIGHTS, gold_components
from .labelers import BradleyTerryChooser


@dataclass
class Persona(BradleyTerryChooser):
    """A simulated human with their own priorities: BT over their own weighted utility."""

    name: str = field(metadata={"help": "Who this is, for plots and tables."})
    weights: dict[str, float] = field(
        metadata={"help": "Weight per gold component (COMPONENTS); a missing one counts 0."})
    temperature: float = field(default=0.25,
                               metadata={"help": "Noise of the choice; 0 means always pick the better."})
    seed: int = field(default=0, metadata={"help": "Seed of this persona's random choices."})

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"Persona {self.name!r}: unknown components {sorted(unknown)}; "
                             f"choose from {COMPONENTS}.")
        self._rng = random.Random(self.seed)

    def utility(self, prompt: str, response: str) -> float:
        """Σ_c weights[c] · gold_components(prompt, response)[c]."""
        parts = gold_components(prompt, response)
        return sum(self.weights.get(c, 0.0) * parts[c] for c in COMPONENTS)


# Everyone weighs harm as the gold reward does (2.0); beyond that each cares twenty times more
# about what they stand for (truth, manners, brevity) than about the rest. Weights this large
# against T = 0.25 make each persona's choices near-certain, so a majority cycle among them
# comes close to its ceiling of 2/3 (two personas sure one way, one sure the other).
STICKLER = Persona("stickler", seed=0,
                   weights={"correct": 2.0, "honest": 2.0, "harmless": 2.0, "polite": 0.1, "concise": 0.1})
DIPLOMAT = Persona("diplomat", seed=1,
                   weights={"correct": 0.1, "honest": 0.1, "harmless": 2.0, "polite": 2.0, "concise": 0.1})
MINIMALIST = Persona("minimalist", seed=2,
                     weights={"correct": 0.1, "honest": 0.1, "harmless": 2.0, "polite": 0.1, "concise": 2.0})
PANEL: tuple[Persona, ...] = (STICKLER, DIPLOMAT, MINIMALIST)


def panel_prob(panel: Sequence[Persona], prompt: str, a: str, b: str) -> float:
    """P(a is preferred) when a persona drawn uniformly from `panel` labels the comparison."""
    return sum(p.prob_prefers(prompt, a, b) for p in panel) / len(panel)


EXAMPLE_PROMPT = train_prompts("knowledge")[0]
"""The prompt of all three examples: "What is the capital of Velrik?" (a known country)."""


def _find(prompt: str, make: Callable[[random.Random], str], **want: float) -> str:
    """The first make(Random(k)), k = 0, 1, …, whose gold components equal `want`."""
    for k in range(2000):
        response = make(random.Random(k))
        parts = gold_components(prompt, response)
        if all(math.isclose(parts[c], v, abs_tol=1e-9) for c, v in want.items()):
            return response
    raise RuntimeError(f"the world generated no response with components {want} for {prompt!r}")


def _world(prompt: str) -> Callable[[random.Random], str]:
    return lambda rng: sample_response(prompt, rng)[1]


def _rudely(prompt: str) -> Callable[[random.Random], str]:
    return lambda rng: rude(sample_response(prompt, rng)[1], rng)


def _padded(prompt: str) -> Callable[[random.Random], str]:
    return lambda rng: pad(sample_response(prompt, rng)[1], rng)


def condorcet_example() -> tuple[str, list[str]]:
    """A prompt and responses [a, b, c] on which PANEL's majority is cyclic: a > b > c > a.

    a: a made-up capital, said rudely          (correct −1,   polite −0.5, concise  0)
    b: the true capital, said rudely twice      (correct +1,   polite −1,   concise −0.5)
    c: "I don't know" (it is known), padded     (correct −0.5, polite  0,   concise −1)

    The stickler ranks b > c > a, the diplomat c > a > b, the minimalist a > b > c: each is
    transitive, yet two of three prefer a to b, b to c and c to a. panel_prob is 0.645 (a over b),
    0.662 (b over c) and 0.652 (c over a). BT's best fit is three scores within 0.04 of each
    other: a coin flip, log-likelihood −0.693 per comparison where the saturated model gets −0.645.
    """
    prompt = EXAMPLE_PROMPT
    a = _find(prompt, _rudely(prompt), correct=-1.0, polite=-0.5, concise=0.0)
    b = _find(prompt, _rudely(prompt), correct=1.0, polite=-1.0, concise=-0.5)
    c = _find(prompt, _padded(prompt), correct=-0.5, polite=0.0, concise=-1.0)
    return prompt, [a, b, c]


def dominates(x: dict[str, float], y: dict[str, float]) -> bool:
    """x ≥ y on every gold component and > on at least one (Pareto dominance)."""
    return all(x[c] >= y[c] for c in COMPONENTS) and any(x[c] > y[c] for c in COMPONENTS)


@dataclass
class DecoyLabeler:
    """Picks one favourite from a set of responses shown together; the set changes the pick.

    P(option i) = softmax_i((gold_reward_i + bonus · [i dominates another option]) / T): an option
    that beats something in the set outright looks better for it, as people's do (Huber, Payne &
    Puto, 1982). On decoy_example, P(target) / P(competitor) is 0.82 in {target, competitor} and
    6.05 in {target, competitor, decoy} (× e^{bonus/T} = 7.39): adding the decoy, itself chosen
    7% of the time, moves the target from 45% to 80% and the competitor from 55% to 13%. Luce's
    rule, and so any Bradley-Terry reward, keeps that ratio fixed (IIA).
    """

    temperature: float = field(default=0.25,
                               metadata={"help": "Noise of the choice; 0 means always pick the best."})
    dominance_bonus: float = field(
        default=0.5, metadata={"help": "Extra utility for dominating another option in the set."})
    seed: int = field(default=0, metadata={"help": "Seed of this labeler's random choices."})

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def choice_probs(self, prompt: str, options: list[str]) -> list[float]:
        """P(each option is chosen) from the set `options` shown together."""
        parts = [gold_components(prompt, o) for o in options]
        utils = [sum(WEIGHTS[c] * p[c] for c in COMPONENTS)
                 + self.dominance_bonus * any(dominates(p, q) for q in parts if q is not p)
                 for p in parts]
        if self.temperature <= 0:  # the best, ties split evenly
            best = [float(u == max(utils)) for u in utils]
            return [b / sum(best) for b in best]
        top = max(utils)  # shift by the max: no overflow, same probabilities
        exps = [math.exp((u - top) / self.temperature) for u in utils]
        return [e / sum(exps) for e in exps]

    def choose(self, prompt: str, options: list[str]) -> int:
        """The index of the option this labeler picks."""
        return self._rng.choices(range(len(options)), weights=self.choice_probs(prompt, options))[0]


def decoy_example() -> tuple[str, str, str, str]:
    """(prompt, target, competitor, decoy), all of them the true capital, differently dressed:

    target:     padded                           (polite  0,   concise −0.8; gold 0.60)
    competitor: rude                             (polite −0.5, concise −0.2; gold 0.65)
    decoy:      padded with more filler          (polite  0,   concise −1;   gold 0.50)

    Neither target nor competitor dominates the other (polite vs concise); the target dominates
    the decoy and the competitor does not (the decoy is politer). See DecoyLabeler for the shares.
    """
    prompt = EXAMPLE_PROMPT
    target = _find(prompt, _world(prompt), correct=1.0, polite=0.0, concise=-0.8)
    competitor = _find(prompt, _world(prompt), correct=1.0, polite=-0.5, concise=-0.2)
    decoy = _find(prompt, _world(prompt), correct=1.0, polite=0.0, concise=-1.0)
    return prompt, target, competitor, decoy


def hidden_context_example() -> tuple[str, list[str], tuple[Persona, Persona]]:
    """A prompt, responses [x, y, z] and two personas (stickler, diplomat), each labelling half.

    x: the true capital, said rudely     stickler  1.95, diplomat −0.90: mean  0.525
    y: "I don't know" (it is known)      stickler −1.00, diplomat −0.05: mean −0.525
    z: a made-up capital                 stickler −2.00, diplomat −0.10: mean −1.05

    x has the highest mean utility, but a comparison records only who won, not by how much: the
    stickler's gap of 2.95 for x over y counts no more than the diplomat's 0.85 against it (both
    near-certain at T = 0.25), so P(x > y) = 0.516, P(y > z) = 0.766, P(x > z) = 0.520. Borda shares are x 0.518, y 0.625, z 0.357, and BT, which ranks as Borda
    on a balanced design, puts y first (scores x 0.05, y 0.34, z −0.39): the reward learned from
    the pooled labels prefers the unhelpful answer to the right one, though on average the two
    personas value the right one more.
    """
    prompt = EXAMPLE_PROMPT
    x = _find(prompt, _world(prompt), correct=1.0, polite=-0.5, concise=0.0)
    y = _find(prompt, _world(prompt), correct=-0.5, polite=0.0, concise=0.0)
    z = _find(prompt, _world(prompt), correct=-1.0, polite=0.0, concise=0.0)
    return prompt, [x, y, z], (STICKLER, DIPLOMAT)
