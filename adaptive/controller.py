"""The one pipeline: prompt -> Estimator -> Policy -> Plan -> Strategy(Backend, Verifier) -> Result + ComputeRecord.

`AdaptiveGenerator.generate()` and `.stream()`, the eval runner and the server all go through
`Controller`; nothing else turns prompts into Results. One batch, one pass:

    estimate  the policy needs difficulties: one batched estimator call, its cost split over the queries
    plan      policy.plan_batch(prompts, difficulties, budget) -> one Plan per query; then an optional
              limit (the server's per-request overrides and load-aware cap) may change them
    execute   sampling plans batched across queries (one backend call per wave), search and refine one
              by one; every call's usage is added to the ledger of the query it served

Accounting is explicit: backends return usage, and the code that made a call charges it.
"""
from __future__ import annotations

import inspect
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from . import timing
from .backends.base import CallUsage, PromptLike, Request, check_prompt
from .compute import LatencyTargets, Ledger
from .errors import AdaptiveError
from .plan import SAMPLING, THINKING, Plan
from .policies.base import PlanBatch
from .result import Difficulty, Result
from .strategies import run_strategy
from .strategies.base import Query, sampling_params


@dataclass
class StreamEvent:
    text: str            # the newly delivered piece of the answer ("" on the final event)
    time: float          # perf_counter() when it was delivered
    result: Result | None = None  # set on the final event


@dataclass
class Batch:
    """What one controller run returned: a Result per query, in order, and the policy's allocation
    report (allocate policies; else None)."""

    results: list[Result]
    allocation: Any = None


# (queries, the policy's PlanBatch, the policy) -> the PlanBatch that runs
PlanLimit = Callable[[Sequence[Query], PlanBatch, Any], PlanBatch]


class _StreamClosed(Exception):
    """Raised inside the backend's token callback when the consumer stopped reading: ends the call."""


