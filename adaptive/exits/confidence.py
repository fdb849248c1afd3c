"""`confidence`: exit once the model is confident in its trial answer.

DEER (Yang et al. 2025, "Dynamic Early Exit in Reasoning Models", arXiv 2504.15895): at a point in the
thought, induce a trial answer (close the thought, append an answer cue, decode greedily) and exit when
the model's confidence in that trial answer, computed from the probabilities of its tokens, reaches a
threshold lambda; otherwise the trial answer is discarded and thinking continues.

Confidence used here: the mean token probability of the trial answer,
    C = (1/n) * sum_{i=1..n} exp(logprob_i)
over its n generated tokens, EOS excluded. Decoding is greedy, so each token is the most probable one at
its position and exp(logprob_i) is that position's maximum probability. C is in (0, 1]; exit iff
C >= threshold. A probe with no extractable answer, or no logprobs, never exits.
(DeepConf's token confidence, Fu et al. 2025, is a negative mean log-probability on an unbounded scale;
a threshold in (0, 1] needs a probability, hence this measure.)
"""
from __future__ import annotations

import math
from typing import Sequence

from .base import Probe


def mean_token_probability(logprobs: Sequence[float]) -> float | None:
    """(1/n) * sum exp(logprob_i); None for no tokens."""
    if not logprobs:
        return None
    return sum(math.exp(lp) for lp in logprobs) / len(logprobs)


class ConfidenceExit:
    name = "confidence"
    needs_logprobs = True

    def __init__(self, threshold: float = 0.9):
        self.threshold = threshold

    @classmethod
    def from_plan(cls, plan) -> "ConfidenceExit":
        return cls(plan.exit_threshold)

    def should_exit(self, probes: Sequence[Probe]) -> bool:
        if not probes or probes[-1].answer is None:
            return False
        c = mean_token_probability(probes[-1].logprobs)
        return c is not None and c >= self.threshold
