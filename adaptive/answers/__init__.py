"""Answer extraction and grading. Importing this package registers the built-in extractors
(``number``, ``boxed``, ``choice``, ``text``) and graders (``numeric``, ``math``, ``choice``,
``qa_em``, ``qa_f1``, ``exact``); see ``contract`` for the signatures and the ``None`` rule."""
from __future__ import annotations

from ..registry import graders
from . import boxed, choice, math_grader, numbers, qa, text  # noqa: F401  (registration)
from .auto import extractor_for
from .contract import NO_ANSWER
from .numbers import gsm8k_gold


def extract(name: str, text: str | None, **kw) -> str | None:
    """Run the extractor `name` (or ``"auto"``, see `extractor_for`) on `text`; None if unparseable."""
    if text is None:
        return NO_ANSWER
    return extractor_for(name, kw.pop("task_hint", None))(text, **kw)


def grade(name: str, pred: str | None, gold, **kw) -> float:
    """Score `pred` against `gold` with the grader `name`; always in [0, 1], 0.0 for a None pred."""
    return float(graders.get(name)(pred, gold, **kw))


__all__ = ["NO_ANSWER", "extract", "extractor_for", "grade", "gsm8k_gold"]
