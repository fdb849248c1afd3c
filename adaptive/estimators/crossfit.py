"""Out-of-fold difficulty for a sample bank: each prompt's p_hat comes from an estimator that never saw
that prompt, so a tuner choosing per-difficulty policies on the bank is not fooled by an estimator
scoring its own training prompts (in-sample p_hat is overconfident).

Folds are by prompt TEXT (repeated questions never straddle folds); features are computed once (one
prompt pass per prompt for the probe) and each fold refits only the linear model on them.
"""
from __future__ import annotations

import hashlib
import random
from typing import Sequence

import numpy as np

from ..errors import InputError
from .bins import bin_of


def fold_of_texts(texts: Sequence[str], folds: int, seed: int = 0) -> list[int]:
    """A fold index per prompt; equal texts share a fold. Seeded, independent of the input order."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise InputError(f"folds={folds!r}: an integer >= 2")
    keys = sorted({hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts})
    random.Random(seed).shuffle(keys)
    fold = {k: i % folds for i, k in enumerate(keys)}
    return [fold[hashlib.sha256(t.encode("utf-8")).hexdigest()] for t in texts]


def crossfit(estimator, prompts: Sequence, labels: Sequence[float], counts: Sequence[float] | None = None,
             folds: int = 5, seed: int = 0, batch_size: int = 32) -> np.ndarray:
    """Out-of-fold p_hat per prompt; afterwards `estimator` is fitted on all prompts (ready to save)."""
    from .base import prompt_text

    prompts = list(prompts)
    if len(prompts) < folds:
        raise InputError(f"{len(prompts)} prompts cannot be split into {folds} folds")
    # features in chunks: a probe's prompt pass holds every layer's hidden states of its batch
    X = np.vstack([estimator.features(prompts[i:i + batch_size]) for i in range(0, len(prompts), batch_size)])
    y = np.asarray(labels, dtype=np.float64)
    k = np.ones(len(prompts)) if counts is None else np.asarray(counts, dtype=np.float64)
    fold = np.asarray(fold_of_texts([prompt_text(p) for p in prompts], folds, seed))
    out = np.zeros(len(prompts))
    for f in range(folds):
        train, test = fold != f, fold == f
        if not test.any():
            continue
        estimator.fit_features(X[train], y[train], k[train])
        out[test] = estimator.model_.predict(X[test])
    estimator.fit_features(X, y, k)
    return out


def attach_crossfit(bank, estimator, folds: int = 5, seed: int = 0):
    """Set every bank prompt's p_hat and bin out of fold (bins by the estimator's edges); returns the bank.
    The estimator ends fitted on the whole bank."""
    p_hat = crossfit(estimator, [p.prompt for p in bank.prompts], [p.pass_rate for p in bank.prompts],
                     [len(p.samples) for p in bank.prompts], folds, seed)
    for p, v in zip(bank.prompts, p_hat):
        p.p_hat, p.bin = float(v), int(bin_of(v, estimator.bin_edges))
    bank.source["difficulty"] = f"{estimator.kind}, {folds}-fold cross-fitted (by prompt text)"
    return bank
