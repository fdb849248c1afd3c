"""`kind: fixed` — one Plan for every prompt.

    schema: 1
    kind: fixed
    plan: {strategy: self_consistency, max_samples: 8, max_new_tokens: 48}
    stopping: {rule: beta, params: {threshold: 0.95}, wave_size: 2}   # optional: max_samples is a ceiling
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..plan import Plan
from .base import PlanBatch, Policy, check_budget_ceiling
from .schema import COMMON_KEYS, apply_stopping, check_keys, need, parse_plan

KEYS = COMMON_KEYS | {"plan"}


@dataclass
class FixedPolicy(Policy):
    plan: Plan = None  # type: ignore[assignment]

    kind = "fixed"

    def plan_batch(self, prompts: Sequence, difficulties=None, budget=None) -> PlanBatch:
        self._difficulties(prompts, difficulties)
        plan = check_budget_ceiling(self.plan, budget)
        why = f"policy {self.name!r} gives every prompt the same plan"
        return PlanBatch([plan] * len(prompts), reasons=[why] * len(prompts))


def parse_fixed(raw: dict, path: str, common: dict) -> FixedPolicy:
    check_keys(raw, KEYS, path)
    need("plan" in raw, path, "plan", "required for kind: fixed, a mapping of Plan fields")
    plan = apply_stopping(parse_plan(raw["plan"], path, "plan"), common["stopping"])
    return FixedPolicy(plan=plan, **common)
