"""OpenAIBackend: the Backend protocol over an OpenAI-compatible HTTP server (vLLM, SGLang, llama.cpp,
TGI, `transformers serve`, OpenAI itself).

What it does with a batch of requests:

* Each `Request` becomes one streamed `/v1/chat/completions` call with `n` samples (or `/v1/completions`
  for raw prompts, `endpoint="completions"`, or an assistant prefix the server cannot continue).
  When the server ignores or rejects `n` it falls back to `n` concurrent single-sample calls, each with
  its own seed derived from the plan's seed (so the samples differ but stay reproducible).
* All calls of all requests run concurrently on a private asyncio loop, at most `max_in_flight` at once.
* Streaming (`stream: true`, `stream_options.include_usage`) gives timestamps: `token_times` holds the
  `perf_counter()` at which the content delta carrying each token arrived. A delta may carry several
  tokens (servers batch them); when logprobs are on, each token of the delta gets the delta's time;
  without logprobs a delta counts as one token. Tokens that produce no content (EOS, a stripped stop
  string) get the time of the finishing chunk, so `len(token_times) == n_tokens`.
* Token counts come from the server's `usage` (split across the `n` choices of one call in proportion
  to what each streamed); when the server omits usage they are counted with the local tokenizer and the
  call is marked `counted_locally`. Token *ids* are not sent by servers: `token_ids` holds the local
  tokenizer's ids when their count agrees with the server's, else `-1` placeholders of the right length.
* Timeouts: `connect_timeout_s` to connect, `read_timeout_s` between two reads of a response (default
  `timeout_s`), `timeout_s` for a whole attempt (wall clock: a trickling stream cannot evade it).
* Retries: connection errors, timeouts, 408/409/425/429/5xx and streams cut
  before every choice finished are retried from scratch with exponential backoff and full jitter
  (Retry-After honoured, capped at 60 s). A failed attempt's partial tokens are discarded; only complete
  answers reach strategies. After `max_retries` retries: AdaptiveError naming the URL, status, attempts.
* Finish reasons: the server's `length` -> "length"; `stop` -> "stop" when a stop string matched (the
  server names it as `stop_reason`/`matched_stop`, as vLLM and SGLang do, or left it in the text, as
  `transformers serve` does: the text is cut before it), else "eos". A server that strips the stop
  string and does not say which matched (OpenAI) reports such samples as "eos".
* Capabilities are detected as calls go (or fixed by the constructor): a server that rejects a field
  (HTTP 400/422 naming it) or ignores it is remembered. If a caller needs top-k logprobs and the server
  sends none, CapabilityError("... top_logprobs ...") is raised; empty lists are never returned in
  their place. There are no hidden states: `prompt_pass` raises CapabilityError.
* FLOPs and forward passes are estimates (Kaplan) from the model config when one is available locally
  (`model_config=`, or the tokenizer directory's config.json); otherwise 0: a server does not report them.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .. import timing
from ..errors import AdaptiveError, CapabilityError, InputError
from .base import CallUsage, Completion, Generation, PromptLike, PromptPassBatch, Request, SamplingParams, check_prompt
from .openai_http import (LoopThread, Rejected, Retryable, RETRY_STATUSES, ServerStats, backoff_s, httpx,
                          retry_after_s, sse_events)

log = logging.getLogger(__name__)

TokenCallback = Callable[[int, int, int, float], None]  # (request index, sample index, token id, time)
TextCallback = Callable[[int, int, str, float], None]   # (request index, sample index, text piece, time)

_SEED_MIX = 1_000_003  # per-sample seeds when n is split: (seed * _SEED_MIX + j) mod 2^31, no cross-wave collisions
# Optional request fields a server may refuse; order matters when matching an error text (longest first).
_OPTIONAL_FIELDS = ("continue_final_message", "add_generation_prompt", "stream_options", "top_logprobs",
                    "ignore_eos", "logprobs", "top_k", "seed", "n")


def _names_field(text: str, name: str) -> bool:
    if name == "n":  # a bare letter: only a quoted mention counts
        return bool(re.search(r"""['"`]n['"`]""", text))
    return bool(re.search(rf"\b{re.escape(name)}\b", text))


def _text_of(prompt: PromptLike) -> str:
    return prompt if isinstance(prompt, str) else "\n".join(str(m["content"]) for m in prompt)


