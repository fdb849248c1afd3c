"""The OpenAI wire format: request bodies for the three routes, and the streamed chunks of both endpoints
read into one per-choice accumulator.

Routes: "chat" (/v1/chat/completions), "chat_prefix" (the same, continuing an assistant message with
`continue_final_message`), "completions" (/v1/completions with a prompt rendered locally).

Streamed chunks: a chat chunk carries `delta.content` and `logprobs.content` (a list of {logprob,
top_logprobs: [{logprob}]}); a completions chunk carries `text` and legacy `logprobs` ({token_logprobs,
top_logprobs: [{token: logprob}]}). A delta may carry several tokens (servers batch them); when logprobs
are on, the number of logprob entries is the number of tokens, otherwise a delta counts as one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..base import PromptLike, SamplingParams
from ..stop import StopCheck
from .capabilities import Capabilities
from .http import Retryable

PATHS = {"chat": "/chat/completions", "chat_prefix": "/chat/completions", "completions": "/completions"}

PieceCallback = Callable[[int, str, float], None]  # (choice index, text piece, time)


def messages(prompt: PromptLike) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]


def request_body(route: str, model: str, params: SamplingParams, caps: Capabilities, *, n: int, seed: int | None,
                 prompt: PromptLike, prefix: str = "", rendered: str | None = None,
                 extra: dict | None = None) -> tuple[str, dict]:
    """(path, body) of one streamed request. `rendered` is the prompt text for the completions route;
    `extra`: server-specific fields sent as given (a thinking budget).
    Raises the capability error when the call needs top-k logprobs the server does not give."""
    body: dict = {"model": model, "max_tokens": params.max_new_tokens, "temperature": params.temperature,
                  "top_p": params.top_p, "stream": True}
    if route == "completions":
        body["prompt"] = rendered
    else:
        msgs = messages(prompt)
        if route == "chat_prefix":
            msgs.append({"role": "assistant", "content": prefix})
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        body["messages"] = msgs
    if caps.stream_options is not False:
        body["stream_options"] = {"include_usage": True}
        if params.confidence_floor is not None and caps.continuous_usage is not False:
            # usage in every chunk: a stream the client cuts (an aborted sample) never reaches the last one
            body["stream_options"]["continuous_usage_stats"] = True
    if n > 1:
        body["n"] = n
    if params.stop:
        body["stop"] = list(params.stop)
    if seed is not None and caps.seed is not False:
        body["seed"] = seed
    if params.top_k > 0:
        body["top_k"] = params.top_k
    if params.ignore_eos:
        body["ignore_eos"] = True
    k = params.top_logprobs
    if caps.logprobs is not False and (k == 0 or caps.top_logprobs is not False):
        if route == "completions":
            body["logprobs"] = k if k > 0 else 1
        else:
            body["logprobs"] = True
            if k > 0:
                body["top_logprobs"] = k
    body.update(extra or {})
    return PATHS[route], body


@dataclass
class Choice:
    """What one streamed choice delivered."""

    pieces: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)  # a reasoning parser's split-off thought (chat deltas)
    times: list[float] = field(default_factory=list)     # one per delta that carried content
    per_delta: list[int] = field(default_factory=list)   # tokens per such delta (logprob entries, else 1)
    logprobs: list[float] = field(default_factory=list)
    tops: list[list[float]] = field(default_factory=list)
    had_logprobs: bool = False
    finish: str | None = None     # the server's finish_reason
    aborted: bool = False         # the client cut the sample (DeepConf online: below the confidence floor)
    stop_reason: object = None    # the stop string the server says matched (vLLM stop_reason, SGLang matched_stop)
    finish_time: float = 0.0

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def ended(self) -> bool:
        return self.aborted or self.finish is not None


def reasoning_piece(ch: dict) -> str:
    """The thought a reasoning parser split off a chat delta: `reasoning` (vLLM >= 0.10), or the older
    `reasoning_content` (vLLM before, DeepSeek's API, SGLang)."""
    d = ch.get("delta") or {}
    return d.get("reasoning") or d.get("reasoning_content") or ""


def _entries(ch: dict, chat: bool) -> tuple[str, list[tuple[float | None, list[float]]]]:
    """(text piece, [(chosen logprob, top-k logprobs)] per token) of one streamed choice chunk."""
    lp = ch.get("logprobs") or None
    if chat:
        piece = (ch.get("delta") or {}).get("content") or ""
        entries = [(e.get("logprob"), [t.get("logprob") for t in e.get("top_logprobs") or []])
                   for e in (lp.get("content") or [])] if lp else []
        return piece, entries
    piece = ch.get("text") or ""
    if not lp or lp.get("token_logprobs") is None:
        return piece, []
    tops = lp.get("top_logprobs") or [None] * len(lp["token_logprobs"])
    return piece, [(v, sorted((t or {}).values(), reverse=True)) for v, t in zip(lp["token_logprobs"], tops)]


class StreamReader:
    """Reads one streamed response (any number of choices) event by event. With a confidence floor, a
    choice whose recent tokens fall below it is cut ("abort") at the end of the delta that crossed it
    (vLLM sends one token per delta); `done` then tells the caller it may stop reading."""

    def __init__(self, chat: bool, n: int, k: int, check: StopCheck, on_piece: PieceCallback | None = None):
        self.chat, self.n, self.k, self.check, self.on_piece = chat, n, k, check, on_piece
        self.choices: dict[int, Choice] = {}
        self.usage: dict | None = None

    def feed(self, ev: dict, now: float) -> None:
        if ev.get("error"):
            raise Retryable(f"error event in stream: {str(ev['error'])[:200]}")
        if ev.get("usage"):
            self.usage = ev["usage"]
        for ch in ev.get("choices") or []:
            i = int(ch.get("index", 0))
            c = self.choices.setdefault(i, Choice())
            if c.aborted:
                continue
            piece, entries = _entries(ch, self.chat)
            thought = reasoning_piece(ch) if self.chat else ""
            if thought:
                c.reasoning.append(thought)
            if entries:
                c.had_logprobs = True
                for v, tops in entries:
                    c.logprobs.append(float(v) if v is not None else float("nan"))
                    c.tops.append([float(x) for x in tops[:self.k]] if self.k else [])
            if piece or entries or thought:
                c.pieces.append(piece)
                c.times.append(now)
                c.per_delta.append(len(entries) or 1)
                if self.on_piece is not None and piece:
                    self.on_piece(i, piece, now)
            if ch.get("finish_reason"):
                c.finish, c.finish_time = ch["finish_reason"], now
                c.stop_reason = ch.get("stop_reason", ch.get("matched_stop"))
            elif entries and self.check.aborts(c.tops):
                c.aborted, c.finish_time = True, now

    @property
    def done(self) -> bool:
        """Every choice is finished and one of them was cut: the rest of the stream is not needed."""
        got = list(self.choices.values())
        return len(got) >= self.n and all(c.ended for c in got) and any(c.aborted for c in got)

    def result(self) -> list[Choice]:
        got = [self.choices[i] for i in sorted(self.choices)]
        if not got or not all(c.ended for c in got):
            raise Retryable("stream ended before every choice finished")
        return got[: self.n]
