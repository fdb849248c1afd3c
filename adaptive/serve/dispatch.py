"""Dispatcher: the worker threads that own the backend and run requests through the Controller.

Requests wait in one queue. A worker takes every waiting request (up to `max_batch`) and runs them as one
batch: `Controller.decide` per (policy, budget) group — one estimator call, the policy, then the limit:
the request's overrides, the server's hard caps and the load governor's cap — then one
`Controller.execute` over every plan that is not streamed live (sampling plans of all requests share
each wave's backend call), then `Controller.stream` for each single-sample streamed request, one at a
time, its tokens sent as they are generated.

A backend that is not thread-safe (the local HF model) gets one worker, so every backend call comes from
one thread at a time; a server backend (openai) gets `workers` of them, which run batches concurrently.
Workers are joined by `close()`; a request still waiting then gets a 503.

What a job reports goes through its `post` callable (thread-safe, set by the app): ("delta", text),
("done", Result, load dict) or ("error", exception) — the last message of every job is done or error.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from ..errors import InputError
from ..plan import SAMPLING, Plan
from ..policies import PlanBatch
from .admission import LoadGovernor
from .schemas import ApiError, ServeRequest

log = logging.getLogger("adaptive.serve")


@dataclass
class Job:
    req: ServeRequest
    query: object                      # controller Query (its ledger's clock started at arrival)
    policy: object                     # the Policy that plans it
    post: Callable[[tuple], None]      # thread-safe sink for ("delta", text) / ("done", result, load) / ("error", e)
    deadline: float                    # time.monotonic() by which the caller stops waiting
    cancelled: threading.Event = field(default_factory=threading.Event)
    started: bool = False
    planned: int = 0                   # samples planned (counted in the governor while running)
    load: dict | None = None           # the governor's view when it was planned

    def cancel(self) -> None:
        self.cancelled.set()


def cap_plan(plan: Plan, max_samples: int, max_tokens: int) -> Plan:
    """The server's hard caps on any plan: samples, tokens per sample, and tokens in all (what that many
    samples of that many tokens could spend; search and refine plans are held to it too)."""
    changes: dict = {}
    if plan.max_samples > max_samples:
        changes["max_samples"] = max_samples
    if plan.max_new_tokens > max_tokens:
        changes["max_new_tokens"] = max_tokens
    total = max_samples * max_tokens
    if plan.strategy not in SAMPLING and (plan.max_total_tokens is None or plan.max_total_tokens > total):
        changes["max_total_tokens"] = total
    return plan.replace(**changes) if changes else plan


def success_curve(policy):
    """The success curve the policy allocates by (allocate policies, or an index policy's allocate members)."""
    curve = getattr(policy, "curve", None)
    if curve is None and getattr(policy, "kind", "") == "index":
        curves = [getattr(m, "curve", None) for m in policy.members.values()]
        curve = next((c for c in curves if c is not None), None)
    return curve


class Dispatcher:
    def __init__(self, controller, governor: LoadGovernor, *, workers: int, max_batch: int, max_samples: int,
                 max_tokens: int, on_finished: Callable | None = None):
        self.controller, self.governor = controller, governor
        self.max_batch, self.max_samples, self.max_tokens = max_batch, max_samples, max_tokens
        self.on_finished = on_finished    # (job, result) after each answered request (metrics)
        self._queue: deque[Job] = deque()
        self._cv = threading.Condition()
        self._closing = False
        self._threads = [threading.Thread(target=self._work, name=f"adaptive-serve-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    # -- the app's side ----------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue an admitted job (the governor has counted it as waiting)."""
        with self._cv:
            if self._closing:
                raise ApiError(503, "the server is shutting down", code="shutting_down")
            self._queue.append(job)
            self._cv.notify()

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop taking work, answer what still waits with 503, and join the workers (each finishes its batch)."""
        with self._cv:
            self._closing = True
            left = list(self._queue)
            self._queue.clear()
            self._cv.notify_all()
        for job in left:
            self.governor.dropped(started=False)
            job.post(("error", ApiError(503, "the server is shutting down", code="shutting_down")))
        for t in self._threads:
            t.join(timeout_s)
            if t.is_alive():  # pragma: no cover - a backend call that ignores every bound
                log.error("worker %s still running after %g s", t.name, timeout_s)

    @property
    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads) and not self._closing

    # -- workers -----------------------------------------------------------------------------------
    def _take(self) -> list[Job] | None:
        with self._cv:
            while not self._queue and not self._closing:
                self._cv.wait()
            if self._closing:
                return None
            jobs = []
            while self._queue and len(jobs) < self.max_batch:
                job = self._queue.popleft()
                if job.cancelled.is_set() or time.monotonic() > job.deadline:
                    self.governor.dropped(started=False)  # the caller has gone or been answered: spend nothing
                    continue
                job.started = True
                self.governor.start()
                jobs.append(job)
            return jobs

    def _work(self) -> None:
        while (jobs := self._take()) is not None:
            groups: dict[tuple, list[Job]] = {}
            for job in jobs:
                groups.setdefault((id(job.policy), job.req.budget), []).append(job)
            for group in groups.values():
                try:
                    self._run_group(group)
                except BaseException as e:  # pragma: no cover - _run_group answers every job itself
                    log.exception("worker failed")
                    for job in group:
                        self._fail(job, e)

    def _run_group(self, jobs: list[Job]) -> None:
        ctl = self.controller
        policy, budget = jobs[0].policy, jobs[0].req.budget
        queries = [j.query for j in jobs]
        try:
            planned = ctl.decide(queries, budget=budget, policy=policy, limit=self._limit(jobs))
        except Exception as e:
            return self._retry_alone(jobs, e)
        for job, plan, why in zip(jobs, planned.plans, planned.reasons):
            job.planned = plan.max_samples if plan.strategy in SAMPLING else 1
            self.governor.planned(job.planned)
            log.info("request %s: policy %s: %s -> %s", job.req.id, policy.name, why, plan.summary())
        decisions = [ctl.decision(policy, why, plan) for plan, why in zip(planned.plans, planned.reasons)]
        live = [i for i, j in enumerate(jobs) if j.req.stream and ctl.streams_live(planned.plans[i])]
        rest = [i for i in range(len(jobs)) if i not in live]
        if rest:
            t0 = self.governor.clock()
            try:
                results = ctl.execute([queries[i] for i in rest], [planned.plans[i] for i in rest])
            except Exception as e:
                self.governor.busy(t0, self.governor.clock(), 0)
                if len(rest) > 1 and isinstance(e, InputError):  # find the request it belongs to
                    for i in rest:
                        self._execute_one(jobs[i], planned.plans[i], decisions[i])
                else:
                    for i in rest:
                        self._fail(jobs[i], e)
            else:
                self.governor.busy(t0, self.governor.clock(), sum(r.compute.samples for r in results))
                for i, r in zip(rest, results):
                    r.decision = decisions[i]
                    if jobs[i].req.stream:
                        jobs[i].post(("delta", r.text))
                    self._done(jobs[i], r)
        for i in live:
            self._stream_one(jobs[i], planned.plans[i], decisions[i])

    def _retry_alone(self, jobs: list[Job], e: Exception) -> None:
        """A batch failed while deciding: alone, each request gets its own answer or error."""
        if len(jobs) == 1 or not isinstance(e, InputError):
            for job in jobs:
                self._fail(job, e)
            return
        for job in jobs:
            self._run_group([job])

    def _execute_one(self, job: Job, plan: Plan, decision: dict) -> None:
        t0 = self.governor.clock()
        try:
            r = self.controller.execute([job.query], [plan])[0]
        except Exception as e:
            self.governor.busy(t0, self.governor.clock(), 0)
            return self._fail(job, e)
        self.governor.busy(t0, self.governor.clock(), r.compute.samples)
        r.decision = decision
        if job.req.stream:
            job.post(("delta", r.text))
        self._done(job, r)

    def _stream_one(self, job: Job, plan: Plan, decision: dict) -> None:
        t0 = self.governor.clock()
        events = self.controller.stream(job.query, plan)
        result = None
        try:
            for ev in events:
                if job.cancelled.is_set():
                    break  # closing the generator stops the backend call at its next token
                if ev.result is not None:
                    result = ev.result
                elif ev.text:
                    job.post(("delta", ev.text))
        except Exception as e:
            self.governor.busy(t0, self.governor.clock(), 0)
            return self._fail(job, e)
        finally:
            events.close()
        if result is None:  # cancelled: the caller is gone
            self.governor.busy(t0, self.governor.clock(), 1)
            self.governor.dropped(started=True, planned=job.planned, key=job.req.id)
            job.post(("error", ApiError(499, "the client closed the stream", code="client_closed")))
            return
        self.governor.busy(t0, self.governor.clock(), result.compute.samples)
        result.decision = decision
        self._done(job, result)

    def _limit(self, jobs: list[Job]):
        """The plan limit for a batch: each request's overrides, the hard caps, then the load governor."""
        gov = self.governor

        def limit(queries, planned: PlanBatch, policy) -> PlanBatch:
            curve = success_curve(policy)
            asked_plans = [plan.override(**job.req.overrides) if job.req.overrides else plan
                           for job, plan in zip(jobs, planned.plans)]
            capped_all = [cap_plan(p, self.max_samples, self.max_tokens) for p in asked_plans]
            pressure = gov.pressure(incoming=sum(p.max_samples if p.strategy in SAMPLING else 1 for p in capped_all))
            plans, load_whys = gov.limit(capped_all, [q.difficulty for q in queries], curve, pressure,
                                         keys=[job.req.id for job in jobs])
            reasons = []
            for job, asked, capped, final, why, load_why in zip(jobs, asked_plans, capped_all, plans,
                                                                planned.reasons or [None] * len(jobs), load_whys):
                parts = [why]
                if job.req.overrides:
                    parts.append("request sets " + ", ".join(f"{k}={v!r}" for k, v in sorted(job.req.overrides.items())))
                if capped.max_samples < asked.max_samples:
                    parts.append(f"server cap {self.max_samples} samples")
                parts.append(load_why)
                job.load = {**pressure.to_dict(), "samples_asked": capped.max_samples,
                            "samples_cap": final.max_samples}
                reasons.append("; ".join(p for p in parts if p))
            return PlanBatch(plans, planned.report, reasons)

        return limit

    # -- answers -----------------------------------------------------------------------------------
    def _done(self, job: Job, result) -> None:
        self.governor.finished(job.planned, self.governor.metric_of(result.compute), result.compute.samples,
                               key=job.req.id)
        if self.on_finished is not None:
            try:
                self.on_finished(job, result)
            except Exception:  # pragma: no cover - metrics must never fail a request
                log.exception("metrics failed")
        job.post(("done", result, job.load))

    def _fail(self, job: Job, e: BaseException) -> None:
        self.governor.dropped(started=True, planned=job.planned, key=job.req.id)
        job.post(("error", e))
