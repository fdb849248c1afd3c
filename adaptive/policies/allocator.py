"""Greedy marginal-gain allocation of a batch budget (Damani et al. 2024, "Learning How Hard to Think";
Snell et al. 2024 allocate test-time compute by predicted difficulty).

Every prompt starts at `minimum` samples; then, repeatedly, the prompt whose next step buys the most
expected success per unit of budget gets it, until the budget or every prompt's cap is reached, or no
step has positive gain (budget is a ceiling: it is not spent on nothing). A "step" may be several samples
at once: for prompt i at b samples the best step is the Delta maximising (f(b+Delta) - f(b)) / (Delta*cost_i),
which equals the usual one-sample greedy for concave curves (best_of_b) and still climbs non-concave ones
(majority vote is flat from odd b to b+1). Guarantees: minimum <= b_i <= cap_i and
sum_i b_i * cost_i <= total (an InputError when even the minimums do not fit).
"""
from __future__ import annotations

import heapq
from typing import Sequence

from ..errors import InputError

EPS = 1e-9


def _best_step(f: Sequence[float], b: int, cost: float, left: float) -> tuple[float, int]:
    best, step = 0.0, 0
    for d in range(1, len(f) - b):
        if d * cost > left + EPS:
            break
        r = (f[b + d] - f[b]) / (d * cost)
        if r > best + 1e-15:
            best, step = r, d
    return best, step


def greedy_allocate(values: Sequence[Sequence[float]], total: float, cost: float | Sequence[float] = 1.0,
                    minimum: int = 1) -> list[int]:
    """values[i] = [f_i(0), ..., f_i(cap_i)] -> allocation b_i (samples) per prompt."""
    n = len(values)
    costs = [float(cost)] * n if isinstance(cost, (int, float)) else [float(c) for c in cost]
    if len(costs) != n:
        raise InputError(f"{n} curves but {len(costs)} costs")
    if any(c <= 0 for c in costs):
        raise InputError("every cost must be > 0")
    if minimum < 0:
        raise InputError(f"minimum={minimum}: must be >= 0")
    for i, f in enumerate(values):
        if len(f) - 1 < minimum:
            raise InputError(f"prompt {i}: cap {len(f) - 1} is below the minimum {minimum}")
    alloc = [minimum] * n
    left = float(total) - sum(minimum * c for c in costs)
    if left < -EPS:
        raise InputError(f"budget {total:g} cannot cover the minimum of {minimum} per prompt for {n} prompts "
                         f"(needs {total - left:g})")
    heap = []
    for i in range(n):
        r, d = _best_step(values[i], alloc[i], costs[i], left)
        if d:
            heap.append((-r, i, d))
    heapq.heapify(heap)
    while heap:
        neg, i, d = heapq.heappop(heap)
        if d * costs[i] > left + EPS:  # no longer affordable: re-evaluate with what is left
            r, d = _best_step(values[i], alloc[i], costs[i], left)
            if d:
                heapq.heappush(heap, (-r, i, d))
            continue
        if -neg <= 0:
            break
        alloc[i] += d
        left -= d * costs[i]
        r, d = _best_step(values[i], alloc[i], costs[i], left)
        if d:
            heapq.heappush(heap, (-r, i, d))
    return alloc


def priced_allocate(values: Sequence[float], price: float, minimum: int = 1) -> tuple[int, float]:
    """One prompt's samples at a price: starting from `minimum`, take the best next step (as greedy_allocate
    does) while it buys at least `price` expected success per sample. The dual of greedy_allocate: a batch
    allocated greedily with total T takes exactly the steps worth more than some price, so raising the price
    removes the steps of least marginal gain first, whichever prompt they belong to. values = [f(0), ...,
    f(cap)]. Returns (samples, gain per sample of the first step not taken; 0.0 when none is left)."""
    if price < 0:
        raise InputError(f"price={price!r}: must be >= 0")
    cap = len(values) - 1
    if cap < minimum:
        raise InputError(f"cap {cap} is below the minimum {minimum}")
    b = minimum
    while b < cap:
        r, d = _best_step(values, b, 1.0, float(cap - b))
        if not d or r < price - EPS:
            return b, r
        b += d
    return b, 0.0
