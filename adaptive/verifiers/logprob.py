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
        return [math.exp(c.mean_logprob) if c.logprobs else 0.0 for c in completions]


class Confidence:
    """DeepConf (Fu et al. 2025) trace confidences from top-k logprobs; higher = more confident.
    `window` and `tail` default to adaptive.confidence's DEFAULT_WINDOW and DEFAULT_TAIL."""

    name = "confidence"
    needs = frozenset({"top_logprobs"})

    def __init__(self, mode: str = "lowest_group", window: int = C.DEFAULT_WINDOW, tail: int = C.DEFAULT_TAIL):
        if mode not in C.MODES:
            raise ConfigError(f"confidence verifier: mode={mode!r}; accepted: {', '.join(C.MODES)}")
        if window < 1 or tail < 1:
            raise ConfigError("confidence verifier: window and tail must be >= 1")
        self.mode, self.window, self.tail = mode, window, tail

    def trace(self, c: Completion) -> float:
        return C.trace_confidence(c.top_logprobs, self.mode, self.window, self.tail)

    def score(self, prompt: PromptLike, completions: Sequence[Completion], ledger=None) -> list[float]:
        return [self.trace(c) for c in completions]


def make_logprob(backend=None) -> MeanLogprob:
    return MeanLogprob()


def make_confidence(backend=None, **params) -> Confidence:
    return Confidence(**params)
