"""Self-consistency and best-of-N, sampled in waves so a stopping rule can act between them.

Self-consistency: Wang et al. 2023 (majority vote over extracted answers), optionally weighted by a
verifier or confidence score. Best-of-N: argmax of a verifier score (as in search-and-learn).
`run_sampling_batch` runs many prompts together: each round, every unfinished prompt's next wave rides
in one backend call, so the batch stays full while each prompt stops on its own rule.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from .. import timing
from ..backends.base import Backend, Completion, Request, SamplingParams
from ..confidence import DEFAULT_WINDOW, TOP_LOGPROBS, token_confidences
from ..errors import PlanError
from ..plan import Plan
from ..result import Result
from ..stopping import SampleView, make_rule
from ..verifiers.base import Verifier
from .base import Query, finish, fit_wave, sample_record, sampling_params, score, tokens_left, vote


@dataclass
class _State:
    query: Query
    plan: Plan
    rule: object
    wants_conf: bool
    comps: list[Completion] = field(default_factory=list)
    answers: list = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    floor: float | None = None
    stop_reason: str | None = None

    def views(self) -> list[SampleView]:
        return [SampleView(answer=a, weight=s,
                           token_confidences=token_confidences(c.top_logprobs) if self.wants_conf else None)
                for c, a, s in zip(self.comps, self.answers, self.scores)]

    def add(self, new: list[Completion], verifier: Verifier | None) -> None:
        self.comps += new
        self.answers += [self.query.extract(c.text) for c in new]
        if verifier is None:
            self.scores += [1.0] * len(new)
        else:
            self.scores += score(self.query, verifier, new)

    def next_wave(self) -> SamplingParams | None:
        """Decide between waves: None when this prompt is done (reason recorded), else the next call."""
        plan = self.plan
        if len(self.comps) >= plan.max_samples:
            self.stop_reason = self.stop_reason or "max_samples"
            return None
        views = self.views()
        if self.comps and self.rule.should_stop(views):
            self.stop_reason = f"stopping:{plan.stopping}"
            return None
        if hasattr(self.rule, "calibrate") and self.floor is None:
            self.floor = self.rule.calibrate(views)  # DeepConf: calibrated once the warmup traces exist
        if tokens_left(plan, self.query.ledger) < 1:
            self.stop_reason = "token_budget"
            return None
        n, max_new = fit_wave(plan, self.query.ledger, min(plan.effective_wave, plan.max_samples - len(self.comps)))
        extra = {"top_logprobs": TOP_LOGPROBS} if self.wants_conf else {}
        if self.floor is not None:
            extra.update(confidence_floor=self.floor, confidence_window=getattr(self.rule, "window", DEFAULT_WINDOW))
        self._n = n
        return sampling_params(self.plan, max_new, drawn=len(self.comps), stop=self.query.stop, **extra)


def _start(query: Query, plan: Plan, verifier: Verifier | None) -> _State:
    wants_conf = plan.stopping == "confidence" or (plan.verifier or "") == "confidence"
    st = _State(query, plan, make_rule(plan.stopping, plan.stopping_params), wants_conf)
    st.add(list(query.first_samples[: plan.max_samples]), verifier)  # reuse samples already paid for
    return st


def run_sampling_batch(queries: Sequence[Query], plans: Sequence[Plan], backend: Backend,
                       verifier: Verifier | None = None) -> list[Result]:
    """Sample many prompts together, each with its own plan, rule and ledger."""
    with timing.phase("control"):  # voting, stopping, extraction; backend calls and verifiers time themselves
        return _sampling_batch(queries, plans, backend, verifier)


def _sampling_batch(queries, plans, backend, verifier) -> list[Result]:
    states = [_start(t, p, verifier) for t, p in zip(queries, plans)]
    pending = list(states)
    while pending:
        by_params: dict[SamplingParams, list[_State]] = {}
        for st in pending:
            params = st.next_wave()
            if params is not None:
                by_params.setdefault(params, []).append(st)
        pending = []
        for params, group in by_params.items():  # identical settings share one batched call
            # One call serves many prompts; each is charged its own share.
            gen = backend.generate([Request(s.query.prompt, n=s._n, raw=s.query.raw) for s in group], params)
            for st, comps, usage in zip(group, gen.completions, gen.per_request):
                st.query.ledger.add(usage)
                st.add(comps, verifier)
                pending.append(st)
    return [_result(st, verifier) for st in states]


def _result(st: _State, verifier: Verifier | None) -> Result:
    query, plan, comps, answers, scores = st.query, st.plan, st.comps, st.answers, st.scores
    kept = [True] * len(comps)
    if st.floor is not None and hasattr(st.rule, "keep"):
        kept = [c.finish_reason != "abort" and st.rule.keep(v, st.floor) for c, v in zip(comps, st.views())]
    use = [i for i in range(len(comps)) if kept[i]] or list(range(len(comps)))
    has_scores = verifier is not None
    records = [sample_record(c, a, s if has_scores else None, k) for c, a, s, k in zip(comps, answers, scores, kept)]
    streamed = plan.max_samples == 1 and verifier is None  # a lone sample reaches the user as generated
    if not comps:
        return finish(query, plan, None, None, records, st.stop_reason)
    if plan.strategy == "best_of_n" or plan.aggregation == "best":
        real = [i for i in use if answers[i] is not None] or use
        best = max(real, key=lambda i: (scores[i], -i))
        totals = {answers[best]: scores[best]} if answers[best] is not None else {}
        return finish(query, plan, comps[best], answers[best], records, st.stop_reason, totals, streamed=streamed)
    weights = [scores[i] for i in use] if plan.aggregation == "weighted" else None
    winner, totals = vote([answers[i] for i in use], weights)
    winners = [i for i in use if answers[i] == winner] or use
    # Show the best-scored sample among those that gave the winning answer.
    chosen = max(winners, key=lambda i: (scores[i], -i)) if has_scores else winners[0]
    return finish(query, plan, comps[chosen], winner, records, st.stop_reason, totals, streamed=streamed)


def self_consistency(query: Query, plan: Plan, backend: Backend, verifier: Verifier | None = None) -> Result:
    return run_sampling_batch([query], [plan], backend, verifier)[0]


def best_of_n(query: Query, plan: Plan, backend: Backend, verifier: Verifier | None = None) -> Result:
    if verifier is None:
        raise PlanError("verifier", plan.verifier, "best_of_n needs a verifier to pick the best sample")
    return run_sampling_batch([query], [plan], backend, verifier)[0]
