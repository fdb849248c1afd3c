"""`none`: never exits early. A trace thinks until the model closes its thought, the thinking cap
(`max_thinking_tokens`, s1 budget forcing) or the token budget; no probes are drawn."""
from __future__ import annotations

from typing import Sequence

from .base import Probe


class NoExit:
    name = "none"
    needs_logprobs = False

    @classmethod
    def from_plan(cls, plan) -> "NoExit":
        return cls()

    def should_exit(self, probes: Sequence[Probe]) -> bool:
        return False
