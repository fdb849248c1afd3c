"""Policy files: declarative difficulty (+ budget) -> Plan per prompt.

    from adaptive.policies import load_policy
    policy = load_policy("binned_default")            # a shipped policy by name, or any path
    plans = policy.plans(prompts, difficulties)        # one Plan per prompt

Kinds (one module each): fixed.py (one Plan), binned.py (difficulty bin -> Plan), allocate.py (batch budget
split by greedy marginal gain, allocator.py + curves.py), index.py (one policy per budget, written by the
tuner). Validation: schema.py. Every file needs `schema: 1`; every error is a ConfigError naming the file
and the key path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..resources import resolve
from .allocate import AllocatePolicy, AllocationReport, AllocationRow, parse_allocate
from .allocator import greedy_allocate
from .base import PlanBatch, Policy, as_difficulty
from .binned import BinnedPolicy, parse_binned
from .curves import Curve, best_of_b, fit_majority_table
from .fixed import FixedPolicy, parse_fixed
from .index import IndexPolicy, parse_index
from .schema import SCHEMA_VERSION, need, parse_stopping, plan_fields



def parse_policy(raw: Any, path: str = "<policy>", name: str | None = None) -> Policy:
    """Validate a policy mapping (as read from YAML) and build the Policy."""
    need(isinstance(raw, dict), path, "<top>", "a policy file must be a mapping")
    need("schema" in raw, path, "schema", f"required: schema: {SCHEMA_VERSION}")
    need(raw["schema"] == SCHEMA_VERSION, path, "schema",
         f"{raw['schema']!r}: unsupported policy schema version (this library reads {SCHEMA_VERSION})")
    from ..registry import policy_kinds

    kind = raw.get("kind")
    need(kind in policy_kinds, path, "kind", f"{kind!r}: required, one of {', '.join(policy_kinds.names())}")
    pname = raw.get("name", name or Path(path).stem)
    need(isinstance(pname, str) and pname, path, "name", "a non-empty string")
    desc = raw.get("description", "")
    need(isinstance(desc, str), path, "description", "a string")
    meta = raw.get("meta", {}) or {}
    need(isinstance(meta, dict), path, "meta", "a mapping")
    common = {"name": pname, "source": path, "description": desc, "meta": meta,
              "stopping": parse_stopping(raw.get("stopping"), path), "raw": raw}
    return policy_kinds.get(kind)(raw, path, common)


def resolve_policy_path(path_or_name) -> Path:
    """An existing file path as given, else the shipped policy a bare name names; else ConfigError listing them."""
    return resolve("policies", path_or_name)


def load_policy(path_or_name) -> Policy:
    """Load and validate a policy file; a bare name resolves to a shipped policy (adaptive/resources/policies/)."""
    if isinstance(path_or_name, Policy):
        return path_or_name
    p = resolve_policy_path(path_or_name)
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    return parse_policy(raw, str(p))


__all__ = ["AllocatePolicy", "AllocationReport", "AllocationRow", "BinnedPolicy", "Curve", "FixedPolicy",
           "IndexPolicy", "PlanBatch", "Policy", "as_difficulty", "best_of_b", "fit_majority_table",
           "greedy_allocate", "load_policy", "parse_policy", "plan_fields", "resolve_policy_path"]
