"""Step-level search scored by a verifier: beam search and diverse verifier tree search (DVTS).

Following Snell et al. 2024 / search-and-learn: a step ends at `plan.step_delimiter`; at each depth every
active beam is expanded with `search_width` candidate next steps, the verifier scores each partial
solution, and the best are kept. Beam search keeps the global top `search_beams`; DVTS runs
`search_beams` independent subtrees and keeps each subtree's own best candidate (greedy per subtree),
which trades raw score for diversity.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..backends.base import Backend, Completion
from ..confidence import TOP_LOGPROBS
from ..errors import PlanError
from ..plan import Plan
from ..result import Result
from ..verifiers.base import Verifier
from .base import Query, call, finish, sample_record, sampling_params, score, tokens_left, vote


@dataclass
class Beam:
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[list[float]] = field(default_factory=list)
    token_times: list[float] = field(default_factory=list)
    steps: int = 0
    score: float = 0.0
    done: str | None = None  # finish reason once the beam is complete
    root: int = 0            # subtree id (DVTS)

    def as_completion(self) -> Completion:
        return Completion(text=self.text, token_ids=self.token_ids, finish_reason=self.done or "length",
                          logprobs=self.logprobs, top_logprobs=self.top_logprobs, token_times=self.token_times)

    def extend(self, c: Completion, delim: str) -> "Beam":
        # Only the step delimiter continues the beam; EOS, length or a request stop string ends it.
        step_done = c.finish_reason == "stop" and c.stop_string == delim
        return Beam(text=self.text + c.text + (delim if step_done else ""), token_ids=self.token_ids + c.token_ids,
                    logprobs=self.logprobs + c.logprobs, top_logprobs=self.top_logprobs + c.top_logprobs,
                    token_times=self.token_times + c.token_times, steps=self.steps + 1,
                    done=None if step_done else c.finish_reason, root=self.root)


def _search(query: Query, plan: Plan, backend: Backend, verifier: Verifier | None, diverse: bool) -> Result:
    if verifier is None:
        raise PlanError("verifier", None, f"{plan.strategy} scores partial solutions and needs a verifier")
    delim = plan.step_delimiter
    active = [Beam(root=i) for i in range(plan.search_beams)] if diverse else [Beam()]
    done: list[Beam] = []
    stop_reason = "search_depth"
    top = TOP_LOGPROBS if (plan.verifier or "").startswith("confidence") else 0
    drawn = 0  # candidates drawn so far: each call's seeds follow them
    for depth in range(plan.search_depth):
        if not active:
            stop_reason = "all_finished"
            break
        per_beam = plan.search_width
        budget = tokens_left(plan, query.ledger)
        if budget < 1:
            stop_reason = "token_budget"
            break
        # Hard token cap: shrink the per-step length so every expansion fits in what is left.
        max_new = int(min(plan.max_new_tokens, budget // (len(active) * per_beam)))
        if max_new < 1:
            stop_reason = "token_budget"
            break
        candidates: list[Beam] = []
        for beam in active:  # one backend call per beam: each has its own prefix
            params = sampling_params(plan, max_new, drawn=drawn, stop=(delim,) + query.stop, top_logprobs=top)
            gen = call(backend, query, per_beam, params, prefix=beam.text)
            drawn += per_beam
            candidates += [beam.extend(c, delim) for c in gen.completions[0]]
        scores = score(query, verifier, [b.as_completion() for b in candidates])
        for b, s in zip(candidates, scores):
            b.score = s
        active = []
        for b in _select(candidates, plan.search_beams, diverse):
            if b.done or b.steps >= plan.search_depth:
                b.done = b.done or "depth"
                done.append(b)
            else:
                active.append(b)
    for b in active:  # beams cut by depth or budget still count as solutions
        b.done = b.done or stop_reason
        done.append(b)
    return _pick(query, plan, done, stop_reason)


def _select(cands: list[Beam], k: int, diverse: bool) -> list[Beam]:
    if not diverse:
        return sorted(cands, key=lambda b: -b.score)[:k]
    best: dict[int, Beam] = {}
    for b in cands:
        if b.root not in best or b.score > best[b.root].score:
            best[b.root] = b
    return list(best.values())


def _pick(query: Query, plan: Plan, done: list[Beam], stop_reason: str) -> Result:
    answers = [query.extract(b.text) for b in done]
    records = [sample_record(b.as_completion(), a, b.score) for b, a in zip(done, answers)]
    if not done:
        return finish(query, plan, None, None, records, stop_reason)
    if plan.aggregation == "best":
        idx = [i for i, a in enumerate(answers) if a is not None] or list(range(len(done)))
        i = max(idx, key=lambda j: done[j].score)
        return finish(query, plan, done[i].as_completion(), answers[i], records, stop_reason,
                      {answers[i]: done[i].score} if answers[i] is not None else {}, depth=done[i].steps)
    weights = [b.score for b in done] if plan.aggregation == "weighted" else None
    winner, totals = vote(answers, weights)
    cands = [i for i, a in enumerate(answers) if a == winner] or [0]
    i = max(cands, key=lambda j: done[j].score)
    return finish(query, plan, done[i].as_completion(), winner, records, stop_reason, totals, depth=done[i].steps)


def beam_search(query: Query, plan: Plan, backend: Backend, verifier: Verifier | None = None) -> Result:
    return _search(query, plan, backend, verifier, diverse=False)


def dvts(query: Query, plan: Plan, backend: Backend, verifier: Verifier | None = None) -> Result:
    return _search(query, plan, backend, verifier, diverse=True)
