"""Early-exit rules for thinking traces: decide, after each trial-answer probe, whether a trace has thought
enough.

One rule per module, each citing its paper; listed by name in `adaptive.registry.exit_rules` and
imported only when used. Build one with `make_exit_rule(plan)`. The thinking strategy
(adaptive/strategies/thinking.py) draws the probes; a rule only reads them.
"""
from .base import ExitRule, Probe, make_exit_rule

__all__ = ["ExitRule", "Probe", "make_exit_rule"]
