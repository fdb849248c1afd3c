"""``extractor_for``: resolve an extractor name, where ``"auto"`` picks one from a task hint.

"auto" is not a registry entry: it is resolved here so the registry only holds real extractors.
Without a recognisable hint it means ``number``, the common case (GSM8K-style arithmetic).
"""
from __future__ import annotations

from collections.abc import Callable

from ..registry import extractors

# First matching substring of the lower-cased hint wins; order matters ("gsm" before "math").
_HINTS = (
    (("gsm", "number", "arith"), "number"),
    (("math", "aime", "boxed", "minerva", "latex"), "boxed"),
    (("choice", "mmlu", "gpqa", "arc", "mcq", "multiple"), "choice"),
    (("qa", "trivia", "squad", "nq", "text"), "text"),
)


def extractor_for(name_or_auto: str | Callable, task_hint: str | None = None) -> Callable:
    """The extractor callable for a registry name, ``"auto"`` (guided by `task_hint`), or a callable."""
    if callable(name_or_auto):
        return name_or_auto
    if name_or_auto != "auto":
        return extractors.get(name_or_auto)
    hint = (task_hint or "").lower()
    for keys, name in _HINTS:
        if any(k in hint for k in keys):
            return extractors.get(name)
    return extractors.get("number")
