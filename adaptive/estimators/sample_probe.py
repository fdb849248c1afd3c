"""Sample probe: p_hat from the confidence of one cheap first sample.

It spends one sample per prompt, then reads how sure the model was while writing it: mean token logprob,
lowest token logprob, DeepConf mean / lowest-group / tail confidence over the `top_logprobs` (adaptive.
confidence; 0 when the sample carries no top-k logprobs), how it finished (eos/stop, length cap, abort)
and log1p(length). A small StandardScaler + LogisticRegression maps them to p_hat.

Contract with the sampling strategy — the sample is not wasted:
  * `first_samples[i]` is a `Completion` for prompts[i] (a list of Completions is accepted; its first
    is used). Given them, the probe makes no backend call.
  * Without them it draws one sample per prompt in ONE `backend.generate` call with `self.params`
    (defaults: 256 new tokens, temperature 0.7, top_logprobs confidence.TOP_LOGPROBS), and keeps them in `last_samples`
    (aligned with the prompts; `last_generation` holds the Generation for its usage). The caller puts
    `last_samples[i]` into `Query.first_samples` so the strategy counts it as its first sample.
    `draw(prompts)` does just the sampling.
The first sample should come from the same sampling settings the strategy uses, or be re-weighted by it.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..backends.base import Completion, Request, SamplingParams
from ..confidence import DEFAULT_TAIL, DEFAULT_WINDOW, TOP_LOGPROBS, lowest_group_confidence, mean_confidence, \
    tail_confidence, token_confidences
from ..errors import InputError
from .base import Estimator, check_batch

FEATURE_NAMES = ("mean_logprob", "min_logprob", "mean_confidence", "lowest_group_confidence", "tail_confidence",
                 "finished", "hit_length", "aborted", "log_n_tokens")
DEFAULT_PARAMS = dict(max_new_tokens=256, temperature=0.7, top_logprobs=TOP_LOGPROBS)


def sample_features(c: Completion, window: int = DEFAULT_WINDOW, tail: int = DEFAULT_TAIL) -> list[float]:
    lps = [float(v) for v in (c.logprobs or []) if v is not None and math.isfinite(float(v))]
    conf = token_confidences(c.top_logprobs or [])
    n = len(c.token_ids) if c.token_ids else len(lps)
    return [sum(lps) / len(lps) if lps else 0.0, min(lps) if lps else 0.0, mean_confidence(conf),
            lowest_group_confidence(conf, window), tail_confidence(conf, tail),
            float(c.finish_reason in ("eos", "stop")), float(c.finish_reason == "length"),
            float(c.finish_reason == "abort"), math.log1p(n)]


def completion_from_dict(d: dict) -> Completion:
    """A Completion from a logged sample dict (text, logprobs, top_logprobs, finish_reason, tokens)."""
    lps = list(d.get("logprobs") or [])
    n = d.get("tokens", d.get("n_tokens", len(lps)))
    return Completion(text=str(d.get("text", "")), token_ids=list(range(int(n))),
                      finish_reason=str(d.get("finish_reason", "eos")), logprobs=lps,
                      top_logprobs=[list(t) for t in (d.get("top_logprobs") or [])])


class SampleProbeEstimator(Estimator):
    kind = "sample_probe"
    needs = "first_sample"
    uses_model = True

    def __init__(self, backend=None, *, max_new_tokens: int = DEFAULT_PARAMS["max_new_tokens"],
                 temperature: float = DEFAULT_PARAMS["temperature"], top_logprobs: int = DEFAULT_PARAMS["top_logprobs"],
                 sample_seed: int | None = None, window: int = DEFAULT_WINDOW, tail: int = DEFAULT_TAIL,
                 raw: bool = False, **kw):
        super().__init__(backend, **kw)
        self.params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature,
                                     top_logprobs=top_logprobs, seed=sample_seed)
        self.window, self.tail, self.raw = int(window), int(tail), bool(raw)
        self.feature_names_ = list(FEATURE_NAMES)
        self.last_samples: list[Completion] = []
        self.last_generation = None
        self.backend_calls = 0

    def draw(self, prompts: Sequence, ledger=None) -> list[Completion]:
        """One sample per prompt, in one backend call (its usage added to `ledger` when one is given);
        also stored in `last_samples`."""
        prompts = list(prompts)
        if not prompts:
            self.last_samples, self.last_generation = [], None
            return []
        if self.backend is None:
            raise InputError("the sample probe needs first samples: pass first_samples= or construct it with backend=")
        gen = self.backend.generate([Request(p, n=1, raw=self.raw) for p in prompts], self.params)
        self.backend_calls += 1
        if ledger is not None:
            ledger.add(gen.usage)
        self.last_generation = gen
        self.last_samples = [cs[0] for cs in gen.completions]
        return list(self.last_samples)

    def features(self, prompts: Sequence, prompt_passes=None, first_samples=None, ledger=None) -> np.ndarray:
        given = check_batch(prompts, first_samples, "first samples")
        if given is None:
            samples = self.draw(prompts, ledger)
        else:
            samples = []
            for i, s in enumerate(given):
                if isinstance(s, (list, tuple)):
                    s = s[0] if s else None
                if isinstance(s, dict):
                    s = completion_from_dict(s)
                if not isinstance(s, Completion):
                    raise InputError(f"first_samples[{i}] must be a Completion, got {type(s).__name__}")
                samples.append(s)
            self.last_samples = samples
        return np.asarray([sample_features(c, self.window, self.tail) for c in samples],
                          dtype=np.float64).reshape(len(samples), len(FEATURE_NAMES))

    def _config(self) -> dict:
        return {"max_new_tokens": self.params.max_new_tokens, "temperature": self.params.temperature,
                "top_logprobs": self.params.top_logprobs, "sample_seed": self.params.seed, "window": self.window,
                "tail": self.tail, "raw": self.raw}
