"""Benchmarks: `adaptive bench` (issue sections, ratios measured in one run) and `adaptive bench --sweep`."""
from .runner import main, run

__all__ = ["main", "run"]
