"""Small descriptive statistics for benchmark reports: percentiles, summaries and confidence intervals.

Written from the textbook definitions so results do not depend on a library's defaults; the
percentile matches numpy's default ("linear", Hyndman & Fan 1996 definition 7).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

from ..errors import InputError


class Interval(NamedTuple):
    """A two-sided confidence interval; unpacks as ``(low, high)``."""

    low: float
    high: float


def finite_floats(values: Sequence[float], what: str) -> list[float]:
    """Convert to floats and reject NaN/inf, which would silently poison every statistic."""
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError) as e:
        raise InputError(f"{what} must be a sequence of numbers: {e}") from None
    for i, v in enumerate(out):
        if not math.isfinite(v):
            raise InputError(f"{what}[{i}]={v!r} is not a finite number")
    return out


def _check_z(z: float) -> float:
    z = float(z)
    if not math.isfinite(z) or z <= 0:
        raise InputError(f"z must be a positive finite number, got {z!r}")
    return z


def percentile(values: Sequence[float], q: float) -> float:
    """q-th percentile (0 <= q <= 100) with linear interpolation between closest ranks.

    Definition 7 of Hyndman & Fan (1996), "Sample Quantiles in Statistical Packages", which is
    numpy.percentile's default: on sorted x[0..n-1], h = (n-1)*q/100 and the result is
    x[floor(h)] + (h - floor(h)) * (x[floor(h)+1] - x[floor(h)]). Undefined for an empty sample.
    """
    xs = sorted(finite_floats(values, "values"))
    if not xs:
        raise InputError("percentile of an empty sequence is undefined")
    q = float(q)
    if not (0.0 <= q <= 100.0):
        raise InputError(f"percentile q must be in [0, 100], got {q!r}")
    h = (len(xs) - 1) * q / 100.0
    lo = math.floor(h)
    if lo >= len(xs) - 1:
        return xs[-1]
    return xs[lo] + (h - lo) * (xs[lo + 1] - xs[lo])


def summarize(values: Sequence[float]) -> dict:
    """Mean, p50, p90, p99 and count: the row a report prints per metric.

    An empty sample gives n=0 and None for every statistic, so a report of a run with no data
    still renders instead of raising.
    """
    xs = finite_floats(values, "values")
    if not xs:
        return {"mean": None, "p50": None, "p90": None, "p99": None, "n": 0}
    return {"mean": math.fsum(xs) / len(xs), "p50": percentile(xs, 50), "p90": percentile(xs, 90),
            "p99": percentile(xs, 99), "n": len(xs)}


def wilson_interval(successes: int, n: int, z: float = 1.96) -> Interval:
    """Wilson score interval for a binomial proportion (e.g. accuracy over n problems).

    Preferred over the Wald interval p ± z*sqrt(p(1-p)/n) because it stays inside [0, 1] and keeps
    its coverage near p=0 or 1 and for small n (Wilson 1927, "Probable Inference, the Law of
    Succession, and Statistical Inference", JASA 22; Brown, Cai & DasGupta 2001). With p = s/n:
        center = (p + z^2/(2n)) / (1 + z^2/n)
        half   = z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/(4n^2))
    """
    if isinstance(successes, bool) or isinstance(n, bool) or int(successes) != successes or int(n) != n:
        raise InputError(f"successes and n must be integers, got successes={successes!r}, n={n!r}")
    successes, n = int(successes), int(n)
    if n <= 0:
        raise InputError(f"wilson_interval needs n > 0 trials, got n={n}")
    if not (0 <= successes <= n):
        raise InputError(f"successes must be in [0, n={n}], got {successes}")
    z = _check_z(z)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return Interval(max(0.0, center - half), min(1.0, center + half))


def mean_ci(values: Sequence[float], z: float = 1.96) -> Interval:
    """Normal-approximation CI of a mean: mean ± z * s / sqrt(n), s the sample std (n-1 divisor).

    Relies on the central limit theorem, so it is only a good approximation for moderately large n;
    it needs n >= 2 because the sample standard deviation is undefined for one value.
    """
    xs = finite_floats(values, "values")
    if len(xs) < 2:
        raise InputError(f"mean_ci needs at least 2 values, got {len(xs)}")
    z = _check_z(z)
    n = len(xs)
    mean = math.fsum(xs) / n
    s = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = z * s / math.sqrt(n)
    return Interval(mean - half, mean + half)
