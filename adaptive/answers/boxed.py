"""The ``boxed`` extractor: the content of the last ``\\boxed{...}`` / ``\\fbox{...}``.

MATH-style solutions put the final answer in a box; the last box is the answer because earlier
ones are often intermediate results. Braces are matched by counting, since answers such as
``\\frac{1}{2}`` nest them and a regex cannot.
"""
from __future__ import annotations

import re

from .contract import NO_ANSWER

_BOX = re.compile(r"\\(?:boxed|fbox)\b")


def find_boxed(text: str) -> str | None:
    """Content of the last well-formed box in `text`; None if there is none or its braces never close."""
    for m in reversed(list(_BOX.finditer(text))):
        content = _box_content(text, m.end())
        if content is not None:
            return content
    return None


def _box_content(text: str, i: int) -> str | None:
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return None
    if text[i] != "{":
        # `\boxed 5`: the argument is the next run of non-space characters, up to a `$`.
        m = re.match(r"[^\s$]+", text[i:])
        return m.group(0) if m else None
    depth, j = 0, i
    while j < len(text):
        c = text[j]
        if c == "\\":  # `\{`, `\}` and `\\` are escapes: they neither open nor close a group
            j += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
        j += 1
    return None


def extract_boxed(text: str, **kw) -> str | None:
    """The stripped content of the last ``\\boxed{}``/``\\fbox{}``, or None (including when empty)."""
    if not text:
        return NO_ANSWER
    content = find_boxed(text)
    if content is None or not content.strip():
        return NO_ANSWER
    return content.strip()
