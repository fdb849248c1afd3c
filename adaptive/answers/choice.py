"""Multiple choice: the ``choice`` extractor and the ``choice`` grader (letters A-J).

Only upper-case letters count (lower-case only as "answer is (c)"), because a lone lower-case
"a" is usually the article, and a leading "I" or "A" followed by a word starts a sentence.
An explicit "answer is (C)" beats a leading "C." which beats a parenthesised "(C)" elsewhere,
since restated options like "(A) is wrong" appear in reasoning.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from .contract import NO_ANSWER

LETTERS = "ABCDEFGHIJ"
_END = r"(?=[\s).:,;*\]}]|$)"
_PATTERNS = (
    # "the answer is (C)", "Answer: C", "correct answer is **C**", "answer: \\boxed{C}", "answer is (c)"
    re.compile(r"(?i:answer)\s*(?:is|:)\s*:?[\s*\[{$]*(?:\\(?:boxed|text)\{)?"
               r"(?:\(([A-Ja-j])\)|([A-J])" + _END + ")"),
    # the whole reply starts with the letter: "C", "C.", "C)", "(C)", "**C**", "C: Paris"
    re.compile(r"^\s*[*(\[]*([A-J])(?:[.):\]]|\**\s*$)"),
    # a parenthesised letter anywhere: "... so (C)"
    re.compile(r"\(([A-J])\)"),
)


def _allowed(choices) -> set[str]:
    if choices is None:
        return set(LETTERS)
    if isinstance(choices, int):
        return set(LETTERS[:choices])
    return {str(c).strip().strip("()").upper() for c in choices}


def extract_choice(text: str, choices: Iterable[str] | int | None = None, **kw) -> str | None:
    """The chosen letter, upper-case, or None. ``choices`` (letters offered, or their count)
    rejects letters outside the question's options so "E" is not read from a four-option item."""
    if not text:
        return NO_ANSWER
    allowed = _allowed(choices)
    for pattern in _PATTERNS:
        for m in reversed(list(pattern.finditer(text))):
            letter = next(g for g in m.groups() if g).upper()
            if letter in allowed:
                return letter
    return NO_ANSWER


def _gold_letter(gold) -> str | None:
    if isinstance(gold, int) and not isinstance(gold, bool):
        return LETTERS[gold] if 0 <= gold < len(LETTERS) else None
    s = str(gold).strip().strip("().").strip().upper()
    return s if len(s) == 1 and s in LETTERS else None


def grade_choice(pred: str | None, gold, **kw) -> float:
    """Letter equality; gold may be a letter (``"C"``, ``"(c)"``) or a 0-based index (``2``)."""
    if pred is None:
        return 0.0
    g = _gold_letter(gold)
    p = str(pred).strip().strip("().").strip().upper()
    return 1.0 if g is not None and p == g else 0.0
