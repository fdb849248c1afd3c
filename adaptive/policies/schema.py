"""Policy-file validation helpers: every error is a ConfigError naming the file and the key path.

A policy file is YAML with `schema: 1` and a `kind` (fixed, binned, allocate, index). Plan fields are
checked by `Plan` itself; a PlanError is re-raised as a ConfigError whose key path ends in the field,
e.g. `policies/x.yaml: key 'bins[1].plan.max_samples': Plan.max_samples=0: must be >= 1`.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from ..errors import ConfigError, PlanError
from ..plan import Plan

SCHEMA_VERSION = 1
COMMON_KEYS = {"schema", "kind", "name", "description", "meta", "stopping"}
STOPPING_KEYS = {"rule", "params", "wave_size"}


def need(cond: bool, path: str, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{path}: key {key!r}: {msg}")


def check_keys(d: Mapping, allowed: set[str], path: str, prefix: str = "") -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(f"{path}: key {key!r}: unknown key; accepted: {', '.join(sorted(allowed))}")


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def parse_plan(raw: Any, path: str, key: str, base: Mapping | None = None) -> Plan:
    """Plan from a mapping of Plan fields (over `base`), errors as ConfigError at `key`.<field>."""
    need(isinstance(raw, Mapping), path, key, "must be a mapping of Plan fields")
    merged = {**(base or {}), **raw}
    try:
        return Plan.from_dict(merged).check_names()
    except PlanError as e:
        raise ConfigError(f"{path}: key '{key}.{e.field}': {e}") from None
    except TypeError as e:  # e.g. a non-hashable where a name is expected
        raise ConfigError(f"{path}: key {key!r}: {e}") from None


def parse_stopping(raw: Any, path: str) -> dict | None:
    """The optional `stopping:` overlay: {rule, params, wave_size}; applied to every plan of a policy, so
    each plan's max_samples becomes a ceiling that the rule may stop short of."""
    if raw is None:
        return None
    need(isinstance(raw, Mapping), path, "stopping", "must be a mapping with rule, params, wave_size")
    check_keys(raw, STOPPING_KEYS, path, "stopping.")
    need(isinstance(raw.get("rule"), str), path, "stopping.rule", "required, a stopping rule name")
    params = raw.get("params", {}) or {}
    need(isinstance(params, Mapping), path, "stopping.params", "must be a mapping")
    wave = raw.get("wave_size")
    need(wave is None or (is_int(wave) and wave >= 0), path, "stopping.wave_size", f"{wave!r}: an integer >= 0")
    out = {"rule": raw["rule"], "params": dict(params)}
    if wave is not None:
        out["wave_size"] = wave
    try:  # validate once here so the error names the overlay, not a derived plan
        Plan(stopping=out["rule"], stopping_params=out["params"], wave_size=out.get("wave_size", 0)).check_names()
    except PlanError as e:
        sub = {"stopping": "rule", "stopping_params": "params", "wave_size": "wave_size"}.get(e.field, e.field)
        raise ConfigError(f"{path}: key 'stopping.{sub}': {e}") from None
    return out


def apply_stopping(plan: Plan, stopping: dict | None) -> Plan:
    if not stopping:
        return plan
    changes = {"stopping": stopping["rule"], "stopping_params": dict(stopping["params"])}
    if "wave_size" in stopping:
        changes["wave_size"] = stopping["wave_size"]
    return plan.replace(**changes)


def plan_fields(plan: Plan) -> dict:
    """The fields of `plan` that differ from Plan's defaults (what a policy file needs to say)."""
    default = Plan().to_dict()
    return {k: v for k, v in plan.to_dict().items() if v != default[k]}
