"""`kind: index` — one policy file per budget (what `adaptive tune` writes next to its per-budget files).

    schema: 1
    kind: index
    unit: samples
    default_budget: 4
    budgets: {1: tuned_b1.yaml, 2: tuned_b2.yaml, 4: tuned_b4.yaml}   # paths relative to this file

`plans(..., budget=B)` uses the member for the largest budget <= B (the smallest member if B is below all);
without a budget, `default_budget`. An allocate member receives B as its batch mean.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .base import PlanBatch, Policy
from .schema import COMMON_KEYS, check_keys, is_num, need

KEYS = COMMON_KEYS | {"budgets", "default_budget", "unit"}


@dataclass
class IndexPolicy(Policy):
    unit: str = "samples"
    members: dict = field(default_factory=dict)   # budget -> Policy
    default_budget: float | None = None

    kind = "index"

    @property
    def needs_estimator(self) -> bool:
        return any(p.needs_estimator for p in self.members.values())

    def member(self, budget=None) -> tuple[float, Policy]:
        b = self.default_budget if budget is None else float(budget)
        keys = sorted(self.members)
        fit = [k for k in keys if k <= b + 1e-9]
        k = fit[-1] if fit else keys[0]
        return k, self.members[k]

    def plan_batch(self, prompts: Sequence, difficulties=None, budget=None) -> PlanBatch:
        b, pol = self.member(budget)
        if pol.kind == "allocate":
            batch = pol.plan_batch(prompts, difficulties, budget)
        elif difficulties is None and not pol.needs_estimator:
            batch = pol.plan_batch(prompts, None)
        else:
            batch = pol.plan_batch(prompts, difficulties)
        head = f"budget {budget if budget is not None else self.default_budget:g} -> member for {b:g} ({pol.name})"
        batch.reasons = [f"{head}; {r}" for r in (batch.reasons or [""] * len(prompts))]
        return batch


def parse_index(raw: dict, path: str, common: dict) -> IndexPolicy:
    from . import load_policy

    check_keys(raw, KEYS, path)
    budgets = raw.get("budgets")
    need(isinstance(budgets, dict) and budgets, path, "budgets", "required, a mapping budget -> policy file")
    unit = raw.get("unit", "samples")
    need(unit in ("samples", "tokens"), path, "unit", f"{unit!r}: samples or tokens")
    members = {}
    for k, v in budgets.items():
        need(is_num(k) and k > 0, path, f"budgets.{k}", "budget keys must be numbers > 0")
        need(isinstance(v, str), path, f"budgets.{k}", "a policy file path (relative to this file) or name")
        p = Path(v)
        if not p.is_absolute():
            near = Path(path).parent / p
            p = near if near.exists() else p
        members[float(k)] = load_policy(p if p.exists() else v)
    default = raw.get("default_budget", min(members))
    need(is_num(default) and default > 0, path, "default_budget", f"{default!r}: a number > 0")
    return IndexPolicy(unit=unit, members=members, default_budget=float(default), **common)
