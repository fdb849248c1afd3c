"""`kind: binned` — difficulty bin -> Plan.

    schema: 1
    kind: binned
    estimator: estimators/probe.npz        # or null: the caller passes difficulties
    base_plan: {max_new_tokens: 48}        # fields shared by every bin (each bin's plan overrides them)
    bins:                                  # by p_hat ...
      - {max_p: 0.2, plan: {max_samples: 16}}
      - {max_p: 0.7, plan: {max_samples: 8, stopping: beta, wave_size: 2}}
      - {max_p: 1.0, plan: {max_samples: 1}}
    # ... or by the estimator's bin index (0 = hardest):  - {bin: 0, plan: {...}}

Mapping. With `max_p` entries (strictly increasing, the last 1.0) a prompt goes to the first entry whose
max_p is > p_hat; p_hat = 1.0 goes to the last entry. So entry i covers [max_p[i-1], max_p[i]) (the last
also holds 1.0), the same half-open convention as the estimators' bin edges (adaptive/estimators/bins.py).
With `bin` entries (0, 1, 2, ... in order) a prompt goes to the entry of its Difficulty.bin as computed
by the estimator from its own edges; a bin without an entry is an error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from ..errors import ConfigError
from ..plan import Plan
from ..schema import Invalid, at_least, between, option
from .base import PlanBatch, Policy, check_budget_ceiling
from .schema import PolicyFile, merged_plan


@dataclass
class BinnedPolicy(Policy):
    by: str = "max_p"                      # "max_p" or "bin"
    edges: list = field(default_factory=list)   # max_p values, or bin indices
    bin_plans: list = field(default_factory=list)

    kind = "binned"

    @property
    def needs_estimator(self) -> bool:
        return True

    def entry_for(self, d) -> int:
        if self.by == "max_p":
            p = min(1.0, max(0.0, float(d.p_hat)))
            for i, m in enumerate(self.edges):
                if p < m:
                    return i
            return len(self.edges) - 1
        if not 0 <= d.bin < len(self.edges):
            raise ConfigError(f"{self.source}: difficulty bin {d.bin} has no entry in 'bins' "
                              f"(bins 0..{len(self.edges) - 1}); the estimator's bins do not match this policy")
        return d.bin

    def plan_batch(self, prompts: Sequence, difficulties=None, budget=None) -> PlanBatch:
        diffs = self._difficulties(prompts, difficulties)
        plans = [check_budget_ceiling(p, budget) for p in self.bin_plans]
        entries = [self.entry_for(d) for d in diffs]
        return PlanBatch([plans[e] for e in entries], reasons=[self.reason(d, e) for d, e in zip(diffs, entries)])

    def reason(self, d, entry: int) -> str:
        if self.by == "max_p":
            lo = self.edges[entry - 1] if entry else 0.0
            where = f"p_hat {d.p_hat:.3f} in [{lo:g}, {self.edges[entry]:g})"
        else:
            where = f"estimator bin {d.bin} (p_hat {d.p_hat:.3f})"
        return f"{where}: entry {entry} of {len(self.edges)} in policy {self.name!r}"


@dataclass(frozen=True)
class BinEntry:
    plan: dict[str, Any]  # Plan fields over base_plan
    max_p: float | None = option(None, check=between(0, 1, open_low=True))
    bin: int | None = option(None, check=at_least(0))

    def __post_init__(self):
        if (self.max_p is None) == (self.bin is None):
            raise Invalid("", "give exactly one of 'max_p' or 'bin'")


@dataclass(kw_only=True)
class BinnedPolicyFile(PolicyFile):
    kind: Literal["binned"] = "binned"
    estimator: str | None = None  # an estimator file, or null: the caller passes difficulties
    base_plan: dict[str, Any] = option(default_factory=dict)  # Plan fields shared by every bin
    bins: list[BinEntry]  # by p_hat (max_p) or by the estimator's bin index (bin)
    by: str = field(init=False)
    edges: list = field(init=False)
    plans: list[Plan] = field(init=False, repr=False)

    def __post_init__(self):
        if not self.bins:
            raise Invalid("bins", "must not be empty: a list of {max_p|bin, plan}")
        merged_plan(self.base_plan, "base_plan")
        by = "max_p" if self.bins[0].max_p is not None else "bin"
        edges: list = []
        for i, entry in enumerate(self.bins):
            v = getattr(entry, by)
            if v is None:
                raise Invalid(f"bins[{i}].{'bin' if by == 'max_p' else 'max_p'}",
                              "all bins must use the same key (max_p or bin)")
            if by == "max_p" and edges and v <= edges[-1]:
                raise Invalid(f"bins[{i}].max_p", f"{v!r}: bins must be sorted by max_p, strictly increasing "
                                                  f"(previous {edges[-1]})")
            if by == "bin" and v != len(edges):
                raise Invalid(f"bins[{i}].bin", f"{v!r}: bins must be sorted and contiguous from 0 "
                                                f"(expected {len(edges)})")
            edges.append(v)
        if by == "max_p" and edges[-1] != 1.0:
            raise Invalid(f"bins[{len(edges) - 1}].max_p",
                          f"{edges[-1]!r}: the last bin must have max_p: 1.0 so every p_hat has a plan")
        self.by, self.edges = by, edges
        self.plans = [merged_plan(e.plan, f"bins[{i}].plan", self.base_plan, self.stopping)
                      for i, e in enumerate(self.bins)]

    def build(self, source: str, raw: dict, name: str | None = None) -> BinnedPolicy:
        return BinnedPolicy(by=self.by, edges=self.edges, bin_plans=self.plans, estimator=self.estimator,
                            **self.common(source, raw, name))
