"""Streaming latency metrics of one request, from its arrival time and its token timestamps (seconds).

Definitions follow Etalon (Agrawal et al. 2024, "Etalon: Holistic Performance Evaluation Framework
for LLM Inference Systems", arXiv:2407.07000): TTFT, TBT (time between tokens), TPOT, normalized
latency, and the fluidity-index, which judges a stream against per-token deadlines instead of
averages that hide stalls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..errors import InputError
from .stats import percentile

# Absolute slack in seconds for float comparisons: cumulative sums of gaps such as 0.25 + 0.02 + ...
# are not exact, and a token that lands on its deadline must not be judged late by rounding.
_EPS = 1e-9


def _times(arrival: float | None, token_times: Sequence[float]) -> list[float]:
    """Validate timestamps: finite, non-decreasing, and not before the arrival."""
    try:
        ts = [float(t) for t in token_times]
        a = None if arrival is None else float(arrival)
    except (TypeError, ValueError) as e:
        raise InputError(f"timestamps must be numbers: {e}") from None
    if a is not None and not math.isfinite(a):
        raise InputError(f"arrival={a!r} is not a finite time")
    for i, t in enumerate(ts):
        if not math.isfinite(t):
            raise InputError(f"token_times[{i}]={t!r} is not a finite time")
        if a is not None and t < a:
            raise InputError(f"token_times[{i}]={t} is before the request arrival {a}")
        if i and t < ts[i - 1]:
            raise InputError(f"token_times must be non-decreasing: token_times[{i}]={t} < "
                             f"token_times[{i - 1}]={ts[i - 1]}")
    return ts


def _nonempty(arrival: float, token_times: Sequence[float], what: str) -> list[float]:
    ts = _times(arrival, token_times)
    if not ts:
        raise InputError(f"{what} is undefined for a stream with no tokens")
    return ts


def inter_token_times(arrival: float, token_times: Sequence[float]) -> list[float]:
    """[TTFT, gap_1, gap_2, ...]: the per-token latencies the fluidity-index consumes.

    Element 0 is token_times[0] - arrival, element i is token_times[i] - token_times[i-1].
    An empty stream gives [].
    """
    ts = _times(arrival, token_times)
    if not ts:
        return []
    return [ts[0] - float(arrival)] + [ts[i] - ts[i - 1] for i in range(1, len(ts))]


def ttft(arrival: float, token_times: Sequence[float]) -> float:
    """Time to first token: how long the user stares at nothing (includes queueing and prefill)."""
    ts = _nonempty(arrival, token_times, "TTFT")
    return ts[0] - float(arrival)


def tbt(token_times: Sequence[float]) -> list[float]:
    """Time between consecutive tokens (decode gaps), excluding the TTFT; [] for fewer than 2 tokens."""
    ts = _times(None, token_times)
    return [ts[i] - ts[i - 1] for i in range(1, len(ts))]


def tbt_percentiles(token_times: Sequence[float]) -> dict:
    """p50, p99 and max of the TBT gaps: the tail shows stalls that the mean (TPOT) averages away.

    Needs at least 2 tokens, since with one token there is no gap to summarize.
    """
    gaps = tbt(token_times)
    if not gaps:
        raise InputError("TBT percentiles need at least 2 tokens (no inter-token gap exists)")
    return {"p50": percentile(gaps, 50), "p99": percentile(gaps, 99), "max": max(gaps)}


def tpot(arrival: float, token_times: Sequence[float]) -> float:
    """Time per output token after the first: (last - first) / (n - 1), the mean decode gap.

    The first token is excluded because its latency is the TTFT (prefill), not decode. With one
    token there is no decode interval, so TPOT is defined as 0.0 (no decode time was spent).
    """
    ts = _nonempty(arrival, token_times, "TPOT")
    if len(ts) == 1:
        return 0.0
    return (ts[-1] - ts[0]) / (len(ts) - 1)


def normalized_latency(arrival: float, token_times: Sequence[float]) -> float:
    """End-to-end latency divided by output tokens, (last - arrival) / n: comparable across lengths."""
    ts = _nonempty(arrival, token_times, "normalized latency")
    return (ts[-1] - float(arrival)) / len(ts)


@dataclass(frozen=True)
class FluidityResult:
    """Outcome of the fluidity-index: missed deadlines, all deadlines (met + missed), 1 - missed/total."""

    missed: int
    total: int
    fluidity: float


def fluidity_index(itl: Sequence[float], ttft_target: float, tbt_target: float) -> FluidityResult:
    """Etalon's fluidity-index (Agrawal et al. 2024, arXiv:2407.07000): share of per-token deadlines met.

    itl[0] is the TTFT, itl[1:] the inter-token gaps (see inter_token_times). With D_p = ttft_target
    and D_d = tbt_target, the first token is due D_p after arrival and each later token D_d after the
    previous deadline, so slack earned by early tokens carries forward (a client buffer can hide a
    later hiccup). A token arriving at or before its deadline (inclusive, within 1e-9 s) meets one
    deadline. A late token by `overrun` seconds misses floor(overrun / D_d) + 1 deadlines (the
    floor uses a 1e-9 epsilon so 0.06/0.03 counts 2, not 1.999...) and resets the schedule: the next
    deadline becomes that token's actual arrival + D_d, since the user already saw the stall.
    total = met + missed; fluidity = 1 - missed / total.

    A stall in the first token is counted the same way with D_d as the unit, so a long TTFT miss costs
    several deadlines. An empty stream raises InputError: 0/0 is undefined, and scoring a request that
    delivered nothing as perfectly fluid (1.0) would hide failures.
    """
    try:
        gaps = [float(g) for g in itl]
        d_p, d_d = float(ttft_target), float(tbt_target)
    except (TypeError, ValueError) as e:
        raise InputError(f"fluidity_index arguments must be numbers: {e}") from None
    for name, v in (("ttft_target", d_p), ("tbt_target", d_d)):
        if not math.isfinite(v) or v <= 0:
            raise InputError(f"{name} must be a positive finite number of seconds, got {v!r}")
    if not gaps:
        raise InputError("fluidity_index is undefined for an empty stream (no token, no deadline)")
    for i, g in enumerate(gaps):
        if not math.isfinite(g) or g < 0:
            raise InputError(f"itl[{i}]={g!r} must be a finite non-negative number of seconds")

    met = missed = 0
    now = 0.0           # token arrival, seconds after the request arrival
    deadline = d_p
    for g in gaps:
        now += g
        if now <= deadline + _EPS:
            met += 1
            deadline += d_d
        else:
            missed += math.floor((now - deadline) / d_d + _EPS) + 1
            deadline = now + d_d
    total = met + missed
    return FluidityResult(missed=missed, total=total, fluidity=1.0 - missed / total)
