"""Prometheus metrics for /metrics (text exposition format), in a registry of the app's own.

Counters: requests by endpoint and HTTP status, samples, prompt and generated tokens (what `usage` reports:
everything spent). Histograms per answered request: end-to-end latency, TTFT, TBT p99, fluidity-index,
samples. Gauges, read at scrape time from the load governor: requests waiting and running, load pressure
and the last batch's sample price (-1 when infinite: one sample each).
"""
from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
TBT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)
FLUIDITY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
SAMPLE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServeMetrics:
    def __init__(self, governor):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("adaptive_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=r)
        self.samples = Counter("adaptive_samples", "samples drawn for answered requests", registry=r)
        self.prompt_tokens = Counter("adaptive_prompt_tokens", "prompt tokens spent (once per backend call)",
                                     registry=r)
        self.generated_tokens = Counter("adaptive_generated_tokens", "tokens generated over all samples", registry=r)
        self.latency = Histogram("adaptive_request_latency_seconds", "arrival to answer decided",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("adaptive_ttft_seconds", "time to first delivered token", buckets=LATENCY_BUCKETS,
                              registry=r)
        self.tbt = Histogram("adaptive_tbt_p99_seconds", "per request: p99 time between delivered tokens",
                             buckets=TBT_BUCKETS, registry=r)
        self.fluidity = Histogram("adaptive_fluidity_index", "per request: Etalon fluidity-index",
                                  buckets=FLUIDITY_BUCKETS, registry=r)
        self.samples_per_request = Histogram("adaptive_samples_per_request", "samples drawn per answered request",
                                             buckets=SAMPLE_BUCKETS, registry=r)
        Gauge("adaptive_requests_waiting", "admitted requests not started", registry=r).set_function(
            lambda: governor.waiting)
        Gauge("adaptive_requests_running", "requests being planned or executed", registry=r).set_function(
            lambda: governor.running)
        Gauge("adaptive_load_pressure", "load against the SLO (1 = at the target)", registry=r).set_function(
            lambda: governor.pressure().value)
        Gauge("adaptive_sample_price", "the last batch's sample price: expected success a sample had to add "
              "(-1: infinite, one sample each)", registry=r).set_function(
            lambda: _finite(governor.last_price))

    def request(self, endpoint: str, status: int) -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()

    def answered(self, result) -> None:
        c = result.compute
        self.samples.inc(c.samples)
        self.prompt_tokens.inc(c.prompt_tokens)
        self.generated_tokens.inc(c.generated_tokens)
        self.samples_per_request.observe(c.samples)
        self.latency.observe(c.wall_s)
        if c.ttft_s is not None:
            self.ttft.observe(c.ttft_s)
        if c.tbt_p99_s is not None:
            self.tbt.observe(c.tbt_p99_s)
        if c.fluidity is not None:
            self.fluidity.observe(c.fluidity)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _finite(x: float) -> float:
    return -1.0 if math.isinf(x) else x
