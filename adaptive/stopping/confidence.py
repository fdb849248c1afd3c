"""`confidence`: DeepConf online (Fu et al. 2025, "Deep Think with Confidence", arXiv 2508.15260).

Warmup: the first `warmup` traces (the paper's N_init, 16 there; 4 here for small budgets) calibrate
the bar s = the (100 - percentile)-th percentile of their lowest group confidences, so the top
`percentile`% would pass (10 = DeepConf-low, 90 = DeepConf-high). After that a trace whose lowest group
confidence is below s is dropped from the vote (and the backend may cut it while generating).

Adaptive sampling: stop once the confidence-weighted vote share of the leading real answer among the
kept traces, beta = V(a*) / sum_a V(a), reaches the consensus tau (0.95).

Choices:
- vote weight `weight_by`: "lowest_group" (default, as DeepConf's online reference code, which
  weights each kept trace by its lowest group confidence), "mean" (mean token confidence) or
  "weight" (the SampleView weight, e.g. a verifier score). A trace without token confidences always
  uses its `weight` and is always kept (it cannot be judged).
- `window` default adaptive.confidence.DEFAULT_WINDOW (16 tokens), not the paper's 2048: our traces are short.
- `min_votes` (default 2): kept real answers needed before stopping. With the paper's N_init = 16 and
  top 10%, two warmup traces clear the bar; with our 4 only one would, and a one-trace vote is always
  unanimous, so without this the rule would stop right after warmup.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..confidence import DEFAULT_WINDOW, lowest_group_confidence, mean_confidence
from ..errors import ConfigError
from .base import LevelRule, SampleView, as_views, check_choice, check_int, check_prob


class ConfidenceRule(LevelRule):
    name = "confidence"

    def __init__(self, warmup: int = 4, percentile: float = 10, window: int = DEFAULT_WINDOW,
                 consensus: float = 0.95, min_votes: int = 2, weight_by: str = "lowest_group"):
        self.warmup = check_int(self.name, "warmup", warmup)
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0 < percentile <= 100:
            raise ConfigError(f"stopping rule {self.name!r}: percentile={percentile!r} must be a number in (0, 100]")
        self.percentile = float(percentile)
        self.window = check_int(self.name, "window", window)
        self.consensus = check_prob(self.name, "consensus", consensus, closed_high=True)
        self.min_votes = check_int(self.name, "min_votes", min_votes)
        self.weight_by = check_choice(self.name, "weight_by", weight_by, ("lowest_group", "mean", "weight"))

    def trace_confidence(self, sample: SampleView) -> float | None:
        """Lowest group confidence of the trace (a bank's stored value without token confidences; None
        without either)."""
        if sample.token_confidences is None:
            return sample.trace_confidence
        return lowest_group_confidence(sample.token_confidences, self.window)

    def calibrate(self, samples: Sequence[SampleView]) -> float | None:
        """The bar s calibrated on the first `warmup` traces; None before warmup or without confidences."""
        if len(samples) < self.warmup:
            return None
        confs = [self.trace_confidence(s) for s in samples[: self.warmup]]
        if any(c is None for c in confs):
            return None
        return float(np.percentile(confs, 100.0 - self.percentile))

    def keep(self, sample: SampleView, s: float | None) -> bool:
        """False when the trace's lowest group confidence is below the bar s."""
        conf = self.trace_confidence(sample)
        return s is None or conf is None or conf >= s

    def vote_weight(self, sample: SampleView) -> float:
        if self.weight_by == "lowest_group" and sample.token_confidences is None and sample.trace_confidence is not None:
            return float(sample.trace_confidence)
        if self.weight_by == "weight" or sample.token_confidences is None:
            return float(sample.weight)
        if self.weight_by == "mean":
            return mean_confidence(sample.token_confidences)
        return lowest_group_confidence(sample.token_confidences, self.window)

    def consensus_share(self, samples: Sequence[SampleView]) -> tuple[float, int]:
        """(leading answer's weighted share among kept real answers, number of such votes)."""
        s = self.calibrate(samples)
        votes: dict = {}
        n = 0
        for sample in samples:
            if sample.answer is None or not self.keep(sample, s):
                continue
            votes[sample.answer] = votes.get(sample.answer, 0.0) + self.vote_weight(sample)
            n += 1
        total = sum(votes.values())
        if n == 0 or total <= 0:
            return 0.0, n
        return max(votes.values()) / total, n

    level_param = "consensus"

    def statistic(self, samples: Sequence[SampleView | str | None]) -> float:
        """The leading answer's weighted share among kept votes; -inf before warmup or min_votes."""
        samples = as_views(samples)
        if len(samples) < self.warmup:
            return -math.inf
        share, n = self.consensus_share(samples)
        return share if n >= self.min_votes else -math.inf

