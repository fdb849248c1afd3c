"""Policy: maps a batch of prompts (and their difficulties) to one Plan per prompt.

    policy = load_policy("binned_default")          # or a path
    plans = policy.plans(prompts, difficulties)      # list[Plan], one per prompt
    batch = policy.plan_batch(prompts, difficulties, budget=4)   # plans + allocation report (allocate)

`needs_estimator` says whether `difficulties` must be given (binned, allocate). `estimator` is the path of
the estimator file the policy was tuned with (or None: the caller brings difficulties).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ..errors import InputError
from ..plan import Plan
from ..result import Difficulty


@dataclass
class PlanBatch:
    plans: list[Plan]
    report: Any = None  # AllocationReport for allocate policies, else None
    reasons: list[str] | None = None  # per prompt: why the policy chose its plan


@dataclass
class Policy:
    name: str
    source: str = "<policy>"
    description: str = ""
    meta: dict = field(default_factory=dict)
    stopping: dict | None = None
    raw: dict = field(default_factory=dict)
    estimator: str | None = None

    kind = "base"

    @property
    def needs_estimator(self) -> bool:
        return False

    def estimator_path(self) -> Path | None:
        """The estimator file, resolved: absolute, relative to the working dir, or to the policy's folder
        (as written; a missing file is reported by whoever loads it)."""
        if not self.estimator:
            return None
        p = Path(self.estimator)
        if p.is_absolute() or p.exists():
            return p
        near = Path(self.source).parent / p
        return near if near.exists() else p

    def plan_batch(self, prompts: Sequence, difficulties: Sequence[Difficulty] | None = None,
                   budget=None) -> PlanBatch:
        raise NotImplementedError

    def plans(self, prompts: Sequence, difficulties: Sequence[Difficulty] | None = None, budget=None) -> list[Plan]:
        return self.plan_batch(prompts, difficulties, budget).plans

    # -- shared helpers ---------------------------------------------------------------------------
    def _difficulties(self, prompts: Sequence, difficulties) -> list[Difficulty] | None:
        if difficulties is None:
            if self.needs_estimator:
                raise InputError(f"policy {self.name!r} ({self.kind}) needs a difficulty per prompt: load its "
                                 f"estimator ({self.estimator or 'none named in ' + self.source}) and pass "
                                 "difficulties=estimator.score(prompts)")
            return None
        diffs = [as_difficulty(d) for d in difficulties]
        if len(diffs) != len(prompts):
            raise InputError(f"{len(prompts)} prompts but {len(diffs)} difficulties")
        if self.needs_estimator:
            missing = [i for i, d in enumerate(diffs) if d is None]
            if missing:
                raise InputError(f"policy {self.name!r}: prompt {missing[0]} has no difficulty")
        return diffs

    def to_dict(self) -> dict:
        return dict(self.raw)

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path


def as_difficulty(d) -> Difficulty | None:
    if d is None or isinstance(d, Difficulty):
        return d
    if isinstance(d, Mapping) and "p_hat" in d:
        return Difficulty(p_hat=float(d["p_hat"]), bin=int(d.get("bin", 0) or 0), estimator=str(d.get("estimator", "")))
    raise InputError(f"difficulty {d!r}: expected a Difficulty or a mapping with p_hat and bin")


def check_budget_ceiling(plan: Plan, budget) -> Plan:
    """fixed/binned: `budget` (samples) is a per-prompt ceiling on max_samples."""
    if budget is None:
        return plan
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise InputError(f"budget={budget!r}: for a {plan.strategy} fixed/binned policy, an integer sample cap >= 1")
    return plan if plan.max_samples <= budget else plan.replace(max_samples=budget)

