"""`dirichlet`: Adaptive-Consistency's Dirichlet stopping criterion (Aggarwal et al. 2023, "Let's
Sample Step by Step: Adaptive-Consistency for Efficient Reasoning and Coding with LLMs").

Over all distinct real answers with counts v, the posterior of their probabilities under a uniform
prior is Dirichlet(v + 1); stop once P(leader's probability is the largest) >= `threshold` (0.95).
With one distinct answer an unseen alternative with count 0 is added (as the paper's code falls back
to the Beta rule), so one sample cannot give probability 1; with two answers this equals `beta`.

Exact method: with independent X_i ~ Gamma(alpha_i), p = X / sum(X) ~ Dirichlet(alpha), so
P(p_1 largest) = P(X_1 > X_i for all i) = integral_0^1 prod_{i>=2} F_i(F_1^{-1}(u)) du, one 1-D
quadrature for any number of answers. `method="monte_carlo"` draws from a seeded numpy Generator.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import integrate, stats

from .base import SampleView, check_choice, check_int, check_prob, real_counts
from .beta import beta_stop_probability


def dirichlet_leader_probability(counts: Sequence[int], *, method: str = "exact", draws: int = 20000,
                                 seed: int = 0) -> float:
    """P(the first entry of `counts` has the largest probability) under Dirichlet(counts + 1)."""
    alpha = np.asarray(counts, dtype=np.float64) + 1.0
    if alpha.size == 0:
        return 0.0
    if alpha.size == 1:
        alpha = np.append(alpha, 1.0)  # an unseen alternative with count 0
    if method == "monte_carlo":
        p = np.random.default_rng(seed).dirichlet(alpha, size=draws)
        return float(np.mean(np.argmax(p, axis=1) == 0))
    if alpha.size == 2:
        return beta_stop_probability(alpha[0] - 1, alpha[1] - 1)
    a1, rest = alpha[0], alpha[1:]

    def integrand(u: float) -> float:
        x = stats.gamma.ppf(u, a1)
        return float(np.prod(stats.gamma.cdf(x, rest)))

    value, _ = integrate.quad(integrand, 0.0, 1.0, epsabs=1e-10, epsrel=1e-8, limit=200)
    return float(min(max(value, 0.0), 1.0))


class DirichletRule:
    name = "dirichlet"

    def __init__(self, threshold: float = 0.95, min_samples: int = 1, method: str = "exact",
                 draws: int = 20000, seed: int = 0):
        self.threshold = check_prob(self.name, "threshold", threshold)
        self.min_samples = check_int(self.name, "min_samples", min_samples)  # counts real answers
        self.method = check_choice(self.name, "method", method, ("exact", "monte_carlo"))
        self.draws = check_int(self.name, "draws", draws)
        self.seed = check_int(self.name, "seed", seed, low=0)

    def probability(self, samples: Sequence[SampleView]) -> float:
        counts = [c for _, c in real_counts(samples).most_common()]  # leader first
        return dirichlet_leader_probability(counts, method=self.method, draws=self.draws, seed=self.seed)

    def should_stop(self, samples: Sequence[SampleView]) -> bool:
        n = sum(real_counts(samples).values())
        if n == 0 or n < self.min_samples:
            return False
        return self.probability(samples) >= self.threshold
