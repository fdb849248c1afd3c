"""Exit-rule protocol. A thinking trace is probed every `plan.probe_interval` thinking tokens: the thought
so far is closed, the answer cue appended, and a few greedy tokens are decoded (a trial answer) without
touching the trace. After each probe the strategy asks the trace's rule whether to stop thinking. Rules
are pure functions of the trace's probes so far (no hidden state), like the stopping rules.

A rule is a class registered in `adaptive.registry.exit_rules` with a `from_plan(plan)` constructor (it
reads its settings from Plan fields, which the Plan validates), a `name`, `should_exit(probes)`, and
`needs_logprobs` (True when it reads the probes' token logprobs: the backend must return them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Protocol, Sequence

from ..registry import exit_rules


@dataclass(frozen=True)
class Probe:
    """One trial answer drawn from a trace."""

    at: int                                  # the trace's thinking tokens when it was probed
    answer: Hashable | None                  # the extracted trial answer (None: nothing extractable)
    text: str = ""                           # the trial answer's text
    logprobs: tuple[float, ...] = field(default_factory=tuple)  # its tokens' logprobs (EOS excluded)


class ExitRule(Protocol):
    name: str
    needs_logprobs: bool

    def should_exit(self, probes: Sequence[Probe]) -> bool: ...


def make_exit_rule(plan) -> ExitRule:
    """The exit rule `plan.exit_rule` names, built from the plan's fields. Unknown names raise
    UnknownNameError listing the known ones."""
    return exit_rules.get(plan.exit_rule).from_plan(plan)
