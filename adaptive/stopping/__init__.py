"""Stopping rules: decide between waves whether more samples are worth drawing.

One rule per module, each citing its paper; listed by name in `adaptive.registry.stopping_rules` and
imported only when used. Build one with `make_rule(name, params)`.
"""
from .base import SampleView, StoppingRule, as_views, make_rule
from .esc import esc_expected_samples  # light: no scipy


__all__ = ["SampleView", "StoppingRule", "as_views", "esc_expected_samples", "make_rule"]
