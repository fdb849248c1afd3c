"""The evaluation runner: task x policies -> one JSONL record per (prompt, policy), resumable."""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

from ..errors import ConfigError, InputError
from ..locks import FileLock
from .config import UNFINGERPRINTED, EvalConfig
from .records import LOCK, RECORDS, append_records, read_records, record_key, repair_tail

RUN_META = "run.json"


def library_versions() -> dict:
    import numpy
    import sklearn
    import torch
    import transformers

    from .. import __version__

    return {"adaptive": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "numpy": numpy.__version__, "sklearn": sklearn.__version__, "python": platform.python_version()}


def backend_settings(backend) -> dict:
    """The backend's own account of what decides its outputs (Backend.settings); a backend without one is
    described by its class and model id."""
    settings = getattr(backend, "settings", None)
    if callable(settings):
        return settings()
    return {"kind": f"{type(backend).__module__}.{type(backend).__qualname__}",
            "model": getattr(backend, "model_id", None)}


def _differences(old: dict, new: dict) -> list[str]:
    """Names of what differs between two runs' metadata: config keys, and backend settings with values."""
    a, b = old.get("config", {}), new["config"]
    diff = sorted(k for k in set(a) | set(b) if k not in UNFINGERPRINTED and a.get(k) != b.get(k))
    if "backend" not in old:
        diff.append("backend (not recorded: the run predates recorded backend settings)")
    else:
        oa, ob = old["backend"], new["backend"]
        diff += [f"backend.{k} ({oa.get(k)!r} -> {ob.get(k)!r})" for k in sorted(set(oa) | set(ob))
                 if oa.get(k) != ob.get(k)]
    return diff


SECRET_KEYS = ("api_key", "headers")


def redacted(raw: dict) -> dict:
    """The config as stored in run.json and every record: a backend's api key and headers replaced."""
    backend = raw.get("backend")
    if not isinstance(backend, dict) or not any(k in backend for k in SECRET_KEYS):
        return raw
    return {**raw, "backend": {k: ("<redacted>" if k in SECRET_KEYS else v) for k, v in backend.items()}}


def _check_resume(out: Path, meta: dict, first_record: dict) -> None:
    """A run with records resumes only with the same fingerprint. Its metadata is run.json, or, if that
    is gone, the `run` block every record carries."""
    path = out / RUN_META
    old = json.loads(path.read_text()) if path.exists() else dict(first_record.get("run") or {})
    if old.get("fingerprint") == meta["fingerprint"]:
        return
    diff = _differences(old, meta)
    raise ConfigError(f"refusing to resume {out}: it was run with different settings: "
                      f"{', '.join(diff) or 'content'} (fingerprint {old.get('fingerprint')} vs "
                      f"{meta['fingerprint']}); use a new --out")


