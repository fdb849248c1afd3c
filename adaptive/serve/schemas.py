"""The wire format: OpenAI request bodies in, OpenAI responses and stream chunks out.

Requests. `/v1/chat/completions` takes `messages` (string content, or a list of text parts); `/v1/completions`
takes one `prompt` string, sent without a chat template. OpenAI fields that map onto the plan:
`max_tokens` (or `max_completion_tokens`) -> max_new_tokens, `temperature`, `top_p`, `seed`; `n` > 1 -> the
sample budget (max_samples: the request asks for n samples, and gets one choice, the decided answer;
the samples are listed in `adaptive.samples`; n = 1, which many clients send by default, leaves the
policy's budget: ask for one sample with adaptive.max_samples = 1); `stop` -> stop strings. The extra body field `adaptive`
may hold `budget` (the policy's budget, as in `AdaptiveGenerator.generate(budget=)`), `policy` (a name from
the allow-list the server was started with) and any Plan field (`max_samples`, `stopping`, `wave_size`,
`strategy`, ...). These override the policy's plan; the server's load governor may then lower
max_samples, never raise it. Fields the server cannot honour (tools, logprobs, response_format other than
text, ...) and unknown fields are 400s naming the field.

Errors are ApiError: {"error": {"message", "type", "param", "code"}} with an HTTP status.
"""
from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field, fields
from typing import Any

from ..plan import Plan

PLAN_FIELDS = {f.name for f in fields(Plan)}
# OpenAI fields accepted and ignored (they change nothing here, or only for the caller).
IGNORED = {"user", "metadata", "store", "parallel_tool_calls", "service_tier", "stream_options", "logit_bias",
           "frequency_penalty", "presence_penalty", "response_format", "tool_choice", "logprobs", "top_logprobs",
           "echo", "best_of", "suffix", "reasoning_effort", "modalities", "prediction", "audio", "web_search_options"}
COMMON = {"model", "stream", "stream_options", "max_tokens", "temperature", "top_p", "seed", "n", "stop",
          "adaptive"}
CHAT_FIELDS = COMMON | {"messages", "max_completion_tokens", "tools", "functions", "function_call"} | IGNORED
COMPLETION_FIELDS = COMMON | {"prompt"} | IGNORED
ROLES = ("system", "developer", "user", "assistant")
ADAPTIVE_KEYS = {"budget", "policy"}


class ApiError(Exception):
    """An error answer: HTTP status and OpenAI's error body. `headers` go on the response (Retry-After)."""

    TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
             413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 502: "upstream_error",
             503: "server_error", 504: "timeout_error"}

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = dict(headers or {})

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.TYPES.get(self.status, "server_error"),
                          "param": self.param, "code": self.code}}


def bad(message: str, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, param, code)


@dataclass
class ServeRequest:
    """One validated request: what to answer and how the caller wants it planned."""

    endpoint: str                    # "chat" | "completions"
    prompt: Any                      # chat messages (list of dicts) or a raw prompt string
    raw: bool                        # completions: no chat template
    stream: bool = False
    include_usage: bool = False
    policy: str | None = None        # allow-listed policy name; None = the server's default
    budget: int | None = None        # the policy's budget
    overrides: dict = field(default_factory=dict)  # Plan fields set by the request
    stop: tuple[str, ...] = ()
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])
    created: int = field(default_factory=lambda: int(time.time()))


def _int(body: dict, key: str, lo: int, hi: int | None = None, param: str | None = None) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    p = param or key
    if isinstance(v, bool) or not isinstance(v, int):
        raise bad(f"'{p}' must be an integer, got {v!r}", p)
    if v < lo or (hi is not None and v > hi):
        raise bad(f"'{p}'={v}: must be in [{lo}, {hi}]" if hi is not None else f"'{p}'={v}: must be >= {lo}", p)
    return v


