"""Verifiers from the policy model's own token probabilities: mean logprob and DeepConf confidences."""
from __future__ import annotations

import math
from typing import Sequence

from .. import confidence as C
from ..backends.base import Completion, PromptLike
from ..errors import ConfigError


class MeanLogprob:
    """exp(mean token logprob): the geometric-mean probability of the sampled tokens, in (0, 1]."""

    name = "logprob"
    needs = frozenset({"logprobs"})

    def score(self, prompt: PromptLike, completions: Sequence[Completion], ledger=None) -> list[float]:
        return [math.exp(sum(c.logprobs) / len(c.logprobs)) if c.logprobs else 0.0 for c in completions]


MODES = ("mean", "tail", "lowest_group", "bottom10")


class Confidence:
    """DeepConf (Fu et al. 2025) trace confidences from top-k logprobs; higher = more confident."""

    name = "confidence"
    needs = frozenset({"top_logprobs"})

    def __init__(self, mode: str = "lowest_group", window: int = 16, tail: int = 32):
        if mode not in MODES:
            raise ConfigError(f"confidence verifier: mode={mode!r}; accepted: {', '.join(MODES)}")
        if window < 1 or tail < 1:
            raise ConfigError("confidence verifier: window and tail must be >= 1")
        self.mode, self.window, self.tail = mode, window, tail

    def trace(self, c: Completion) -> float:
        conf = [C.token_confidence(t) for t in c.top_logprobs]
        if not conf:
            return 0.0
        if self.mode == "mean":
            return C.mean_confidence(conf)
        if self.mode == "tail":
            return C.tail_confidence(conf, tail=self.tail)
        if self.mode == "lowest_group":
            return C.lowest_group_confidence(conf, self.window)
        return C.bottom_percent_confidence(conf, self.window, percent=10)

    def score(self, prompt: PromptLike, completions: Sequence[Completion], ledger=None) -> list[float]:
        return [self.trace(c) for c in completions]


def make_logprob(backend=None) -> MeanLogprob:
    return MeanLogprob()


def make_confidence(backend=None, **params) -> Confidence:
    return Confidence(**params)
