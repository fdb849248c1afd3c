"""Sample bank: per prompt, its graded samples (adaptive/graded.py: answer, correctness, tokens, DeepConf
confidence, ...), so sampling policies can be replayed offline (simulate.py) and tuned (adaptive.tune)
without touching a model, and estimators trained on their pass rates.

File format (JSONL, gzipped when the name ends in .gz; `save` / `load`):
    line 1: {"format": "adaptive-bank", "version": 2, "source": {...where it came from...}}
    then one GradedPrompt per line:
    {"id": "q1", "prompt": "...", "gold": "12", "meta": {"difficulty": "easy"}, "p_hat": 0.62, "bin": 3,
     "samples": [{"answer": "12", "correct": 1.0, "tokens": 31, "confidence": 2.7, ...}, ...]}
p_hat / bin are null when no estimator scored the prompt. Version 1 files (the same rows without the
newer sample fields) still load.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import ConfigError, InputError
from ..graded import GradedPrompt, GradedSample
from ..result import Difficulty

FORMAT = "adaptive-bank"
VERSION = 2
READS = (1, 2)
SAMPLING = ("self_consistency", "best_of_n")


@dataclass
class Bank:
    prompts: list[GradedPrompt]
    source: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def max_samples(self) -> int:
        return max((len(p.samples) for p in self.prompts), default=0)

    @property
    def min_samples(self) -> int:
        return min((len(p.samples) for p in self.prompts), default=0)

    @property
    def has_difficulty(self) -> bool:
        return bool(self.prompts) and all(p.p_hat is not None for p in self.prompts)

    @property
    def has_tokens(self) -> bool:
        return any(s.tokens for p in self.prompts for s in p.samples)

    def difficulties(self) -> list[Difficulty | None]:
        return [p.difficulty for p in self.prompts]

    def subset(self, indices: Iterable[int]) -> "Bank":
        return Bank([self.prompts[i] for i in indices], dict(self.source))

    def split(self, held_out: float = 0.5, seed: int = 0) -> tuple["Bank", "Bank"]:
        """(tuning, held-out) halves, split by prompt with a seeded shuffle."""
        import numpy as np

        if not 0 < held_out < 1:
            raise InputError(f"held_out={held_out!r}: a fraction in (0, 1)")
        if len(self) < 2:
            raise InputError(f"a bank of {len(self)} prompt(s) cannot be split")
        order = np.random.default_rng(seed).permutation(len(self)).tolist()
        k = min(len(self) - 1, max(1, int(round(len(self) * held_out))))
        return self.subset(sorted(order[k:])), self.subset(sorted(order[:k]))

    def with_oracle_difficulty(self, n_bins: int = 5) -> "Bank":
        """A copy whose p_hat is each prompt's empirical pass rate (an oracle: an upper bound on what an
        estimator could do) and bin the equal-width bin of it (0 = hardest)."""
        from ..estimators.bins import bin_of, uniform_edges

        edges = uniform_edges(n_bins)
        out = [GradedPrompt(p.id, p.prompt, p.gold, p.samples, dict(p.meta), p.pass_rate, bin_of(p.pass_rate, edges))
               for p in self.prompts]
        return Bank(out, {**self.source, "difficulty": f"oracle pass rate, {n_bins} equal-width bins"})

    def attach_difficulty(self, estimator) -> "Bank":
        """Score every prompt with a fitted estimator (p_hat and bin set in place)."""
        diffs = estimator.score([p.prompt for p in self.prompts])
        for p, d in zip(self.prompts, diffs):
            p.p_hat, p.bin = float(d.p_hat), int(d.bin)
        self.source["difficulty"] = f"estimator {getattr(estimator, 'kind', '?')}"
        return self

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """JSONL (gzipped when the name ends in .gz), written to a temp file and renamed."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with _open(tmp, "w", gz=path.suffix == ".gz") as f:
            f.write(json.dumps({"format": FORMAT, "version": VERSION, "source": self.source}, default=str) + "\n")
            for p in self.prompts:
                f.write(json.dumps(p.to_dict(), default=str) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "Bank":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"bank {str(path)!r} not found")
        try:
            with _open(path, "r", gz=path.suffix == ".gz") as f:
                lines = [ln for ln in f.read().splitlines() if ln.strip()]
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read the bank: {e}") from None
        try:
            head = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: line 1 is not JSON: {e}") from None
        if head.get("format") != FORMAT:
            raise ConfigError(f"{path}: not a sample bank (line 1 must be {{\"format\": \"{FORMAT}\", ...}}); "
                              "import plain JSONL with Bank.from_jsonl")
        if head.get("version") not in READS:
            raise ConfigError(f"{path}: bank version {head.get('version')!r} unsupported (reads {', '.join(map(str, READS))})")
        prompts = []
        for i, ln in enumerate(lines[1:], start=2):
            try:
                d = json.loads(ln)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}: line {i}: not JSON: {e}") from None
            if not isinstance(d, dict):
                raise ConfigError(f"{path}: line {i}: malformed bank entry: not an object")
            prompts.append(GradedPrompt.from_dict(d, f"{path}: line {i}"))
        return cls(prompts, head.get("source", {}))

    # -- constructors -----------------------------------------------------------------------------
    @classmethod
    def from_eval_records(cls, path, policy: str | None = None) -> "Bank":
        """The records of one policy of an eval run (runs/<id> or its records.jsonl) as a bank.

        policy=None: the run's only policy, else its fixed-stopping sampling policy with the largest sample
        cap (the i.i.d. fixed-K samples a replay needs). A policy with early stopping gives a bank whose
        prompts have fewer samples where it stopped: allowed, with a warning."""
        from ..evaluate.records import RECORDS, read_records

        p = Path(path)
        log = p / RECORDS if p.is_dir() else p
        recs = read_records(log)
        if not recs:
            raise ConfigError(f"{log}: no eval records")
        plans = {}
        for r in recs:
            plans.setdefault(r["policy"], r.get("plan") or {})
        if policy is None:
            if len(plans) == 1:
                policy = next(iter(plans))
            else:
                fixed = [(pl.get("max_samples", 1), name) for name, pl in plans.items()
                         if pl.get("stopping", "fixed") == "fixed" and pl.get("strategy") in SAMPLING]
                if not fixed:
                    raise ConfigError(f"{log}: policies {', '.join(sorted(plans))}: none is a fixed-K sampling "
                                      "policy; name one with policy=")
                policy = max(fixed)[1]
        if policy not in plans:
            raise ConfigError(f"{log}: no records for policy {policy!r}; present: {', '.join(sorted(plans))}")
        plan = plans[policy]
        if plan.get("strategy") not in SAMPLING:
            raise ConfigError(f"{log}: policy {policy!r} uses strategy {plan.get('strategy')!r}; a bank needs "
                              f"independent samples ({', '.join(SAMPLING)}); search/refine cannot be replayed")
        if plan.get("stopping", "fixed") != "fixed":
            warnings.warn(f"policy {policy!r} stops early ({plan.get('stopping')}): prompts where it stopped have "
                          "fewer samples than its cap", stacklevel=2)
        prompts = []
        for r in recs:
            if r["policy"] != policy:
                continue
            prompts.append(GradedPrompt.from_dict(r, f"{log}: record {r['id']!r}"))
        run = next((r.get("run") for r in recs if r["policy"] == policy), {}) or {}
        return cls(prompts, {"kind": "eval_records", "path": str(log), "policy": policy, "plan": plan,
                             "model_id": run.get("model_id"), "task": recs[0].get("task")})

    @classmethod
    def from_jsonl(cls, path, extractor: str = "auto", grader: str | None = None) -> "Bank":
        """Import a plain JSONL bank produced elsewhere. One object per line:

            {"id": ..., "question"|"prompt": ..., "gold"|"answer": ...,
             "outputs": ["raw text", ...]            # graded with extractor + grader, or
             "answers": ["12", null, ...]            # already extracted (graded with grader), or
             "samples": [{"text"|"answer": ..., "correct": 1, "tokens": 40, "score": 0.3}, ...],
             "correct": [1, 0, ...], "tokens": [40, 52, ...], "scores": [...],   # optional, per sample
             "meta": {...}, "p_hat": 0.4, "bin": 2}                              # optional

        Raw outputs are extracted with `extractor` (a name from adaptive.answers, default auto) and every
        sample without a `correct` value is graded with `grader` (e.g. numeric, math, choice, qa_em).
        Tokens default to the whitespace word count of a raw output (0 when only answers are given).
        """
        from .. import answers as A

        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"bank import {str(path)!r} not found")
        prompts = []
        for ln_no, ln in enumerate(p.read_text().splitlines(), start=1):
            if not ln.strip():
                continue
            where = f"{p}: line {ln_no}"
            try:
                row = json.loads(ln)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{where}: not JSON: {e}") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{where}: each line must be a JSON object")
            question = row.get("question", row.get("prompt"))
            gold = row.get("gold", row.get("answer"))
            if question is None or gold is None:
                raise ConfigError(f"{where}: needs 'question' (or 'prompt') and 'gold' (or 'answer')")
            items = _raw_samples(row, where)
            samples = []
            for j, it in enumerate(items):
                text = it.get("text")
                ans = it["answer"] if "answer" in it else (A.extract(extractor, text) if text is not None else None)
                if ans is not None:
                    ans = str(ans)
                corr = it.get("correct")
                if corr is None:
                    if grader is None:
                        raise ConfigError(f"{where}: sample {j} has no 'correct' value: pass a grader name "
                                          "(e.g. numeric, math, choice, qa_em, exact)")
                    corr = A.grade(grader, ans, gold)
                toks = it.get("tokens")
                if toks is None:
                    toks = len(text.split()) if isinstance(text, str) else 0
                samples.append(GradedSample(ans, float(corr), int(toks), score=it.get("score"),
                                            confidence=it.get("confidence")))
            if not samples:
                raise ConfigError(f"{where}: no samples")
            prompts.append(GradedPrompt(str(row.get("id", f"row{ln_no}")), question, gold, samples,
                                      row.get("meta") or {}, row.get("p_hat"), row.get("bin")))
        if not prompts:
            raise ConfigError(f"{p}: no rows")
        return cls(prompts, {"kind": "jsonl", "path": str(p), "extractor": extractor, "grader": grader})


