"""A small OpenAI-compatible server for tests: pure asyncio, one thread, 127.0.0.1, port 0.

Implements POST /v1/chat/completions and /v1/completions with streaming SSE (chunked), `n`, stop strings
(stripped and named in `stop_reason`, as vLLM does; or kept in the text with `stop_style="keep"`, as
`transformers serve` does), logprobs/top_logprobs, usage, `max_tokens`, `continue_final_message`, and
GET /v1/models. "Tokens" are whitespace-led words. The answer to a prompt comes from `script(prompt_text,
prefix, sample_index, seed)`; by default it answers "What is A + B?" with "The answer is A+B." . As vLLM
does, choice i of a seeded n-request gets seed + i, and n > 1 at temperature 0 is refused with HTTP 400
"n must be 1 when using greedy sampling, got N." (`greedy_n=True` serves it instead).

Feature switches: support_n, greedy_n, support_logprobs, usage (send usage or not), support_prefix, strict
(reject unknown fields with 422, like `transformers serve`), prompt_cache (report
`usage.prompt_tokens_details.cached_tokens` as vLLM with --enable-prompt-tokens-details: a prompt seen
before is served from cache in whole `cache_block`s, its last token never). `stream_options.
continuous_usage_stats` puts usage in every chunk. `disconnects` counts streams the client closed early.
Thinking budget (`thinking_budget=True`): the request field `thinking_token_budget` is honoured as vLLM
does with --reasoning-config: inside a thought (the prefix opened `think_open` and did not close it), once
the thought holds that many words the rest of it is replaced by `forced_end` and the script is asked again
for what follows (prefix + thought + forced_end). `reasoning_field="reasoning"` (or "reasoning_content")
streams the thought in that delta field and drops the end delimiter from the text, as a vLLM reasoning
parser does. Without `thinking_budget` the field is ignored, or refused with vLLM's HTTP 400
(`refuse_thinking_budget`).
`WordTokenizer` counts tokens as the server does, for a client that needs a local tokenizer.
Fault injection: `faults = {"kind": k, "times": t}`
makes each distinct request body fail its first t attempts with kind in drop (close the connection with
no answer), hang (sleep `hang_s` before answering), 500, 429 (Retry-After: `retry_after`), cut (stream
half the tokens, then close the connection mid-chunk); `times=None` fails forever.
"""
from __future__ import annotations

import asyncio
import json
import re
import threading
import time

WORD = re.compile(r"\s*\S+")
KNOWN_FIELDS = {"model", "messages", "prompt", "max_tokens", "temperature", "top_p", "stream", "stream_options",
                "n", "stop", "seed", "logprobs", "top_logprobs"}


class WordTokenizer:
    """A local tokenizer that agrees with the fake server: one id per whitespace-led word."""

    eos_token_id = None
    name_or_path = "fake-words"

    def __call__(self, text, add_special_tokens=False):
        class Encoded:
            input_ids = list(range(len(WORD.findall(text))))
        return Encoded()


def default_script(prompt: str, prefix: str, i: int, seed) -> str:
    m = re.search(r"(\d+)\s*\+\s*(\d+)", prompt)
    if m:
        return f"The answer is {int(m.group(1)) + int(m.group(2))}."
    return f"Sample {i} says hello world."


