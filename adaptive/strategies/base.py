"""What every strategy shares: the Query it answers, the vote, token-budget arithmetic, charged
backend and verifier calls, and the Result builder.

A strategy is a plain function `(query, plan, backend, verifier) -> Result` (listed by name in
`adaptive.registry.strategies`); the controller builds the query and the verifier and calls it.
"""
from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .. import timing
from ..backends.base import Backend, Completion, PromptLike, Request, SamplingParams
from ..compute import LatencyTargets, Ledger
from ..plan import Plan
from ..result import Difficulty, Result, SampleRecord

Extract = Callable[[str], "str | None"]


@dataclass
class Query:
    """One prompt being answered: what a strategy reads (prompt, answer extractor, stop strings,
    samples already paid for) and the ledger every call made for it is charged to."""

    prompt: PromptLike
    extract: Extract
    raw: bool = False
    difficulty: Difficulty | None = None
    ledger: Ledger = field(default_factory=Ledger)
    targets: LatencyTargets = field(default_factory=LatencyTargets)
    first_samples: list[Completion] = field(default_factory=list)  # already drawn (e.g. by sample_probe)
    stop: tuple[str, ...] = ()
    # name -> extractor, used when the plan names one (a task passes the example's choices along)
    extract_as: Callable[[str], Extract] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def sampling_params(plan: Plan, max_new_tokens: int | None = None, *, drawn: int = 0, **kw) -> SamplingParams:
    """The next call's sampling settings. `drawn`: samples already drawn for this query. A call is seeded
    plan.seed + drawn and its n samples take seeds seed .. seed + n - 1 (vLLM seeds choice i with seed + i;
    the OpenAI backend seeds split samples the same way), so no two calls of one query share a seed:
    offsetting by the call's number instead would give wave k's second sample wave k+1's first seed."""
    seed = None if plan.seed is None else plan.seed + drawn
    return SamplingParams(max_new_tokens=max_new_tokens or plan.max_new_tokens, temperature=plan.temperature,
                          top_p=plan.top_p, top_k=plan.top_k, seed=seed, **kw)


def tokens_left(plan: Plan, ledger: Ledger) -> float:
    return math.inf if plan.max_total_tokens is None else plan.max_total_tokens - ledger.generated_tokens


def fit_wave(plan: Plan, ledger: Ledger, want: int) -> tuple[int, int]:
    """(samples, max_new_tokens) for the next call such that samples*max_new never passes the token cap.

    A hard cap: the worst case (every sample runs to its limit) must fit in what is left.
    """
    left = tokens_left(plan, ledger)
    n, max_new = want, plan.max_new_tokens
    if left == math.inf or n * max_new <= left:
        return n, max_new
    n = max(1, min(n, int(left // max_new)))
    return n, int(min(max_new, left // n))


def call(backend: Backend, query: Query, n: int, params: SamplingParams, prefix: str = "",
         prompt: PromptLike | None = None, **kw):
    """One backend call for this query, charged to its ledger."""
    gen = backend.generate([Request(prompt if prompt is not None else query.prompt, n=n, prefix=prefix,
                                    raw=query.raw)], params, **kw)
    query.ledger.add(gen.usage)
    return gen


def score(query: Query, verifier, completions: Sequence[Completion]) -> list[float]:
    """Verifier scores; any model calls the verifier makes are charged to this query."""
    if not completions:
        return []
    with timing.phase("verify"):
        return verifier.score(query.prompt, completions, ledger=query.ledger)


def vote(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> tuple[str | None, dict]:
    """Winner of a (weighted) vote. None ("no answer") never beats a real answer.

    Ties break by the larger count, then the earliest first appearance, so results are deterministic.
    """
    w = weights if weights is not None else [1.0] * len(answers)
    totals: dict[str, float] = defaultdict(float)
    counts = Counter(a for a in answers if a is not None)
    first: dict[str, int] = {}
    for i, (a, wt) in enumerate(zip(answers, w)):
        if a is None:
            continue
        totals[a] += wt
        first.setdefault(a, i)
    if not totals:
        return None, {}
    winner = max(totals, key=lambda a: (totals[a], counts[a], -first[a]))
    return winner, dict(totals)


def sample_record(c: Completion, answer: str | None, score: float | None = None, kept: bool = True) -> SampleRecord:
    return SampleRecord(text=c.text, answer=answer, tokens=c.n_tokens, finish_reason=c.finish_reason,
                        mean_logprob=c.mean_logprob, confidence=c.trace_confidence, score=score, kept=kept)


def finish(query: Query, plan: Plan, chosen: Completion | None, answer: str | None, samples: list[SampleRecord],
           stop_reason: str, votes: dict | None = None, streamed: bool = False, text: str | None = None,
           **extra) -> Result:
    """Build the Result. The delivered stream is the chosen completion's tokens; unless they were
    streamed as generated (one sample, no decision after it), each is delivered no earlier than the
    moment the strategy decided."""
    decided = time.perf_counter()
    times = []
    if chosen is not None and chosen.token_times:
        times = list(chosen.token_times) if streamed else [max(t, decided) for t in chosen.token_times]
    record = query.ledger.close(times, query.targets, finished=decided)
    return Result(text=text if text is not None else (chosen.text if chosen else ""), answer=answer,
                  samples=samples, plan=plan, stop_reason=stop_reason, compute=record,
                  difficulty=query.difficulty, votes=votes or {}, extra=extra)