def _raw_samples(row: dict, where: str) -> list[dict]:
    if "samples" in row:
        items = row["samples"]
        if not isinstance(items, list) or not all(isinstance(s, dict) for s in items):
            raise ConfigError(f"{where}: 'samples' must be a list of objects")
        return [dict(s) for s in items]
    if "outputs" in row:
        items = [{"text": t} for t in row["outputs"]]
    elif "answers" in row:
        items = [{"answer": a} for a in row["answers"]]
    else:
        raise ConfigError(f"{where}: needs 'outputs' (raw texts), 'answers' or 'samples'")
    for key, field_ in (("correct", "correct"), ("tokens", "tokens"), ("scores", "score")):
        vals = row.get(key)
        if vals is None:
            continue
        if not isinstance(vals, list) or len(vals) != len(items):
            raise ConfigError(f"{where}: '{key}' must be a list with one value per sample ({len(items)})")
        for it, v in zip(items, vals):
            it[field_] = v
    return items


def _open(path, mode: str, gz: bool):
    import gzip
    import io

    if not gz:
        return open(path, mode, encoding="utf-8")
    if mode == "w":  # mtime=0: the same bank gives the same bytes (a shipped file only changes with its content)
        return io.TextIOWrapper(gzip.GzipFile(path, "wb", mtime=0), encoding="utf-8")
    return gzip.open(path, "rt", encoding="utf-8")


def as_bank(bank_or_path) -> Bank:
    return bank_or_path if isinstance(bank_or_path, Bank) else Bank.load(bank_or_path)


__all__: Sequence[str] = ["Bank", "as_bank"]
