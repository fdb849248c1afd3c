"""Pure evaluation / calibration metrics for difficulty estimators.

All functions take plain sequences, do not mutate them and raise InputError on unusable input (length
mismatch, NaN, a statistic that is undefined for the data such as AUROC with one class).

- auroc: P(score of a random positive > score of a random negative), ties counted 1/2 — the
  Mann–Whitney U statistic divided by n_pos * n_neg, computed from average ranks.
- spearman: Pearson correlation of the average ranks (ties share the mean of their ranks).
- brier: mean squared error of probabilities against outcomes in [0, 1].
- expected_calibration_error: equal-width bins over [0, 1] (last bin closed), the bin-size weighted mean
  of |mean p - mean y| (Naeini et al. 2015; Guo et al. 2017).
"""
from __future__ import annotations

import math
from typing import Sequence

from ..errors import InputError
from ..metrics.stats import finite_floats as _floats


def _pair(x, y, wx: str, wy: str) -> tuple[list[float], list[float]]:
    a, b = _floats(x, wx), _floats(y, wy)
    if len(a) != len(b):
        raise InputError(f"{wx} and {wy} differ in length ({len(a)} vs {len(b)})")
    return a, b


def _probs(values, what: str) -> None:
    for i, v in enumerate(values):
        if not 0.0 <= v <= 1.0:
            raise InputError(f"{what}[{i}]={v!r} is outside [0, 1]")


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values get the mean of the ranks they span."""
    xs = _floats(values, "values")
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        r = (i + j) / 2 + 1  # mean of 1-based ranks i+1 .. j+1
        for k in range(i, j + 1):
            ranks[order[k]] = r
        i = j + 1
    return ranks


def auroc(scores: Sequence[float], labels: Sequence) -> float:
    """Area under the ROC curve of `scores` for binary `labels` (bool or 0/1), ties counted half."""
    s, y = _pair(scores, labels, "scores", "labels")
    if any(v not in (0.0, 1.0) for v in y):
        raise InputError("labels must be binary (0/1 or bool)")
    n_pos = sum(1 for v in y if v == 1.0)
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise InputError(f"AUROC is undefined with {n_pos} positives and {n_neg} negatives")
    ranks = average_ranks(s)
    u = sum(r for r, v in zip(ranks, y) if v == 1.0) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of average ranks. Undefined when either side is constant."""
    a, b = _pair(x, y, "x", "y")
    if len(a) < 2:
        raise InputError("spearman needs at least two pairs")
    ra, rb = average_ranks(a), average_ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((p - ma) * (q - mb) for p, q in zip(ra, rb))
    va = sum((p - ma) ** 2 for p in ra)
    vb = sum((q - mb) ** 2 for q in rb)
    if va == 0 or vb == 0:
        raise InputError("spearman is undefined when one of the sequences is constant")
    return cov / math.sqrt(va * vb)


def brier(p: Sequence[float], y: Sequence[float]) -> float:
    """Mean of (p - y)^2; y may be 0/1 outcomes or rates in [0, 1]."""
    a, b = _pair(p, y, "p", "y")
    if not a:
        raise InputError("brier of an empty sequence is undefined")
    _probs(a, "p")
    _probs(b, "y")
    return math.fsum((u - v) ** 2 for u, v in zip(a, b)) / len(a)


def _bin_index(p: float, n_bins: int) -> int:
    return min(int(p * n_bins), n_bins - 1)


def reliability_bins(p: Sequence[float], y: Sequence[float], n_bins: int = 10) -> list[dict]:
    """Per equal-width bin: lo, hi, count, mean_p, mean_y (None for an empty bin)."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise InputError(f"n_bins={n_bins!r}: must be an integer >= 1")
    a, b = _pair(p, y, "p", "y")
    _probs(a, "p")
    _probs(b, "y")
    sums = [[0, 0.0, 0.0] for _ in range(n_bins)]
    for u, v in zip(a, b):
        s = sums[_bin_index(u, n_bins)]
        s[0] += 1
        s[1] += u
        s[2] += v
    out = []
    for k, (c, sp, sy) in enumerate(sums):
        out.append({"lo": k / n_bins, "hi": (k + 1) / n_bins, "count": c,
                    "mean_p": sp / c if c else None, "mean_y": sy / c if c else None})
    return out


def expected_calibration_error(p: Sequence[float], y: Sequence[float], n_bins: int = 10) -> float:
    """sum_b (n_b / N) * |mean p_b - mean y_b| over equal-width bins."""
    bins = reliability_bins(p, y, n_bins)
    n = sum(b["count"] for b in bins)
    if n == 0:
        raise InputError("expected_calibration_error of an empty sequence is undefined")
    return sum(b["count"] / n * abs(b["mean_p"] - b["mean_y"]) for b in bins if b["count"])


def plot_reliability(p: Sequence[float], y: Sequence[float], path, n_bins: int = 10, title: str | None = None):
    """Reliability diagram (mean outcome vs mean p per bin, with counts) written as a PNG to `path`."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    bins = reliability_bins(p, y, n_bins)
    ece = expected_calibration_error(p, y, n_bins) if any(b["count"] for b in bins) else float("nan")
    fig = Figure(figsize=(4.5, 4.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="perfect")
    full = [b for b in bins if b["count"]]
    ax.bar([(b["lo"] + b["hi"]) / 2 for b in full], [b["mean_y"] for b in full], width=1 / n_bins * 0.9,
           alpha=0.35, color="tab:blue", edgecolor="tab:blue", label="mean outcome")
    ax.plot([b["mean_p"] for b in full], [b["mean_y"] for b in full], marker="o", color="tab:blue")
    for b in full:
        ax.annotate(str(b["count"]), ((b["lo"] + b["hi"]) / 2, b["mean_y"]), ha="center", va="bottom",
                    fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("predicted p(sample correct)")
    ax.set_ylabel("observed fraction correct")
    ax.set_title(f"{title + ' — ' if title else ''}ECE {ece:.3f}", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(str(path), format="png")
    return path
