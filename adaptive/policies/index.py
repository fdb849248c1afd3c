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
from typing import Annotated, Literal, Sequence

from ..errors import ConfigError
from ..schema import Invalid, above, option
from .base import PlanBatch, Policy
from .schema import PolicyFile


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


@dataclass(kw_only=True)
class IndexPolicyFile(PolicyFile):
    kind: Literal["index"] = "index"
    budgets: dict[Annotated[float, above(0)], str]  # budget -> policy file (relative to this file) or name
    unit: Literal["samples", "tokens"] = "samples"
    default_budget: float | None = option(None, check=above(0))  # None: the smallest budget

    def __post_init__(self):
        if not self.budgets:
            raise Invalid("budgets", "must not be empty: a mapping budget -> policy file")

    def build(self, source: str, raw: dict, name: str | None = None) -> IndexPolicy:
        from . import load_policy, resolve_policy_path

        members = {}
        for k, v in self.budgets.items():
            p = Path(v)
            if not p.is_absolute():
                near = Path(source).parent / p
                p = near if near.exists() else p
            try:
                path = resolve_policy_path(p if p.exists() else v)
            except ConfigError as e:
                raise Invalid(f"budgets.{k:g}", str(e)) from None
            members[k] = load_policy(path)  # its own errors name its own file
        default = self.default_budget if self.default_budget is not None else min(members)
        return IndexPolicy(unit=self.unit, members=members, default_budget=default, **self.common(source, raw, name))
