"""`dirichlet`: Adaptive-Consistency's Dirichlet stopping criterion (Aggarwal et al. 2023, "Let's
Sample Step by Step: Adaptive-Consistency for Efficient Reasoning and Coding with LLMs").

Over all distinct real answers with counts v, the posterior of their probabilities under a uniform
prior is Dirichlet(v + 1); stop once P(leader's probability is the largest) >= `threshold` (0.95).
With one distinct answer an unseen alternative with count 0 is added (as the paper's code falls back
to the Beta rule), so one sample cannot give probability 1; with two answers this equals `beta`.

Exact method: with independent X_i ~ Gamma(alpha_i), p = X / sum(X) ~ Dirichlet(alpha), so
P(p_1 largest) = P(X_1 > X_i for all i) = integral_0^inf f_1(x) prod_{i>=2} F_i(x) dx, one 1-D integral
for any number of answers. It is evaluated by 96-point Gauss-Legendre quadrature over the range where
f_1 has its mass (mean a_1 +- 12 sd), with F_i the regularized incomplete gamma function: ~0.5 ms per
vote count instead of ~70-200 ms for adaptive quadrature, within 1e-8 of it (tests compare the two on
hundreds of count vectors), and memoized per vote count. `method="monte_carlo"` draws from a seeded
numpy Generator.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
from scipy import special

from .base import LevelRule, SampleView, as_views, check_choice, check_int, check_prob, real_counts
from .beta import beta_stop_probability

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(96)


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
    return _exact(float(alpha[0]), tuple(sorted(alpha[1:].tolist())))


@lru_cache(maxsize=65536)
def _exact(a1: float, rest: tuple[float, ...]) -> float:
    """integral f_1(x) prod_i F_i(x) dx by Gauss-Legendre over [mean -+ 12 sd] of Gamma(a1)."""
    sd = np.sqrt(a1)
    lo, hi = max(0.0, a1 - 1.0 - 12.0 * sd - 12.0), a1 + 12.0 * sd + 25.0
    x = 0.5 * (hi - lo) * _NODES + 0.5 * (hi + lo)
    density = np.exp((a1 - 1.0) * np.log(x) - x - special.gammaln(a1))
    below = np.prod(special.gammainc(np.asarray(rest)[:, None], x[None, :]), axis=0)
    value = 0.5 * (hi - lo) * float(np.sum(_WEIGHTS * density * below))
    return float(min(max(value, 0.0), 1.0))


class DirichletRule(LevelRule):
    name = "dirichlet"

    def __init__(self, threshold: float = 0.95, min_samples: int = 1, method: str = "exact",
                 draws: int = 20000, seed: int = 0):
        self.threshold = check_prob(self.name, "threshold", threshold)
        self.min_samples = check_int(self.name, "min_samples", min_samples)  # counts real answers
        self.method = check_choice(self.name, "method", method, ("exact", "monte_carlo"))
        self.draws = check_int(self.name, "draws", draws)
        self.seed = check_int(self.name, "seed", seed, low=0)

    def probability(self, samples: Sequence[SampleView | str | None]) -> float:
        counts = [c for _, c in real_counts(as_views(samples)).most_common()]  # leader first
        return dirichlet_leader_probability(counts, method=self.method, draws=self.draws, seed=self.seed)

    def statistic(self, samples: Sequence[SampleView | str | None]) -> float:
        """P(leader has the largest probability); -inf below min_samples real answers."""
        samples = as_views(samples)
        n = sum(real_counts(samples).values())
        if n == 0 or n < self.min_samples:
            return -math.inf
        return self.probability(samples)

