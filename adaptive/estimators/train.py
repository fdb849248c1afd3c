"""Training estimators from graded samples, and building those logs.

Input: a sample bank (adaptive/graded.py rows; `adaptive bank`), an eval run's records, or a JSONL label
log (one object per line; blank lines ignored). A label log holds either one record per prompt:
    {"id": "q1", "prompt": "...", "samples": [{"correct": true, ...}, ...], "majority_correct": true}
    {"id": "q2", "prompt": "...", "pass_rate": 0.25, "n_samples": 8}          # n_samples optional
or one record per (prompt, sample), grouped by id (or by prompt text when there is no id):
    {"id": "q1", "prompt": "...", "correct": true, ...}
`id` defaults to a hash of the prompt. A logged sample may carry `logprobs`, `top_logprobs`,
`finish_reason` and `tokens`; the sample probe then reads its first sample instead of drawing one.

`train_estimator` splits BY PROMPT id (seeded; ids are sorted before the shuffle so the split does not
depend on file order), fits on the training prompts' pass rates (weighted by their sample counts) and
reports on the validation prompts:
  auroc     of p_hat for "one sample is correct": every logged sample of a prompt is a (p_hat, correct)
            pair (a rate-only record with n_samples gives round(rate * n) correct pairs)
  spearman  between p_hat and the pass rate, per prompt
  brier, ece  on the same (p_hat, correct) pairs (on (p_hat, pass_rate) when no record has samples)
  brier_baseline  Brier of predicting the training mean pass rate everywhere (what p_hat must beat)
  auroc_majority  of p_hat for majority_correct, when records carry it
A metric that is undefined on the data (one class, constant ranks) is None.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..backends.base import SamplingParams
from ..confidence import TOP_LOGPROBS
from ..errors import ConfigError, InputError
from ..registry import estimators
from . import make_estimator, metrics, persistence
from .bins import check_edges, quantile_edges

# ---------------------------------------------------------------------------------------------- labels


def _prompt_id(prompt) -> str:
    text = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)
    return "p" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _correct(v, where: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    raise ConfigError(f"{where}: 'correct' must be true/false (or 0/1), got {v!r}")


def _normalize(rec: dict, where: str) -> dict:
    """A per-prompt record in canonical form."""
    samples = rec.get("samples")
    if samples is not None:
        if not isinstance(samples, list):
            raise ConfigError(f"{where}: 'samples' must be a list")
        for j, s in enumerate(samples):
            if not isinstance(s, dict) or "correct" not in s:
                raise ConfigError(f"{where}: samples[{j}] must be an object with 'correct'")
            _correct(s["correct"], f"{where}: samples[{j}]")
    samples = list(samples or [])
    if samples:
        rate = sum(_correct(s["correct"], where) for s in samples) / len(samples)
        n = len(samples)
    elif rec.get("pass_rate") is not None:
        rate = rec["pass_rate"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ConfigError(f"{where}: pass_rate must be a number in [0, 1], got {rate!r}")
        n = rec.get("n_samples", rec.get("k"))
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ConfigError(f"{where}: n_samples must be an integer >= 1, got {n!r}")
    else:
        raise ConfigError(f"{where}: a record needs 'samples' (a non-empty list), 'pass_rate' or 'correct'")
    mc = rec.get("majority_correct")
    if mc is not None:
        mc = _correct(mc, f"{where}: majority_correct")
    return {"id": str(rec["id"]), "prompt": rec["prompt"], "samples": samples, "pass_rate": float(rate),
            "n_samples": n, "majority_correct": mc}


def normalize_records(rows: Iterable[dict], source: str = "records") -> list[dict]:
    """Canonical per-prompt records from per-prompt and/or per-sample rows (see the module doc)."""
    order: list[str] = []
    per_prompt: dict[str, dict] = {}
    per_sample: dict[str, dict] = {}
    for i, row in enumerate(rows):
        where = f"{source}:{i + 1}" if source == "records" else f"{source} line {i + 1}"
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: each record must be a JSON object")
        if "prompt" not in row or row["prompt"] in (None, "", []):
            raise ConfigError(f"{where}: missing 'prompt'")
        rid = str(row["id"]) if row.get("id") is not None else _prompt_id(row["prompt"])
        row = dict(row, id=rid)
        if "samples" in row or "pass_rate" in row:
            if rid in per_prompt or rid in per_sample:
                raise ConfigError(f"{where}: prompt id {rid!r} appears more than once")
            per_prompt[rid] = _normalize(row, where)
            order.append(rid)
        elif "correct" in row:
            if rid in per_prompt:
                raise ConfigError(f"{where}: prompt id {rid!r} has both a per-prompt and per-sample records")
            _correct(row["correct"], where)
            g = per_sample.get(rid)
            if g is None:
                g = per_sample[rid] = {"id": rid, "prompt": row["prompt"], "samples": [], "majority_correct": None}
                order.append(rid)
            sample = {k: v for k, v in row.items() if k not in ("id", "prompt", "majority_correct")}
            g["samples"].append(sample)
            if row.get("majority_correct") is not None:
                g["majority_correct"] = row["majority_correct"]
        else:
            raise ConfigError(f"{where}: a record needs 'samples', 'pass_rate' or 'correct'")
    out = []
    for rid in order:
        out.append(per_prompt[rid] if rid in per_prompt else _normalize(per_sample[rid], f"{source} (id {rid})"))
    return out


def load_labels(path) -> list[dict]:
    """Canonical per-prompt records {id, prompt, samples, pass_rate, n_samples (None if unknown),
    majority_correct (None if absent)} from a sample bank (`adaptive bank`), an eval run (its directory or
    records.jsonl: one policy's graded samples) or a JSONL label log (the formats in the module doc)."""
    path = Path(path)
    from ..bank.bank import FORMAT, Bank

    if path.is_dir() or path.name == "records.jsonl":
        return [label_record(p) for p in Bank.from_eval_records(path).prompts]
    if path.is_file() and _first_line(path).startswith('{"format": "' + FORMAT):
        return [label_record(p) for p in Bank.load(path).prompts]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read label log {path}: {e}") from None
    rows, numbers = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} line {n}: not valid JSON: {e.msg}") from None
        numbers.append(n)
    if not rows:
        raise ConfigError(f"label log {path} holds no records")
    try:
        return normalize_records(rows, str(path))
    except ConfigError as e:  # map the row index back to the file's line number
        msg = str(e)
        prefix = f"{path} line "
        if msg.startswith(prefix):
            k, _, rest = msg[len(prefix):].partition(":")
            if k.isdigit() and int(k) <= len(numbers):
                msg = f"{prefix}{numbers[int(k) - 1]}:{rest}"
        raise ConfigError(msg) from None


