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
from typing import Sequence

from ..errors import ConfigError
from .base import PlanBatch, Policy, check_budget_ceiling
from .schema import COMMON_KEYS, apply_stopping, check_keys, is_int, is_num, need, parse_plan

KEYS = COMMON_KEYS | {"estimator", "bins", "base_plan"}


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


def parse_binned(raw: dict, path: str, common: dict) -> BinnedPolicy:
    check_keys(raw, KEYS, path)
    est = raw.get("estimator")
    need(est is None or isinstance(est, str), path, "estimator", "a path to an estimator file, or null")
    base = raw.get("base_plan", {}) or {}
    need(isinstance(base, dict), path, "base_plan", "must be a mapping of Plan fields")
    parse_plan(base, path, "base_plan")
    bins = raw.get("bins")
    need(isinstance(bins, list) and bins, path, "bins", "required, a non-empty list of {max_p|bin, plan}")
    mode = None
    edges, plans = [], []
    for i, entry in enumerate(bins):
        where = f"bins[{i}]"
        need(isinstance(entry, dict), path, where, "each bin must be a mapping with max_p (or bin) and plan")
        check_keys(entry, {"max_p", "bin", "plan"}, path, f"{where}.")
        need(("max_p" in entry) != ("bin" in entry), path, where, "give exactly one of 'max_p' or 'bin'")
        this = "max_p" if "max_p" in entry else "bin"
        need(mode in (None, this), path, f"{where}.{this}", "all bins must use the same key (max_p or bin)")
        mode = this
        v = entry[this]
        if this == "max_p":
            need(is_num(v) and 0 < v <= 1, path, f"{where}.max_p", f"{v!r}: a number in (0, 1]")
            need(not edges or v > edges[-1], path, f"{where}.max_p",
                 f"{v!r}: bins must be sorted by max_p, strictly increasing (previous {edges[-1] if edges else None})")
        else:
            need(is_int(v) and v >= 0, path, f"{where}.bin", f"{v!r}: an integer >= 0")
            need(v == len(edges), path, f"{where}.bin",
                 f"{v!r}: bins must be sorted and contiguous from 0 (expected {len(edges)})")
        need("plan" in entry, path, f"{where}.plan", "required, a mapping of Plan fields")
        edges.append(v)
        plans.append(apply_stopping(parse_plan(entry["plan"], path, f"{where}.plan", base), common["stopping"]))
    if mode == "max_p":
        need(edges[-1] == 1.0, path, f"bins[{len(edges) - 1}].max_p",
             f"{edges[-1]!r}: the last bin must have max_p: 1.0 so every p_hat has a plan")
    return BinnedPolicy(by=mode, edges=edges, bin_plans=plans, estimator=est, **common)
