"""Free-text graders: ``qa_em`` and ``qa_f1`` (SQuAD-style) and ``exact``.

SQuAD normalisation (lower-case, drop punctuation and the articles a/an/the, collapse spaces)
forgives formatting differences that do not change the answer. Gold may be one string or a list
of aliases; the score is the best over aliases, since any accepted alias is a correct answer.
"""
from __future__ import annotations

import re
import string
from collections import Counter


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def squad_normalize(s: str) -> str:
    s = str(s).lower().translate(_PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _aliases(gold) -> list[str]:
    if isinstance(gold, (list, tuple, set, frozenset)):
        return [str(g) for g in gold]
    return [str(gold)]


def token_f1(pred: str, gold: str) -> float:
    """Token-overlap F1 between normalised strings; two empty strings count as a match."""
    p, g = squad_normalize(pred).split(), squad_normalize(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def _matches_any(pred: str | None, gold, normalize) -> float:
    """1.0 when the normalised prediction equals any normalised gold alias; None never matches."""
    if pred is None:
        return 0.0
    p = normalize(pred)
    return 1.0 if any(p == normalize(g) for g in _aliases(gold)) else 0.0


def grade_qa_em(pred: str | None, gold, **kw) -> float:
    """SQuAD exact match against any gold alias."""
    return _matches_any(pred, gold, squad_normalize)


def grade_qa_f1(pred: str | None, gold, **kw) -> float:
    """Max token-level F1 over gold aliases."""
    if pred is None:
        return 0.0
    return max((token_f1(pred, g) for g in _aliases(gold)), default=0.0)


def _plain(s) -> str:
    return " ".join(str(s).split()).casefold()


def grade_exact(pred: str | None, gold, **kw) -> float:
    """String equality after trimming, collapsing whitespace and case-folding (no other forgiveness)."""
    return _matches_any(pred, gold, _plain)
