"""Evaluation run configs (YAML): validated on load, errors name the file and the key."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, PlanError
from ..plan import Plan
from ..resources import resolve

TOP_KEYS = {"task", "limit", "seed", "shuffle", "where", "on_bad_row", "model", "backend", "batch_size",
            "policies", "latency_targets", "description", "estimator", "timing"}
POLICY_KEYS = {"name", "plan", "policy"}
# Not hashed into a run's fingerprint: free text, the prompt count (a resume may extend a run), and what
# the backend's effective settings describe instead.
UNFINGERPRINTED = ("description", "limit", "backend", "model")
BACKEND_KEYS = {"kind", "device", "dtype", "base_url", "api_key", "max_batch_rows", "quantization", "attention",
                "compile", "shared_prefix", "shared_prefix_min_tokens"}


@dataclass
class PolicySpec:
    name: str
    plan: Plan | None = None
    policy_file: str | None = None
    policy: object = None  # the loaded Policy, when policy_file is given


@dataclass
class EvalConfig:
    task: str
    policies: list[PolicySpec]
    limit: int | None = None
    seed: int = 0
    shuffle: bool = True
    where: dict = field(default_factory=dict)
    on_bad_row: str = "error"
    model: str | None = None
    backend: dict = field(default_factory=lambda: {"kind": "hf", "device": "auto"})
    batch_size: int = 8
    latency_targets: dict = field(default_factory=dict)
    timing: bool = True  # per-request time breakdown (timing.py)
    estimator: str | None = None
    description: str = ""
    source: str = ""
    raw: dict = field(default_factory=dict)

    def fingerprint(self, backend_settings: dict) -> str:
        """Hash of everything that changes results: the config's content and the effective backend settings
        (Backend.settings(): what actually runs, after CLI overrides, in place of the config's `backend:`
        and `model:`). A resumed run must match it."""
        keep = {k: v for k, v in self.raw.items() if k not in UNFINGERPRINTED}
        blob = json.dumps({"config": keep, "backend": backend_settings}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _need(cond: bool, path: str, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{path}: key {key!r}: {msg}")


def parse_config(raw: Any, path: str = "<config>") -> EvalConfig:
    _need(isinstance(raw, dict), path, "<top>", "the config must be a mapping")
    unknown = sorted(set(raw) - TOP_KEYS)
    _need(not unknown, path, unknown[0] if unknown else "", f"unknown key; accepted: {', '.join(sorted(TOP_KEYS))}")
    _need("task" in raw and isinstance(raw["task"], str), path, "task", "required, a task name or YAML path")
    pols = raw.get("policies")
    _need(isinstance(pols, list) and pols, path, "policies", "required, a non-empty list")
    specs, seen = [], set()
    for i, p in enumerate(pols):
        where = f"policies[{i}]"
        _need(isinstance(p, dict), path, where, "each policy must be a mapping")
        bad = sorted(set(p) - POLICY_KEYS)
        _need(not bad, path, f"{where}.{bad[0] if bad else ''}", f"unknown key; accepted: {', '.join(sorted(POLICY_KEYS))}")
        _need(isinstance(p.get("name"), str) and p["name"], path, f"{where}.name", "required, a string")
        _need(p["name"] not in seen, path, f"{where}.name", f"duplicate policy name {p['name']!r}")
        seen.add(p["name"])
        _need(("plan" in p) != ("policy" in p), path, where, "give exactly one of 'plan' or 'policy'")
        if "plan" in p:
            _need(isinstance(p["plan"], dict), path, f"{where}.plan", "must be a mapping of Plan fields")
            try:
                specs.append(PolicySpec(p["name"], plan=Plan.from_dict(p["plan"])))
            except PlanError as e:
                raise ConfigError(f"{path}: key '{where}.plan.{e.field}': {e}") from None
        else:
            specs.append(PolicySpec(p["name"], policy_file=str(p["policy"])))
    backend = raw.get("backend", {"kind": "hf", "device": "auto"})
    _need(isinstance(backend, dict), path, "backend", "must be a mapping")
    bad = sorted(set(backend) - BACKEND_KEYS)
    _need(not bad, path, f"backend.{bad[0] if bad else ''}", f"unknown key; accepted: {', '.join(sorted(BACKEND_KEYS))}")
    bs = raw.get("batch_size", 8)
    _need(isinstance(bs, int) and not isinstance(bs, bool) and bs >= 1, path, "batch_size", f"{bs!r}: an integer >= 1")
    limit = raw.get("limit")
    _need(limit is None or (isinstance(limit, int) and limit >= 1), path, "limit", f"{limit!r}: an integer >= 1")
    lt = raw.get("latency_targets", {})
    _need(isinstance(lt, dict) and set(lt) <= {"ttft_s", "tbt_s"}, path, "latency_targets",
          "a mapping with ttft_s and/or tbt_s")
    tm = raw.get("timing", True)
    _need(isinstance(tm, bool), path, "timing", f"{tm!r}: true or false")
    return EvalConfig(task=raw["task"], timing=tm, policies=specs, limit=limit, seed=int(raw.get("seed", 0)),
                      shuffle=bool(raw.get("shuffle", True)), where=dict(raw.get("where") or {}),
                      on_bad_row=raw.get("on_bad_row", "error"), model=raw.get("model"), backend=backend,
                      batch_size=bs, latency_targets=lt, estimator=raw.get("estimator"),
                      description=raw.get("description", ""), source=path, raw=raw)


def load_config(path: str | Path) -> EvalConfig:
    """Read and validate an eval config: a file path, or the name of a shipped one (`default`)."""
    p = resolve("eval", path)
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    return parse_config(raw, str(p))
