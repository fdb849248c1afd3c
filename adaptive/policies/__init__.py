"""Policy files: declarative difficulty (+ budget) -> Plan per prompt.

    from adaptive.policies import load_policy
    policy = load_policy("binned_default")            # a shipped policy by name, or any path
    plans = policy.plans(prompts, difficulties)        # one Plan per prompt

Kinds (one module each): fixed.py (one Plan), binned.py (difficulty bin -> Plan), allocate.py (batch budget
split by greedy marginal gain, allocator.py + curves.py), index.py (one policy per budget, written by the
tuner). Each kind's file is a schema dataclass (its module's `*PolicyFile`, the common keys in schema.py)
read by the one config loader (adaptive/schema.py). Every file needs `schema: 1`; every error is a
ConfigError naming the file and the key path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from ..resources import resolve
from ..schema import Invalid, Kinds, load, read_yaml
from .allocate import AllocatePolicy, AllocationReport, AllocationRow
from .allocator import greedy_allocate
from .base import PlanBatch, Policy, as_difficulty
from .binned import BinnedPolicy
from .curves import Curve, best_of_b, fit_majority_table
from .fixed import FixedPolicy
from .index import IndexPolicy
from .schema import PolicyFile, plan_fields


def _policy_file_kinds() -> dict[str, type]:
    from ..registry import policy_kinds

    return {kind: policy_kinds.get(kind) for kind in policy_kinds.names()}


# A policy file: its `kind` names its file class in the policy_kinds registry.
AnyPolicyFile = Annotated[PolicyFile, Kinds(_policy_file_kinds)]


def parse_policy(raw: Any, path: str = "<policy>", name: str | None = None) -> Policy:
    """Validate a policy mapping (as read from YAML) and build the Policy."""
    spec = load(AnyPolicyFile, raw, str(path))
    try:
        return spec.build(str(path), raw, name)
    except Invalid as e:
        raise e.at(str(path)) from None


def resolve_policy_path(path_or_name) -> Path:
    """An existing file path as given, else the shipped policy a bare name names; else ConfigError listing them."""
    return resolve("policies", path_or_name)


def load_policy(path_or_name) -> Policy:
    """Load and validate a policy file; a bare name resolves to a shipped policy (adaptive/resources/policies/)."""
    if isinstance(path_or_name, Policy):
        return path_or_name
    p = resolve_policy_path(path_or_name)
    return parse_policy(read_yaml(p), str(p))


__all__ = ["AllocatePolicy", "AllocationReport", "AllocationRow", "BinnedPolicy", "Curve", "FixedPolicy",
           "IndexPolicy", "PlanBatch", "PolicyFile", "Policy", "as_difficulty", "best_of_b", "fit_majority_table",
           "greedy_allocate", "load_policy", "parse_policy", "plan_fields", "resolve_policy_path"]
