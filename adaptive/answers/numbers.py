"""Numbers: the GSM8K-style ``number`` extractor, the ``numeric`` grader and ``gsm8k_gold``.

One canonical form is used on both sides: a plain decimal string without thousands separators,
trailing zeros or a currency/percent sign (``"1,234.50"`` -> ``"1234.5"``, ``"4.0"`` -> ``"4"``);
fractions stay fractions but reduced (``"6/8"`` -> ``"3/4"``). Sharing the normalisation is what
lets the vote treat ``$18.00`` and ``18`` as the same answer.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from .contract import NO_ANSWER

# A number not glued to a preceding word/digit: optional `$` and sign (either order), an integer
# part with well-formed thousands commas or plain digits, optional decimals, optional `/denominator`.
_NUM = re.compile(
    r"(?<![\w.])(?:\$\s?)?(?P<sign>[-\u2212])?(?:\$\s?)?"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)?(?P<frac>\.\d+)?"
    r"(?:\s?/\s?(?P<den>\d+)(?!\d|\.\d))?"
)
_HASHES = re.compile(r"####\s*(?P<tail>[^\n]*)")
# "the answer is 18", "Answer: $18", "final answer is: **18**" -- the number must follow closely.
_ANSWER_IS = re.compile(
    r"answer\s*(?:is|:|=)\s*[:=]?[\s*$\\({]*(?:boxed\{)?(?=[-\u2212$.\d])", re.IGNORECASE
)


def _numbers(text: str) -> list[str]:
    """All canonical numbers in `text`, in order of appearance."""
    out = []
    for m in _NUM.finditer(text):
        if m.group("int") is None and m.group("frac") is None:
            continue  # the pattern matched only a sign or `$`
        value = _canonical(m)
        if value is not None:
            out.append(value)
    return out


def _canonical(m: re.Match) -> str | None:
    sign = "-" if m.group("sign") else ""
    body = (m.group("int") or "0").replace(",", "") + (m.group("frac") or "")
    try:
        value = Decimal(sign + body)
    except InvalidOperation:
        return None
    den = m.group("den")
    if den is not None and m.group("frac") is None:
        d = int(den)
        if d == 0:
            return None
        return format_fraction(Fraction(int(value), d))
    return format_decimal(value)


def format_decimal(value: Decimal) -> str:
    """Decimal -> shortest plain string: no exponent, no trailing zeros, no ``-0``."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def format_fraction(value: Fraction) -> str:
    """Reduced ``p/q``, or an integer string when the denominator is 1."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


_SPACED_SIGN = re.compile(r"^(\s*\$?\s*[-\u2212])\s+(?=[$\d.])")


def normalize_number(text: str) -> str | None:
    """Canonical form of the first number in `text` (``"$1,234.00 dollars"`` -> ``"1234"``).

    Used on a span already known to start with the answer, so a detached leading sign
    (``"- 10 degrees"``) is read as negative; elsewhere ``5 - 3`` is subtraction, not -3.
    """
    found = _numbers(_SPACED_SIGN.sub(r"\1", text))
    return found[0] if found else NO_ANSWER


def extract_number(text: str, **kw) -> str | None:
    """GSM8K-style: ``#### N`` wins, then the last "answer is N"/"Answer: N", then the last number.

    The explicit markers come first because worked solutions mention many intermediate numbers;
    the last number is only a fallback for outputs that never state their answer.
    """
    if not text:
        return NO_ANSWER
    marks = list(_HASHES.finditer(text))
    if marks:
        found = normalize_number(marks[-1].group("tail"))
        if found is not None:
            return found
    for m in reversed(list(_ANSWER_IS.finditer(text))):
        found = normalize_number(text[m.end():m.end() + 64])
        if found is not None:
            return found
    found = _numbers(text)
    return found[-1] if found else NO_ANSWER


def gsm8k_gold(answer_field: str) -> str:
    """Canonical gold from a GSM8K ``answer`` field (the text after the last ``####``).

    Uses the same normalisation as the ``number`` extractor so gold and predictions compare as
    strings. A field without ``####`` is taken to be the short answer itself.
    """
    marks = list(_HASHES.finditer(answer_field))
    tail = marks[-1].group("tail") if marks else answer_field
    value = normalize_number(tail)
    if value is None:
        raise ValueError(f"no number in GSM8K answer field: {tail!r}")
    return value


def to_fraction(x) -> Fraction | None:
    """Exact value of a number-like gold/prediction (int, float, ``"3/4"``, ``"$1,234"``), else None.

    A string must contain exactly one number (a ``####`` solution is reduced to its tail first);
    anything more ambiguous is not guessed at.
    """
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, (int, Fraction)):
        return Fraction(x)
    if isinstance(x, (float, Decimal)):
        try:
            return Fraction(x)
        except (ValueError, OverflowError):  # nan / inf
            return None
    s = str(x)
    if "####" in s:
        s = list(_HASHES.finditer(s))[-1].group("tail")
    found = _numbers(s)
    if len(found) != 1:
        return None
    return Fraction(found[0])


def grade_numeric(pred: str | None, gold, rel_tol: float = 1e-6, **kw) -> float:
    """1.0 when pred and gold are the same number within a relative tolerance (``3/4`` == ``0.75``).

    Compared exactly in rationals, so huge integers neither overflow nor lose precision.
    """
    if pred is None:
        return 0.0
    p, g = to_fraction(pred), to_fraction(gold)
    if p is None or g is None:
        return 0.0
    tol = Fraction(rel_tol) * max(abs(p), abs(g))
    return 1.0 if abs(p - g) <= tol else 0.0
