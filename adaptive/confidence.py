"""DeepConf trace-confidence measures (Fu et al. 2025, "Deep Think with Confidence", arXiv 2508.15260):
the one home of the constants and measures that the confidence verifier, the `confidence` stopping rule,
the sampling and search strategies, the sample-probe estimator and the backends' online abort share.

Token confidence C_i = -(1/k) * sum_j log P_i(j) over the top-k candidates at position i: high when the
distribution is peaked (the runner-up candidates are improbable). Trace measures summarise C_i:
group (sliding-window mean), lowest group, bottom-X% group, tail and mean confidence.

Empty input: 0.0. Confidence is >= 0 (logprobs are <= 0), so 0 is the floor of the scale; missing
evidence counts as least confident, as in DeepConf's reference code, which gives an empty trace 0.

Pure Python (no numpy): backends.base reads DEFAULT_WINDOW, and `import adaptive` must stay light.
"""
from __future__ import annotations

import math
from typing import Sequence

from .errors import InputError

TOP_LOGPROBS = 5       # k: candidates per position that token confidence averages (DeepConf uses 5 too)
PAPER_WINDOW = 2048    # the paper's group window, meant for traces of many thousand tokens
DEFAULT_WINDOW = 16    # ours: traces here are tens to hundreds of tokens long
DEFAULT_TAIL = 16      # the paper's tail is 2048 tokens; scaled down for the same reason
BOTTOM_PERCENT = 10    # the paper's bottom-10% group confidence
MODES = ("mean", "tail", "lowest_group", "bottom10")  # trace measures by name (verifier `mode`)


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name}={value!r}: must be an integer >= 1")
    return value


def token_confidence(top_logprobs: Sequence[float]) -> float:
    """-mean of the top-k candidate logprobs at one position; 0.0 when no candidates are given."""
    if len(top_logprobs) == 0:
        return 0.0
    return -float(sum(top_logprobs)) / len(top_logprobs)


def token_confidences(top_logprobs: Sequence[Sequence[float]]) -> list[float]:
    """Token confidence at every position of a trace (a Completion's `top_logprobs`)."""
    return [token_confidence(t) for t in top_logprobs]


def group_confidences(token_conf: Sequence[float], window: int = DEFAULT_WINDOW) -> list[float]:
    """Means of every `window` consecutive token confidences (n - window + 1 overlapping groups).

    A trace shorter than the window is one group (its mean); an empty trace has no groups ([]).
    """
    _check_positive_int("window", window)
    n = len(token_conf)
    if n == 0:
        return []
    if n < window:
        return [float(sum(token_conf)) / n]
    c = [0.0]
    for v in token_conf:
        c.append(c[-1] + float(v))
    return [(c[i + window] - c[i]) / window for i in range(n - window + 1)]


def mean_confidence(token_conf: Sequence[float]) -> float:
    """Average token confidence over the whole trace (the paper's 'average trace confidence')."""
    return float(sum(token_conf)) / len(token_conf) if len(token_conf) else 0.0


def lowest_group_confidence(token_conf: Sequence[float], window: int = DEFAULT_WINDOW) -> float:
    """Minimum group confidence: the weakest stretch of reasoning. DeepConf-online filters on this."""
    groups = group_confidences(token_conf, window)
    return min(groups) if groups else 0.0


def last_group_confidence(token_conf: Sequence[float], window: int = DEFAULT_WINDOW) -> float | None:
    """Mean confidence of the last `window` tokens, or None while fewer have been generated. DeepConf
    online aborts a trace once this falls below its bar (checked after every token, so the first group
    to fall below is the trace's lowest so far)."""
    _check_positive_int("window", window)
    if len(token_conf) < window:
        return None
    return mean_confidence(list(token_conf)[-window:])


def tail_confidence(token_conf: Sequence[float], tail: int = DEFAULT_TAIL) -> float:
    """Mean confidence of the last `tail` tokens (the whole trace if shorter): where the answer is."""
    _check_positive_int("tail", tail)
    return mean_confidence(list(token_conf)[-tail:])


def bottom_percent_confidence(token_conf: Sequence[float], window: int = DEFAULT_WINDOW,
                              percent: float = BOTTOM_PERCENT) -> float:
    """Mean of the lowest `percent`% group confidences: ceil(n_groups * percent / 100) groups, at least 1."""
    if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 < percent <= 100:
        raise InputError(f"percent={percent!r}: must be in (0, 100]")
    groups = sorted(group_confidences(token_conf, window))
    if not groups:
        return 0.0
    k = max(1, math.ceil(len(groups) * percent / 100))
    return float(sum(groups[:k])) / k


def trace_confidence(top_logprobs: Sequence[Sequence[float]], mode: str = "lowest_group",
                     window: int = DEFAULT_WINDOW, tail: int = DEFAULT_TAIL) -> float:
    """One trace measure (`mode`, one of MODES) from a trace's per-token top-k logprobs."""
    conf = token_confidences(top_logprobs)
    if mode == "mean":
        return mean_confidence(conf)
    if mode == "tail":
        return tail_confidence(conf, tail)
    if mode == "lowest_group":
        return lowest_group_confidence(conf, window)
    if mode == "bottom10":
        return bottom_percent_confidence(conf, window, BOTTOM_PERCENT)
    raise InputError(f"confidence mode {mode!r}; accepted: {', '.join(MODES)}")
