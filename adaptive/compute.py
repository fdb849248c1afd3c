"""ComputeRecord: what one request spent, and the ledger that builds it from backend calls.

Accounting is explicit: a backend returns each call's usage (`Generation.usage`, per request in
`Generation.per_request`); whoever made the call adds it to the ledger of the request it served.
Verifiers and estimators that call a model take the ledger to charge as an argument. Nothing is
charged behind the caller's back, so nothing can be counted twice.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field

from . import timing
from .backends.base import PURPOSES, CallUsage
from .metrics import latency
from .schema import Invalid


@dataclass(frozen=True)
class LatencyTargets:
    """Per-request SLO for the fluidity-index (Etalon): TTFT target D_p and TBT target D_d, seconds
    (`latency_targets:` in eval configs)."""

    ttft_s: float = 1.0
    tbt_s: float = 0.1

    def __post_init__(self):
        for name in ("ttft_s", "tbt_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise Invalid(name, f"must be > 0, got {v!r}")


@dataclass
class ComputeRecord:
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # prompt tokens served from reused KV (not recomputed)
    generated_tokens: int = 0
    # Of generated_tokens, those a thinking plan spent on each purpose (CallUsage.purpose): thinking
    # chunks, the answers after each thought, and trial-answer probes. All 0 for other strategies.
    thinking_tokens: int = 0
    answer_tokens: int = 0
    probe_tokens: int = 0
    samples: int = 0
    model_calls: int = 0
    forward_passes: int = 0
    flops: float = 0.0
    wall_s: float = 0.0
    model_s: float = 0.0          # time inside backend calls
    control_s: float = 0.0        # estimator, policy, voting, stopping: wall time outside the backend
    ttft_s: float | None = None
    tbt_p50_s: float | None = None
    tbt_p99_s: float | None = None
    tbt_max_s: float | None = None
    tpot_s: float | None = None
    normalized_latency_s: float | None = None
    fluidity: float | None = None
    fluidity_missed: int | None = None
    fluidity_deadlines: int | None = None
    delivered_tokens: int = 0
    tokens_counted_locally: bool = False
    # Seconds per part of wall_s plus the unexplained residual (timing.py); None when timing is off.
    time_breakdown: dict[str, float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Ledger:
    """Accumulates backend usage for one request; `close` turns it into a ComputeRecord."""

    arrival: float = field(default_factory=time.perf_counter)
    calls: list[CallUsage] = field(default_factory=list)
    clock_since: dict | None = field(default_factory=lambda: timing.CLOCK.snapshot() if timing.enabled() else None)

    def add(self, usage: CallUsage) -> None:
        if usage.times and timing.CLOCK.absorbing():
            # Made inside a verifier or estimator: its time belongs to that part, not to prefill/decode.
            usage = dataclasses.replace(usage, times={})
        self.calls.append(usage)

    @property
    def generated_tokens(self) -> int:
        return sum(c.generated_tokens for c in self.calls)

    @property
    def samples(self) -> int:
        return sum(c.samples for c in self.calls)

    def close(self, delivery_times: list[float] | None = None,
              targets: LatencyTargets = LatencyTargets(), finished: float | None = None) -> ComputeRecord:
        end = time.perf_counter() if finished is None else finished
        t = CallUsage(model_calls=0)
        for c in self.calls:
            t.add(c)
        rec = ComputeRecord(
            prompt_tokens=t.prompt_tokens, cached_prompt_tokens=t.cached_prompt_tokens,
            generated_tokens=t.generated_tokens, samples=t.samples, model_calls=t.model_calls,
            forward_passes=t.forward_passes, flops=t.flops, wall_s=end - self.arrival, model_s=t.wall_s,
            tokens_counted_locally=t.counted_locally,
        )
        for c in self.calls:  # generated tokens per purpose
            if c.purpose is not None:
                if c.purpose not in PURPOSES:
                    raise ValueError(f"CallUsage.purpose={c.purpose!r}: must be one of {', '.join(PURPOSES)}")
                field_ = f"{c.purpose}_tokens"
                setattr(rec, field_, getattr(rec, field_) + c.generated_tokens)
        rec.control_s = max(rec.wall_s - rec.model_s, 0.0)
        if self.clock_since is not None:
            rec.time_breakdown = timing.breakdown(rec.wall_s, self.clock_since, self.calls)
        if delivery_times:
            fill_latency(rec, self.arrival, delivery_times, targets)
        return rec


def fill_latency(rec: ComputeRecord, arrival: float, times: list[float], targets: LatencyTargets) -> None:
    """Latency metrics of the stream the user receives (the delivered answer's tokens)."""
    rec.delivered_tokens = len(times)
    rec.ttft_s = latency.ttft(arrival, times)
    gaps = latency.tbt(times)
    if gaps:
        pct = latency.tbt_percentiles(times)
        rec.tbt_p50_s, rec.tbt_p99_s, rec.tbt_max_s = pct["p50"], pct["p99"], pct["max"]
    rec.tpot_s = latency.tpot(arrival, times)
    rec.normalized_latency_s = latency.normalized_latency(arrival, times)
    fl = latency.fluidity_index(latency.inter_token_times(arrival, times), targets.ttft_s, targets.tbt_s)
    rec.fluidity, rec.fluidity_missed, rec.fluidity_deadlines = fl.fluidity, fl.missed, fl.total
