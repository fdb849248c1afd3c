"""`beta`: Adaptive-Consistency's Beta stopping criterion (Aggarwal et al. 2023, "Let's Sample Step by
Step: Adaptive-Consistency for Efficient Reasoning and Coding with LLMs", EMNLP).

With a, b the counts of the two most frequent real answers (b = 0 if only one), the posterior over
their relative share p1 / (p1 + p2) under a uniform prior is Beta(a + 1, b + 1); stop once
P(p1 > p2) = P(X > 0.5) reaches `threshold` (paper default 0.95). Counts, not weights, as in the paper.
"""
from __future__ import annotations

import math
from typing import Sequence

from scipy import stats

from .base import LevelRule, SampleView, as_views, check_int, check_prob, real_counts, top_two


def beta_stop_probability(a: int, b: int) -> float:
    """P(X > 0.5) for X ~ Beta(a + 1, b + 1): the probability that the leader is the true majority."""
    return float(stats.beta.sf(0.5, a + 1, b + 1))


class BetaRule(LevelRule):
    name = "beta"

    def __init__(self, threshold: float = 0.95, min_samples: int = 1):
        self.threshold = check_prob(self.name, "threshold", threshold)
        self.min_samples = check_int(self.name, "min_samples", min_samples)  # counts real answers

    def probability(self, samples: Sequence[SampleView | str | None]) -> float:
        samples = as_views(samples)
        a, b = top_two(real_counts(samples))
        return beta_stop_probability(a, b)

    def statistic(self, samples: Sequence[SampleView | str | None]) -> float:
        """P(leader is the majority); -inf below min_samples real answers."""
        counts = real_counts(as_views(samples))
        n = sum(counts.values())
        if n == 0 or n < self.min_samples:
            return -math.inf
        return beta_stop_probability(*top_two(counts))

