"""The Python API: AdaptiveGenerator wraps a model (or a server) and answers prompts through the
controller (adaptive/controller.py): prompt -> Estimator -> Policy -> Plan -> Strategy -> Result.

`policy` is a policy file or shipped policy name (fixed, binned by difficulty, or a batch allocation; its estimator
scores each prompt first) or a Policy; `plan` (or a Plan given as `policy`) fixes one Plan for every
prompt. Without either, every prompt runs the default Plan: 4 samples, majority vote. Per-call Plan
fields (`samples=8`, `stopping="beta"`) override the policy with one fixed Plan for that call.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Iterator, Sequence

from .backends.base import PromptLike
from .compute import LatencyTargets
from .controller import Controller, StreamEvent
from .errors import InputError, PlanError
from .plan import Plan
from .result import Result

_PLAN_FIELDS = {f.name for f in fields(Plan)}
_ALIASES = {"samples": "max_samples", "n": "max_samples", "max_tokens": "max_new_tokens"}
DEFAULT_PLAN = Plan(strategy="self_consistency", max_samples=4, stopping="fixed", aggregation="majority")

__all__ = ["AdaptiveGenerator", "StreamEvent"]


class AdaptiveGenerator:
    def __init__(self, model=None, tokenizer=None, *, backend=None, plan: Plan | dict | None = None,
                 policy=None, estimator=None, extractor: str = "auto", targets: LatencyTargets | None = None,
                 model_id: str | None = None, stop: Sequence[str] = (), time_breakdown: bool = False):
        from .policies import FixedPolicy, load_policy

        if backend is None:
            if model is None or tokenizer is None:
                raise InputError("AdaptiveGenerator needs a backend, or both a model and its tokenizer")
            from .backends.hf import HFBackend

            backend = HFBackend(model, tokenizer, model_id=model_id)
        self.backend = backend
        self.policy = None  # a policy file's Policy: picks each prompt's plan when a call has no overrides
        if policy is not None and not isinstance(policy, (Plan, dict)):
            self.policy = load_policy(policy)
            plan = plan or getattr(self.policy, "plan", None)
        elif policy is not None:
            plan = policy
        self.plan = self._as_plan(plan)
        if self.policy is not None and self.policy.needs_estimator and estimator is None:
            path = self.policy.estimator_path()
            if path is not None:
                from .estimators import load_estimator

                estimator = load_estimator(path, self.backend)
        self.estimator = estimator
        self.extractor = extractor
        self.controller = Controller(backend, self.policy or FixedPolicy(name="plan", plan=self.plan), estimator,
                                     targets=targets, stop=stop, time_breakdown=time_breakdown)
        self.last_allocation = None

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, policy=None, device: str = "auto", dtype="auto",
                        **kw) -> "AdaptiveGenerator":
        """A local Hugging Face model (default: the embedded SmolLM2); `policy` = Plan, dict, or policy file."""
        from .backends.hf import HFBackend

        return cls(backend=HFBackend.from_pretrained(name_or_path, device=device, dtype=dtype), policy=policy, **kw)

    @classmethod
    def from_server(cls, base_url: str, model: str, policy=None, api_key: str | None = None, tokenizer=None,
                    **backend_kw) -> "AdaptiveGenerator":
        """An OpenAI-compatible server (vLLM, SGLang, `transformers serve`) as the backend."""
        from .backends.openai import OpenAIBackend

        backend = OpenAIBackend(base_url, model, api_key=api_key, tokenizer=tokenizer, **backend_kw)
        return cls(backend=backend, policy=policy)

    # The generator's settings, as the controller holds them.
    @property
    def targets(self) -> LatencyTargets:
        return self.controller.targets

    @property
    def stop(self) -> tuple[str, ...]:
        return self.controller.stop

    @property
    def time_breakdown(self) -> bool:
        return self.controller.time_breakdown

    @time_breakdown.setter
    def time_breakdown(self, on: bool) -> None:
        self.controller.time_breakdown = on

    @staticmethod
    def _as_plan(plan) -> Plan:
        if plan is None:
            return DEFAULT_PLAN
        if isinstance(plan, Plan):
            return plan
        if isinstance(plan, dict):
            return Plan.from_dict(plan)
        raise PlanError("plan", plan, "expected a Plan or a dict of Plan fields")

    def plan_for(self, budget: int | None = None, **overrides) -> Plan:
        """The generator's Plan with per-call overrides (Plan fields, or `samples`/`n`/`max_tokens`)."""
        changes = {}
        for k, v in overrides.items():
            name = _ALIASES.get(k, k)
            if name not in _PLAN_FIELDS:
                raise PlanError(k, v, f"unknown generation argument; Plan fields: {', '.join(sorted(_PLAN_FIELDS))}")
            changes[name] = v
        if budget is not None:
            if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
                raise PlanError("max_samples", budget, "budget must be an integer number of samples >= 1")
            changes["max_samples"] = budget
        return self.plan.override(**changes)

    def _query(self, prompt: PromptLike):
        from .answers import extractor_for

        return self.controller.query(prompt, extract=extractor_for(self.extractor))

    def generate(self, prompt: PromptLike | Sequence[PromptLike], budget=None, difficulties=None,
                 **kwargs) -> Result | list[Result]:
        """One prompt -> Result; a list of prompts -> list of Results (sampled together in batches).

        With a policy file and no per-call overrides, the policy picks each prompt's Plan (`budget`: a
        per-prompt ceiling, or for `allocate` the batch's mean); otherwise one Plan for all prompts.
        """
        if prompt is None:
            raise InputError("prompt is None: pass a string, a list of chat messages, or a list of prompts")
        single = isinstance(prompt, str) or (isinstance(prompt, Sequence) and prompt and isinstance(prompt[0], dict))
        prompts = [prompt] if single else list(prompt)
        if not prompts:
            return []
        queries = [self._query(p) for p in prompts]  # validate every prompt before spending anything
        if self.policy is not None and not kwargs:
            batch = self.controller.run(queries, budget=budget, difficulties=difficulties)
            self.last_allocation = batch.allocation
            results = batch.results
        else:
            from .policies import FixedPolicy

            plan = self.plan_for(budget, **kwargs)
            results = self.controller.run(queries, difficulties=difficulties,
                                          policy=FixedPolicy(name="plan", plan=plan)).results
        return results[0] if single else results

    def stream(self, prompt: PromptLike, budget: int | None = None, **kwargs) -> Iterator[StreamEvent]:
        """Yield the delivered answer as it becomes available, then a final event carrying the Result.

        With one sample and nothing to decide afterwards, tokens stream as they are generated; otherwise
        the answer exists only once the strategy has decided, and arrives then.
        """
        plan = self.plan_for(budget, **kwargs)
        return self.controller.stream(self._query(prompt), plan)

    def close(self) -> None:
        """Release the backend's resources (a server backend's connections and event-loop thread)."""
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "AdaptiveGenerator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
