"""Pareto frontiers (maximise accuracy, minimise cost) and budget matching."""
from __future__ import annotations

from typing import Sequence


def pareto(points: Sequence[dict], cost: str = "mean_samples", value: str = "accuracy") -> list[dict]:
    """The points not dominated by another (less or equal cost and higher value), by increasing cost."""
    out, best = [], -1.0
    for p in sorted(points, key=lambda p: (p[cost], -p[value])):
        if p[value] > best + 1e-12:
            out.append(p)
            best = p[value]
    return out


def cheapest_matching(points: Sequence[dict], target: float, cost: str = "mean_samples",
                      value: str = "accuracy") -> dict | None:
    """The lowest-cost point whose value reaches `target`, or None."""
    ok = [p for p in points if p[value] >= target - 1e-12]
    return min(ok, key=lambda p: (p[cost], -p[value])) if ok else None
