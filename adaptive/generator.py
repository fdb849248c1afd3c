"""The Python API: AdaptiveGenerator wraps a model and runs prompt -> Plan -> Strategy -> Result.

Until a policy chooses plans per prompt, every prompt runs one fixed Plan (by default: N samples,
majority vote over extracted answers). `budget` sets the sample cap for a request.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, fields
from typing import Iterator, Sequence

from .backends.base import PromptLike, check_prompt
from .compute import LatencyTargets, Ledger
from .errors import InputError, NotImplementedFeature, PlanError
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
                 extractor: str = "auto", targets: LatencyTargets | None = None, model_id: str | None = None,
                 stop: Sequence[str] = ()):
        load_builtins()
        if backend is None:
            if model is None or tokenizer is None:
                raise InputError("AdaptiveGenerator needs a backend, or both a model and its tokenizer")
            from .backends.hf import HFBackend

            backend = HFBackend(model, tokenizer, model_id=model_id)
        self.backend = backend
        self.plan = self._as_plan(plan)
        self.extractor = extractor
        self.targets = targets or LatencyTargets()
        self.stop = tuple(stop)

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, policy: Plan | dict | None = None,
                        device: str = "auto", dtype="auto", **kw) -> "AdaptiveGenerator":
        from .backends.hf import HFBackend

        return cls(backend=HFBackend.from_pretrained(name_or_path, device=device, dtype=dtype), plan=policy, **kw)

    @staticmethod
    def _as_plan(plan) -> Plan:
        if plan is None:
            return Plan(strategy="self_consistency", max_samples=4, stopping="fixed", aggregation="majority")
        if isinstance(plan, Plan):
            return plan
        if isinstance(plan, dict):
            return Plan.from_dict(plan)
        raise NotImplementedFeature(
            f"policy={plan!r}: policy files are not implemented yet; pass a Plan or a dict of Plan fields")

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

    def _verifier(self, plan: Plan):
        if plan.verifier is None:
            return None
        from .verifiers.base import make_verifier

        return make_verifier(plan.verifier, plan.verifier_params, backend=self.backend)

    def generate(self, prompt: PromptLike | Sequence[PromptLike], budget: int | None = None,
                 **kwargs) -> Result | list[Result]:
        """One prompt -> Result; a list of prompts -> list of Results (sampled together in batches)."""
        single = isinstance(prompt, str) or (isinstance(prompt, Sequence) and prompt and isinstance(prompt[0], dict))
        prompts = [prompt] if single else list(prompt)
        if not prompts:
            return []
        plan = self.plan_for(budget, **kwargs)
        tasks = [self._task(p, plan) for p in prompts]  # validate every prompt before spending anything
        verifier = self._verifier(plan)
        if plan.strategy in ("self_consistency", "best_of_n"):
            from .strategies.sampling import run_sampling_batch

            if plan.strategy == "best_of_n" and verifier is None:
                raise PlanError("verifier", None, "best_of_n needs a verifier to pick the best sample")
            results = run_sampling_batch(tasks, [plan] * len(tasks), self.backend, verifier)
        else:
            from .strategies.base import run_strategy

            results = [run_strategy(t, plan, self.backend, verifier) for t in tasks]
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
