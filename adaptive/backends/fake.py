"""FakeBackend: a scripted backend for testing strategies without a model.

Each sample's text comes from `script(prompt_text, prefix, index, rng)`; it is "tokenized" into
characters so token counts, caps and stop strings behave like a real backend's. Every call is logged.
"""
from __future__ import annotations

import random
import time
from typing import Callable, Sequence

from .. import timing
from ..errors import InputError
from .base import CallUsage, Completion, Generation, PromptLike, PromptPassBatch, Request, SamplingParams, check_prompt
from .stop import StopCheck

Script = Callable[[str, str, int, random.Random], str]


def _text_of(prompt: PromptLike) -> str:
    return prompt if isinstance(prompt, str) else "\n".join(str(m["content"]) for m in prompt)


class FakeBackend:
    model_id = "fake"

    def __init__(self, script: Script | Sequence[str], context_window: int = 4096, logprob: float = -0.5,
                 eos: bool = True, delay_s: float = 0.0):
        if not callable(script):
            answers = list(script)
            script = lambda prompt, prefix, i, rng: answers[i % len(answers)]  # noqa: E731
        self.script, self.context_window, self.logprob, self.eos = script, context_window, logprob, eos
        self.delay_s = delay_s  # per call: lets tests interrupt a run mid-way
        self.calls: list[tuple[list[Request], SamplingParams]] = []
        self.totals = CallUsage(model_calls=0)
        self._issued: dict[tuple, int] = {}

    def capabilities(self) -> set[str]:
        return {"logprobs", "top_logprobs", "timestamps", "prefix"}

    def settings(self) -> dict:
        return {"kind": "fake", "model": self.model_id}

    def count_tokens(self, text: str) -> int:
        return len(text)

    def prompt_pass(self, prompts: Sequence[PromptLike], raw: bool = False) -> PromptPassBatch:
        raise InputError("FakeBackend has no hidden states")

    def generate(self, requests: Sequence[Request], params: SamplingParams, *, hidden_states: bool = False,
                 on_token=None) -> Generation:
        t0 = time.perf_counter()
        if self.delay_s:
            time.sleep(self.delay_s)
        self.calls.append((list(requests), params))
        rng = random.Random(params.seed)
        out, per = [], []
        for r in requests:
            check_prompt(r.prompt)
            ptoks = len(_text_of(r.prompt)) + len(r.prefix)
            if ptoks + params.max_new_tokens > self.context_window:
                raise InputError(f"prompt is {ptoks} tokens; exceeds the context window {self.context_window}")
            key = (_text_of(r.prompt), r.prefix)
            comps = []
            for _ in range(r.n):
                i = self._issued.get(key, 0)
                self._issued[key] = i + 1
                comps.append(self._complete(self.script(key[0], r.prefix, i, rng), params))
            out.append(comps)
            per.append(CallUsage(prompt_tokens=ptoks, samples=r.n, generated_tokens=sum(c.n_tokens for c in comps),
                                 forward_passes=1 + max((c.n_tokens for c in comps), default=0), started=t0))
        usage = CallUsage(prompt_tokens=sum(u.prompt_tokens for u in per), samples=sum(u.samples for u in per),
                          generated_tokens=sum(u.generated_tokens for u in per),
                          forward_passes=max((u.forward_passes for u in per), default=0), started=t0)
        usage.wall_s = time.perf_counter() - t0
        if timing.enabled():
            usage.times = {"decode": usage.wall_s}  # scripted: all of it stands for generation
        for u in per:
            u.wall_s, u.times = usage.wall_s, dict(usage.times)
        self.totals.add(usage)
        return Generation(out, [None] * len(requests), [u.prompt_tokens for u in per], usage, per)

    def _complete(self, text: str, params: SamplingParams) -> Completion:
        check = StopCheck(params)
        reason = "eos" if self.eos else "length"
        end = check.stop_end(text)
        if end is not None and end <= params.max_new_tokens:
            text, reason = text[:end], "stop"  # the first stop string ends generation, as on a real backend
        n = len(text) + (reason == "eos")  # the EOS token is generated (and paid for) too
        if n > params.max_new_tokens:
            text, reason, n = text[: params.max_new_tokens], "length", params.max_new_tokens
        tops = [[self.logprob, self.logprob - 1.0][: params.top_logprobs or 0] for _ in range(n)]
        if params.confidence_floor is not None:
            cut = next((i for i in range(check.window, n + 1) if check.aborts(tops[:i])), None)
            if cut is not None and (cut < n or reason == "length"):  # EOS and stop strings win at the same token
                text, reason, n, tops = text[:cut], "abort", cut, tops[:cut]
        ending = check.end(text, reason)
        now = time.perf_counter()
        return Completion(text=ending.text, token_ids=list(range(n)), finish_reason=ending.finish_reason,
                          logprobs=[self.logprob] * n, top_logprobs=tops if params.top_logprobs else [],
                          token_times=[now] * n, stop_string=ending.stop_string)