def _num(body: dict, key: str, lo: float, hi: float, low_open: bool = False) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise bad(f"'{key}' must be a number, got {v!r}", key)
    if (v <= lo if low_open else v < lo) or v > hi:
        raise bad(f"'{key}'={v}: must be in {'(' if low_open else '['}{lo:g}, {hi:g}]", key)
    return float(v)


def _messages(raw) -> list[dict]:
    if not isinstance(raw, list) or not raw:
        raise bad("'messages' must be a non-empty list of {role, content}", "messages")
    out = []
    for i, m in enumerate(raw):
        p = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(f"'{p}' must be an object with 'role' and 'content'", p)
        role = m.get("role")
        if role not in ROLES:
            raise bad(f"'{p}.role'={role!r}: one of {', '.join(ROLES)}", f"{p}.role")
        content = m.get("content")
        if isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                    raise bad(f"'{p}.content[{j}]': only text parts are supported, got {kind!r}",
                              f"{p}.content[{j}]", "unsupported_content")
                texts.append(part["text"])
            content = "".join(texts)
        if not isinstance(content, str):
            raise bad(f"'{p}.content' must be a string or a list of text parts", f"{p}.content")
        out.append({"role": "system" if role == "developer" else role, "content": content})
    if not any(m["content"].strip() for m in out):
        raise bad("every message is empty", "messages", "empty_prompt")
    if out[-1]["role"] == "assistant":
        raise bad("the last message must not be the assistant's: continuing an assistant message is not supported",
                  f"messages[{len(out) - 1}].role")
    return out


def _stop(v) -> tuple[str, ...]:
    if v is None:
        return ()
    stops = [v] if isinstance(v, str) else v
    if not isinstance(stops, list) or len(stops) > 4 or any(not isinstance(s, str) or not s for s in stops):
        raise bad("'stop' must be a non-empty string or a list of at most 4 non-empty strings", "stop")
    return tuple(stops)


def _refuse(body: dict, endpoint: str) -> None:
    """Fields that would change the answer in ways this server does not do: a 400, never silently ignored."""
    allowed = CHAT_FIELDS if endpoint == "chat" else COMPLETION_FIELDS
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad(f"unrecognized request argument: {unknown[0]!r}", unknown[0], "unknown_parameter")
    for key in ("tools", "functions", "function_call"):
        if body.get(key):
            raise bad(f"'{key}' is not supported by this server (no tool calls)", key, "unsupported_parameter")
    if body.get("logprobs") or body.get("top_logprobs") or body.get("echo") or body.get("suffix"):
        key = next(k for k in ("logprobs", "top_logprobs", "echo", "suffix") if body.get(k))
        raise bad(f"'{key}' is not supported by this server", key, "unsupported_parameter")
    rf = body.get("response_format")
    if rf is not None and not (isinstance(rf, dict) and rf.get("type") == "text"):
        raise bad("'response_format': only {\"type\": \"text\"} is supported", "response_format",
                  "unsupported_parameter")
    if body.get("best_of") not in (None, 1):
        raise bad("'best_of' is not supported; use 'n' (the sample budget) or adaptive.strategy", "best_of",
                  "unsupported_parameter")
    for key in ("frequency_penalty", "presence_penalty"):
        if body.get(key) not in (None, 0, 0.0):
            raise bad(f"'{key}' is not supported by this server (only 0)", key, "unsupported_parameter")
    if body.get("logit_bias"):
        raise bad("'logit_bias' is not supported by this server", "logit_bias", "unsupported_parameter")