class Controller:
    """Runs a policy's plans on a backend. `policy` is a Policy (see adaptive.policies); `estimator`
    scores prompts for policies that need difficulties."""

    def __init__(self, backend, policy, estimator=None, *, targets: LatencyTargets | None = None,
                 stop: Sequence[str] = (), time_breakdown: bool = False, default_seed: int | None = None):
        self.backend = backend
        self.policy = policy
        self.estimator = estimator
        self.targets = targets or LatencyTargets()
        self.stop = tuple(stop)
        self.time_breakdown = time_breakdown  # fill ComputeRecord.time_breakdown (off: on CUDA it synchronises)
        self.default_seed = default_seed  # seeds plans that leave seed unset (an eval run is reproducible)

    # -- queries ---------------------------------------------------------------------------------
    def query(self, prompt: PromptLike, extract: Callable[[str], str | None],
              extract_as: Callable[[str], Callable[[str], str | None]] | None = None, raw: bool = False) -> Query:
        """A validated Query for `prompt`. `extract` reads answers unless the plan names an extractor;
        `extract_as(name)` builds that one (default: the registry's extractor of that name)."""
        check_prompt(prompt)
        with timing.timing(self.time_breakdown or timing.enabled()):
            ledger = Ledger()  # the request arrives now: its clock starts here
        return Query(prompt=prompt, extract=extract, extract_as=extract_as, raw=raw, ledger=ledger,
                     targets=self.targets, stop=self.stop)

    # -- the pipeline ----------------------------------------------------------------------------
    def run(self, queries: Sequence[Query], *, budget=None, difficulties: Sequence | None = None,
            policy=None, limit: "PlanLimit | None" = None) -> Batch:
        """Decide each query's plan (`decide`), execute the plans, and put each decision on its Result."""
        policy = policy or self.policy
        with timing.timing(self.time_breakdown or timing.enabled()):
            if not queries:
                return Batch([])
            planned = self.decide(queries, budget=budget, difficulties=difficulties, policy=policy, limit=limit)
            results = self.execute(queries, planned.plans)
            for r, why in zip(results, planned.reasons or [None] * len(results)):
                r.decision = self.decision(policy, why, r.plan)
            return Batch(results, planned.report)

    def decide(self, queries: Sequence[Query], *, budget=None, difficulties: Sequence | None = None,
               policy=None, limit: "PlanLimit | None" = None) -> PlanBatch:
        """Estimate (when there is an estimator and no difficulties are given: a policy may need them, and
        every Result reports its prompt's difficulty), then plan: one Plan and reason per query. `policy`
        replaces the controller's own for this call; `limit(queries, planned, policy)` may then change the
        policy's plans (a server applies per-request overrides and its load-aware cap there) and returns
        the PlanBatch that runs, with its reasons."""
        policy = policy or self.policy
        with timing.timing(self.time_breakdown or timing.enabled()):
            diffs = difficulties
            if diffs is None and self.estimator is not None:
                diffs = self.estimate(queries)
            with timing.phase("control"):
                planned = policy.plan_batch([q.prompt for q in queries], diffs, budget)
                if self.default_seed is not None:
                    planned.plans = [p if p.seed is not None else p.replace(seed=self.default_seed)
                                     for p in planned.plans]
            for q, d in zip(queries, diffs or [None] * len(queries)):
                q.difficulty = q.difficulty or _as_difficulty(d)
            if limit is not None:
                with timing.phase("control"):
                    planned = limit(queries, planned, policy)
            return planned

    @staticmethod
    def decision(policy, reason: str | None, plan: Plan) -> dict:
        """What Result.decision holds: the policy's name, why this plan, and the plan in one line."""
        return {"policy": policy.name, "reason": reason, "plan": plan.summary()}

    def estimate(self, queries: Sequence[Query]) -> list[Difficulty]:
        """Score the queries' prompts in one batched estimator call; charge each query its share (its own
        prompt tokens; FLOPs and time in proportion to them). A sample the estimator drew is reused as the
        query's first sample and charged to it exactly."""
        est = self.estimator
        spent = Ledger()
        with timing.phase("estimate"):
            diffs = est.score([q.prompt for q in queries], ledger=spent)
        if spent.calls:
            total = CallUsage(model_calls=0)
            for c in spent.calls:
                total.add(c)
            firsts = getattr(est, "last_samples", None) if est.needs == "first_sample" else None
            per = [_rendered_tokens(est, q) for q in queries]
            denom = sum(per) or len(queries)
            for i, (q, n) in enumerate(zip(queries, per)):
                share = (n or 1) / denom
                first = firsts[i] if firsts else None
                if first is not None:
                    q.first_samples = [first]
                q.ledger.add(CallUsage(prompt_tokens=n, forward_passes=total.forward_passes, flops=total.flops * share,
                                       wall_s=total.wall_s * share, model_calls=total.model_calls,
                                       generated_tokens=first.n_tokens if first is not None else 0,
                                       samples=1 if first is not None else 0))
        for q, d in zip(queries, diffs):
            q.difficulty = d
        return diffs

    def execute(self, queries: Sequence[Query], plans: Sequence[Plan]) -> list[Result]:
        """Run one plan per query; Results in query order. Sampling plans sharing a verifier run together
        (each wave of every unfinished query in one backend call), thinking plans together (each round's
        chunks of every trace in one call); search and refine one query at a time."""
        from .strategies.sampling import run_sampling_batch
        from .strategies.thinking import run_thinking_batch

        for plan in {id(p): p for p in plans}.values():
            plan.check_names()
        for q, plan in zip(queries, plans):
            if plan.extractor != "auto":
                q.extract = (q.extract_as or _registered_extractor)(plan.extractor)
        verifier_for = _VerifierCache(self.backend)
        results: list[Result | None] = [None] * len(queries)
        groups: dict[tuple, list[int]] = {}
        thinking: list[int] = []
        for i, plan in enumerate(plans):
            if plan.strategy in SAMPLING:
                groups.setdefault(verifier_for.key(plan), []).append(i)
            elif plan.strategy in THINKING:
                thinking.append(i)
            else:
                results[i] = run_strategy(queries[i], plan, self.backend, verifier_for(plan))
        if thinking:
            batch = run_thinking_batch([queries[i] for i in thinking], [plans[i] for i in thinking], self.backend)
            for i, r in zip(thinking, batch):
                results[i] = r
        for idx in groups.values():
            batch = run_sampling_batch([queries[i] for i in idx], [plans[i] for i in idx], self.backend,
                                       verifier_for(plans[idx[0]]))
            for i, r in zip(idx, batch):
                results[i] = r
        return results  # type: ignore[return-value]

    # -- streaming -------------------------------------------------------------------------------
    def streams_live(self, plan: Plan) -> bool:
        """Whether `stream` delivers this plan's tokens as they are generated: one sample with nothing to
        decide afterwards, on a backend that reports tokens (with a tokenizer to decode them) or text pieces."""
        return (plan.max_samples == 1 and plan.strategy == "self_consistency" and plan.verifier is None
                and self._live_mode() is not None)

    def _live_mode(self) -> str | None:
        if getattr(self.backend, "tokenizer", None) is not None:
            return "tokens"
        try:
            params = inspect.signature(self.backend.generate).parameters
        except (TypeError, ValueError):  # pragma: no cover - a builtin
            return None
        return "text" if "on_text" in params else None

    def stream(self, query: Query, plan: Plan) -> Iterator[StreamEvent]:
        """The delivered answer as it becomes available, then a final event carrying the Result.

        With one sample and nothing to decide afterwards, tokens stream as they are generated; otherwise
        the answer exists only once the strategy has decided, and arrives then. The generating thread
        never outlives the iterator: closing it early stops the backend call at its next token.

        A server backend that retries a failed attempt from scratch may already have delivered some of the
        failed attempt's text; the streamed text then disagrees with the answer, and instead of a final
        event this raises AdaptiveError (the caller has seen text that is not the answer).
        """
        plan.check_names()
        mode = self._live_mode()
        if not self.streams_live(plan):
            with timing.timing(self.time_breakdown or timing.enabled()):
                result = self.execute([query], [plan])[0]
            yield StreamEvent(result.text, time.perf_counter())
            yield StreamEvent("", time.perf_counter(), result)
            return
        tok = getattr(self.backend, "tokenizer", None)
        pieces: queue.Queue = queue.Queue()
        closed = threading.Event()
        out: dict = {}

        def on_token(req, sample, token_id, t):
            if closed.is_set():
                raise _StreamClosed()
            pieces.put((token_id, t))

        def work():
            try:
                with timing.timing(self.time_breakdown or timing.enabled()):
                    callback = {"on_token": on_token} if mode == "tokens" else {"on_text": on_token}
                    gen = self.backend.generate([Request(query.prompt, raw=query.raw)],
                                                sampling_params(plan, stop=query.stop), **callback)
                    query.ledger.add(gen.usage)
                    query.first_samples = gen.completions[0]  # the strategy reuses it instead of sampling again
                    out["result"] = self.execute([query], [plan])[0]
            except BaseException as e:  # surfaced in the caller's thread below
                out["error"] = e
            finally:
                pieces.put(None)

        worker = threading.Thread(target=work, name="adaptive-stream", daemon=True)
        worker.start()
        shown = ""
        try:
            ids: list[int] = []
            while (item := pieces.get()) is not None:
                if mode == "text":
                    if item[0]:
                        yield StreamEvent(item[0], item[1])
                        shown += item[0]
                    continue
                ids.append(item[0])
                text = tok.decode(ids, skip_special_tokens=True)
                if len(text) > len(shown) and not text.endswith("\ufffd"):  # wait for whole UTF-8 characters
                    yield StreamEvent(text[len(shown):], item[1])
                    shown = text
        finally:
            closed.set()
            worker.join()
        if "error" in out:
            raise out["error"]
        if mode == "text" and not shown.startswith(out["result"].text):
            raise AdaptiveError(f"the backend restarted the answer after {len(shown)} characters had been streamed "
                                "(a failed attempt was retried): the streamed text is not the answer")
        yield StreamEvent("", time.perf_counter(), out["result"])


class _VerifierCache:
    """plan -> its verifier (None without one), built once per distinct (name, params)."""

    def __init__(self, backend):
        self.backend, self.built = backend, {}

    @staticmethod
    def key(plan: Plan) -> tuple:
        return plan.verifier, repr(sorted(plan.verifier_params.items()))

    def __call__(self, plan: Plan):
        if plan.verifier is None:
            return None
        k = self.key(plan)
        if k not in self.built:
            from .verifiers.base import make_verifier

            self.built[k] = make_verifier(plan.verifier, plan.verifier_params, self.backend)
        return self.built[k]


def _registered_extractor(name: str) -> Callable[[str], str | None]:
    from .answers import extractor_for

    return extractor_for(name)


def _as_difficulty(d) -> Difficulty | None:
    from .policies.base import as_difficulty

    return as_difficulty(d)


def _rendered_tokens(estimator, query: Query) -> int:
    backend = getattr(estimator, "backend", None)
    if backend is None or not hasattr(backend, "render"):
        return 0
    return len(backend.render(query.prompt, raw=query.raw))
