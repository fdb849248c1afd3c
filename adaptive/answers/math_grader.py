"""The ``math`` grader: symbolic equivalence via math_verify, under a hard wall-clock bound.

math_verify is called as ``verify(gold, pred)`` -- gold first, because its comparison is not
symmetric (the gold decides e.g. how intervals or rounding are read). Its own signal-based
timeouts are switched off (they fail outside the main thread and only bound single steps); the
whole parse+verify instead runs through ``bounded.call_bounded``, and a timeout scores 0.0 with a
logged warning, so one pathological answer cannot stall a whole evaluation.
"""
from __future__ import annotations

import logging
import re

from .bounded import BoundTimeout, call_bounded

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT_S = 5.0
# An unescaped `$`, a box, or `\(`/`\[` means the text already says where its math is.
_DELIMITED = re.compile(r"(?<!\\)\$|\\boxed|\\fbox|\\\(|\\\[")


class _DropTimeoutDisabledNotice(logging.Filter):
    """math_verify warns that its timeout is disabled; we bound the call ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutDisabledNotice())


def as_latex(answer) -> str:
    """Wrap a bare answer (``\\frac{1}{2}``, ``\\$18.90``, ``42``) in ``\\boxed{}`` so math_verify
    reads it whole (boxed content has its top extraction priority); text that already has math
    delimiters or a box, such as a full solution, is passed through for math_verify to search."""
    s = str(answer).strip()
    return s if _DELIMITED.search(s) else "\\boxed{" + s + "}"


def verify_pair(gold: str, pred: str) -> bool:
    """Unbounded parse+verify of two LaTeX strings (run it through `call_bounded`)."""
    from math_verify import parse, verify

    g = parse(gold, parsing_timeout=None)
    p = parse(pred, parsing_timeout=None)
    if not g or not p:
        return False
    return bool(verify(g, p, timeout_seconds=None))


def grade_math(pred: str | None, gold, timeout: float = DEFAULT_TIMEOUT_S, mode: str = "auto", **kw) -> float:
    """1.0 when math_verify finds pred equivalent to gold; 0.0 otherwise or after `timeout` seconds.

    `pred` may be a bare answer (e.g. from the ``boxed`` extractor) or a full solution; `mode`
    is passed to ``call_bounded`` (``"process"`` forces the subprocess path)."""
    if pred is None or gold is None:
        return 0.0
    try:
        ok = call_bounded(f"{__name__}:verify_pair", [as_latex(gold), as_latex(pred)], timeout, mode)
    except BoundTimeout:
        log.warning("math grader timed out after %gs; scoring 0 (pred=%.80r)", timeout, str(pred))
        return 0.0
    return 1.0 if ok else 0.0
