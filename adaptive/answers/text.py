"""The ``text`` extractor for free-text QA: the span after the last "answer is"/"Answer:", else
the first sentence. Graders normalise further (see ``qa``); this only cuts out the answer span
so that chatter around it does not dilute EM/F1 or split the vote."""
from __future__ import annotations

import re

from .contract import NO_ANSWER

_MARK = re.compile(r"answer\s*(?:is\s*:?|:)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


_WRAPPERS = "*_`\"'“”‘’"
_PAIRS = {("(", ")"), ("[", "]"), ("{", "}"), ("<", ">")}


def _clean(span: str) -> str:
    """Peel quotes, emphasis, enclosing brackets and trailing punctuation, in any order, until none is
    left: `The answer is "yajo".` -> yajo, `(**B**)` -> B."""
    prev = None
    while span != prev:
        prev = span
        span = span.strip().rstrip(".,;:!?").strip().strip(_WRAPPERS)
        if len(span) >= 2 and (span[0], span[-1]) in _PAIRS:
            span = span[1:-1]
    return span


def extract_text(text: str, **kw) -> str | None:
    """Answer span (rest of the line after the last marker, or the first line's first sentence)."""
    if not text or not text.strip():
        return NO_ANSWER
    marks = list(_MARK.finditer(text))
    if marks:
        span = _clean(text[marks[-1].end():].split("\n", 1)[0])
        if span:
            return span
    first = text.strip().split("\n", 1)[0]
    span = _clean(_SENTENCE_END.split(first, 1)[0])
    return span or NO_ANSWER