def _write_meta(out: Path, meta: dict) -> None:
    tmp = out / (RUN_META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    tmp.replace(out / RUN_META)


def _policies(config: EvalConfig, only: list[str] | None) -> dict:
    """name -> Policy for the policies to run: a plan as a fixed policy, a policy file loaded."""
    specs = config.policies
    if only:
        names = {p.name for p in specs}
        missing = [n for n in only if n not in names]
        if missing:
            raise ConfigError(f"{config.source}: no policy named {', '.join(missing)}; "
                              f"defined: {', '.join(sorted(names))}")
        specs = [p for p in specs if p.name in only]
    from ..policies import FixedPolicy, load_policy

    return {p.name: FixedPolicy(name=p.name, plan=p.plan) if p.plan is not None else load_policy(p.policy)
            for p in specs}


def _estimators(config: EvalConfig, policies: dict, backend) -> dict:
    """One loaded estimator per policy that needs one (the policy's own, else the config's)."""
    from ..estimators import load_estimator

    loaded: dict[str, object] = {}
    out = {}
    for name, policy in policies.items():
        if not policy.needs_estimator:
            continue
        path = policy.estimator_path() or config.estimator
        if path is None:
            raise ConfigError(f"{config.source}: policy {name!r} needs a difficulty estimator: name one in "
                              f"its policy file or as 'estimator:' in the config")
        key = str(path)
        if key not in loaded:
            loaded[key] = load_estimator(path, backend)
        out[name] = loaded[key]
    return out


def run_directory(out: Path) -> Path:
    """`out` as a run directory, created if missing; an existing file there is an error, not a crash."""
    if out.exists() and not out.is_dir():
        raise InputError(f"run directory {out} exists and is not a directory; name a new or existing directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create run directory {out}: {e.strerror or e}") from None
    return out


def run_eval(config: EvalConfig, out: str | Path, *, only: list[str] | None = None, limit: int | None = None,
             backend=None, progress: bool = True, report: bool = True) -> Path:
    """Run (or resume) `config` into the run directory `out`, which this process holds exclusively
    (a lock file, `out/.lock`, dropped by the OS however the process ends): a second run on the same
    directory fails at once with BusyError naming the holder's pid."""
    from ..tasks import load_task

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be >= 1, got {limit!r}")
    out = Path(out)
    policies = _policies(config, only)
    spec, examples, load_report = load_task(config.task, limit=limit or config.limit, seed=config.seed,
                                            shuffle=config.shuffle, where=config.where or None,
                                            on_bad_row=config.on_bad_row)
    run_directory(out)
    with FileLock(out / LOCK, what=f"run directory {out}", hint="wait for it to finish, or use another --out"):
        _run_locked(config, out, policies, spec, examples, load_report, backend, progress)
        if report:
            from .report import write_report

            write_report(out, print_table=progress, lock_held=True)
    return out


def _run_locked(config, out: Path, policies, spec, examples, load_report, backend, progress: bool) -> None:
    log = out / RECORDS
    repair_tail(log)
    existing = read_records(log)
    done = {record_key(r) for r in existing}
    if backend is None:
        from ..backends.factory import make_backend

        backend = make_backend(config.backend)
    settings = backend_settings(backend)
    meta = {"fingerprint": config.fingerprint(settings), "config": redacted(config.raw), "config_path": config.source,
            "backend": settings, "model_id": backend.model_id, "task": spec.name, "versions": library_versions(),
            "seed": config.seed,
            "load_report": {"rows_read": load_report.rows_read, "rows_skipped": load_report.rows_skipped,
                            "skip_reasons": dict(load_report.skip_reasons), "rows_used": load_report.rows_used}}
    # run.json describes the records: it is written with the first of them, so a start that fails before
    # any (a bad server URL, a model that does not load) leaves nothing that would block the corrected
    # command; a run.json with no records beside it is such a leftover and is replaced.
    if existing:
        _check_resume(out, meta, existing[0])
        if not (out / RUN_META).exists():
            _write_meta(out, meta)
    meta_written = bool(existing)
    run_info = {"fingerprint": meta["fingerprint"], "model_id": backend.model_id, "backend": settings,
                "seed": config.seed, "versions": meta["versions"], "config": meta["config"]}
    estimators = _estimators(config, policies, backend)
    from ..controller import Controller

    # Plans that leave seed unset take the run's seed: a rerun reproduces every policy, and policies share
    # their random numbers, which narrows paired comparisons.
    controllers = {name: Controller(backend, policy, estimators.get(name), targets=config.latency_targets,
                                    time_breakdown=config.timing, default_seed=config.seed)
                   for name, policy in policies.items()}
    bar = _Progress(len(examples) * len(policies), len(done & {(e.id, name) for e in examples for name in policies}),
                    progress)
    for start in range(0, len(examples), config.batch_size):
        batch = examples[start:start + config.batch_size]
        for name in policies:
            pending = [ex for ex in batch if (ex.id, name) not in done]
            if not pending:
                continue
            records = _run_batch(spec, pending, name, controllers[name], run_info)
            if not meta_written:
                _write_meta(out, meta)
                meta_written = True
            append_records(log, records)
            done.update(record_key(r) for r in records)
            bar.update(records)
    bar.close()


def _run_batch(spec, examples, policy_name: str, controller, run_info) -> list[dict]:
    """One batch of examples through the controller; one record per example."""
    queries = [controller.query(ex.prompt, extract=lambda text, ex=ex: spec.extract(text, ex),
                                extract_as=lambda name, ex=ex: lambda text: spec.extract(text, ex, extractor=name))
               for ex in examples]
    batch = controller.run(queries)
    records = [_record(spec, ex, policy_name, r, run_info) for ex, r in zip(examples, batch.results)]
    if batch.allocation is not None:
        for rec, row in zip(records, batch.allocation.rows):
            rec["allocation"] = asdict(row)
    return records


def _record(spec, ex, policy: str, r, run_info) -> dict:
    """A GradedPrompt (adaptive/graded.py: the bank row of this prompt's samples) plus the run's fields."""
    from ..graded import GradedPrompt, GradedSample

    samples = [GradedSample(s.answer, spec.grade(s.answer, ex), s.tokens, s.finish_reason, s.mean_logprob,
                            s.confidence, s.score, s.kept) for s in r.samples]
    d = r.difficulty
    graded = GradedPrompt(ex.id, ex.prompt, ex.gold, samples, ex.meta, d.p_hat if d else None, d.bin if d else None)
    return {**graded.to_dict(), "policy": policy, "task": spec.name, "estimator": d.estimator if d else None,
            "answer": r.answer, "correct": spec.grade(r.answer, ex), "text": r.text, "stop_reason": r.stop_reason,
            "decision": r.decision, "plan": r.plan.to_dict(), "votes": r.votes, "compute": r.compute.to_dict(),
            "run": run_info, "time": time.time()}


class _Progress:
    """tqdm bar with live accuracy per policy and generated tokens/s."""

    def __init__(self, total: int, initial: int, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, disable=not enabled, unit="rec", dynamic_ncols=True)
        self.correct: dict[str, list[float]] = {}
        self.tokens, self.t0 = 0, time.perf_counter()

    def update(self, records: list[dict]) -> None:
        for r in records:
            self.correct.setdefault(r["policy"], []).append(r["correct"])
            self.tokens += r["compute"]["generated_tokens"]
        acc = " ".join(f"{k}={sum(v) / len(v):.2f}" for k, v in self.correct.items())
        self.bar.set_postfix_str(f"acc {acc} | {self.tokens / (time.perf_counter() - self.t0):.1f} tok/s")
        self.bar.update(len(records))

    def close(self) -> None:
        self.bar.close()