def parse_request(body, endpoint: str, *, model_name: str, policies, max_budget: int, max_tokens: int) -> ServeRequest:
    """Validate an OpenAI request body; ApiError (400/404) naming the field on anything wrong."""
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object", None, "invalid_json")
    _refuse(body, endpoint)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("'model' is required", "model", "missing_parameter")
    if model != model_name:
        raise ApiError(404, f"the model {model!r} does not exist; this server serves {model_name!r}", "model",
                       "model_not_found")
    if endpoint == "chat":
        if "messages" not in body:
            raise bad("'messages' is required", "messages", "missing_parameter")
        prompt, raw = _messages(body["messages"]), False
    else:
        p = body.get("prompt")
        if isinstance(p, list) and len(p) == 1 and isinstance(p[0], str):
            p = p[0]
        if not isinstance(p, str):
            raise bad("'prompt' must be one string (token-id prompts and prompt lists are not supported)", "prompt")
        if not p.strip():
            raise bad("'prompt' is empty", "prompt", "empty_prompt")
        prompt, raw = p, True
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("'stream' must be true or false", "stream")
    so = body.get("stream_options")
    if so is not None and (not isinstance(so, dict) or set(so) - {"include_usage", "continuous_usage_stats"}):
        raise bad("'stream_options' must be an object with 'include_usage'", "stream_options")
    if so and not stream:
        raise bad("'stream_options' is only allowed with 'stream': true", "stream_options")
    include_usage = bool((so or {}).get("include_usage", False))

    overrides: dict = {}
    mt = _int(body, "max_completion_tokens", 1, max_tokens) if endpoint == "chat" else None
    mt = _int(body, "max_tokens", 1, max_tokens) if mt is None else mt
    if mt is not None:
        overrides["max_new_tokens"] = mt
    for key, lo, hi, open_ in (("temperature", 0.0, 2.0, False), ("top_p", 0.0, 1.0, True)):
        v = _num(body, key, lo, hi, open_)
        if v is not None:
            overrides[key] = v
    seed = _int(body, "seed", 0)
    if seed is not None:
        overrides["seed"] = seed
    n = _int(body, "n", 1, max_budget)
    if n is not None and n > 1:  # n = 1 is what many clients send by default: it leaves the policy's budget
        overrides["max_samples"] = n

    policy, budget = None, None
    ad = body.get("adaptive")
    if ad is not None:
        if not isinstance(ad, dict):
            raise bad("'adaptive' must be an object: {budget, policy, <Plan fields>}", "adaptive")
        unknown = sorted(set(ad) - ADAPTIVE_KEYS - PLAN_FIELDS)
        if unknown:
            raise bad(f"'adaptive.{unknown[0]}': unknown; accepted: budget, policy, and the Plan fields "
                      f"{', '.join(sorted(PLAN_FIELDS))}", f"adaptive.{unknown[0]}", "unknown_parameter")
        policy = ad.get("policy")
        if policy is not None and policy not in policies:
            raise bad(f"'adaptive.policy'={policy!r}: not allowed here; allowed: {', '.join(sorted(policies))}",
                      "adaptive.policy")
        budget = _int(ad, "budget", 1, max_budget, "adaptive.budget")
        for k in sorted(set(ad) & PLAN_FIELDS):
            overrides[k] = ad[k]
        if "max_samples" in ad and n is not None and n > 1 and ad["max_samples"] != n:
            raise bad(f"'n'={n} and 'adaptive.max_samples'={ad['max_samples']!r} disagree; give one",
                      "adaptive.max_samples")
        ms = overrides.get("max_samples")
        if isinstance(ms, int) and not isinstance(ms, bool) and ms > max_budget:
            raise bad(f"'adaptive.max_samples'={ms}: above this server's per-request budget of {max_budget}",
                      "adaptive.max_samples")
        mnt = overrides.get("max_new_tokens")
        if isinstance(mnt, int) and not isinstance(mnt, bool) and mnt > max_tokens:
            raise bad(f"'adaptive.max_new_tokens'={mnt}: above this server's limit of {max_tokens}",
                      "adaptive.max_new_tokens")
    return ServeRequest(endpoint=endpoint, prompt=prompt, raw=raw, stream=stream, include_usage=include_usage,
                        policy=policy, budget=budget, overrides=overrides, stop=_stop(body.get("stop")))


