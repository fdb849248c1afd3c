"""What every policy file has, as schema dataclasses (adaptive/schema.py reads them): `schema: 1`, a `kind`
(one module each: fixed, binned, allocate, index), name, description, meta, and the optional `stopping:`
overlay. Plan fields are checked by `Plan` itself; a PlanError becomes an error whose key path ends in the
field, e.g. `policies/x.yaml: key 'bins[1].plan.max_samples': Plan.max_samples=0: must be >= 1`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PlanError
from ..plan import Plan, plan_from_mapping
from ..schema import Invalid, at_least, non_empty, option

SCHEMA_VERSION = 1


def schema_version(v) -> str | None:
    return None if v == SCHEMA_VERSION else \
        f"{v!r}: unsupported policy schema version (this library reads {SCHEMA_VERSION})"


@dataclass(frozen=True)
class StoppingOverlay:
    """`stopping: {rule, params, wave_size}`: applied to every plan of a policy, so each plan's max_samples
    becomes a ceiling that the rule may stop short of."""
    rule: str
    params: dict[str, Any] = option(default_factory=dict)
    wave_size: int | None = option(None, check=at_least(0))

    def __post_init__(self):
        try:  # validated once here, so the error names the overlay, not a derived plan
            Plan(stopping=self.rule, stopping_params=self.params, wave_size=self.wave_size or 0).check_names()
        except PlanError as e:
            raise Invalid({"stopping": "rule", "stopping_params": "params"}.get(e.field, e.field), str(e)) from None

    def apply(self, plan: Plan) -> Plan:
        changes: dict = {"stopping": self.rule, "stopping_params": dict(self.params)}
        if self.wave_size is not None:
            changes["wave_size"] = self.wave_size
        return plan.replace(**changes)


def apply_stopping(plan: Plan, stopping: StoppingOverlay | None, key: str = "plan") -> Plan:
    """`plan` with the overlay; an overlay that does not fit the plan is an error at 'stopping'."""
    if not stopping:
        return plan
    try:
        return stopping.apply(plan)
    except PlanError as e:  # e.g. a strategy that draws no waves
        raise Invalid("stopping", f"cannot apply to {key}: {e}") from None


@dataclass(kw_only=True)
class PolicyFile:
    """The keys every policy file has; each kind's file class adds its own, checks them in __post_init__
    (plans included) and `build`s its Policy."""
    schema: int = option(check=schema_version)
    name: str | None = option(None, check=non_empty)
    description: str = ""
    meta: dict[str, Any] = option(default_factory=dict)
    stopping: StoppingOverlay | None = None

    def common(self, source: str, raw: dict, name: str | None = None) -> dict:
        """The Policy fields every kind shares."""
        return {"name": self.name or name or Path(source).stem, "source": source, "description": self.description,
                "meta": dict(self.meta), "stopping": self.stopping, "raw": raw}

    def build(self, source: str, raw: dict, name: str | None = None):
        raise NotImplementedError


def merged_plan(raw: dict, key: str, base: dict | None = None, stopping: StoppingOverlay | None = None) -> Plan:
    """The Plan of `raw` over `base` (both mappings of Plan fields), with the overlay; errors at `key`.<field>."""
    try:
        plan = plan_from_mapping({**(base or {}), **raw})
    except Invalid as e:
        raise e.at(None, key) from None
    return apply_stopping(plan, stopping, key)


def plan_fields(plan: Plan) -> dict:
    """The fields of `plan` that differ from Plan's defaults (what a policy file needs to say)."""
    default = Plan().to_dict()
    return {k: v for k, v in plan.to_dict().items() if v != default[k]}
