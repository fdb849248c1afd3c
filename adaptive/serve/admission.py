"""Admission and load-aware budgets.

LoadGovernor keeps what the server is doing (requests waiting, requests running, the samples planned for
the running ones, the backend runs and the requests finished recently) and turns it into:

* admission: a request that finds `max_queue` requests already waiting is refused (429) with a Retry-After
  of the time the work ahead needs at the current rate;
* signals, each a ratio where 1.0 = at the target:
    latency  the SLO metric of the requests finished in the last `window_s` against its target (p90 TTFT
             / ttft_s; p90 over requests of their TBT p99 / tbt_s; for fluidity, the mean share of missed
             deadlines / (1 - target));
    backlog  (ttft and fluidity) the samples running, waiting (at the recent mean per request) and being
             planned (at full budget), divided by the compute rate — set, or measured: the larger of the
             samples per busy second in the window and the best single run of the last ten windows (the
             backend's rate grows with its batch, so the recent rate under small budgets would understate
             what larger ones get) — against ttft_s;
* a batch's budgets. For ttft and fluidity the backend can finish `affordable` samples within the TTFT
  target: rate x ttft_s x headroom, divided by the latency ratio when recent requests ran over (the rate
  estimate was too kind), less the samples of requests still waiting. A sample price clears that
  capacity: the lowest price at which the samples kept by the running requests and the batch fit in it.
  Each request of the batch keeps the samples whose expected gain in success probability is at least the
  price on its success curve (`priced_allocate`): the allocate policy's curve where the policy has one,
  else best-of-b, 1 - (1 - p_hat)^b, from the request's difficulty (p_hat 0.5 without an estimator). The
  samples of least marginal gain go first — typically an easy prompt's third and fourth, whose first is
  already likely right — and every request keeps at least one. For tbt (and before any rate is measured) the price follows
  the latency ratio: 0 up to `relaxed`, then geometric from price_min to price_max at 1.0, infinite (one
  sample each) at or above it. Budgets come back as the load falls; a plan's max_samples is only ever
  lowered.

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
PEAK_WINDOWS = 10        # how many windows back the best single run counts for the measured rate


class Overloaded(Exception):
    def __init__(self, waiting: int, retry_after_s: int):
        super().__init__(f"server overloaded: {waiting} requests already waiting; retry after {retry_after_s} s")
        self.waiting, self.retry_after_s = waiting, retry_after_s


@dataclass
class Pressure:
    value: float               # max(latency, backlog)
    latency: float
    backlog: float
    waiting: int
    running: int
    rate: float | None         # samples/s (set or measured); None before any measurement
    affordable: float | None   # samples the backend can finish within the TTFT target; None: not predicted
    price: float = 0.0         # the sample price the batch was planned at

    def to_dict(self) -> dict:
        return {"pressure": round(self.value, 4), "latency": round(self.latency, 4), "backlog": round(self.backlog, 4),
                "price": None if math.isinf(self.price) else round(self.price, 6), "waiting": self.waiting,
                "running": self.running, "rate": None if self.rate is None else round(self.rate, 3),
                "affordable": None if self.affordable is None else round(self.affordable, 2)}

    def text(self) -> str:
        price = "inf (1 sample each)" if math.isinf(self.price) else f"{self.price:.4f}"
        fit = "" if self.affordable is None else f"; {self.affordable:.1f} samples fit the target at {self.rate:.2f}/s"
        return (f"load pressure {self.value:.2f} (latency {self.latency:.2f}, backlog {self.backlog:.2f}; "
                f"{self.waiting} waiting, {self.running} running{fit}) -> sample price {price}")


class LoadGovernor:
    def __init__(self, settings: ServeSettings, clock=time.monotonic):
        self.settings, self.slo, self.clock = settings, settings.slo, clock
        self._lock = threading.Lock()
        self.waiting = 0                 # admitted, not started
        self.running = 0                 # started (decided or executing), not finished
        self.planned_samples = 0         # samples planned for the running requests
        self._demand: dict = {}          # running request -> its success curve up to the samples it asked for
        self._recent: deque = deque()    # (finish time, metric value or None, samples)
        self._busy: deque = deque()      # (start, end, samples) of backend runs
        self._mean_samples = 1.0         # EWMA of samples per finished request (for requests not yet planned)
        self.last: Pressure | None = None
        self.last_price = 0.0            # the price the last batch was planned at

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

    def dropped(self, started: bool, planned: int = 0, key=None) -> None:
        """A request left without an answer (cancelled, timed out or failed); `planned` samples were counted."""
        with self._lock:
            self._demand.pop(key, None)
            if started:
                self.running -= 1
                self.planned_samples -= planned
            else:
                self.waiting -= 1

    def planned(self, samples: int) -> None:
        with self._lock:
            self.planned_samples += samples

    def finished(self, planned: int, metric: float | None, samples: int, key=None) -> None:
        """A running request is done: `metric` is its SLO metric (None when it has none), `samples` spent."""
        now = self.clock()
        with self._lock:
            self._demand.pop(key, None)
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
        while self._busy and self._busy[0][1] < now - PEAK_WINDOWS * w:
            self._busy.popleft()

    def _rate_locked(self) -> float | None:
        if self.slo.compute_rate:
            return float(self.slo.compute_rate)
        if not self._busy:
            return None
        now = self.clock()
        recent = sorted((s, e, n) for s, e, n in self._busy if e >= now - self.slo.window_s)
        union = None
        if recent:
            busy, cur_s, cur_e = 0.0, recent[0][0], recent[0][1]
            for s, e, _ in recent[1:]:  # length of the union of the runs' intervals (workers overlap)
                if s > cur_e:
                    busy += cur_e - cur_s
                    cur_s, cur_e = s, e
                else:
                    cur_e = max(cur_e, e)
            busy += cur_e - cur_s
            samples = sum(n for _, _, n in recent)
            union = samples / busy if busy > 0 and samples > 0 else None
        peak = max((n / (e - s) for s, e, n in self._busy if e > s and n > 0), default=None)
        rates = [r for r in (union, peak) if r is not None]
        return max(rates) if rates else None

    def _ahead_locked(self) -> float:
        return self.planned_samples + self.waiting * self._mean_samples

    def _backlog_s_locked(self, incoming: int = 0) -> float | None:
        rate = self._rate_locked()
        if rate is None:
            return None
        return (self._ahead_locked() + incoming) / rate

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

    def price_at(self, latency: float) -> float:
        """The price the latency ratio alone sets (tbt, or before any rate is measured)."""
        s = self.slo
        if s.metric == "off" or latency <= s.relaxed:
            return 0.0
        if latency >= 1.0:
            return math.inf
        x = (latency - s.relaxed) / (1.0 - s.relaxed)
        return s.price_min * (s.price_max / s.price_min) ** x

    def pressure(self, incoming: int = 0) -> Pressure:
        """The load now; `incoming` = samples the requests being planned right now would take at full budget
        (they are not counted as planned yet)."""
        with self._lock:
            self._trim(self.clock())
            off = self.slo.metric == "off"
            latency = 0.0 if off else self._latency_ratio_locked()
            rate = self._rate_locked()
            backlog, affordable = 0.0, None
            if self.slo.metric in ("ttft", "fluidity") and rate is not None:
                backlog = (self._ahead_locked() + incoming) / rate / self.slo.ttft_s
                affordable = (rate * self.slo.ttft_s * self.slo.headroom / max(1.0, latency)
                              - self.waiting * self._mean_samples)
            p = Pressure(max(latency, backlog), latency, backlog, self.waiting, self.running, rate, affordable,
                         0.0 if off or affordable is not None else self.price_at(latency))
            self.last = p
            return p

    # -- budgets -----------------------------------------------------------------------------------
    def limit(self, plans: list[Plan], difficulties: list[Difficulty | None], curve: Curve | None,
              pressure: Pressure, keys: list | None = None) -> tuple[list[Plan], list[str]]:
        """The plans a batch runs under `pressure` (from pressure(incoming=their samples)), and why, one
        line each. The price clears the market of the running requests and this batch: it is the lowest
        at which all their kept samples fit in pressure.affordable (the running requests' plans are fixed,
        but counting what they asked for keeps one price for everyone, so a lone request arriving among
        busy ones gets a fair share, not the leftovers). `keys` name the batch's requests, which count as
        running demand until finished() or dropped() with the same key. Sets pressure.price."""
        if self.slo.metric == "off":
            return list(plans), ["SLO off: full budget"] * len(plans)
        idx = [i for i, p in enumerate(plans) if p.strategy in SAMPLING]
        diffs = [difficulties[i] or NEUTRAL for i in idx]
        values = [(curve or BEST_OF_B).values(d, plans[i].max_samples) for i, d in zip(idx, diffs)]
        price = pressure.price
        with self._lock:
            if pressure.affordable is not None:
                price = _fit_price(list(self._demand.values()) + values, pressure.affordable)
            for i, v in zip(idx, values):
                if keys is not None:
                    self._demand[keys[i]] = v
        pressure.price = self.last_price = price
        out, why = list(plans), [""] * len(plans)
        for i, d, v in zip(idx, diffs, values):
            cap = plans[i].max_samples
            if math.isinf(price):
                b, gain = 1, None
            else:
                b, gain = priced_allocate(v, price, minimum=1)
            if b < cap:
                out[i] = plans[i].replace(max_samples=b)
                reason = "one sample each" if gain is None else f"the next sample would add {gain:.4f}"
                why[i] = f"samples {cap} -> {b} (p_hat {d.p_hat:.2f}: {reason})"
            else:
                why[i] = f"keeps {cap} sample{'s' * (cap > 1)} (p_hat {d.p_hat:.2f})"
        head = pressure.text()
        return out, [f"{head}; " + (w or f"{plans[i].strategy} is not a sampling plan: not limited by load")
                     for i, w in enumerate(why)]


def _fit_price(values: list[list[float]], affordable: float) -> float:
    """The lowest price at which the samples the requests keep (priced_allocate) fit in `affordable`;
    0 when their full budgets fit, inf when not even one sample each does (at any price each keeps one)."""
    def total(price: float) -> int:
        return sum(priced_allocate(v, price, minimum=1)[0] for v in values)

    if not values or total(0.0) <= affordable:
        return 0.0
    if total(1.0) > affordable:  # a sample adds at most 1: at price 1 every request keeps one
        return math.inf
    lo, hi = 1e-9, 1.0
    for _ in range(50):  # the total falls as the price rises: bisect on a log scale
        mid = math.sqrt(lo * hi)
        if total(mid) <= affordable:
            hi = mid
        else:
            lo = mid
    return hi
