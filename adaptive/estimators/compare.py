"""Comparing estimators on one label log over repeated prompt-level splits.

Features are computed once for every record (the probes' prompt passes once per chunk, shared by every
probe variant; the sample probe reads the logged first samples), then for each seed the records are split
BY PROMPT (train.split_by_prompt), each estimator is fitted on the training rows only and scored on the
held-out rows with train.evaluate. Nothing about the held-out prompts reaches a fit, including any choice
of C (regression.py's C_grid cross-validates inside the training rows).

    rows = compare(records, {"heuristic": ("heuristic", {}), "probe": ("probe", {})}, backend, seeds=range(5))
    table = summarize(rows)
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from ..errors import InputError
from .train import _first_logged, evaluate, make_estimator, normalize_records, split_by_prompt

METRICS = ("auroc", "spearman", "brier", "ece")


def feature_matrices(records: Sequence[dict], specs: Mapping[str, tuple], backend=None,
                     batch_size: int = 16) -> dict[str, np.ndarray]:
    """{name: features of every record} for specs {name: (kind, kwargs)}; one prompt pass per chunk."""
    ests = {name: make_estimator(kind, backend, **kw) for name, (kind, kw) in specs.items()}
    probes = [e for e in ests.values() if e.needs == "prompt_pass"]
    if len({e.raw for e in probes}) > 1:
        raise InputError("probe variants must agree on raw= to share prompt passes")
    blocks: dict[str, list] = {name: [] for name in ests}
    for i in range(0, len(records), batch_size):
        chunk = records[i:i + batch_size]
        prompts = [r["prompt"] for r in chunk]
        passes = probes[0].passes_for(prompts) if probes else None
        for name, est in ests.items():
            if est.needs == "prompt_pass":
                blocks[name].append(est.features(prompts, prompt_passes=passes))
            elif est.needs == "first_sample":
                firsts = [_first_logged(r) for r in chunk]
                if any(c is None for c in firsts):
                    raise InputError(f"{name}: every record needs a logged first sample with logprobs")
                blocks[name].append(est.features(prompts, first_samples=firsts))
            else:
                blocks[name].append(est.features(prompts))
        del passes  # a chunk's hidden states are large; keep only the features
    return {name: np.vstack(b) for name, b in blocks.items()}


def compare(records: Sequence[dict], specs: Mapping[str, tuple], backend=None, seeds: Sequence[int] = range(5),
            val_frac: float = 0.3, batch_size: int = 16, features: Mapping[str, np.ndarray] | None = None) -> list[dict]:
    """One row per (seed, estimator name): the held-out metrics of train.evaluate plus the C used."""
    records = normalize_records(records)
    X = dict(features) if features is not None else feature_matrices(records, specs, backend, batch_size)
    row_of = {r["id"]: i for i, r in enumerate(records)}
    rows = []
    for seed in seeds:
        train, val = split_by_prompt(records, val_frac, seed)
        if not val:
            raise InputError(f"val_frac={val_frac}: the held-out split is empty")
        it, iv = [row_of[r["id"]] for r in train], [row_of[r["id"]] for r in val]
        rates, counts = [r["pass_rate"] for r in train], [r["n_samples"] or 1 for r in train]
        base = float(np.average(rates, weights=counts))
        for name, (kind, kw) in specs.items():
            est = make_estimator(kind, backend, **{**kw, "seed": seed}).fit_features(X[name][it], rates, counts)
            m = evaluate(val, est.model_.predict(X[name][iv]), base)
            rows.append({"seed": seed, "name": name, "n_train": len(train), "n_val": len(val),
                         "C": getattr(est.model_, "C", None), "brier_baseline": m.get("brier_baseline"),
                         **{k: m[k] for k in METRICS}})
    return rows


def summarize(rows: Sequence[dict], versus: tuple[str, str] | None = None) -> dict:
    """{name: {metric: (mean, sd)}} (sd with ddof=1; None when undefined), plus "wins": seeds where
    versus[0] has a higher AUROC than versus[1], out of the seeds where both are defined."""
    out: dict = {}
    for name in dict.fromkeys(r["name"] for r in rows):
        out[name] = {}
        for k in METRICS:
            v = [r[k] for r in rows if r["name"] == name and r[k] is not None]
            out[name][k] = (float(np.mean(v)) if v else None, float(np.std(v, ddof=1)) if len(v) > 1 else None)
    if versus is not None:
        a = {r["seed"]: r["auroc"] for r in rows if r["name"] == versus[0] and r["auroc"] is not None}
        b = {r["seed"]: r["auroc"] for r in rows if r["name"] == versus[1] and r["auroc"] is not None}
        both = sorted(set(a) & set(b))
        diffs = [a[s] - b[s] for s in both]
        out["wins"] = {"versus": list(versus), "wins": sum(d > 0 for d in diffs), "of": len(both),
                       "mean_diff": float(np.mean(diffs)) if diffs else math.nan,
                       "sd_diff": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else math.nan}
    return out
