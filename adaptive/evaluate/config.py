"""Evaluation run configs (YAML), read by the one config loader (adaptive/schema.py): errors name the file
and the key.

    task: arith_mixed                 # a task name or a task YAML path
    limit: 24                         # prompts (>= 1; the CLI's --limit overrides it)
    seed: 0                           # shuffles the task; seeds every plan that sets no seed of its own
    backend: {kind: hf, device: auto} # or {kind: openai, base_url: ..., model: ..., max_in_flight: 8}
    policies:                         # each: a name and exactly one of plan (Plan fields) or policy (a file)
      - {name: sc8, plan: {max_samples: 8, max_new_tokens: 48}}
      - {name: tuned, policy: policies/tuned.yaml}
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ..backends.config import BackendConfig, HFBackendConfig
from ..compute import LatencyTargets
from ..plan import PlanMapping
from ..resources import resolve
from ..schema import Invalid, at_least, load, non_empty, option, read_yaml

# Not hashed into a run's fingerprint: free text, the prompt count (a resume may extend a run), and what
# the backend's effective settings describe instead.
UNFINGERPRINTED = ("description", "limit", "backend", "model")


@dataclass(frozen=True)
class PolicySpec:
    name: str = option(check=non_empty)
    plan: PlanMapping | None = None
    policy: str | None = None  # a policy file: a path, or a shipped policy's name

    def __post_init__(self):
        if (self.plan is None) == (self.policy is None):
            raise Invalid("", "give exactly one of 'plan' or 'policy'")


@dataclass(frozen=True)
class EvalConfig:
    task: str = option(check=non_empty)
    policies: list[PolicySpec] = option(check=non_empty)
    limit: int | None = option(None, check=at_least(1))
    seed: int = 0
    shuffle: bool = True
    where: dict[str, Any] = option(default_factory=dict)
    on_bad_row: Literal["error", "skip"] = "error"
    backend: BackendConfig = option(default_factory=HFBackendConfig)
    batch_size: int = option(8, check=at_least(1))
    latency_targets: LatencyTargets = option(default_factory=LatencyTargets)  # for the fluidity-index
    timing: bool = True  # per-request time breakdown (timing.py)
    estimator: str | None = None
    description: str = ""
    source: str = option("", internal=True)
    raw: dict = option(default_factory=dict, internal=True)  # the mapping as read
    model: str | None = None  # shorthand for backend.model: read into it (give the model once)

    def __post_init__(self):
        if self.model is not None:
            if self.backend.model not in (None, self.model):
                raise Invalid("model", f"{self.model!r} disagrees with backend.model {self.backend.model!r}; "
                                       "give the model once")
            object.__setattr__(self, "backend", replace(self.backend, model=self.model))
            object.__setattr__(self, "model", None)  # one home: backend.model
        seen: set[str] = set()
        for i, p in enumerate(self.policies):
            if p.name in seen:
                raise Invalid(f"policies[{i}].name", f"duplicate policy name {p.name!r}")
            seen.add(p.name)

    def fingerprint(self, backend_settings: dict) -> str:
        """Hash of everything that changes results: the config's content and the effective backend settings
        (Backend.settings(): what actually runs, after CLI overrides, in place of the config's `backend:`).
        A resumed run must match it."""
        keep = {k: v for k, v in self.raw.items() if k not in UNFINGERPRINTED}
        blob = json.dumps({"config": keep, "backend": backend_settings}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def with_backend(self, backend: dict, source: str = "command line") -> "EvalConfig":
        """This config with another `backend:` mapping (validated, and recorded in `raw`, so run.json shows
        it; the fingerprint hashes the backend's effective settings instead)."""
        raw = {k: v for k, v in self.raw.items() if k != "model" or "model" not in backend}  # the flag wins
        if "model" in self.raw and "model" not in backend:
            backend = {**backend, "model": self.raw["model"]}
        return replace(self, backend=load(BackendConfig, backend, source, prefix="backend"),
                       raw={**raw, "backend": backend})


def parse_config(raw: Any, path: str = "<config>") -> EvalConfig:
    """Validate an eval config mapping (as read from YAML)."""
    return load(EvalConfig, raw, str(path), internal={"source": str(path), "raw": raw if isinstance(raw, dict) else {}})


def load_config(path: str | Path) -> EvalConfig:
    """Read and validate an eval config: a file path, or the name of a shipped one (`default`)."""
    p = resolve("eval", path)
    return parse_config(read_yaml(p), str(p))
