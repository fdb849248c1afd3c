"""`fixed`: never stops early; the strategy draws until its sample cap or token budget."""
from __future__ import annotations

from typing import Sequence

from .base import SampleView


class FixedRule:
    name = "fixed"

    def should_stop(self, samples: Sequence[SampleView | str | None]) -> bool:
        return False