class FakeOpenAIServer:
    def __init__(self, script=default_script, *, support_n=True, greedy_n=False, support_logprobs=True, usage=True,
                 support_prefix=True, strict=False, stop_style="vllm", token_delay_s=0.0, tokens_per_delta=1,
                 faults=None, hang_s=5.0, retry_after="0.05", model="fake-model", prompt_cache=False,
                 cache_block=4, thinking_budget=False, think_open="<think>", think_close="</think>",
                 forced_end=" </think>", reasoning_field=None, refuse_thinking_budget=False):
        self.script, self.model = script, model
        self.support_n, self.greedy_n, self.support_logprobs, self.usage = support_n, greedy_n, support_logprobs, usage
        self.prompt_cache, self.cache_block = prompt_cache, cache_block
        self.thinking_budget, self.think_open, self.think_close = thinking_budget, think_open, think_close
        self.forced_end, self.reasoning_field = forced_end, reasoning_field
        self.refuse_thinking_budget = refuse_thinking_budget
        self._cached_prompts: set[str] = set()
        self.disconnects = 0  # streams the client closed before their end (e.g. an aborted sample)
        self.support_prefix, self.strict, self.stop_style = support_prefix, strict, stop_style
        self.token_delay_s, self.tokens_per_delta = token_delay_s, tokens_per_delta
        self.faults, self.hang_s, self.retry_after = faults, hang_s, retry_after
        self.requests: list[dict] = []        # every body received
        self.completed: list[dict] = []       # bodies whose response was sent in full
        self.completed_tokens: list[int] = []  # usage.completion_tokens of each of those, in the same order
        self.fault_count = 0
        self.completion_tokens_sent = 0       # sum of usage.completion_tokens over complete responses
        self.paths: list[str] = []
        self.active = 0
        self.max_active = 0
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True, name="fake-openai")
        self.port = None

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self):
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _main(self):
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()
        self._loop.close()

    def _stop(self):
        self._server.close()
        tasks = list(asyncio.all_tasks(self._loop))
        for t in tasks:
            t.cancel()

        async def drain():
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        self._loop.create_task(drain())

    # -- HTTP ------------------------------------------------------------------------------------
    async def _handle(self, reader, writer):
        try:
            while True:  # keep-alive: several requests per connection
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers = {}
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    k, v = h.decode().split(":", 1)
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                keep = await self._route(method, path, body, writer)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def _send(self, writer, status: int, obj, extra: dict | None = None):
        data = json.dumps(obj).encode()
        head = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {len(data)}"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()

    async def _route(self, method, path, raw, writer) -> bool:
        if method == "GET" and path.rstrip("/") == "/v1/models":
            await self._send(writer, 200, {"object": "list", "data": [{"id": self.model, "object": "model"}]})
            return True
        if method != "POST" or path not in ("/v1/chat/completions", "/v1/completions"):
            await self._send(writer, 404, {"error": {"message": f"no route {path}"}})
            return True
        body = json.loads(raw)
        with self._lock:
            self.requests.append(body)
            self.paths.append(path)
        if self.strict:
            extra = set(body) - KNOWN_FIELDS
            if extra:
                await self._send(writer, 422, {"detail": f"Unexpected fields in the request: {extra}"})
                return True
        elif not self.support_prefix and body.get("continue_final_message"):
            await self._send(writer, 400, {"error": {"message": "unknown field 'continue_final_message'"}})
            return True
        if self.refuse_thinking_budget and "thinking_token_budget" in body:  # vLLM without a reasoning config
            await self._send(writer, 400, {"error": {"message": "thinking_token_budget is set but reasoning_config is "
                                                     "not configured.", "type": "BadRequestError", "code": 400}})
            return True
        n = body.get("n", 1)
        if self.support_n and not self.greedy_n and n > 1 and body.get("temperature") == 0:
            await self._send(writer, 400, {"error": {"message": f"n must be 1 when using greedy sampling, got {n}.",
                                                     "type": "BadRequestError", "code": 400}})
            return True
        fault = self._fault_for(body)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if fault == "drop":
                return False
            if fault == "hang":  # answer nothing for hang_s, then hang up
                await asyncio.sleep(self.hang_s)
                return False
            if fault == "500":
                await self._send(writer, 500, {"error": {"message": "injected 500"}})
                return True
            if fault == "429":
                await self._send(writer, 429, {"error": {"message": "slow down"}}, {"Retry-After": self.retry_after})
                return True
            return await self._stream(body, path == "/v1/chat/completions", writer, cut=fault == "cut")
        except ConnectionError:
            with self._lock:
                self.disconnects += 1
            return False
        finally:
            self.active -= 1

    def _fault_for(self, body) -> str | None:
        if not self.faults:
            return None
        key = json.dumps(body, sort_keys=True)
        with self._lock:
            k = self._seen.get(key, 0)
            self._seen[key] = k + 1
            times = self.faults.get("times")
            if times is None or k < times:
                self.fault_count += 1
                return self.faults["kind"]
        return None

    # -- generation ------------------------------------------------------------------------------
    def _samples(self, body, chat: bool):
        if chat:
            msgs = body["messages"]
            prefix = msgs[-1]["content"] if body.get("continue_final_message") else ""
            prompt = "\n".join(m["content"] for m in (msgs[:-1] if prefix else msgs))
        else:
            prompt, prefix = body["prompt"], ""
        n = body.get("n", 1) if self.support_n else 1
        max_tokens = body.get("max_tokens") or 16
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        out = []
        seed = body.get("seed")
        budget = body.get("thinking_token_budget") if self.thinking_budget else None
        for i in range(n):
            s_i = None if seed is None else seed + i  # as vLLM seeds choice i
            text = self.script(prompt, prefix, i, s_i)
            if budget is not None:
                text = self._force_end(text, prompt, prefix, i, s_i, budget)
            toks = WORD.findall(text)
            finish, stop_reason, eos = "stop", None, True
            acc = ""
            for t_i, tok in enumerate(toks):
                acc += tok
                hit = [s for s in stops if s in acc]
                if hit:
                    s = hit[0]
                    at = acc.find(s)
                    kept = acc[: at + len(s)] if self.stop_style == "keep" else acc[:at]
                    toks = WORD.findall(kept)
                    if kept[len("".join(toks)):]:
                        toks.append(kept[len("".join(toks)):])  # trailing whitespace (a stop like "\n\n")
                    stop_reason, eos = (s if self.stop_style == "vllm" else None), False
                    break
            if len(toks) + eos > max_tokens:  # EOS is a generated token too: max_tokens counts it, as vLLM does
                toks, finish, eos = toks[:max_tokens], "length", False
            ptoks = len(WORD.findall(prompt + prefix))
            out.append(dict(toks=toks, finish=finish, stop_reason=stop_reason, completion=len(toks) + eos,
                            prompt=ptoks, in_think=self._in_think(prefix)))
        return out

    def _in_think(self, prefix: str) -> bool:
        return prefix.rfind(self.think_open) > prefix.rfind(self.think_close)

    def _force_end(self, text, prompt, prefix, i, seed, budget: int) -> str:
        """vLLM's thinking budget: thought words (the prefix's included) past `budget` become `forced_end`,
        and the model goes on from there."""
        if not self._in_think(prefix):
            return text
        done = len(WORD.findall(prefix[prefix.rfind(self.think_open) + len(self.think_open):]))
        at = text.find(self.think_close)
        words = WORD.findall(text if at < 0 else text[:at])
        if done + len(words) <= budget:
            return text
        thought = "".join(words[:max(budget - done, 0)]) + self.forced_end
        return thought + self.script(prompt, prefix + thought, i, seed)

    def _logprobs(self, body, chat: bool, toks: list[str]):
        if not self.support_logprobs or not body.get("logprobs"):
            return None
        k = (body.get("top_logprobs") or 0) if chat else int(body.get("logprobs") or 0)
        if chat:
            return {"content": [{"token": t, "logprob": -0.1 - 0.01 * j,
                                 "top_logprobs": [{"token": f"c{r}", "logprob": -0.1 - 0.5 * r} for r in range(k)]}
                                for j, t in enumerate(toks)]}
        return {"tokens": toks, "token_logprobs": [-0.1 - 0.01 * j for j in range(len(toks))],
                "top_logprobs": [{f"c{r}": -0.1 - 0.5 * r for r in range(k)} for _ in toks]}

    async def _stream(self, body, chat: bool, writer, cut: bool) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")

        async def event(obj):
            data = ("data: " + (obj if isinstance(obj, str) else json.dumps(obj)) + "\n\n").encode()
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()

        samples = self._samples(body, chat)
        obj = "chat.completion.chunk" if chat else "text_completion"
        base = {"id": "x", "object": obj, "created": int(time.time()), "model": self.model}
        total = sum(len(s["toks"]) for s in samples)
        sent = 0
        p = samples[0]["prompt"] if samples else 0
        usage = {"prompt_tokens": p}
        if self.prompt_cache:
            key = json.dumps([body.get("messages"), body.get("prompt")])
            hit = key in self._cached_prompts
            self._cached_prompts.add(key)
            usage["prompt_tokens_details"] = {"cached_tokens": (p - 1) // self.cache_block * self.cache_block
                                              if hit else 0}
        continuous = bool((body.get("stream_options") or {}).get("continuous_usage_stats"))
        if chat:
            await event({**base, "choices": [{"index": i, "delta": {"role": "assistant"}} for i in range(len(samples))]})
        k = max(1, self.tokens_per_delta)
        for i, s in enumerate(samples):
            toks = s["toks"]
            parsed = bool(self.reasoning_field and s["in_think"])  # a reasoning parser splits the thought off
            closed_at = next((j for j, t in enumerate(toks) if self.think_close in t), len(toks))
            for j in range(0, len(toks), k):
                group = toks[j:j + k]
                if cut and sent >= total // 2:
                    writer.write(b"5\r\nda")  # a truncated chunk, then the connection goes away
                    await writer.drain()
                    return False
                if self.token_delay_s:
                    await asyncio.sleep(self.token_delay_s)
                lp = self._logprobs(body, chat, group)
                if chat and parsed and j <= closed_at:  # thought before the end delimiter; the delimiter dropped
                    thought = "".join(group[:closed_at - j])
                    rest = "".join(group[closed_at - j + 1:])
                    ch = {"index": i, "delta": {self.reasoning_field: thought, "content": rest or None},
                          "finish_reason": None}
                    if lp is not None:
                        ch["logprobs"] = lp
                elif chat:
                    ch = {"index": i, "delta": {"content": "".join(group)}, "finish_reason": None}
                    if lp is not None:
                        ch["logprobs"] = lp
                else:
                    ch = {"index": i, "text": "".join(group), "finish_reason": None, "logprobs": lp}
                sent += len(group)
                extra = {"usage": {**usage, "completion_tokens": sent, "total_tokens": p + sent}} if continuous else {}
                await event({**base, "choices": [ch], **extra})
            fin = {"index": i, "finish_reason": s["finish"], "stop_reason": s["stop_reason"]}
            fin.update({"delta": {}} if chat else {"text": ""})
            await event({**base, "choices": [fin]})
        if self.usage:
            c = sum(s["completion"] for s in samples)
            await event({**base, "choices": [], "usage": {**usage, "completion_tokens": c, "total_tokens": p + c}})
        # Record before the terminator: a client that has seen [DONE] must find it counted.
        with self._lock:
            self.completion_tokens_sent += sum(s["completion"] for s in samples)
            self.completed.append(body)
            self.completed_tokens.append(sum(s["completion"] for s in samples))
        await event("[DONE]")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True
