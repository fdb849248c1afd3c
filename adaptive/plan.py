"""Plan: the one typed, validated object that tells a strategy how much compute to spend.

Like vLLM's SamplingParams: construct it, and any invalid field raises PlanError naming the field
and the value. Plans are frozen; use `plan.replace(...)` to derive another.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import PlanError

AGGREGATIONS = ("majority", "weighted", "best")


@dataclass(frozen=True)
class Plan:
    strategy: str = "self_consistency"
    max_samples: int = 1          # hard cap on samples drawn (all waves together)
    wave_size: int = 0            # samples per wave; 0 = all at once
    stopping: str = "fixed"       # stopping rule name, applied between waves
    stopping_params: dict = field(default_factory=dict)
    aggregation: str = "majority"  # how samples become one answer
    verifier: str | None = None    # verifier name for weighted/best aggregation and search
    verifier_params: dict = field(default_factory=dict)
    search_width: int = 4         # beam search: candidate steps per beam per depth
    search_beams: int = 2         # beam search: beams kept per depth
    search_depth: int = 8         # beam search: maximum number of steps
    step_delimiter: str = "\n\n"
    refine_steps: int = 0         # self-refinement rounds after the first answer
    max_new_tokens: int = 256     # per sample / per step call
    max_total_tokens: int | None = None  # hard cap on generated tokens for the whole request
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    extractor: str = "auto"       # answer extractor name

    def __post_init__(self):
        self._check_int("max_samples", minimum=1)
        self._check_int("wave_size", minimum=0)
        self._check_int("search_width", minimum=1)
        self._check_int("search_beams", minimum=1)
        self._check_int("search_depth", minimum=1)
        self._check_int("refine_steps", minimum=0)
        self._check_int("max_new_tokens", minimum=1)
        self._check_int("top_k", minimum=0)
        if self.max_total_tokens is not None:
            self._check_int("max_total_tokens", minimum=1)
        if self.seed is not None:
            self._check_int("seed", minimum=0)
        self._check_float("temperature", 0.0, None)
        self._check_float("top_p", 0.0, 1.0, low_open=True)
        if self.aggregation not in AGGREGATIONS:
            raise PlanError("aggregation", self.aggregation, f"must be one of {', '.join(AGGREGATIONS)}")
        if self.aggregation in ("weighted", "best") and not self.verifier:
            raise PlanError("verifier", self.verifier, f"aggregation={self.aggregation!r} needs a verifier")
        if not isinstance(self.step_delimiter, str) or not self.step_delimiter:
            raise PlanError("step_delimiter", self.step_delimiter, "must be a non-empty string")
        for name in ("stopping_params", "verifier_params"):
            if not isinstance(getattr(self, name), dict):
                raise PlanError(name, getattr(self, name), "must be a mapping")
        self._check_names()

    def _check_int(self, name: str, minimum: int):
        v = getattr(self, name)
        if isinstance(v, bool) or not isinstance(v, int):
            raise PlanError(name, v, "must be an integer")
        if v < minimum:
            raise PlanError(name, v, f"must be >= {minimum}")

    def _check_float(self, name: str, lo, hi, low_open: bool = False):
        v = getattr(self, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise PlanError(name, v, "must be a number")
        if v != v:
            raise PlanError(name, v, "must not be NaN")
        if (low_open and v <= lo) or (not low_open and v < lo):
            raise PlanError(name, v, f"must be {'>' if low_open else '>='} {lo}")
        if hi is not None and v > hi:
            raise PlanError(name, v, f"must be <= {hi}")

    def _check_names(self):
        # Imported here: the registries import Plan for type hints.
        from .registries import extractors, load_builtins, stopping_rules, strategies, verifiers

        load_builtins()

        for fname, reg in (("strategy", strategies), ("stopping", stopping_rules), ("extractor", extractors)):
            val = getattr(self, fname)
            if val not in reg and not (fname == "extractor" and val == "auto"):
                raise PlanError(fname, val, f"unknown name; known: {', '.join(reg.names())}")
        from .errors import ConfigError
        from .stopping import make_rule

        try:  # a typo'd stopping parameter is a plan error, caught before anything is spent
            make_rule(self.stopping, self.stopping_params)
        except ConfigError as e:
            raise PlanError("stopping_params", self.stopping_params, str(e)) from None
        if self.verifier is not None and self.verifier not in verifiers:
            raise PlanError("verifier", self.verifier, f"unknown name; known: {', '.join(verifiers.names())}")

    @property
    def effective_wave(self) -> int:
        return self.max_samples if self.wave_size in (0, None) else min(self.wave_size, self.max_samples)

    def replace(self, **changes) -> "Plan":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Plan":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PlanError(unknown[0], d[unknown[0]], f"unknown Plan field; known: {', '.join(sorted(known))}")
        return cls(**d)