@dataclass
class _Choice:
    """What one streamed choice delivered."""

    pieces: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)     # one per delta that carried content
    per_delta: list[int] = field(default_factory=list)   # tokens per such delta (logprob entries, else 1)
    logprobs: list[float] = field(default_factory=list)
    tops: list[list[float]] = field(default_factory=list)
    had_logprobs: bool = False
    finish: str | None = None
    stop_reason: object = None
    finish_time: float = 0.0

    @property
    def text(self) -> str:
        return "".join(self.pieces)


@dataclass
class _Job:
    req: int                  # request index
    first_sample: int         # sample slot of the job's first choice
    n: int
    seed: int | None


@dataclass
class _JobResult:
    job: _Job
    choices: list[_Choice]
    usage: dict | None
    prompt_ids: list[int] | None


class OpenAIBackend:
    """Backend over an OpenAI-compatible server. See the module docstring for the behaviour."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, endpoint: str = "chat",
                 max_in_flight: int = 8, timeout_s: float = 60.0, max_retries: int = 4, backoff_base_s: float = 0.25,
                 tokenizer=None, supports_n: bool | None = None, context_window: int | None = None, *,
                 supports_prefix: bool | None = None, supports_logprobs: bool | None = None,
                 supports_ignore_eos: bool | None = None, model_config=None, model_id: str | None = None,
                 connect_timeout_s: float = 10.0, read_timeout_s: float | None = None, headers: dict | None = None):
        if endpoint not in ("chat", "completions"):
            raise InputError(f"endpoint={endpoint!r}: must be 'chat' or 'completions'")
        for name, v, lo in (("max_in_flight", max_in_flight, 1), ("max_retries", max_retries, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise InputError(f"{name}={v!r}: must be an integer >= {lo}")
        for name, v in (("timeout_s", timeout_s), ("connect_timeout_s", connect_timeout_s),
                        ("read_timeout_s", timeout_s if read_timeout_s is None else read_timeout_s)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise InputError(f"{name}={v!r}: must be > 0")
        if not base_url or not isinstance(base_url, str):
            raise InputError("base_url is required (e.g. http://127.0.0.1:8000/v1)")
        url = base_url.rstrip("/")
        self.base_url = url if re.search(r"/v\d+$", url) else url + "/v1"
        self.model = model
        self.model_id = model_id or f"openai:{model}"
        self.api_key = api_key
        self.endpoint = endpoint
        self.max_in_flight, self.timeout_s, self.max_retries = max_in_flight, float(timeout_s), max_retries
        self.backoff_base_s, self.connect_timeout_s = float(backoff_base_s), float(connect_timeout_s)
        self.read_timeout_s = float(timeout_s if read_timeout_s is None else read_timeout_s)
        self.extra_headers = dict(headers or {})
        self.tokenizer = self._load_tokenizer(tokenizer)
        # Detected-or-configured server features; None = not known yet (tried, then remembered).
        self.supports_n, self.supports_prefix = supports_n, supports_prefix
        self.supports_logprobs, self.supports_ignore_eos = supports_logprobs, supports_ignore_eos
        self.supports_top_logprobs: bool | None = supports_logprobs if supports_logprobs is False else None
        self.supports_stream_options: bool | None = None
        self.supports_seed: bool | None = None
        self.flops_spec = self._flops_spec(model_config, tokenizer)
        self.context_window = int(context_window) if context_window else self._guess_context_window(model_config)
        self.stats = ServerStats()
        self.totals = CallUsage(model_calls=0)
        self._rng = random.Random()
        self._loop: LoopThread | None = None
        self._client = None
        self._sem: asyncio.Semaphore | None = None

    # -- setup ---------------------------------------------------------------------------------
    @staticmethod
    def _load_tokenizer(tokenizer):
        if not (isinstance(tokenizer, (str, bytes)) or hasattr(tokenizer, "__fspath__")):
            return tokenizer  # None, or a tokenizer object
        from transformers import AutoTokenizer

        from .hf.hub import resolve_model

        src = resolve_model(os.fsdecode(tokenizer), role="tokenizer")
        return AutoTokenizer.from_pretrained(src.ref, **src.kwargs)

    def _flops_spec(self, model_config, tokenizer):
        from ..metrics.flops import model_flops_spec

        cfg = model_config
        try:
            if cfg is None and (isinstance(tokenizer, (str, bytes)) or hasattr(tokenizer, "__fspath__")):
                from pathlib import Path

                if (Path(str(tokenizer)) / "config.json").is_file():
                    cfg = str(tokenizer)
            if isinstance(cfg, (str, bytes)) or hasattr(cfg, "__fspath__"):
                from transformers import AutoConfig

                from .hf.hub import resolve_model

                src = resolve_model(os.fsdecode(cfg), role="model config")
                cfg = AutoConfig.from_pretrained(src.ref, **src.kwargs)
            self._config = cfg
            return model_flops_spec(cfg) if cfg is not None else None
        except Exception as e:  # a config we cannot read only costs the FLOPs estimate
            log.warning("no FLOPs estimate for %s: %s", self.model, e)
            self._config = None
            return None

    def _guess_context_window(self, model_config) -> int:
        cfg = getattr(self, "_config", None)
        n = getattr(cfg, "max_position_embeddings", None) if cfg is not None else None
        if not n and self.tokenizer is not None:
            m = getattr(self.tokenizer, "model_max_length", None)
            n = m if isinstance(m, int) and m < 10**7 else None
        # Unknown: not checked locally; the server answers an over-long prompt with a 400 (-> InputError).
        return int(n) if n else 2**31 - 1

    def _ensure_loop(self) -> LoopThread:
        if self._loop is None:
            self._loop = LoopThread()
        return self._loop

    async def _client_(self):
        if self._client is None:
            headers = {"Accept": "text/event-stream", **self.extra_headers}
            if self.api_key:
                headers["Authorization"] = f"Bearer {self.api_key}"
            limits = httpx.Limits(max_connections=self.max_in_flight, max_keepalive_connections=self.max_in_flight)
            timeout = httpx.Timeout(self.timeout_s, connect=min(self.connect_timeout_s, self.timeout_s),
                                    read=min(self.read_timeout_s, self.timeout_s))
            self._client = httpx.AsyncClient(headers=headers, timeout=timeout, limits=limits, trust_env=False)
            self._sem = asyncio.Semaphore(self.max_in_flight)
        return self._client

    def close(self) -> None:
        """Close the HTTP client and stop the loop thread (also done at interpreter exit)."""
        if self._loop is None:
            return
        if self._client is not None:
            try:
                self._loop.run(self._client.aclose())
            except Exception:  # pragma: no cover
                pass
            self._client = None
        self._loop.close()
        self._loop = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    # -- protocol ------------------------------------------------------------------------------
    def settings(self) -> dict:
        """The server and the model it serves, and what shapes the prompts it gets (the endpoint, and the
        local tokenizer that renders chat prompts when the server cannot continue a prefix)."""
        tok = self.tokenizer
        return {"kind": "openai", "base_url": self.base_url, "model": self.model, "endpoint": self.endpoint,
                "tokenizer": getattr(tok, "name_or_path", type(tok).__name__) if tok is not None else None}

    def capabilities(self) -> set[str]:
        caps = {"timestamps"}
        if self.supports_logprobs is not False:
            caps.add("logprobs")
        if self.supports_top_logprobs is not False and self.supports_logprobs is not False:
            caps.add("top_logprobs")
        if self.supports_prefix is not False or self._can_render():
            caps.add("prefix")
        return caps

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is None:
            raise CapabilityError("OpenAIBackend.count_tokens needs a local tokenizer: pass tokenizer= "
                                  "(a Hugging Face tokenizer name or path)")
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def prompt_pass(self, prompts: Sequence[PromptLike], raw: bool = False) -> PromptPassBatch:
        raise CapabilityError("an OpenAI-compatible server gives no hidden states; hidden-state estimators "
                              "(probe) need the HF backend (backend kind: hf)")

    @property
    def stats_dict(self) -> dict:
        return self.stats.as_dict()

    def _can_render(self) -> bool:
        return self.tokenizer is not None and bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, prompt: PromptLike, prefix: str = "", raw: bool = False) -> str:
        """Prompt text for /v1/completions: the local chat template (unless raw) plus the prefix."""
        if raw or self.tokenizer is None or not getattr(self.tokenizer, "chat_template", None):
            if not isinstance(prompt, str):
                raise InputError("chat messages on the completions endpoint need a local tokenizer with a chat "
                                 "template (tokenizer=); or pass a string prompt with raw=True")
            return prompt + prefix
        msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        return self.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False) + prefix

    # -- request bodies ------------------------------------------------------------------------
    def _route(self, r: Request) -> str:
        """'chat', 'chat_prefix' or 'completions' for this request, given what the server supports."""
        if r.raw or self.endpoint == "completions":
            return "completions"
        if not r.prefix:
            return "chat"
        if self.supports_prefix is not False:
            return "chat_prefix"
        if self._can_render():
            return "completions"
        raise CapabilityError("this server cannot continue an assistant 'prefix' (continue_final_message was "
                              "refused) and no local tokenizer with a chat template was given to render the prompt "
                              "for /v1/completions: pass tokenizer=, or use the HF backend")

    def _body(self, r: Request, route: str, params: SamplingParams, n: int, seed: int | None) -> tuple[str, dict]:
        body: dict = {"model": self.model, "max_tokens": params.max_new_tokens, "temperature": params.temperature,
                      "top_p": params.top_p, "stream": True}
        if route == "completions":
            path = "/completions"
            body["prompt"] = self.render(r.prompt, r.prefix, r.raw)
        else:
            path = "/chat/completions"
            msgs = [{"role": "user", "content": r.prompt}] if isinstance(r.prompt, str) else [dict(m) for m in r.prompt]
            if route == "chat_prefix":
                msgs.append({"role": "assistant", "content": r.prefix})
                body["continue_final_message"] = True
                body["add_generation_prompt"] = False
            body["messages"] = msgs
        if self.supports_stream_options is not False:
            body["stream_options"] = {"include_usage": True}
        if n > 1:
            body["n"] = n
        if params.stop:
            body["stop"] = list(params.stop)
        if seed is not None and self.supports_seed is not False:
            body["seed"] = seed
        if params.top_k > 0:
            body["top_k"] = params.top_k
        if params.ignore_eos:
            if self.supports_ignore_eos is False:
                raise CapabilityError("this server does not support 'ignore_eos' (fixed-length decoding)")
            body["ignore_eos"] = True
        k = params.top_logprobs
        if self.supports_logprobs is not False and (k == 0 or self.supports_top_logprobs is not False):
            if route == "completions":
                body["logprobs"] = k if k > 0 else 1
            else:
                body["logprobs"] = True
                if k > 0:
                    body["top_logprobs"] = k
        elif k > 0:
            raise self._no_top_logprobs()
        return path, body

    def _no_top_logprobs(self) -> CapabilityError:
        return CapabilityError(f"server {self.base_url} returns no top_logprobs (top-k candidate logprobs), which "
                               "the confidence stopping rule / verifier needs; use a server that supports "
                               "'logprobs' + 'top_logprobs' (e.g. vLLM) or the HF backend")

    # -- one HTTP request with retries ---------------------------------------------------------
    async def _attempt(self, path: str, body: dict, on_piece) -> tuple[list[_Choice], dict | None]:
        client = await self._client_()
        url = self.base_url + path
        choices: dict[int, _Choice] = {}
        usage = None
        k = body.get("top_logprobs") or (body.get("logprobs") if path == "/completions" else 0) or 0
        async with client.stream("POST", url, json=body) as resp:
            if resp.status_code != 200:
                text = (await resp.aread()).decode("utf-8", "replace")
                if resp.status_code in RETRY_STATUSES:
                    raise Retryable(f"HTTP {resp.status_code}: {text[:200]}", resp.status_code,
                                    retry_after_s(resp.headers.get("retry-after")))
                raise Rejected(resp.status_code, text)
            async for ev in sse_events(resp):
                now = time.perf_counter()
                if not isinstance(ev, dict):
                    continue
                if ev.get("error"):
                    raise Retryable(f"error event in stream: {str(ev['error'])[:200]}")
                if ev.get("usage"):
                    usage = ev["usage"]
                for ch in ev.get("choices") or []:
                    c = choices.setdefault(int(ch.get("index", 0)), _Choice())
                    if path == "/completions":
                        piece = ch.get("text") or ""
                        lp = ch.get("logprobs") or None
                        entries = []
                        if lp and lp.get("token_logprobs") is not None:
                            tops = lp.get("top_logprobs") or [None] * len(lp["token_logprobs"])
                            entries = [(v, sorted((t or {}).values(), reverse=True)) for v, t in
                                       zip(lp["token_logprobs"], tops)]
                    else:
                        piece = (ch.get("delta") or {}).get("content") or ""
                        lp = ch.get("logprobs") or None
                        entries = [(e.get("logprob"), [t.get("logprob") for t in e.get("top_logprobs") or []])
                                   for e in (lp.get("content") or [])] if lp else []
                    if entries:
                        c.had_logprobs = True
                        for v, tops in entries:
                            c.logprobs.append(float(v) if v is not None else float("nan"))
                            c.tops.append([float(x) for x in tops[:k]] if k else [])
                    if piece or entries:
                        c.pieces.append(piece)
                        c.times.append(now)
                        c.per_delta.append(len(entries) or 1)
                        if on_piece is not None and piece:
                            on_piece(int(ch.get("index", 0)), piece, now)
                    if ch.get("finish_reason"):
                        c.finish = ch["finish_reason"]
                        c.finish_time = now
                        c.stop_reason = ch.get("stop_reason", ch.get("matched_stop"))
        want = body.get("n", 1)
        got = [choices[i] for i in sorted(choices)]
        if not got or any(c.finish is None for c in got):
            raise Retryable("stream ended before every choice finished")
        if len(got) > want:
            got = got[:want]
        return got, usage

    async def _post(self, path: str, body: dict, on_piece) -> tuple[list[_Choice], dict | None]:
        st = self.stats
        st.requests += 1
        url = self.base_url + path
        last: str = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                st.retried += 1
            st.attempted += 1
            wait = None
            async with self._sem:
                st.in_flight += 1
                st.max_in_flight_seen = max(st.max_in_flight_seen, st.in_flight)
                try:
                    # A wall-clock bound per attempt too: httpx's timeouts are per read, a trickling stream evades them.
                    result = await asyncio.wait_for(self._attempt(path, body, on_piece), self.timeout_s)
                    st.succeeded += 1
                    return result
                except Rejected:
                    raise  # counted as failed by the caller unless it can adapt (drop a refused field)
                except Retryable as e:
                    last, wait = e.what, e.retry_after
                except asyncio.TimeoutError:
                    last = f"attempt timed out after {self.timeout_s:g} s"
                except httpx.ConnectTimeout:
                    last = f"connect timed out after {min(self.connect_timeout_s, self.timeout_s):g} s"
                except httpx.ReadTimeout:
                    last = f"no data for {min(self.read_timeout_s, self.timeout_s):g} s (read timeout)"
                except httpx.TimeoutException as e:
                    last = f"timed out: {type(e).__name__}"
                except (httpx.TransportError, httpx.StreamError, ValueError) as e:  # ValueError: bad JSON in stream
                    last = f"{type(e).__name__}: {e}"
                finally:
                    st.in_flight -= 1
            st.discarded_samples += body.get("n", 1)
            if attempt < self.max_retries:
                await asyncio.sleep(wait if wait is not None else backoff_s(attempt, self.backoff_base_s, rng=self._rng))
        st.failed += 1
        raise AdaptiveError(f"OpenAI-compatible server {url} failed after {self.max_retries + 1} attempts "
                            f"({self.max_retries} retries); last error: {last}")

    # -- a request's samples -------------------------------------------------------------------
    def _seed_for(self, params: SamplingParams, j: int, split: bool) -> int | None:
        if params.seed is None:
            return None
        return (params.seed * _SEED_MIX + j) % (2**31) if split else params.seed

    async def _run_request(self, i: int, r: Request, params: SamplingParams, on_piece) -> list[_JobResult]:
        split = r.n > 1 and self.supports_n is False
        if r.n == 1 or split:
            jobs = [_Job(i, j, 1, self._seed_for(params, j, split)) for j in range(r.n)]
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._run_job(job, r, params, on_piece)) for job in jobs]
            return [x for t in tasks for x in t.result()]
        return await self._run_job(_Job(i, 0, r.n, self._seed_for(params, 0, False)), r, params, on_piece)

    async def _run_job(self, job: _Job, r: Request, params: SamplingParams, on_piece) -> list[_JobResult]:
        while True:
            route = self._route(r)
            path, body = self._body(r, route, params, job.n, job.seed)
            cb = None if on_piece is None else (lambda idx, piece, t: on_piece(job.req, job.first_sample + idx, piece, t))
            try:
                choices, usage = await self._post(path, body, cb)
            except Rejected as e:
                try:
                    self._learn(e, body, params, path)  # raises unless a field can be dropped; then try again
                except Exception:
                    self.stats.failed += 1
                    raise
                if job.n > 1 and self.supports_n is False:
                    return await self._split(job, r, params, on_piece)
                continue
            break
        if params.top_logprobs > 0 and not all(c.had_logprobs and all(c.tops) for c in choices if c.pieces):
            self.supports_top_logprobs = False
            raise self._no_top_logprobs()
        if any(c.pieces for c in choices):
            has = any(c.had_logprobs for c in choices)
            if self.supports_logprobs is None and "logprobs" in body:
                self.supports_logprobs = True if has else None  # absent once may be an empty answer; keep trying
            if params.top_logprobs > 0:
                self.supports_top_logprobs = True
        prompt_ids = None
        out = [_JobResult(job, choices, usage, prompt_ids)]
        if job.n > 1 and len(choices) < job.n:
            # The server ignored `n`: remember, and draw the missing samples as separate calls.
            if self.supports_n is None:
                self.supports_n = False
            rest = _Job(job.req, job.first_sample + len(choices), job.n - len(choices), job.seed)
            out += await self._split(rest, r, params, on_piece, offset=len(choices))
        elif job.n > 1 and self.supports_n is None:
            self.supports_n = True
        return out

    async def _split(self, job: _Job, r: Request, params: SamplingParams, on_piece, offset: int = 0):
        seeds = [self._seed_for(params, offset + j, True) for j in range(job.n)]
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(self._run_job(_Job(job.req, job.first_sample + j, 1, s), r, params, on_piece))
                     for j, s in enumerate(seeds)]
        return [x for t in tasks for x in t.result()]

    def _learn(self, e: Rejected, body: dict, params: SamplingParams, path: str) -> None:
        """A 400/422 naming a field we sent: remember the server lacks it and drop it, or raise."""
        url = self.base_url + path
        if e.status in (400, 413, 422) and re.search(r"context|too long|maximum.*length|max_model_len", e.text, re.I) \
                and not any(_names_field(e.text, f) for f in _OPTIONAL_FIELDS if f in body):
            raise InputError(f"{url} rejected the prompt as too long (HTTP {e.status}): {e.text[:300]}") from None
        named = [f for f in _OPTIONAL_FIELDS if f in body and _names_field(e.text, f)] if e.status in (400, 422) else []
        if not named:
            raise AdaptiveError(f"OpenAI-compatible server {url} rejected the request (HTTP {e.status}): "
                                f"{e.text[:500]}") from None
        f = named[0]
        log.info("server %s does not accept %r; adapting", self.base_url, f)
        if f in ("continue_final_message", "add_generation_prompt"):
            self.supports_prefix = False
        elif f == "stream_options":
            self.supports_stream_options = False
        elif f == "top_logprobs" or (f == "logprobs" and params.top_logprobs > 0):
            self.supports_top_logprobs = False
            if f == "logprobs":
                self.supports_logprobs = False
            raise self._no_top_logprobs() from None
        elif f == "logprobs":
            self.supports_logprobs = False
        elif f == "seed":
            self.supports_seed = False
            log.warning("server %s refuses 'seed': samples are not reproducible", self.base_url)
        elif f == "n":
            self.supports_n = False
        elif f == "top_k":
            raise CapabilityError(f"server {self.base_url} does not accept 'top_k' (top_k={params.top_k}); "
                                  "use top_k=0 with this server") from None
        elif f == "ignore_eos":
            self.supports_ignore_eos = False
            raise CapabilityError(f"server {self.base_url} does not support 'ignore_eos'") from None

    # -- generate ------------------------------------------------------------------------------
    def generate(self, requests: Sequence[Request], params: SamplingParams, *, hidden_states: bool = False,
                 on_token: TokenCallback | None = None, on_text: TextCallback | None = None) -> Generation:
        """Sample each request's `n` completions (concurrently); a synchronous call from any thread.

        `on_text(request, sample, piece, time)` receives streamed text as it arrives; `on_token` receives
        (request, sample, token id, time) with ids from the local tokenizer (needs tokenizer=). Both may see
        the tokens of an attempt that later fails and is retried from scratch (the returned completions never do).
        """
        if hidden_states:
            raise CapabilityError("an OpenAI-compatible server gives no hidden states; hidden-state estimators "
                                  "(probe) need the HF backend")
        if not requests:
            return Generation([], [], [], CallUsage(model_calls=0))
        for r in requests:
            check_prompt(r.prompt)
            self._route(r)  # raises CapabilityError now if a prefix cannot be served
        if on_token is not None and self.tokenizer is None:
            raise CapabilityError("on_token needs token ids: pass tokenizer= to OpenAIBackend, or use on_text")
        on_piece = self._piece_callback(on_token, on_text)
        with timing.phase(timing.BACKEND):
            t0 = time.perf_counter()
            loop = self._ensure_loop()
            results = loop.run(self._run_all(requests, params, on_piece))
            return self._assemble(requests, params, results, t0)

    def _piece_callback(self, on_token, on_text):
        if on_token is None and on_text is None:
            return None
        tok = self.tokenizer

        def cb(req, sample, piece, t):
            if on_text is not None:
                on_text(req, sample, piece, t)
            if on_token is not None:
                for tid in tok(piece, add_special_tokens=False).input_ids:
                    on_token(req, sample, tid, t)
        return cb

    async def _run_all(self, requests, params, on_piece) -> list[list[_JobResult]]:
        await self._client_()
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._run_request(i, r, params, on_piece)) for i, r in enumerate(requests)]
        except BaseExceptionGroup as eg:  # surface the first real error, not the group
            first = eg.exceptions[0]
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        return [t.result() for t in tasks]

    # -- results -------------------------------------------------------------------------------
    def _finish(self, c: _Choice, params: SamplingParams) -> tuple[str, str, str | None, bool]:
        """(text, finish_reason, matched stop string, stop string still in the streamed text)."""
        text = c.text
        hits = [(text.find(s), s) for s in params.stop if s in text]
        if hits:  # the server left the stop string in the text (transformers serve): cut before it
            at, s = min(hits)
            return text[:at], "stop", s, True
        if c.finish == "length":
            return text, "length", None, False
        if isinstance(c.stop_reason, str) and c.stop_reason in params.stop:
            return text, "stop", c.stop_reason, False
        return text, "eos", None, False

    def _local_count(self, text: str) -> int:
        if self.tokenizer is None:
            raise AdaptiveError(f"server {self.base_url} returned no token usage and no local tokenizer was given "
                                "to count tokens: pass tokenizer= (a Hugging Face tokenizer name or path)")
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _prompt_count(self, r: Request, route: str) -> int:
        if route == "completions" or self._can_render():
            return self._local_count(self.render(r.prompt, r.prefix, r.raw))
        return self._local_count(_text_of(r.prompt) + r.prefix)

    def _assemble(self, requests, params: SamplingParams, results: list[list[_JobResult]], t0: float) -> Generation:
        wall = time.perf_counter() - t0
        completions: list[list[Completion]] = []
        per: list[CallUsage] = []
        prompt_tokens: list[int] = []
        for r, jobs in zip(requests, results):
            slots: dict[int, Completion] = {}
            local = False
            p_tokens, cached = None, 0
            for jr in sorted(jobs, key=lambda x: x.job.first_sample):
                fins = [self._finish(c, params) for c in jr.choices]
                u = jr.usage
                if u and u.get("completion_tokens") is not None:
                    counts = self._split_usage(int(u["completion_tokens"]), jr.choices)
                else:
                    local = True
                    counts = [self._local_count(c.text + ("" if kept or m is None else m)) + (reason == "eos")
                              for c, (_, reason, m, kept) in zip(jr.choices, fins)]
                if p_tokens is None:  # each prompt is counted once per call, as on the HF backend
                    if u and u.get("prompt_tokens") is not None:
                        p_tokens = int(u["prompt_tokens"])
                        cached = int(((u.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
                    else:
                        local = True
                        p_tokens = self._prompt_count(r, self._route(r))
                for j, (c, (text, reason, matched, _), n_tok) in enumerate(zip(jr.choices, fins, counts)):
                    slots[jr.job.first_sample + j] = self._completion(c, text, reason, matched, n_tok)
            comps = [slots[j] for j in sorted(slots)]
            if len(comps) != r.n:  # never happens: every job either completes all its samples or raises
                raise AdaptiveError(f"internal: request got {len(comps)} samples, expected {r.n}")
            completions.append(comps)
            p_tokens = p_tokens or 0
            prompt_tokens.append(p_tokens)
            u = CallUsage(prompt_tokens=p_tokens, cached_prompt_tokens=min(cached, p_tokens),
                          generated_tokens=sum(c.n_tokens for c in comps), samples=r.n, wall_s=wall, started=t0,
                          counted_locally=local)
            if self.flops_spec is not None:
                from ..metrics.flops import decode_flops, prefill_flops

                s = self.flops_spec
                nl, d, N = s.n_layers, s.d_attn, s.n_params_non_embedding
                u.flops = prefill_flops(N, nl, d, p_tokens - u.cached_prompt_tokens, past_len=u.cached_prompt_tokens) \
                    + sum(decode_flops(N, nl, d, p_tokens, max(c.n_tokens - 1, 0)) for c in comps)
                u.forward_passes = max((c.n_tokens for c in comps), default=0)
            if timing.enabled():
                u.times = self._split_times(jobs, t0, wall)
            per.append(u)
        usage = CallUsage(started=t0, wall_s=wall, counted_locally=any(u.counted_locally for u in per))
        for f in ("prompt_tokens", "cached_prompt_tokens", "samples", "generated_tokens", "flops"):
            setattr(usage, f, sum(getattr(u, f) for u in per))
        usage.forward_passes = max((u.forward_passes for u in per), default=0)  # requests run concurrently
        self.totals.add(usage)
        return Generation(completions, [None] * len(requests), prompt_tokens, usage, per)

    @staticmethod
    def _split_times(jobs, t0: float, wall: float) -> dict[str, float]:
        """Client-side view of one request: until its first token arrives counts as prefill (the server's
        own queueing is inside it; a client cannot see it), first to last token as decode, the rest of
        the call (other requests still streaming) as queue."""
        firsts = [c.times[0] for jr in jobs for c in jr.choices if c.times]
        lasts = [max(c.times[-1] if c.times else t0, c.finish_time or t0) for jr in jobs for c in jr.choices]
        if not firsts:
            return {"prefill": wall}
        first, last = min(firsts) - t0, min(max(lasts) - t0, wall)
        return {"prefill": first, "decode": max(last - first, 0.0), "queue": max(wall - last, 0.0)}

    @staticmethod
    def _split_usage(total: int, choices: list[_Choice]) -> list[int]:
        """Split one call's completion_tokens over its choices in proportion to what each streamed."""
        if len(choices) == 1:
            return [total]
        est = [max(sum(c.per_delta), 1) for c in choices]
        s = sum(est)
        raw = [total * e / s for e in est]
        out = [math.floor(x) for x in raw]
        for i in sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)[: total - sum(out)]:
            out[i] += 1
        return out

    def _completion(self, c: _Choice, text: str, reason: str, matched: str | None, n_tok: int) -> Completion:
        times: list[float] = []
        for t, k in zip(c.times, c.per_delta):
            times += [t] * k
        if len(times) < n_tok:  # tokens that streamed no content (EOS, a stripped stop string)
            times += [c.finish_time or (times[-1] if times else time.perf_counter())] * (n_tok - len(times))
        times = times[:n_tok]
        ids = [-1] * n_tok
        if self.tokenizer is not None:
            full = self.tokenizer(c.text, add_special_tokens=False).input_ids
            eos = self.tokenizer.eos_token_id
            if reason == "eos" and isinstance(eos, int):
                full = full + [eos]
            if len(full) == n_tok:
                ids = full
        return Completion(text=text, token_ids=ids, finish_reason=reason, logprobs=list(c.logprobs),
                          top_logprobs=list(c.tops) if any(c.tops) else [], token_times=times,
                          stop_string=matched)
