"""Admission and load-aware budgets.

LoadGovernor keeps what the server is doing (requests waiting, requests running, the samples planned for
the ones running, the requests finished in the last `window_s`) and turns it into three things:

* admission: a request that finds `max_queue` requests already waiting is refused (429) with a Retry-After
  of the time the backlog needs at the current rate;
* pressure: how close the server is to its SLO, 1.0 = at the target. The larger of
    latency  the SLO metric of recent requests against its target (p90 TTFT / ttft_s; p90 over requests of
             their TBT p99 / tbt_s; for fluidity, the mean share of missed deadlines / (1 - target)), and
    backlog  (for ttft and fluidity) the predicted wait of a new request, the samples admitted and not yet
             finished divided by the compute rate (set, or measured: samples finished per second the
             backend was busy), against ttft_s;
* a sample price: 0 up to `relaxed` pressure, then rising geometrically from price_min to price_max at
  pressure 1.0, infinite beyond. A request keeps the samples whose expected gain in success probability
  is at least the price on its success curve (`priced_allocate`): the allocate policy's curve where the
  policy has one, else best-of-b, 1 - (1 - p_hat)^b, from the request's difficulty estimate (p_hat 0.5
  without one). Raising the price removes the samples of least marginal gain first — typically the
  3rd, 4th... sample of an easy prompt, whose first sample is already likely right — and budgets recover
  as the pressure falls. Budgets only ever shrink: the plan's max_samples is a ceiling.

All methods are thread-safe (the event loop admits, worker threads plan and report).
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from ..metrics.stats import percentile
from ..plan import SAMPLING, Plan
from ..policies.allocator import priced_allocate
from ..policies.curves import Curve
from ..result import Difficulty
from .settings import ServeSettings

NEUTRAL = Difficulty(p_hat=0.5, bin=0, estimator="none")
BEST_OF_B = Curve("best_of_b")
MIN_LATENCY_SAMPLES = 3  # completions in the window before the latency signal counts


class Overloaded(Exception):
    def __init__(self, waiting: int, retry_after_s: int):
        super().__init__(f"server overloaded: {waiting} requests already waiting; retry after {retry_after_s} s")
        self.waiting, self.retry_after_s = waiting, retry_after_s


@dataclass
class Pressure:
    value: float
    latency: float
    backlog: float
    price: float
    waiting: int
    running: int
    rate: float | None       # samples/s used for the backlog (set or measured); None before any measurement

    def to_dict(self) -> dict:
        return {"pressure": round(self.value, 4), "latency": round(self.latency, 4), "backlog": round(self.backlog, 4),
                "price": None if math.isinf(self.price) else round(self.price, 6), "waiting": self.waiting,
                "running": self.running, "rate": None if self.rate is None else round(self.rate, 3)}

    def text(self) -> str:
        price = "inf (1 sample each)" if math.isinf(self.price) else f"{self.price:.4f}"
        return (f"load pressure {self.value:.2f} (latency {self.latency:.2f}, backlog {self.backlog:.2f}; "
                f"{self.waiting} waiting, {self.running} running) -> sample price {price}")


class LoadGovernor:
    def __init__(self, settings: ServeSettings, clock=time.monotonic):
        self.settings, self.slo, self.clock = settings, settings.slo, clock
        self._lock = threading.Lock()
        self.waiting = 0                 # admitted, not started
        self.running = 0                 # started (decided or executing), not finished
        self.planned_samples = 0         # samples planned for the running requests
        self._recent: deque = deque()    # (finish time, metric value or None, samples)
        self._busy: deque = deque()      # (start, end, samples) of backend runs
        self._mean_samples = 1.0         # EWMA of samples per finished request (for requests not yet planned)
        self.last: Pressure | None = None

    # -- admission ---------------------------------------------------------------------------------
    def admit(self) -> None:
        """Count a new request as waiting, or raise Overloaded (-> 429) when the queue is full."""
        with self._lock:
            if self.waiting >= self.settings.max_queue:
                wait = self._backlog_s_locked()
                retry = max(1, math.ceil(wait)) if wait is not None else 1
                raise Overloaded(self.waiting, min(retry, 60))
            self.waiting += 1

    def start(self) -> None:
        with self._lock:
            self.waiting -= 1
            self.running += 1

    def dropped(self, started: bool, planned: int = 0) -> None:
        """A request left without an answer (cancelled, timed out or failed); `planned` samples were counted."""
        with self._lock:
            if started:
                self.running -= 1
                self.planned_samples -= planned
            else:
                self.waiting -= 1

    def planned(self, samples: int) -> None:
        with self._lock:
            self.planned_samples += samples

    def finished(self, planned: int, metric: float | None, samples: int) -> None:
        """A running request is done: `metric` is its SLO metric (None when it has none), `samples` spent."""
        now = self.clock()
        with self._lock:
            self.running -= 1
            self.planned_samples -= planned
            self._recent.append((now, metric, samples))
            self._mean_samples = 0.8 * self._mean_samples + 0.2 * max(samples, 1)
            self._trim(now)

    def busy(self, start: float, end: float, samples: int) -> None:
        """A backend run (one batch) from `start` to `end` (this governor's clock) spent `samples`."""
        with self._lock:
            self._busy.append((start, end, samples))
            self._trim(self.clock())

    # -- signals -----------------------------------------------------------------------------------
    def metric_of(self, compute) -> float | None:
        """The SLO metric of one finished request's ComputeRecord."""
        m = self.slo.metric
        if m == "ttft":
            return compute.ttft_s
        if m == "tbt":
            return compute.tbt_p99_s
        if m == "fluidity":
            return compute.fluidity
        return None

    def _trim(self, now: float) -> None:
        w = self.slo.window_s
        while self._recent and self._recent[0][0] < now - w:
            self._recent.popleft()
        while self._busy and self._busy[0][1] < now - w:
            self._busy.popleft()

    def _rate_locked(self) -> float | None:
        if self.slo.compute_rate:
            return float(self.slo.compute_rate)
        if not self._busy:
            return None
        spans = sorted((s, e) for s, e, _ in self._busy)
        busy, cur_s, cur_e = 0.0, spans[0][0], spans[0][1]
        for s, e in spans[1:]:  # length of the union of the runs' intervals (workers overlap)
            if s > cur_e:
                busy += cur_e - cur_s
                cur_s, cur_e = s, e
            else:
                cur_e = max(cur_e, e)
        busy += cur_e - cur_s
        samples = sum(n for _, _, n in self._busy)
        return samples / busy if busy > 0 and samples > 0 else None

    def _backlog_s_locked(self) -> float | None:
        rate = self._rate_locked()
        if rate is None:
            return None
        return (self.planned_samples + self.waiting * self._mean_samples) / rate

    def _latency_ratio_locked(self) -> float:
        vals = [v for _, v, _ in self._recent if v is not None]
        if len(vals) < MIN_LATENCY_SAMPLES:
            return 0.0
        m, s = self.slo.metric, self.slo
        if m == "ttft":
            return percentile(vals, 90) / s.ttft_s
        if m == "tbt":
            return percentile(vals, 90) / s.tbt_s
        if m == "fluidity":
            return (1.0 - sum(vals) / len(vals)) / (1.0 - s.fluidity)
        return 0.0

    def price_at(self, pressure: float) -> float:
        s = self.slo
        if s.metric == "off" or pressure <= s.relaxed:
            return 0.0
        if pressure >= 1.0:
            return math.inf
        x = (pressure - s.relaxed) / (1.0 - s.relaxed)
        return s.price_min * (s.price_max / s.price_min) ** x

    def pressure(self) -> Pressure:
        with self._lock:
            self._trim(self.clock())
            latency = self._latency_ratio_locked() if self.slo.metric != "off" else 0.0
            backlog = 0.0
            if self.slo.metric in ("ttft", "fluidity"):
                wait = self._backlog_s_locked()
                backlog = 0.0 if wait is None else wait / self.slo.ttft_s
            value = max(latency, backlog)
            p = Pressure(value, latency, backlog, self.price_at(value), self.waiting, self.running,
                         self._rate_locked())
            self.last = p
            return p

    # -- budgets -----------------------------------------------------------------------------------
    def limit(self, plan: Plan, difficulty: Difficulty | None, curve: Curve | None,
              pressure: Pressure) -> tuple[Plan, str]:
        """The plan this request runs under the current pressure, and why (one line)."""
        if self.slo.metric == "off":
            return plan, "SLO off: full budget"
        if plan.strategy not in SAMPLING:
            return plan, f"{pressure.text()}; {plan.strategy} is not a sampling plan: not limited by load"
        cap = plan.max_samples
        if pressure.price == 0.0 or cap == 1:
            return plan, f"{pressure.text()}; keeps {cap} sample{'s' * (cap > 1)}"
        d = difficulty or NEUTRAL
        if math.isinf(pressure.price):
            b, gain = 1, None
        else:
            values = (curve if curve is not None else BEST_OF_B).values(d, cap)
            b, gain = priced_allocate(values, pressure.price, minimum=1)
        if b >= cap:
            return plan, f"{pressure.text()}; keeps {cap} samples (p_hat {d.p_hat:.2f})"
        why = "at or over the target: 1 sample" if gain is None else \
            f"the next sample would add {gain:.4f} expected success per sample"
        return plan.replace(max_samples=b), f"{pressure.text()}; samples {cap} -> {b} (p_hat {d.p_hat:.2f}: {why})"
