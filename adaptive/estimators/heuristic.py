"""Heuristic estimator: p_hat from surface features of the prompt text only (no model, no forward pass).

Features (per prompt; counts are log1p-scaled): characters, words, digits, numbers, each operator
(+ - * / ^ =), question words, log10(1 + max |number|), sentences. A StandardScaler + LogisticRegression
(or Ridge) pipeline maps them to p_hat; see regression.py for how pass-rate labels are used. A cheap baseline
the model-based estimators must beat; it does not depend on the model, so its file has no model id.
"""
from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np

from .base import Estimator, prompt_text

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
QUESTION_WORDS = frozenset({"what", "how", "why", "which", "when", "where", "who", "whom", "whose", "find",
                            "compute", "calculate", "determine", "prove", "show", "evaluate", "solve", "simplify"})
OPERATORS = {"plus": "+", "minus": "-", "times": "*", "divide": "/", "power": "^", "equals": "="}
FEATURE_NAMES = (["log_chars", "log_words", "log_digits", "log_numbers"]
                 + [f"log_op_{name}" for name in OPERATORS]
                 + ["log_question_words", "log10_max_number", "log_sentences"])


def text_features(text: str) -> list[float]:
    words = _WORD.findall(text)
    numbers = _NUMBER.findall(text)
    mags = []
    for n in numbers:
        try:
            mags.append(abs(float(n.replace(",", ""))))
        except ValueError:  # pragma: no cover - the regex only matches numbers
            pass
    max_mag = max((m for m in mags if math.isfinite(m)), default=0.0)
    sentences = len(_SENTENCE_END.findall(text)) or (1 if text.strip() else 0)
    ops = [text.count(sym) for sym in OPERATORS.values()]
    q = sum(1 for w in words if w.lower() in QUESTION_WORDS)
    raw = [len(text), len(words), sum(c.isdigit() for c in text), len(numbers), *ops, q]
    return [math.log1p(v) for v in raw] + [math.log10(1.0 + min(max_mag, 1e300)), math.log1p(sentences)]


class HeuristicEstimator(Estimator):
    kind = "heuristic"
    needs = "text"
    uses_model = False

    def __init__(self, backend=None, **kw):
        super().__init__(backend, **kw)
        self.feature_names_ = list(FEATURE_NAMES)

    def features(self, prompts: Sequence, prompt_passes=None, first_samples=None, ledger=None) -> np.ndarray:
        return np.asarray([text_features(prompt_text(p)) for p in prompts], dtype=np.float64).reshape(
            len(prompts), len(FEATURE_NAMES))
