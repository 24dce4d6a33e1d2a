"""Simulated human labelers: Bradley-Terry over the gold reward, with optional biases.

A labeler prefers response a to b with probability σ((u(a) − u(b)) / T), where u is the gold
reward plus any biases. The default temperature is calibrated so that two independent labelers
agree on ~73% of comparisons of two responses from the world's response generator (InstructGPT
reports 72.6 ± 1.5% inter-annotator agreement; Ouyang et al., 2022, §5.1).

Two labelers with the same p agree with probability p² + (1 − p)²; a perfect reward model can
predict one labeler's choice with probability max(p, 1 − p) at best (the Bayes rate).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from ..bradley_terry import sigmoid
from .common import words
from .gold import gold_reward, parse_prompt

DEFAULT_TEMPERATURE = 0.55
"""Calibrated with `agreement_stats(comparison_pairs(3000))` to ~73% agreement
(tests/test_world.py keeps it in 70-76%)."""


class BradleyTerryChooser:
    """Choices of anyone with a `utility(prompt, response)`, a `temperature` and an `_rng`:
    P(a ≻ b) = σ((u(a) − u(b)) / T), shared by `Labeler` and the chapter-2 personas."""

    def prob_prefers(self, prompt: str, a: str, b: str) -> float:
        """P(prefers a over b); at temperature 0 the better one surely, a tie ½."""
        diff = self.utility(prompt, a) - self.utility(prompt, b)
        if self.temperature <= 0:
            return 0.5 if diff == 0 else float(diff > 0)
        return float(sigmoid(diff / self.temperature))

    def compare(self, prompt: str, a: str, b: str) -> int:
        """0 if a is picked, 1 if b is."""
        return 0 if self._rng.random() < self.prob_prefers(prompt, a, b) else 1


@dataclass
class Labeler(BradleyTerryChooser):
    """A simulated human who compares responses to a prompt."""

    temperature: float = field(default=DEFAULT_TEMPERATURE,
                               metadata={"help": "Noise of the choice; 0 means always pick the better."})
    length_bias: float = field(default=0.0,
                               metadata={"help": "Extra utility per 10 words of response (length bias)."})
    agreement_bias: float = field(default=0.0,
                                  metadata={"help": "Extra utility for telling the user 'Yes' (sycophancy bait)."})
    seed: int = field(default=0, metadata={"help": "Seed of this labeler's random choices."})

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def utility(self, prompt: str, response: str) -> float:
        """What this labeler values: gold reward plus its biases."""
        u = gold_reward(prompt, response) + self.length_bias * len(words(response)) / 10
        if self.agreement_bias and response.strip().startswith("Yes"):
            if parse_prompt(prompt).family == "sycophancy":
                u += self.agreement_bias
        return u


    def rank(self, prompt: str, responses: list[str]) -> list[int]:
        """A full ranking, best first (indices), drawn from the Plackett-Luce model: utility/T
        plus Gumbel noise, sorted. Its pairwise marginals are the Bradley-Terry ones above."""
        t = max(self.temperature, 1e-9)
        noisy = [self.utility(prompt, r) / t - math.log(-math.log(self._rng.random() or 1e-12))
                 for r in responses]
        return sorted(range(len(responses)), key=lambda i: -noisy[i])


LENGTH_BIAS = 0.5
"""Utility per 10 words of the length-biased labeler (chapter 2): about a third of the gap
between a correct and a wrong answer per 20 extra words."""


def length_biased_labeler(seed: int = 0) -> Labeler:
    """A labeler who, all else equal, prefers longer answers (the bias chapter 3 exploits)."""
    return Labeler(length_bias=LENGTH_BIAS, seed=seed)


def agreement_stats(pairs: list[tuple[str, str, str]], temperature: float = DEFAULT_TEMPERATURE,
                    seed: int = 0) -> dict[str, float]:
    """For (prompt, a, b) triples: the expected agreement of two independent labelers
    E[p² + (1−p)²], the agreement two sampled labelers actually showed (with its binomial standard
    error), and the Bayes-optimal accuracy E[max(p, 1−p)] of a perfect reward model against one labeler."""
    one, two = Labeler(temperature, seed=seed), Labeler(temperature, seed=seed + 1)
    ps = [one.prob_prefers(*t) for t in pairs]
    agree = [one.compare(*t) == two.compare(*t) for t in pairs]
    n = len(pairs)
    return {
        "n_pairs": n,
        "expected_agreement": sum(p * p + (1 - p) ** 2 for p in ps) / n,
        "measured_agreement": sum(agree) / n,
        "measured_se": (sum(agree) / n * (1 - sum(agree) / n) / n) ** 0.5,
        "bayes_accuracy": sum(max(p, 1 - p) for p in ps) / n,
    }
