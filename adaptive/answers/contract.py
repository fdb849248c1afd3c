"""The extractor/grader contract, stated once so every module follows it.

Extractor: ``fn(text: str, **kw) -> str | None``. It returns the *canonical* answer string (so two
samples that mean the same thing compare equal as vote keys) or ``NO_ANSWER`` (``None``) when no
answer can be parsed. ``None`` is never a vote candidate: the voting code drops it before
counting, so an unparseable sample can only abstain, never win.

Grader: ``fn(pred: str | None, gold, **kw) -> float`` in ``[0, 1]``. A ``None`` prediction scores
0.0 without looking at the gold, so "could not parse" is always wrong rather than an error.
Extra keyword arguments a function does not use are accepted and ignored, so callers can pass one
kwargs dict (e.g. ``choices=``) to any extractor or grader.
"""
from __future__ import annotations

NO_ANSWER = None
