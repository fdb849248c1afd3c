"""Result: what a request returned — the answer, every sample behind it, and what it cost."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .compute import ComputeRecord
from .plan import Plan


@dataclass
class SampleRecord:
    text: str
    answer: str | None
    tokens: int
    finish_reason: str
    mean_logprob: float | None = None
    confidence: float | None = None   # DeepConf lowest group confidence, when top-k logprobs were drawn
    score: float | None = None        # verifier score or confidence weight, when one was computed
    kept: bool = True                 # False when a filter (e.g. DeepConf) dropped it from the vote


@dataclass
class Difficulty:
    """An estimator's view of a prompt: p_hat = predicted success probability of one sample."""

    p_hat: float
    bin: int
    estimator: str = ""


@dataclass
class Result:
    text: str
    answer: str | None
    samples: list[SampleRecord]
    plan: Plan
    stop_reason: str
    compute: ComputeRecord
    difficulty: Difficulty | None = None
    votes: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # why this prompt got this plan: {"policy", "reason", "plan"} (the controller fills it)
    decision: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["plan"] = self.plan.to_dict()
        return d
