"""A bandit small enough to do DPO's derivation exactly: one prompt, K responses, a reference
policy π_ref and a reward r over them. Every expectation is a finite sum (float64).

    bandit = Bandit.example()
    pi_star = bandit.optimal_policy(beta=0.5)           # π* ∝ π_ref · exp(r/β)
    pi_num = bandit.maximise(beta=0.5)                  # numerical ascent on E[r] − β KL

Rafailov et al. (2023), §4: step 1, the KL-regularised optimum is π*(y) = π_ref(y) e^{r(y)/β} / Z;
step 2, so r(y) = β log(π*(y)/π_ref(y)) + β log Z; step 3, in Bradley-Terry only r(y_w) − r(y_l)
enters and β log Z cancels, which leaves the DPO loss on π alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

DTYPE = torch.float64


@dataclass(frozen=True)
class Bandit:
    """One prompt's K responses: reference probabilities (K,) and rewards (K,)."""

    ref: torch.Tensor
    reward: torch.Tensor
    labels: tuple[str, ...] = ()

    @staticmethod
    def example() -> "Bandit":
        """Five answers to "What is 17 + 25?", from the world's styles: the reference (an SFT
        model) favours the confident wrong answer; the reward is the world's gold reward."""
        labels = ("Answer: 42.", "Step: 7 + 5 = 12 … Answer: 42.", "Answer: 32.", "Whatever. Answer: 42.",
                  "I don't know.")
        ref = torch.tensor([0.20, 0.10, 0.40, 0.15, 0.15], dtype=DTYPE)
        reward = torch.tensor([1.5, 2.0, -0.5, 0.5, -1.0], dtype=DTYPE)
        return Bandit(ref, reward, labels)

    def log_partition(self, beta: float) -> torch.Tensor:
        """log Z = log Σ_y π_ref(y) e^{r(y)/β}, computed stably."""
        return torch.logsumexp(self.ref.log() + self.reward / beta, 0)

    def optimal_policy(self, beta: float) -> torch.Tensor:
        """π*(y) = π_ref(y) e^{r(y)/β} / Z (K,): the closed form of step 1."""
        return torch.exp(self.ref.log() + self.reward / beta - self.log_partition(beta))

    def objective(self, pi: torch.Tensor, beta: float) -> torch.Tensor:
        """E_π[r] − β KL(π ‖ π_ref) for a policy π (K,)."""
        return (pi * self.reward).sum() - beta * (pi * (pi.log() - self.ref.log())).sum()

    def maximise(self, beta: float, max_iter: int = 500) -> torch.Tensor:
        """The optimum found numerically — no closed form used: maximise E[r] − β KL over softmax
        logits from π_ref with L-BFGS (float64, so it reaches the optimum to ~1e-10)."""
        logits = self.ref.log().clone().requires_grad_(True)
        opt = torch.optim.LBFGS([logits], lr=1.0, max_iter=max_iter, tolerance_grad=1e-15,
                                tolerance_change=1e-18, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = -self.objective(torch.softmax(logits, 0), beta)
            loss.backward()
            return loss
        opt.step(closure)
        return torch.softmax(logits.detach(), 0)

    def implied_reward(self, pi: torch.Tensor, beta: float) -> torch.Tensor:
        """β log(π/π_ref) + β log Z (K,): step 2 — equals r exactly when π = π*."""
        return beta * (pi.log() - self.ref.log()) + beta * self.log_partition(beta)
