"""`kind: allocate` — split a batch's compute budget across its prompts by expected marginal gain.

    schema: 1
    kind: allocate
    estimator: estimators/probe.npz      # or null: the caller passes difficulties
    budget: {unit: samples, mean: 4}     # batch budget = mean * number of prompts (unit: samples | tokens)
    per_prompt_cap: 16                   # max samples for one prompt
    min_per_prompt: 1                    # every prompt gets at least this many samples (>= 1)
    curve: best_of_b                     # or {kind: majority, acc: {0: [...], 1: [...]}} (fitted from a bank)
    tokens_per_sample: 48                # unit: tokens only; default base_plan.max_new_tokens (worst case)
    base_plan: {strategy: self_consistency, max_new_tokens: 48}
    stopping: {rule: beta, params: {threshold: 0.95}, wave_size: 2}   # optional: allocation is a ceiling

`plan_batch` returns one Plan per prompt (base_plan with max_samples = its allocation) and an
AllocationReport (per prompt p_hat, bin, allocated samples, expected success and expected gain over the
minimum). With unit: tokens the budget counts expected tokens, b * tokens_per_sample per prompt.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal, Sequence

from ..errors import InputError
from ..plan import Plan, PlanMapping
from ..schema import Invalid, above, at_least, option
from .allocator import greedy_allocate
from .base import PlanBatch, Policy
from .curves import Curve, CurveSpec, curve_from_spec
from .schema import PolicyFile, apply_stopping

UNITS = ("samples", "tokens")
Unit = Literal[UNITS]  # type: ignore[valid-type]


@dataclass
class AllocationRow:
    index: int
    p_hat: float
    bin: int
    samples: int
    expected_success: float
    expected_gain: float


@dataclass
class AllocationReport:
    unit: str
    mean: float
    total: float
    spent: float
    rows: list[AllocationRow] = field(default_factory=list)

    @property
    def expected_accuracy(self) -> float:
        return sum(r.expected_success for r in self.rows) / len(self.rows) if self.rows else 0.0

    def to_dict(self) -> dict:
        return {"unit": self.unit, "mean": self.mean, "total": self.total, "spent": self.spent,
                "expected_accuracy": self.expected_accuracy, "rows": [asdict(r) for r in self.rows]}

    def table(self) -> str:
        lines = [f"allocation: {self.spent:g} of {self.total:g} {self.unit} (mean {self.mean:g}); "
                 f"expected accuracy {self.expected_accuracy:.3f}",
                 f"{'#':>4} {'p_hat':>6} {'bin':>3} {'b':>3} {'E[succ]':>8} {'gain':>7}"]
        lines += [f"{r.index:>4} {r.p_hat:>6.3f} {r.bin:>3} {r.samples:>3} {r.expected_success:>8.3f} "
                  f"{r.expected_gain:>7.3f}" for r in self.rows]
        return "\n".join(lines)


@dataclass
class AllocatePolicy(Policy):
    unit: str = "samples"
    mean: float = 4.0
    per_prompt_cap: int = 16
    min_per_prompt: int = 1
    curve: Curve = None  # type: ignore[assignment]
    tokens_per_sample: float | None = None
    base_plan: Plan = None  # type: ignore[assignment]
    last_report: AllocationReport | None = None

    kind = "allocate"

    @property
    def needs_estimator(self) -> bool:
        return True

    def _mean(self, budget) -> tuple[str, float]:
        if budget is None:
            return self.unit, self.mean
        if isinstance(budget, dict):
            unit, mean = budget.get("unit", self.unit), budget.get("mean")
        else:
            unit, mean = self.unit, budget
        if (unit not in UNITS or isinstance(mean, bool) or not isinstance(mean, (int, float))
                or not math.isfinite(mean) or mean <= 0):
            raise InputError(f"budget={budget!r}: a mean > 0 (in {self.unit}) or {{unit: samples|tokens, mean: x}}")
        return unit, float(mean)

    def allocate(self, difficulties, budget=None) -> AllocationReport:
        unit, mean = self._mean(budget)
        n = len(difficulties)
        cost = 1.0 if unit == "samples" else float(self.tokens_per_sample or self.base_plan.max_new_tokens)
        curves = [self.curve.values(d, self.per_prompt_cap) for d in difficulties]
        total = mean * n
        alloc = greedy_allocate(curves, total, cost, self.min_per_prompt) if n else []
        rows = [AllocationRow(i, float(d.p_hat), int(d.bin), b, f[b], f[b] - f[self.min_per_prompt])
                for i, (d, b, f) in enumerate(zip(difficulties, alloc, curves))]
        return AllocationReport(unit, mean, total, sum(alloc) * cost, rows)

    def plan_batch(self, prompts: Sequence, difficulties=None, budget=None) -> PlanBatch:
        diffs = self._difficulties(prompts, difficulties)
        report = self.allocate(diffs, budget)
        cache: dict[int, Plan] = {}
        plans = []
        for r in report.rows:
            if r.samples not in cache:
                cache[r.samples] = self.base_plan.replace(max_samples=r.samples)
            plans.append(cache[r.samples])
        self.last_report = report
        reasons = [f"p_hat {r.p_hat:.3f}: {r.samples} of the batch's {report.total:g} {report.unit} (mean {report.mean:g}) "
                   f"by marginal gain; expected success {r.expected_success:.3f}" for r in report.rows]
        return PlanBatch(plans, report, reasons)


@dataclass(frozen=True)
class Budget:
    """`budget: {unit: samples|tokens, mean: x}`: the batch's budget is mean x the number of prompts."""
    mean: float = option(check=above(0))
    unit: Unit = "samples"


@dataclass(kw_only=True)
class AllocatePolicyFile(PolicyFile):
    kind: Literal["allocate"] = "allocate"
    estimator: str | None = None  # an estimator file, or null: the caller passes difficulties
    budget: Budget
    per_prompt_cap: int = option(check=at_least(1))
    min_per_prompt: int = option(1, check=at_least(1))
    tokens_per_sample: float | None = option(None, check=above(0))
    base_plan: PlanMapping = option(default_factory=Plan)
    curve: CurveSpec = "best_of_b"
    curve_model: Curve = field(init=False, repr=False)

    def __post_init__(self):
        cap, mn, mean = self.per_prompt_cap, self.min_per_prompt, self.budget.mean
        if mn > cap:
            raise Invalid("min_per_prompt", f"{mn!r}: must be in [1, per_prompt_cap={cap}]")
        self.base_plan = apply_stopping(self.base_plan, self.stopping, "base_plan")
        if self.budget.unit == "samples":
            if mean < mn:
                raise Invalid("budget.mean", f"{mean!r}: below min_per_prompt={mn}")
        else:
            tokens = float(self.tokens_per_sample or self.base_plan.max_new_tokens)
            if mean < mn * tokens:
                raise Invalid("budget.mean", f"{mean!r} tokens cannot cover min_per_prompt={mn} samples of "
                                             f"{tokens:g} tokens")
        self.curve_model = curve_from_spec(self.curve)

    def build(self, source: str, raw: dict, name: str | None = None) -> AllocatePolicy:
        return AllocatePolicy(unit=self.budget.unit, mean=self.budget.mean, per_prompt_cap=self.per_prompt_cap,
                              min_per_prompt=self.min_per_prompt, curve=self.curve_model,
                              tokens_per_sample=self.tokens_per_sample, base_plan=self.base_plan,
                              estimator=self.estimator, **self.common(source, raw, name))
