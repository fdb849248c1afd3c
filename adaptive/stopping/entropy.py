"""`entropy`: Adaptive-Consistency's entropy stopping criterion (Aggarwal et al. 2023, "Let's Sample
Step by Step: Adaptive-Consistency for Efficient Reasoning and Coding with LLMs").

Normalized entropy of the empirical distribution of real answers: H(counts, base 2) / log2(k), k the
number of distinct answers, in [0, 1]. As in the paper's code, a lone distinct answer gets a
pseudo-answer with count 1 (so k >= 2 and unanimity must be repeated to count), the threshold
defaults to 0.75 and a single answer never stops (min_samples = 2, counting real answers).
Unanimous n answers: H(n/(n+1), 1/(n+1)); this first drops to <= 0.75 at n = 4 (0.722).
"""
from __future__ import annotations

import math
from typing import Sequence

from .base import LevelRule, SampleView, as_views, check_int, check_prob, real_counts


def normalized_entropy(counts: Sequence[int]) -> float:
    """Entropy (bits) of `counts` over log2(#entries); a single entry gets a pseudo-count of 1."""
    counts = [c for c in counts if c > 0]
    if not counts:
        return 1.0
    if len(counts) == 1:
        counts = counts + [1]
    n = sum(counts)
    h = -sum(c / n * math.log2(c / n) for c in counts)
    return h / math.log2(len(counts))


class EntropyRule(LevelRule):
    name = "entropy"

    def __init__(self, threshold: float = 0.75, min_samples: int = 2):
        self.threshold = check_prob(self.name, "threshold", threshold)
        self.min_samples = check_int(self.name, "min_samples", min_samples)

    negate = True  # stops when entropy <= threshold, i.e. -entropy >= -threshold

    def statistic(self, samples: Sequence[SampleView | str | None]) -> float:
        """Minus the normalized entropy (higher = more agreement); -inf below min_samples real answers."""
        counts = real_counts(as_views(samples))
        n = sum(counts.values())
        if n == 0 or n < self.min_samples:
            return -math.inf
        return -normalized_entropy(list(counts.values()))