def _first_line(path: Path) -> str:
    import gzip

    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            return f.readline()
    except (OSError, UnicodeDecodeError):
        return ""


def write_jsonl(records: Iterable[dict], path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def split_by_prompt(records: Sequence[dict], val_frac: float = 0.2, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, val) with every prompt on one side only: records are grouped by prompt text (a dataset can
    hold the same question under several ids, and a copy on each side would leak). With >= 2 prompts and
    val_frac > 0 the validation side gets at least one prompt and the training side keeps at least one."""
    if not 0 <= val_frac < 1:
        raise InputError(f"val_frac={val_frac!r}: must be in [0, 1)")
    keys = sorted({_prompt_key(r) for r in records})
    random.Random(seed).shuffle(keys)
    n_val = int(round(val_frac * len(keys)))
    if val_frac > 0 and len(keys) >= 2:
        n_val = min(max(n_val, 1), len(keys) - 1)
    val_keys = set(keys[:n_val])
    return ([r for r in records if _prompt_key(r) not in val_keys],
            [r for r in records if _prompt_key(r) in val_keys])


def _prompt_key(r: dict) -> str:
    p = r.get("prompt", r.get("id"))
    return p.strip() if isinstance(p, str) else json.dumps(p, sort_keys=True)


def outcome_pairs(records: Sequence[dict], p_hat: Sequence[float]) -> tuple[list[float], list[int]]:
    """Each logged sample as (p_hat of its prompt, correct)."""
    ps, ys = [], []
    for r, p in zip(records, p_hat):
        if r["samples"]:
            outcomes = [int(_correct(s["correct"], str(r["id"]))) for s in r["samples"]]
        elif r.get("n_samples"):
            c = int(round(r["pass_rate"] * r["n_samples"]))
            outcomes = [1] * c + [0] * (r["n_samples"] - c)
        else:
            outcomes = []
        ps += [float(p)] * len(outcomes)
        ys += outcomes
    return ps, ys


# ---------------------------------------------------------------------------------------------- training


def _safe(fn, *args, **kw):
    try:
        v = fn(*args, **kw)
    except InputError:
        return None
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def evaluate(records: Sequence[dict], p_hat: Sequence[float], baseline: float | None = None,
             n_bins: int = 10) -> dict:
    """The report's metrics for predictions `p_hat` aligned with `records` (see the module doc)."""
    p_hat = [float(p) for p in p_hat]
    rates = [r["pass_rate"] for r in records]
    ps, ys = outcome_pairs(records, p_hat)
    on = "samples" if ps else "pass_rate"
    bp, by = (ps, ys) if ps else (p_hat, rates)
    out = {"n_prompts": len(records), "n_samples": len(ps),
           "auroc": _safe(metrics.auroc, ps, ys) if ps else None,
           "spearman": _safe(metrics.spearman, p_hat, rates),
           "brier": _safe(metrics.brier, bp, by) if bp else None,
           "ece": _safe(metrics.expected_calibration_error, bp, by, n_bins) if bp else None,
           "calibration_on": on,
           "mean_p_hat": float(np.mean(p_hat)) if p_hat else None,
           "mean_pass_rate": float(np.mean(rates)) if rates else None}
    if baseline is not None and bp:
        out["brier_baseline"] = _safe(metrics.brier, [baseline] * len(bp), by)
    mc = [(p, r["majority_correct"]) for p, r in zip(p_hat, records) if r.get("majority_correct") is not None]
    if mc:
        out["auroc_majority"] = _safe(metrics.auroc, [p for p, _ in mc], [int(m) for _, m in mc])
    return out


def _first_logged(r: dict):
    from .sample_probe import completion_from_dict

    if r["samples"] and isinstance(r["samples"][0], dict) and r["samples"][0].get("logprobs") is not None:
        return completion_from_dict(r["samples"][0])
    return None


def feature_matrix(est, records: Sequence[dict], batch_size: int = 16) -> np.ndarray:
    """Features of the records' prompts, built in chunks (one backend call per chunk at most)."""
    if batch_size < 1:
        raise InputError(f"batch_size={batch_size!r}: must be >= 1")
    blocks = []
    for i in range(0, len(records), batch_size):
        chunk = records[i:i + batch_size]
        prompts = [r["prompt"] for r in chunk]
        if est.needs == "first_sample":
            firsts = [_first_logged(r) for r in chunk]
            missing = [j for j, c in enumerate(firsts) if c is None]
            if missing:
                drawn = est.draw([prompts[j] for j in missing])
                for j, c in zip(missing, drawn):
                    firsts[j] = c
            blocks.append(est.features(prompts, first_samples=firsts))
        else:
            blocks.append(est.features(prompts))
    return np.vstack(blocks)


def train_estimator(kind: str, records: Sequence[dict], backend=None, out_path=None, *, val_frac: float = 0.2,
                    seed: int = 0, bins=None, batch_size: int = 16, n_ece_bins: int = 10, plot: bool = True,
                    **estimator_kwargs) -> dict:
    """Fit a `kind` estimator on `records` (canonical or raw rows), evaluate on a held-out prompt split,
    save it to `out_path` (an .npz name; + .npz.json sidecar, reliability PNG and report JSON next to it) and
    return the report.

    bins: None (the estimator's default edges), an int (that many equal-width bins), "quantile" (5 bins
    at the quantiles of the training predictions, Snell et al.) or explicit edges.
    """
    t0 = time.perf_counter()
    if out_path is not None:
        persistence.check_path(out_path)  # an .npz name, before any work
    records = normalize_records(records)  # idempotent on canonical records
    if not records:
        raise InputError("no training records")
    train, val = split_by_prompt(records, val_frac, seed)
    est = make_estimator(kind, backend, seed=seed, **estimator_kwargs)
    X_train = feature_matrix(est, train, batch_size)
    counts = [r["n_samples"] or 1 for r in train]
    est.fit_features(X_train, [r["pass_rate"] for r in train], counts)
    p_train = est.model_.predict(X_train)
    if isinstance(bins, str):
        if bins != "quantile":
            raise InputError(f"bins={bins!r}: use an int, 'quantile' or a list of edges")
        est.set_bin_edges(quantile_edges(p_train, 5))
    elif bins is not None:
        est.set_bin_edges(check_edges(bins))
    p_val = est.model_.predict(feature_matrix(est, val, batch_size)) if val else np.zeros(0)
    base_rate = float(np.average([r["pass_rate"] for r in train], weights=counts))
    val_m = evaluate(val, p_val, base_rate, n_ece_bins) if val else None
    report = {"estimator": kind, "n_train": len(train), "n_val": len(val), "val_frac": val_frac, "seed": seed,
              "auroc": val_m and val_m["auroc"], "spearman": val_m and val_m["spearman"],
              "brier": val_m and val_m["brier"], "ece": val_m and val_m["ece"],
              "val": val_m, "train": evaluate(train, p_train, base_rate, n_ece_bins),
              "train_mean_pass_rate": base_rate, "calibration": est.model_.calibration,
              "feature_size": est.model_.n_features, "bin_edges": list(est.bin_edges),
              "val_bin_counts": dict(sorted(Counter(d.bin for d in _difficulties(est, p_val)).items())),
              "model_id": est.model_id if est.uses_model else None}
    if out_path is not None:
        out = Path(out_path)
        est.save(out)
        report["out"] = str(out)
        if plot:
            src, p_src = (val, p_val) if val else (train, p_train)
            ps, ys = outcome_pairs(src, p_src)
            if not ps:
                ps, ys = list(p_src), [r["pass_rate"] for r in src]
            png = out.with_name(out.stem + ".reliability.png")
            metrics.plot_reliability(ps, ys, png, n_ece_bins, title=f"{kind} ({'val' if val else 'train'})")
            report["reliability_png"] = str(png)
        report["wall_s"] = time.perf_counter() - t0
        rep = out.with_name(out.stem + ".report.json")
        rep.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        report["report_json"] = str(rep)
    report["wall_s"] = time.perf_counter() - t0
    return report


def _difficulties(est, p):
    from .bins import bin_of
    from ..result import Difficulty

    return [Difficulty(float(v), bin_of(v, est.bin_edges), est.kind) for v in p]


# ---------------------------------------------------------------------------------------------- labels


Grade = Callable[[str, dict], bool]


def build_labels(backend, examples: Sequence, k: int, grade: Grade, *, params: SamplingParams | None = None,
                 extract: Callable[[str, dict], "str | None"] | None = None, batch_size: int = 8,
                 keep_first_sample: bool = True, raw: bool = False) -> list[dict]:
    """Sample `k` completions per example and grade them -> per-prompt records for `train_estimator`.

    The drawing is the sample bank's (adaptive/bank/draw.py: draw_graded): examples are dicts with "prompt"
    (and optional "id", plus whatever `grade` reads, e.g. "answer"), or plain prompt strings. grade(x, example)
    -> bool, where x is extract(text, example) when `extract` is given, else the completion text. With
    `extract`, majority_correct = grade of the most common extracted answer (None never wins over a real
    answer). The first sample keeps its logprobs / top_logprobs so the sample probe can train on it without
    drawing again. One backend call per `batch_size` prompts.
    """
    from ..bank.draw import draw_graded

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k={k!r}: must be an integer >= 1")
    params = params or SamplingParams(max_new_tokens=256, temperature=0.7, top_logprobs=TOP_LOGPROBS)
    exs = [{"prompt": e} if isinstance(e, str) else dict(e) for e in examples]
    for i, e in enumerate(exs):
        if "prompt" not in e:
            raise InputError(f"examples[{i}] has no 'prompt'")
        e.setdefault("id", _prompt_id(e["prompt"]))
    rows = draw_graded(backend, exs, k, params, lambda x, e: bool(grade(x, e)), extract, batch_size=batch_size,
                       keep_first=keep_first_sample, keep_text=True, raw=raw)
    return [label_record(r, with_majority=extract is not None) for r in rows]


def label_record(p, with_majority: bool = True) -> dict:
    """A GradedPrompt as the per-prompt record training reads (pass rate, sample count, majority vote)."""
    from ..strategies.base import vote

    rec = {"id": p.id, "prompt": p.prompt, "samples": [s.to_dict() for s in p.samples], "pass_rate": p.pass_rate,
           "n_samples": len(p.samples)}
    if with_majority:
        winner, _ = vote([s.answer for s in p.samples])
        rec["majority_correct"] = winner is not None and any(s.correct >= 0.5 for s in p.samples if s.answer == winner)
    return rec



def estimators_need_model(kind: str) -> bool:
    return bool(getattr(estimators.get(kind), "uses_model", False))
