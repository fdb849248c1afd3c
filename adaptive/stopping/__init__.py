"""Stopping rules: decide between waves whether more samples are worth drawing.

Registered by name in `adaptive.registries.stopping_rules`; build one with `make_rule(name, params)`.
"""
from . import beta, confidence, dirichlet, entropy, esc, fixed  # noqa: F401  (registration)
from .base import SampleView, StoppingRule, make_rule
from .esc import esc_expected_samples

__all__ = ["SampleView", "StoppingRule", "make_rule", "esc_expected_samples"]
