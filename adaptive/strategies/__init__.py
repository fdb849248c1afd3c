"""Strategies: plain functions `(query, plan, backend, verifier) -> Result`, listed by name in
`adaptive.registry.strategies` and imported when first used. `run_strategy` is the one dispatch."""
from __future__ import annotations

from .. import timing
from .base import Query, vote


def run_strategy(query: Query, plan, backend, verifier=None):
    """Run the plan's strategy on one query."""
    from ..registry import strategies

    with timing.phase("control"):  # the strategy's own work; backend calls and verifiers time themselves
        return strategies.get(plan.strategy)(query, plan, backend, verifier)


__all__ = ["Query", "run_strategy", "vote"]
