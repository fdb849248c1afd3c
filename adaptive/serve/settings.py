"""Server settings, checked once at start: a bad value is an InputError naming the setting (one line).

SLOSettings say what latency the server holds and how: `metric` is the one the load governor watches
(off: budgets never shrink with load; the queue limit still applies), `ttft_s` / `tbt_s` are the Etalon
deadlines every request's fluidity-index is computed against (and the targets of the ttft / tbt metrics),
`fluidity` the lowest acceptable mean fluidity-index for the fluidity metric. `compute_rate` is the samples
per second the backend sustains, used to predict how long admitted work will take (None: measured from
the requests served); the predicted work may fill `headroom` of the TTFT target. For the tbt metric (and
before a rate is known) the sample price follows the latency ratio: 0 up to `relaxed`, then geometric from
`price_min` to `price_max` at 1.0 (the target), and above it every request gets one sample. See admission.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..compute import LatencyTargets
from ..errors import InputError

SLO_METRICS = ("off", "ttft", "tbt", "fluidity")


def _positive(name: str, v, integer: bool = False, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or not math.isfinite(v) or v <= 0:
        raise InputError(f"{name}={v!r}: must be a{'n integer' if integer else ' number'} > 0")


@dataclass(frozen=True)
class SLOSettings:
    metric: str = "off"
    ttft_s: float = 2.0
    tbt_s: float = 0.25
    fluidity: float = 0.9
    compute_rate: float | None = None   # samples/s the backend sustains; None = measured
    window_s: float = 20.0              # recent completions that make the latency signal
    headroom: float = 0.8               # share of the TTFT target the predicted work may fill
    relaxed: float = 0.5                # latency ratio at or below which the latency price is 0
    price_min: float = 0.002            # sample price (expected success per sample) just above `relaxed`
    price_max: float = 0.25             # ... at the target

    def __post_init__(self):
        if self.metric not in SLO_METRICS:
            raise InputError(f"slo metric {self.metric!r}: one of {', '.join(SLO_METRICS)}")
        for name in ("ttft_s", "tbt_s", "window_s", "price_min", "price_max"):
            _positive(f"slo.{name}", getattr(self, name))
        _positive("slo.compute_rate", self.compute_rate, allow_none=True)
        if not (isinstance(self.fluidity, (int, float)) and 0 < self.fluidity < 1):
            raise InputError(f"slo.fluidity={self.fluidity!r}: a fluidity-index target in (0, 1)")
        if not (isinstance(self.headroom, (int, float)) and 0 < self.headroom <= 1):
            raise InputError(f"slo.headroom={self.headroom!r}: a share of the target in (0, 1]")
        if not (isinstance(self.relaxed, (int, float)) and 0 <= self.relaxed < 1):
            raise InputError(f"slo.relaxed={self.relaxed!r}: a pressure in [0, 1)")
        if self.price_min >= self.price_max:
            raise InputError(f"slo.price_min={self.price_min!r} must be below slo.price_max={self.price_max!r}")

    @property
    def targets(self) -> LatencyTargets:
        return LatencyTargets(ttft_s=self.ttft_s, tbt_s=self.tbt_s)

    def describe(self) -> str:
        if self.metric == "off":
            return "SLO off: every request gets its plan's budget"
        goal = {"ttft": f"TTFT p90 <= {self.ttft_s:g} s", "tbt": f"TBT p99 (p90 over requests) <= {self.tbt_s:g} s",
                "fluidity": f"mean fluidity-index >= {self.fluidity:g} (deadlines {self.ttft_s:g} s / {self.tbt_s:g} s)"}
        rate = f"{self.compute_rate:g} samples/s" if self.compute_rate else "measured"
        return f"SLO {goal[self.metric]}; compute rate {rate}; window {self.window_s:g} s"


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    model_name: str = "adaptive"        # the name /v1/models lists and requests must use
    default_policy: str = "default"     # a key of the policies the app is given
    api_key_env: str | None = "ADAPTIVE_API_KEY"  # bearer key read from this variable at start (unset: no auth)
    max_body_bytes: int = 1_000_000
    max_prompt_tokens: int = 4096
    max_budget: int = 16                # hard cap on one request's samples (n, adaptive.budget, plans)
    max_tokens: int = 1024              # hard cap on max_tokens per sample
    request_timeout_s: float = 120.0    # a request gets an answer or an error within this
    max_queue: int = 64                 # requests waiting to start beyond which a new one gets 429
    max_batch: int = 16                 # requests one Controller run takes together
    workers: int = 1                    # threads running batches; 1 for a backend that is not thread-safe
    slo: SLOSettings = field(default_factory=SLOSettings)

    def __post_init__(self):
        if not isinstance(self.host, str) or not self.host:
            raise InputError(f"host={self.host!r}: a host name or address")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise InputError(f"port={self.port!r}: an integer in [0, 65535] (0: any free port)")
        if not isinstance(self.model_name, str) or not self.model_name:
            raise InputError(f"model_name={self.model_name!r}: a non-empty name")
        for name in ("max_body_bytes", "max_prompt_tokens", "max_budget", "max_tokens", "max_queue", "max_batch",
                     "workers"):
            _positive(name, getattr(self, name), integer=True)
        _positive("request_timeout_s", self.request_timeout_s)
        if not isinstance(self.slo, SLOSettings):
            raise InputError("slo: an SLOSettings")
