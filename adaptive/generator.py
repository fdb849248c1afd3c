"""The Python API: AdaptiveGenerator wraps a model and runs prompt -> Estimator -> Policy -> Plan ->
Strategy -> Result.

`policy` is a Plan (every prompt runs it), or a policy file / shipped policy name (fixed, binned by
difficulty, or a batch allocation), whose estimator scores each prompt first. Without one, every prompt
runs the default Plan: 4 samples, majority vote. Per-call Plan fields (`samples=8`, `stopping="beta"`)
override the policy with one fixed Plan for that call.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, fields
from typing import Iterator, Sequence

from .backends.base import PromptLike, check_prompt
from . import timing
from .compute import LatencyTargets, Ledger
from .errors import InputError, PlanError
from .plan import Plan
from .registries import load_builtins
from .result import Result

_PLAN_FIELDS = {f.name for f in fields(Plan)}
_ALIASES = {"samples": "max_samples", "n": "max_samples", "max_tokens": "max_new_tokens"}


@dataclass
class StreamEvent:
    text: str            # the newly delivered piece of the answer ("" on the final event)
    time: float          # perf_counter() when it was delivered
    result: Result | None = None  # set on the final event


class AdaptiveGenerator:
    def __init__(self, model=None, tokenizer=None, *, backend=None, plan: Plan | dict | None = None,
                 policy=None, estimator=None, extractor: str = "auto", targets: LatencyTargets | None = None,
                 model_id: str | None = None, stop: Sequence[str] = (), time_breakdown: bool = False):
        load_builtins()
        if backend is None:
            if model is None or tokenizer is None:
                raise InputError("AdaptiveGenerator needs a backend, or both a model and its tokenizer")
            from .backends.hf import HFBackend

            backend = HFBackend(model, tokenizer, model_id=model_id)
        self.backend = backend
        self.policy = None
        if policy is not None and not isinstance(policy, (Plan, dict)):
            from .policies import load_policy

            self.policy = load_policy(policy)
            plan = plan or getattr(self.policy, "plan", None)
        elif policy is not None:
            plan = policy
        self.plan = self._as_plan(plan)
        self.estimator = estimator
        if self.policy is not None and self.policy.needs_estimator and estimator is None:
            path = self.policy.estimator_path()
            if path is not None:
                from .estimators import load_estimator

                self.estimator = load_estimator(path, self.backend)
        self.last_allocation = None
        self.extractor = extractor
        self.targets = targets or LatencyTargets()
        self.stop = tuple(stop)
        # Fill ComputeRecord.time_breakdown (timing.py); off by default: on CUDA it synchronises.
        self.time_breakdown = time_breakdown

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

    @staticmethod
    def _as_plan(plan) -> Plan:
        if plan is None:
            return Plan(strategy="self_consistency", max_samples=4, stopping="fixed", aggregation="majority")
        if isinstance(plan, Plan):
            return plan
        if isinstance(plan, dict):
            return Plan.from_dict(plan)
        raise PlanError("plan", plan, "expected a Plan or a dict of Plan fields")

    def plan_for(self, budget: int | None = None, **overrides) -> Plan:
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
        return self.plan.replace(**changes) if changes else self.plan

    def _task(self, prompt: PromptLike, plan: Plan):
        from .answers import extractor_for
        from .strategies.base import Task

        check_prompt(prompt)
        extract = extractor_for(plan.extractor if plan.extractor != "auto" else self.extractor)
        return Task(prompt=prompt, extract=extract, ledger=Ledger(),
                    targets=self.targets, stop=self.stop)

    def generate(self, prompt: PromptLike | Sequence[PromptLike], budget=None, difficulties=None,
                 **kwargs) -> Result | list[Result]:
        """One prompt -> Result; a list of prompts -> list of Results (sampled together in batches).

        With a policy file and no per-call overrides, the policy picks each prompt's Plan (`budget`: a
        per-prompt ceiling, or for `allocate` the batch's mean); otherwise one Plan for all prompts.
        """
        with timing.timing(self.time_breakdown or timing.enabled()):
            return self._generate(prompt, budget, difficulties, **kwargs)

    def _generate(self, prompt, budget, difficulties, **kwargs):
        from .strategies.dispatch import run_plans, score_difficulties

        single = isinstance(prompt, str) or (isinstance(prompt, Sequence) and prompt and isinstance(prompt[0], dict))
        prompts = [prompt] if single else list(prompt)
        if not prompts:
            return []
        use_policy = self.policy is not None and not kwargs
        base = self.plan if use_policy else self.plan_for(budget, **kwargs)
        tasks = [self._task(p, base) for p in prompts]  # validate every prompt before spending anything
        if use_policy:
            diffs = difficulties
            if diffs is None and self.estimator is not None:
                diffs = score_difficulties(self.estimator, tasks)
            with timing.phase("control"):
                batch = self.policy.plan_batch(prompts, diffs, budget)
            plans, self.last_allocation = batch.plans, batch.report
            for t, d in zip(tasks, diffs or [None] * len(tasks)):
                t.difficulty = t.difficulty or d
        else:
            plans = [base] * len(tasks)
        results = run_plans(tasks, plans, self.backend)
        return results[0] if single else results

    def stream(self, prompt: PromptLike, budget: int | None = None, **kwargs) -> Iterator[StreamEvent]:
        """Yield the delivered answer as it becomes available, then a final event carrying the Result.

        With one sample and nothing to decide afterwards, tokens stream as they are generated; otherwise
        the answer exists only once the strategy has decided, and arrives then.
        """
        plan = self.plan_for(budget, **kwargs)
        tok = getattr(self.backend, "tokenizer", None)
        live = plan.max_samples == 1 and plan.strategy == "self_consistency" and plan.verifier is None
        if not live or tok is None:
            result = self.generate(prompt, budget, **kwargs)
            yield StreamEvent(result.text, time.perf_counter())
            yield StreamEvent("", time.perf_counter(), result)
            return
        q: queue.Queue = queue.Queue()
        out: dict = {}

        def on_token(req, sample, token_id, t):
            q.put((token_id, t))

        def work():
            try:
                from .backends.base import Request
                from .strategies.base import sampling_params
                from .strategies.sampling import run_sampling_batch

                with timing.timing(self.time_breakdown or timing.enabled()):
                    task = self._task(prompt, plan)
                    with task.ledger.activate():  # the backend charges this call to the request
                        gen = self.backend.generate([Request(prompt)], sampling_params(plan, stop=self.stop),
                                                    on_token=on_token)
                    task.first_samples = gen.completions[0]  # the strategy reuses it instead of sampling again
                    out["result"] = run_sampling_batch([task], [plan], self.backend)[0]
            except BaseException as e:  # surfaced in the caller's thread below
                out["error"] = e
            finally:
                q.put(None)

        threading.Thread(target=work, daemon=True).start()
        ids: list[int] = []
        shown = ""
        while (item := q.get()) is not None:
            ids.append(item[0])
            text = tok.decode(ids, skip_special_tokens=True)
            if len(text) > len(shown) and not text.endswith("\ufffd"):  # wait for whole UTF-8 characters
                yield StreamEvent(text[len(shown):], item[1])
                shown = text
        if "error" in out:
            raise out["error"]
        yield StreamEvent("", time.perf_counter(), out["result"])