# -- responses --------------------------------------------------------------------------------------
FINISH = {"eos": "stop", "stop": "stop", "length": "length", "abort": "stop"}


def finish_reason(result) -> str:
    """OpenAI's finish_reason of the delivered answer (the chosen sample's)."""
    for s in result.samples:
        if s.text == result.text:
            return FINISH.get(s.finish_reason, "stop")
    return "stop"


def usage(result) -> dict:
    """Every token the request spent: all samples, estimator and verifier calls; the prompt once per call."""
    c = result.compute
    out = {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.generated_tokens,
           "total_tokens": c.prompt_tokens + c.generated_tokens}
    if c.cached_prompt_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": c.cached_prompt_tokens}
    return out


def adaptive_object(result, req: ServeRequest, load: dict | None) -> dict:
    d = result.difficulty
    return {
        "request_id": req.id,
        "answer": result.answer,
        "difficulty": None if d is None else {"p_hat": d.p_hat, "bin": d.bin, "estimator": d.estimator},
        "policy": result.decision.get("policy"),
        "plan": result.decision.get("plan") or result.plan.summary(),
        "reason": result.decision.get("reason"),
        "load": load,
        "samples": [{"answer": s.answer, "tokens": s.tokens, "finish_reason": s.finish_reason, "kept": s.kept,
                     **({"score": s.score} if s.score is not None else {})} for s in result.samples],
        "votes": result.votes,
        "stop_reason": result.stop_reason,
        "compute": result.compute.to_dict(),
    }


def response(result, req: ServeRequest, model: str, load: dict | None) -> dict:
    """The whole (non-streamed) answer."""
    if req.endpoint == "chat":
        choice = {"index": 0, "message": {"role": "assistant", "content": result.text},
                  "finish_reason": finish_reason(result), "logprobs": None}
        obj, prefix = "chat.completion", "chatcmpl-"
    else:
        choice = {"index": 0, "text": result.text, "finish_reason": finish_reason(result), "logprobs": None}
        obj, prefix = "text_completion", "cmpl-"
    return {"id": prefix + req.id, "object": obj, "created": req.created, "model": model, "choices": [choice],
            "usage": usage(result), "adaptive": adaptive_object(result, req, load)}


class Chunks:
    """Stream chunks of one request: the first (role), text deltas, the last (finish_reason and the
    `adaptive` object), and the usage chunk when the caller asked for it."""

    def __init__(self, req: ServeRequest, model: str):
        self.req, self.model = req, model
        chat = req.endpoint == "chat"
        self.base = {"id": ("chatcmpl-" if chat else "cmpl-") + req.id,
                     "object": "chat.completion.chunk" if chat else "text_completion",
                     "created": req.created, "model": model}

    def _chunk(self, choice: dict | None, **extra) -> dict:
        out = {**self.base, "choices": [choice] if choice is not None else []}
        if self.req.include_usage:
            out["usage"] = None
        out.update(extra)
        return out

    def first(self) -> dict | None:
        if self.req.endpoint != "chat":
            return None
        return self._chunk({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                            "logprobs": None})

    def delta(self, text: str) -> dict:
        if self.req.endpoint == "chat":
            return self._chunk({"index": 0, "delta": {"content": text}, "finish_reason": None, "logprobs": None})
        return self._chunk({"index": 0, "text": text, "finish_reason": None, "logprobs": None})

    def last(self, result, load: dict | None) -> list[dict]:
        fin = finish_reason(result)
        choice = ({"index": 0, "delta": {}, "finish_reason": fin, "logprobs": None} if self.req.endpoint == "chat"
                  else {"index": 0, "text": "", "finish_reason": fin, "logprobs": None})
        out = [self._chunk(choice, adaptive=adaptive_object(result, self.req, load))]
        if self.req.include_usage:
            out.append({**self.base, "choices": [], "usage": usage(result)})
        return out
