"""Run one plan per task: sampling plans batched across prompts, search/refine plans one by one.

Also charges a batched estimator pass to the tasks it served, so a request's ledger covers what
scoring its difficulty cost.
"""
from __future__ import annotations

from typing import Callable, Sequence

from .. import timing
from ..backends.base import CallUsage
from ..compute import Ledger
from ..plan import Plan
from ..result import Difficulty, Result
from .base import Task, run_strategy

SAMPLING = ("self_consistency", "best_of_n")


def verifier_factory(backend) -> Callable[[Plan], object]:
    """plan -> its verifier (None without one), built once per distinct (name, params)."""
    from ..verifiers.base import make_verifier

    built: dict = {}

    def get(plan: Plan):
        if plan.verifier is None:
            return None
        key = (plan.verifier, repr(sorted(plan.verifier_params.items())))
        if key not in built:
            built[key] = make_verifier(plan.verifier, plan.verifier_params, backend)
        return built[key]

    return get


def run_plans(tasks: Sequence[Task], plans: Sequence[Plan], backend) -> list[Result]:
    """Results in task order."""
    from ..errors import PlanError
    from .sampling import run_sampling_batch

    make_verifier = verifier_factory(backend)
    for plan in plans:
        if plan.strategy == "best_of_n" and plan.verifier is None:
            raise PlanError("verifier", None, "best_of_n needs a verifier to pick the best sample")

    results: list[Result | None] = [None] * len(tasks)
    groups: dict[tuple, list[int]] = {}
    for i, plan in enumerate(plans):
        if plan.strategy in SAMPLING:
            groups.setdefault((plan.verifier, repr(sorted(plan.verifier_params.items()))), []).append(i)
        else:
            results[i] = run_strategy(tasks[i], plan, backend, make_verifier(plan))
    for idx in groups.values():
        verifier = make_verifier(plans[idx[0]])
        for i, r in zip(idx, run_sampling_batch([tasks[i] for i in idx], [plans[i] for i in idx], backend,
                                                verifier)):
            results[i] = r
    return results  # type: ignore[return-value]


def score_difficulties(estimator, tasks: Sequence[Task]) -> list[Difficulty]:
    """Score the tasks' prompts in one batched estimator call and charge each task its share
    (its own prompt tokens; FLOPs and time in proportion to them)."""
    probe = Ledger()
    with probe.activate(), timing.phase("estimate"):
        diffs = estimator.score([t.prompt for t in tasks])
    if probe.calls:
        total = CallUsage(model_calls=0)
        for c in probe.calls:
            total.add(c)
        # sample_probe drew one sample per prompt: the strategy reuses it, so charge it exactly.
        firsts = getattr(estimator, "last_samples", None) if estimator.needs == "first_sample" else None
        per = [backend_tokens(estimator, t) for t in tasks]
        denom = sum(per) or len(tasks)
        for i, (t, n) in enumerate(zip(tasks, per)):
            share = (n or 1) / denom
            first = firsts[i] if firsts else None
            if first is not None:
                t.first_samples = [first]
            t.ledger.add(CallUsage(prompt_tokens=n, forward_passes=total.forward_passes, flops=total.flops * share,
                                   wall_s=total.wall_s * share, model_calls=total.model_calls,
                                   generated_tokens=first.n_tokens if first is not None else 0,
                                   samples=1 if first is not None else 0))
    for t, d in zip(tasks, diffs):
        t.difficulty = d
    return diffs


def backend_tokens(estimator, task: Task) -> int:
    backend = getattr(estimator, "backend", None)
    if backend is None or not hasattr(backend, "render"):
        return 0
    return len(backend.render(task.prompt, raw=task.raw))
