"""OpenAIBackend: the Backend protocol over an OpenAI-compatible HTTP server (vLLM, SGLang, llama.cpp,
TGI, `transformers serve`, OpenAI itself).

What it does with a batch of requests:

* Each `Request` becomes one streamed `/v1/chat/completions` call with `n` samples (or `/v1/completions`
  for raw prompts, `endpoint="completions"`, or an assistant prefix the server cannot continue).
  Sample j of a request is seeded `seed + j`, as vLLM seeds choice j of an n-request: when the server
  ignores or rejects `n` (vLLM rejects it at temperature 0), or a confidence floor may cut samples one by
  one, the request becomes n concurrent single-sample calls with those seeds, and the samples are the same.
* All calls of all requests run concurrently on a private asyncio loop, at most `max_in_flight` at once.
* Streaming (`stream: true`, `stream_options.include_usage`) gives timestamps: `token_times` holds the
  `perf_counter()` at which the content delta carrying each token arrived. A delta may carry several
  tokens (servers batch them); when logprobs are on, each token of the delta gets the delta's time;
  without logprobs a delta counts as one token. Tokens that produce no content (EOS, a stripped stop
  string) get the time of the finishing chunk, so `len(token_times) == n_tokens`.
* DeepConf online (`confidence_floor`): a sample whose last `confidence_window` tokens' mean confidence
  falls below the floor is cut by closing its stream (the server stops generating it): finish "abort".
* Token counts come from the server's `usage` (split across the `n` choices of one call in proportion
  to what each streamed; an aborted sample's tokens are its logprob entries); prompt tokens the server
  served from its prefix cache (`usage.prompt_tokens_details.cached_tokens`) are `cached_prompt_tokens`
  and cost no prefill FLOPs. When the server omits usage, tokens are counted with the local tokenizer and
  the call is marked `counted_locally`. Token *ids* are not sent by servers: `token_ids` holds the local
  tokenizer's ids when their count agrees with the server's, else `-1` placeholders of the right length.
* Timeouts: `connect_timeout_s` to connect, `read_timeout_s` between two reads of a response (default
  `timeout_s`), `timeout_s` for a whole attempt (wall clock: a trickling stream cannot evade it).
* Retries (http.Session): connection errors, timeouts, 408/409/425/429/5xx and
  streams cut before every choice finished are retried from scratch with exponential backoff and full
  jitter (Retry-After honoured, capped at 60 s). A failed attempt's partial tokens are discarded; only
  complete answers reach strategies. After `max_retries` retries: AdaptiveError naming the URL and the
  last error. The defaults give up on a host that accepts no connection within 30 s.
* Finish reasons (stop.StopCheck): the server's `length` -> "length"; `stop` -> "stop" when a stop string
  matched (the server names it as `stop_reason`/`matched_stop`, as vLLM and SGLang do, or left it in the
  text, as `transformers serve` does: the text is cut before it), else "eos". A server that strips the
  stop string and does not say which matched (OpenAI) reports such samples as "eos".
* Capabilities (capabilities.py) are detected as calls go or fixed by the constructor. If a caller needs
  top-k logprobs and the server sends none, CapabilityError("... top_logprobs ...") is raised; empty lists
  are never returned in their place. There are no hidden states: `prompt_pass` raises CapabilityError.
* FLOPs and forward passes are estimates (Kaplan) from the model config when one is available locally
  (`model_config=`, or the tokenizer directory's config.json); otherwise 0: a server does not report them.
* `close()` (or `with`, or garbage collection, or interpreter exit) closes the connections and the loop thread.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ... import timing
from ...errors import AdaptiveError, CapabilityError, InputError
from ..base import CallUsage, Completion, Generation, PromptLike, PromptPassBatch, Request, SamplingParams, check_prompt
from ..config import SERVER_THINKING_BUDGET_FIELDS, OpenAIBackendConfig
from ..stop import Ending, StopCheck
from .capabilities import Capabilities
from .http import Rejected, Session
from .wire import Choice, StreamReader, request_body

log = logging.getLogger(__name__)

TokenCallback = Callable[[int, int, int, float], None]  # (request index, sample index, token id, time)
TextCallback = Callable[[int, int, str, float], None]   # (request index, sample index, text piece, time)


def _text_of(prompt: PromptLike) -> str:
    return prompt if isinstance(prompt, str) else "\n".join(str(m["content"]) for m in prompt)


def _is_path(x) -> bool:
    return isinstance(x, (str, bytes)) or hasattr(x, "__fspath__")


@dataclass
class _Job:
    """One HTTP request: `n` samples of request `req`, filling sample slots first_sample.. of it."""

    req: int
    first_sample: int
    n: int


@dataclass
class _JobResult:
    job: _Job
    choices: list[Choice]
    usage: dict | None


# The defaults have one home: the backend section of configs (adaptive/backends/config.py).
_D = OpenAIBackendConfig()


class OpenAIBackend:
    """Backend over an OpenAI-compatible server. See the module docstring for the behaviour."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, endpoint: str = _D.endpoint,
                 max_in_flight: int = _D.max_in_flight, timeout_s: float = _D.timeout_s,
                 max_retries: int = _D.max_retries, backoff_base_s: float = _D.backoff_base_s,
                 tokenizer=None, supports_n: bool | None = None, context_window: int | None = None, *,
                 supports_prefix: bool | None = None, supports_logprobs: bool | None = None,
                 supports_ignore_eos: bool | None = None, model_config=None, model_id: str | None = None,
                 connect_timeout_s: float = _D.connect_timeout_s, read_timeout_s: float | None = _D.read_timeout_s,
                 headers: dict | None = None, server_thinking_budget: str | None = _D.server_thinking_budget):
        if endpoint not in ("chat", "completions"):
            raise InputError(f"endpoint={endpoint!r}: must be 'chat' or 'completions'")
        for name, v, lo in (("max_in_flight", max_in_flight, 1), ("max_retries", max_retries, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise InputError(f"{name}={v!r}: must be an integer >= {lo}")
        for name, v in (("timeout_s", timeout_s), ("connect_timeout_s", connect_timeout_s),
                        ("read_timeout_s", timeout_s if read_timeout_s is None else read_timeout_s)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise InputError(f"{name}={v!r}: must be > 0")
        if server_thinking_budget is not None and server_thinking_budget not in SERVER_THINKING_BUDGET_FIELDS:
            raise InputError(f"server_thinking_budget={server_thinking_budget!r}: must be None or one of "
                             f"{', '.join(SERVER_THINKING_BUDGET_FIELDS)}")
        if not base_url or not isinstance(base_url, str):
            raise InputError("base_url is required (e.g. http://127.0.0.1:8000/v1)")
        url = base_url.rstrip("/")
        self.base_url = url if re.search(r"/v\d+$", url) else url + "/v1"
        self.model = model
        self.model_id = model_id or model
        self.endpoint = endpoint
        self.server_thinking_budget = server_thinking_budget
        self.tokenizer = self._load_tokenizer(tokenizer)
        self.caps = Capabilities(n=supports_n, prefix=supports_prefix, logprobs=supports_logprobs,
                                 top_logprobs=False if supports_logprobs is False else None,
                                 ignore_eos=supports_ignore_eos)
        self.flops_spec, self._config = self._flops_spec(model_config, tokenizer)
        self.context_window = int(context_window) if context_window else self._guess_context_window()
        headers = {"Accept": "text/event-stream", **(headers or {})}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.session = Session(self.base_url, headers=headers, timeout_s=float(timeout_s),
                               connect_timeout_s=float(connect_timeout_s),
                               read_timeout_s=None if read_timeout_s is None else float(read_timeout_s),
                               max_in_flight=max_in_flight,
                               max_retries=max_retries, backoff_base_s=float(backoff_base_s))
        # Closes the session when this backend is collected or at interpreter exit, whichever comes first;
        # it holds the session, never the backend.
        self._closer = weakref.finalize(self, self.session.close)
        self.totals = CallUsage(model_calls=0)

    # -- setup ---------------------------------------------------------------------------------
    @staticmethod
    def _load_tokenizer(tokenizer):
        if not _is_path(tokenizer):
            return tokenizer  # None, or a tokenizer object
        from transformers import AutoTokenizer

        from ..hf.hub import resolve_model

        src = resolve_model(os.fsdecode(tokenizer), role="tokenizer")
        return AutoTokenizer.from_pretrained(src.ref, **src.kwargs)

    def _flops_spec(self, model_config, tokenizer):
        """(FLOPs spec, model config) from `model_config` or the tokenizer directory's config.json."""
        from ...metrics.flops import model_flops_spec

        cfg = model_config
        if cfg is None and _is_path(tokenizer) and (Path(str(tokenizer)) / "config.json").is_file():
            cfg = str(tokenizer)
        try:
            if _is_path(cfg):
                from transformers import AutoConfig

                from ..hf.hub import resolve_model

                src = resolve_model(os.fsdecode(cfg), role="model config")
                cfg = AutoConfig.from_pretrained(src.ref, **src.kwargs)
            return (model_flops_spec(cfg) if cfg is not None else None), cfg
        except Exception as e:  # a config we cannot read only costs the FLOPs estimate
            log.warning("no FLOPs estimate for %s: %s", self.model, e)
            return None, None

    def _guess_context_window(self) -> int:
        n = getattr(self._config, "max_position_embeddings", None) if self._config is not None else None
        if not n and self.tokenizer is not None:
            m = getattr(self.tokenizer, "model_max_length", None)
            n = m if isinstance(m, int) and m < 10**7 else None
        # Unknown: not checked locally; the server answers an over-long prompt with a 400 (-> InputError).
        return int(n) if n else 2**31 - 1

    @property
    def stats(self):
        return self.session.stats

    @property
    def max_in_flight(self) -> int:
        return self.session.max_in_flight

    def close(self) -> None:
        """Close the HTTP client and stop the loop thread (also done when collected and at interpreter exit)."""
        self._closer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- protocol ------------------------------------------------------------------------------
    def settings(self) -> dict:
        """The server and the model it serves, and what shapes the prompts it gets (the endpoint, and the
        local tokenizer that renders chat prompts when the server cannot continue a prefix)."""
        tok = self.tokenizer
        return {"kind": "openai", "base_url": self.base_url, "model": self.model, "endpoint": self.endpoint,
                "tokenizer": getattr(tok, "name_or_path", type(tok).__name__) if tok is not None else None}

    def capabilities(self) -> set[str]:
        caps = {"timestamps"}
        if self.caps.logprobs is not False:
            caps.add("logprobs")
            if self.caps.top_logprobs is not False:
                caps.add("top_logprobs")
        if self.caps.prefix is not False or self._can_render():
            caps.add("prefix")
        if self.server_thinking_budget is not None:
            caps.add("server_thinking_budget")  # generate_thinking(); opt-in (server_thinking_budget=)
        return caps

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is None:
            raise CapabilityError("OpenAIBackend.count_tokens needs a local tokenizer: pass tokenizer= "
                                  "(a Hugging Face tokenizer name or path)")
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def prompt_pass(self, prompts: Sequence[PromptLike], raw: bool = False) -> PromptPassBatch:
        raise CapabilityError("an OpenAI-compatible server gives no hidden states; hidden-state estimators "
                              "(probe) need the HF backend (backend kind: hf)")

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

    def _route(self, r: Request) -> str:
        """'chat', 'chat_prefix' or 'completions' for this request, given what the server supports."""
        if r.raw or self.endpoint == "completions":
            return "completions"
        if not r.prefix:
            return "chat"
        if self.caps.prefix is not False:
            return "chat_prefix"
        if self._can_render():
            return "completions"
        raise CapabilityError("this server cannot continue an assistant 'prefix' (continue_final_message was "
                              "refused) and no local tokenizer with a chat template was given to render the prompt "
                              "for /v1/completions: pass tokenizer=, or use the HF backend")

    def _check_params(self, params: SamplingParams) -> None:
        """Refuse at once what the server is known not to serve."""
        if params.top_logprobs > 0 and (self.caps.logprobs is False or self.caps.top_logprobs is False):
            raise self.caps.no_top_logprobs(self.base_url)
        if params.ignore_eos and self.caps.ignore_eos is False:
            raise CapabilityError("this server does not support 'ignore_eos' (fixed-length decoding)")

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
        return self._generate(requests, params, on_token, on_text)

    def generate_thinking(self, requests: Sequence[Request], params: SamplingParams, *, budget: int,
                          close: str) -> Generation:
        """Each request's samples with the server's own thinking budget: `budget` goes in the request field
        `server_thinking_budget` names (vLLM: thinking_token_budget), and the server forces its end-of-thinking
        string once a sample has thought that many tokens. A sample's text is thought + answer as one string:
        where a reasoning parser split the thought off (`reasoning` / `reasoning_content`), it is joined back
        as thought + `close` + content, so callers split every sample the same way. A server that refuses
        the field raises (AdaptiveError with its message): there is no fallback."""
        if self.server_thinking_budget is None:
            raise CapabilityError("generate_thinking needs server_thinking_budget= (the request field the "
                                  f"server reads, one of {', '.join(SERVER_THINKING_BUDGET_FIELDS)})")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
            raise InputError(f"budget={budget!r}: must be an integer >= 0")
        return self._generate(requests, params, None, None, extra={self.server_thinking_budget: budget}, close=close)

    def _generate(self, requests, params, on_token, on_text, extra: dict | None = None,
                  close: str | None = None) -> Generation:
        if not requests:
            return Generation([], [], [], CallUsage(model_calls=0))
        for r in requests:
            check_prompt(r.prompt)
            self._route(r)  # raises CapabilityError now if a prefix cannot be served
        self._check_params(params)
        if on_token is not None and self.tokenizer is None:
            raise CapabilityError("on_token needs token ids: pass tokenizer= to OpenAIBackend, or use on_text")
        on_piece = self._piece_callback(on_token, on_text)
        with timing.phase(timing.BACKEND):
            t0 = time.perf_counter()
            results = self.session.run(self._run_all(requests, params, on_piece, extra))
            return self._assemble(requests, params, results, t0, close)

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

    async def _run_all(self, requests, params, on_piece, extra=None) -> list[list[_JobResult]]:
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._run_job(_Job(i, 0, r.n), r, params, on_piece, extra))
                         for i, r in enumerate(requests)]
        except BaseExceptionGroup as eg:  # surface the first real error, not the group
            first = eg.exceptions[0]
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        return [t.result() for t in tasks]

    # -- a request's samples -------------------------------------------------------------------
    def _splits(self, n: int, params: SamplingParams) -> bool:
        """Draw `n` samples as single-sample calls: the server cannot do n here, or a sample may be cut
        (closing a stream would cut every sample in it)."""
        return n > 1 and (self.caps.splits(n, params.temperature) or params.confidence_floor is not None)

    @staticmethod
    def _seed(params: SamplingParams, job: _Job) -> int | None:
        # Sample slot j is seeded seed + j, as vLLM seeds choice j of an n-request with seed + j.
        return None if params.seed is None else params.seed + job.first_sample

    async def _split(self, job: _Job, r: Request, params: SamplingParams, on_piece, extra=None) -> list[_JobResult]:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(self._run_job(_Job(job.req, job.first_sample + j, 1), r, params, on_piece,
                                                  extra))
                     for j in range(job.n)]
        return [x for t in tasks for x in t.result()]

    async def _run_job(self, job: _Job, r: Request, params: SamplingParams, on_piece,
                       extra: dict | None = None) -> list[_JobResult]:
        if self._splits(job.n, params):
            return await self._split(job, r, params, on_piece, extra)
        while True:
            route = self._route(r)
            rendered = self.render(r.prompt, r.prefix, r.raw) if route == "completions" else None
            path, body = request_body(route, self.model, params, self.caps, n=job.n, seed=self._seed(params, job),
                                      prompt=r.prompt, prefix=r.prefix, rendered=rendered, extra=extra)
            try:
                choices, usage = await self.session.post(path, body, self._reader(job, route, params, on_piece))
            except Rejected as e:
                try:  # raises unless the server lacks something we can do without; then try again
                    self.caps.learn(e, body, params, self.base_url + path, self.base_url)
                except Exception:
                    self.stats.failed += 1
                    raise
                if self._splits(job.n, params):
                    return await self._split(job, r, params, on_piece, extra)
                continue
            break
        self._learn_from_answer(choices, body, params)
        out = [_JobResult(job, choices, usage)]
        if job.n > 1 and len(choices) < job.n:
            # The server ignored `n`: remember, and draw the missing samples as separate calls.
            if self.caps.n is None:
                self.caps.n = False
            rest = _Job(job.req, job.first_sample + len(choices), job.n - len(choices))
            out += await self._split(rest, r, params, on_piece, extra)
        elif job.n > 1:
            self.caps.n = True if self.caps.n is None else self.caps.n
            if params.temperature == 0 and self.caps.greedy_n is None:
                self.caps.greedy_n = True
        return out

    def _reader(self, job: _Job, route: str, params: SamplingParams, on_piece):
        cb = None if on_piece is None else (lambda idx, piece, t: on_piece(job.req, job.first_sample + idx, piece, t))
        check = StopCheck(params)

        async def consume(events):
            reader = StreamReader(route != "completions", job.n, params.top_logprobs, check, cb)
            async for ev in events:
                if isinstance(ev, dict):
                    reader.feed(ev, time.perf_counter())
                if reader.done:  # an aborted sample: stop reading (closing the stream stops the server)
                    await events.aclose()
                    break
            return reader.result(), reader.usage
        return consume

    def _learn_from_answer(self, choices: list[Choice], body: dict, params: SamplingParams) -> None:
        if body.get("continue_final_message"):
            self.caps.prefix = True
        if params.top_logprobs > 0 and not all(c.had_logprobs and all(c.tops) for c in choices if c.pieces):
            self.caps.top_logprobs = False
            raise self.caps.no_top_logprobs(self.base_url)
        if any(c.pieces for c in choices):
            has = any(c.had_logprobs for c in choices)
            if self.caps.logprobs is None and "logprobs" in body:
                self.caps.logprobs = True if has else None  # absent once may be an empty answer; keep trying
            if params.top_logprobs > 0:
                self.caps.top_logprobs = True

    # -- results -------------------------------------------------------------------------------
    @staticmethod
    def _ending(c: Choice, check: StopCheck) -> Ending:
        if c.aborted:
            return check.end(c.text, "abort")
        if c.finish == "length":
            return check.end(c.text, "length")
        return check.end(c.text, "stop", c.stop_reason if isinstance(c.stop_reason, str) else None)

    def _local_count(self, text: str) -> int:
        if self.tokenizer is None:
            raise AdaptiveError(f"server {self.base_url} returned no token usage and no local tokenizer was given "
                                "to count tokens: pass tokenizer= (a Hugging Face tokenizer name or path)")
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _prompt_count(self, r: Request, route: str) -> int:
        if route == "completions" or self._can_render():
            return self._local_count(self.render(r.prompt, r.prefix, r.raw))
        return self._local_count(_text_of(r.prompt) + r.prefix)

    def _token_counts(self, jr: _JobResult, ends: list[Ending]) -> tuple[list[int], bool]:
        """Generated tokens per choice of one HTTP request, and whether they were counted locally."""
        u = jr.usage or {}
        if any(c.aborted for c in jr.choices):  # one choice per such request (see _splits); tokens = its entries
            return [len(c.logprobs) for c in jr.choices], False
        if u.get("completion_tokens") is not None:
            return self._split_usage(int(u["completion_tokens"]), jr.choices), False
        counts = []
        for c, e in zip(jr.choices, ends):
            stripped = "" if e.stop_string is None or e.stop_string in c.text else e.stop_string
            counts.append(self._local_count("".join(c.reasoning) + c.text + stripped) + (e.finish_reason == "eos"))
        return counts, True

    def _assemble(self, requests, params: SamplingParams, results: list[list[_JobResult]], t0: float,
                  close: str | None = None) -> Generation:
        wall = time.perf_counter() - t0
        check = StopCheck(params)
        completions: list[list[Completion]] = []
        per: list[CallUsage] = []
        prompt_tokens: list[int] = []
        for r, jobs in zip(requests, results):
            slots: dict[int, Completion] = {}
            local = False
            p_tokens, cached = None, 0
            for jr in sorted(jobs, key=lambda x: x.job.first_sample):
                ends = [self._ending(c, check) for c in jr.choices]
                counts, counted_here = self._token_counts(jr, ends)
                local = local or counted_here
                u = jr.usage or {}
                if p_tokens is None and u.get("prompt_tokens") is not None:
                    # each prompt is counted once per call, as on the HF backend
                    p_tokens = int(u["prompt_tokens"])
                    cached = int(((u.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
                for j, (c, e, n_tok) in enumerate(zip(jr.choices, ends, counts)):
                    slots[jr.job.first_sample + j] = self._completion(c, e, n_tok, close)
            if p_tokens is None:  # no answer of this request carried usage
                local = True
                p_tokens = self._prompt_count(r, self._route(r))
            comps = [slots[j] for j in sorted(slots)]
            if len(comps) != r.n:  # never happens: every job either completes all its samples or raises
                raise AdaptiveError(f"internal: request got {len(comps)} samples, expected {r.n}")
            completions.append(comps)
            prompt_tokens.append(p_tokens)
            u = CallUsage(prompt_tokens=p_tokens, cached_prompt_tokens=min(cached, p_tokens),
                          generated_tokens=sum(c.n_tokens for c in comps), samples=r.n, wall_s=wall, started=t0,
                          counted_locally=local)
            if self.flops_spec is not None:
                from ...metrics.flops import decode_flops, prefill_flops

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
    def _split_usage(total: int, choices: list[Choice]) -> list[int]:
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

    def _completion(self, c: Choice, end: Ending, n_tok: int, close: str | None = None) -> Completion:
        times: list[float] = []
        for t, k in zip(c.times, c.per_delta):
            times += [t] * k
        if len(times) < n_tok:  # tokens that streamed no content (EOS, a stripped stop string)
            times += [c.finish_time or (times[-1] if times else time.perf_counter())] * (n_tok - len(times))
        times = times[:n_tok]
        # generate_thinking: a thought a reasoning parser split off goes back in front of the content.
        joined = bool(c.reasoning) and close is not None
        text = "".join(c.reasoning) + close + end.text if joined else end.text
        ids = [-1] * n_tok
        if self.tokenizer is not None:
            full = self.tokenizer(text if joined else c.text, add_special_tokens=False).input_ids
            eos = self.tokenizer.eos_token_id
            if end.finish_reason == "eos" and isinstance(eos, int):
                full = full + [eos]
            if len(full) == n_tok:
                ids = full
        return Completion(text=text, token_ids=ids, finish_reason=end.finish_reason, logprobs=list(c.logprobs),
                          top_logprobs=list(c.tops) if any(c.tops) else [], token_times=times,
                          stop_string=end.stop_string)
