"""`kind: fixed` — one Plan for every prompt.

    schema: 1
    kind: fixed
    plan: {strategy: self_consistency, max_samples: 8, max_new_tokens: 48}
    stopping: {rule: beta, params: {threshold: 0.95}, wave_size: 2}   # optional: max_samples is a ceiling
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from ..plan import Plan, PlanMapping
from .base import PlanBatch, Policy, check_budget_ceiling
from .schema import PolicyFile, apply_stopping


@dataclass
class FixedPolicy(Policy):
    plan: Plan = None  # type: ignore[assignment]

    kind = "fixed"

    def plan_batch(self, prompts: Sequence, difficulties=None, budget=None) -> PlanBatch:
        self._difficulties(prompts, difficulties)
        plan = check_budget_ceiling(self.plan, budget)
        why = f"policy {self.name!r} gives every prompt the same plan"
        return PlanBatch([plan] * len(prompts), reasons=[why] * len(prompts))


@dataclass(kw_only=True)
class FixedPolicyFile(PolicyFile):
    kind: Literal["fixed"] = "fixed"
    plan: PlanMapping

    def __post_init__(self):
        self.plan = apply_stopping(self.plan, self.stopping)

    def build(self, source: str, raw: dict, name: str | None = None) -> FixedPolicy:
        return FixedPolicy(plan=self.plan, **self.common(source, raw, name))
