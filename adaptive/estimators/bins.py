"""Difficulty bins (Snell et al. 2024, "Scaling LLM Test-Time Compute Optimally", sec. 3.2).

An estimator's p_hat (predicted probability that ONE sample is correct) is mapped to a bin index by a
sorted list of edges over [0, 1]. Convention here: **bin 0 is the hardest** (lowest p_hat) and the last
bin the easiest, so bins are monotone non-decreasing in p_hat. Bin b covers [edges[b], edges[b+1]); the
last bin also includes 1.0. Default: 5 equal-width bins (edges 0, .2, .4, .6, .8, 1). Snell et al. use
quantiles of the (oracle or predicted) difficulty instead; `quantile_edges` builds those from data.
"""
from __future__ import annotations

import bisect
import math
from typing import Sequence

from ..errors import InputError

DEFAULT_N_BINS = 5


def uniform_edges(n_bins: int = DEFAULT_N_BINS) -> tuple[float, ...]:
    """Equal-width edges over [0, 1]: n_bins + 1 values."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise InputError(f"n_bins={n_bins!r}: must be an integer >= 1")
    return tuple(round(i / n_bins, 12) for i in range(n_bins + 1))


def check_edges(edges: Sequence[float] | int | None) -> tuple[float, ...]:
    """Validate bin edges: None -> the default, an int -> that many equal-width bins, else a strictly
    increasing sequence starting at 0.0 and ending at 1.0."""
    if edges is None:
        return uniform_edges()
    if isinstance(edges, int) and not isinstance(edges, bool):
        return uniform_edges(edges)
    try:
        out = tuple(float(e) for e in edges)
    except (TypeError, ValueError):
        raise InputError(f"bin_edges={edges!r}: must be a sequence of numbers") from None
    if len(out) < 2:
        raise InputError(f"bin_edges={list(out)}: need at least two edges (one bin)")
    if any(not math.isfinite(e) for e in out):
        raise InputError(f"bin_edges={list(out)}: edges must be finite")
    if out[0] != 0.0 or out[-1] != 1.0:
        raise InputError(f"bin_edges={list(out)}: must start at 0.0 and end at 1.0")
    if any(b <= a for a, b in zip(out, out[1:])):
        raise InputError(f"bin_edges={list(out)}: must be strictly increasing")
    return out


def bin_of(p_hat: float, edges: Sequence[float]) -> int:
    """Index of the bin holding p_hat (clamped into [0, 1]); 0 = hardest."""
    p = min(1.0, max(0.0, float(p_hat)))
    return bisect.bisect_right(list(edges[1:-1]), p)


def quantile_edges(values: Sequence[float], n_bins: int = DEFAULT_N_BINS) -> tuple[float, ...]:
    """Edges at the empirical quantiles of `values` (e.g. training p_hats), so each bin holds about the
    same number of prompts. Duplicate quantiles are dropped, so fewer bins may come back."""
    import numpy as np

    uniform_edges(n_bins)  # validates n_bins
    v = np.clip(np.asarray(list(values), dtype=float), 0.0, 1.0)
    if v.size == 0:
        raise InputError("quantile_edges needs at least one value")
    inner = np.quantile(v, [i / n_bins for i in range(1, n_bins)]) if n_bins > 1 else []
    edges = [0.0]
    for e in inner:
        e = float(e)
        if edges[-1] < e < 1.0:
            edges.append(e)
    edges.append(1.0)
    return tuple(edges)
