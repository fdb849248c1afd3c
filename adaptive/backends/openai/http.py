"""The HTTP side of OpenAIBackend: one `Session` per backend owns a private event-loop thread, the httpx
client, the bound on requests in flight, retries with backoff, and the counters; plus SSE line parsing.

Lifetime: the loop thread is a daemon (it can never hold the process open) and is closed by the backend's
`close()`, by a weakref finalizer when the backend is collected, or at interpreter exit (the finalizer's
atexit hook runs while threads still run). Nothing ever joins the loop thread from itself, and every wait
on it is bounded.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Awaitable, Callable

try:  # the maintained fork ships as `httpx2` (pulled in by huggingface_hub and openai); same API
    import httpx2 as httpx
except ImportError:  # pragma: no cover - plain httpx works as well
    import httpx  # type: ignore[no-redef]

from ...errors import AdaptiveError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0
BACKOFF_CAP_S = 30.0
CLOSE_WAIT_S = 5.0  # the longest close() waits for the loop to finish closing the client and stop


class Retryable(Exception):
    """An attempt failed in a way worth retrying (network, timeout, 429/5xx, a cut stream)."""

    def __init__(self, what: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(what)
        self.what, self.status, self.retry_after = what, status, retry_after


class Rejected(Exception):
    """The server refused the request (4xx other than 408/409/425/429): retrying cannot help."""

    def __init__(self, status: int, text: str):
        super().__init__(f"HTTP {status}: {text[:500]}")
        self.status, self.text = status, text


@dataclass
class ServerStats:
    """Counters over the backend's life. `attempted` counts HTTP attempts (retries included),
    `retried` the attempts after a failed one, `failed` the requests given up on."""

    requests: int = 0
    attempted: int = 0
    retried: int = 0
    succeeded: int = 0
    failed: int = 0
    discarded_samples: int = 0   # samples of failed attempts (partial streams) thrown away, never returned
    in_flight: int = 0
    max_in_flight_seen: int = 0


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds, possibly fractional, or an HTTP date)."""
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER_S)


def backoff_s(attempt: int, base: float, cap: float = BACKOFF_CAP_S, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter (AWS architecture blog): uniform(0, min(cap, base * 2^attempt))."""
    return (rng or random).uniform(0.0, min(cap, base * (2 ** attempt)))


async def sse_events(response):
    """Yield the JSON objects of an SSE stream's `data:` lines; stops at `data: [DONE]`."""
    buf: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if buf:
                data = "\n".join(buf)
                buf = []
                if data.strip() == "[DONE]":
                    return
                yield json.loads(data)
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        if line.startswith("data:"):
            buf.append(line[5:].lstrip(" "))
    if buf:  # a last event without its blank line
        data = "\n".join(buf)
        if data.strip() != "[DONE]":
            yield json.loads(data)


class LoopThread:
    """One asyncio loop in a daemon thread. `run(coro)` blocks the caller until the coroutine ends,
    so the backend is a plain sync call from any thread, Jupyter's (already running) loop included."""

    def __init__(self, name: str = "adaptive-openai"):
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()  # the loop's own thread closes it, once stopped

    def run(self, coro):
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("OpenAIBackend.generate called from its own event-loop thread (e.g. inside "
                               "on_token); call it from another thread")
        fut: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()
            raise

    def close(self, last: Awaitable | None = None) -> None:
        """Await `last` on the loop (bounded), then stop it. Waits for the thread to end, except from the
        thread itself or during interpreter finalization (daemon threads are frozen then: waiting would hang)."""
        if not self.thread.is_alive():
            if last is not None and asyncio.iscoroutine(last):
                last.close()
            return

        if last is None:
            self.loop.call_soon_threadsafe(self.loop.stop)
        else:
            fut = asyncio.run_coroutine_threadsafe(asyncio.wait_for(last, CLOSE_WAIT_S), self.loop)
            fut.add_done_callback(self._stop_after)
        if threading.current_thread() is self.thread or sys.is_finalizing():
            return
        self.thread.join(2 * CLOSE_WAIT_S)
        if self.thread.is_alive():
            log.warning("event-loop thread %s did not stop within %.0f s; it is a daemon and ends with the "
                        "process", self.thread.name, 2 * CLOSE_WAIT_S)

    def _stop_after(self, fut: Future) -> None:  # runs on the loop thread once `last` is done
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("closing the HTTP client failed: %s", fut.exception())
        self.loop.call_soon_threadsafe(self.loop.stop)




Consume = Callable[[object], Awaitable]  # reads one attempt's SSE events (an async iterator) into a result


class Session:
    """HTTP for one backend: POSTs streamed requests with retries on a private event-loop thread."""

    def __init__(self, base_url: str, *, headers: dict, timeout_s: float, connect_timeout_s: float,
                 max_in_flight: int, max_retries: int, backoff_base_s: float, read_timeout_s: float | None = None):
        self.base_url, self.headers = base_url, dict(headers)
        self.timeout_s, self.connect_timeout_s = timeout_s, connect_timeout_s
        self.read_timeout_s = timeout_s if read_timeout_s is None else read_timeout_s  # between two reads
        self.max_in_flight, self.max_retries, self.backoff_base_s = max_in_flight, max_retries, backoff_base_s
        self.stats = ServerStats()
        self._rng = random.Random()
        self._lock = threading.Lock()
        self._closed = False
        self._loop: LoopThread | None = None
        self._client = None
        self._sem: asyncio.Semaphore | None = None

    def run(self, coro):
        """Run a coroutine on the session's loop thread (started on first use) and return its result."""
        with self._lock:
            if self._closed:  # its finalizer has run: a new loop thread would outlive the backend
                coro.close()
                raise AdaptiveError(f"the OpenAI backend for {self.base_url} is closed")
            if self._loop is None:
                self._loop = LoopThread()
            loop = self._loop
        return loop.run(coro)

    def close(self) -> None:
        """Close the HTTP client and stop the loop thread. Idempotent; safe from any thread."""
        with self._lock:
            self._closed = True
            loop, self._loop = self._loop, None
            client, self._client = self._client, None
        if loop is not None:
            loop.close(client.aclose() if client is not None else None)

    def _http(self):
        if self._client is None:  # created on the loop: the client and semaphore belong to it
            limits = httpx.Limits(max_connections=self.max_in_flight, max_keepalive_connections=self.max_in_flight)
            timeout = httpx.Timeout(self.timeout_s, connect=min(self.connect_timeout_s, self.timeout_s),
                                    read=min(self.read_timeout_s, self.timeout_s))
            self._client = httpx.AsyncClient(headers=self.headers, timeout=timeout, limits=limits, trust_env=False)
            self._sem = asyncio.Semaphore(self.max_in_flight)
        return self._client

    async def _attempt(self, path: str, body: dict, consume: Consume):
        async with self._http().stream("POST", self.base_url + path, json=body) as resp:
            if resp.status_code != 200:
                text = (await resp.aread()).decode("utf-8", "replace")
                if resp.status_code in RETRY_STATUSES:
                    raise Retryable(f"HTTP {resp.status_code}: {text[:200]}", resp.status_code,
                                    retry_after_s(resp.headers.get("retry-after")))
                raise Rejected(resp.status_code, text)
            # Returning before the stream ends (an aborted sample) closes the connection: the server
            # sees the client go and stops generating.
            return await consume(sse_events(resp))

    async def post(self, path: str, body: dict, consume: Consume):
        """POST `body` to `path` as a stream and return what `consume` made of it. Network errors,
        timeouts (connect, read, and `timeout_s` per attempt), retryable statuses and Retryable raised by `consume` are retried
        from scratch; Rejected (a 4xx) is raised at once; after `max_retries` retries, AdaptiveError."""
        st = self.stats
        st.requests += 1
        self._http()
        last = ""
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
                    result = await asyncio.wait_for(self._attempt(path, body, consume), self.timeout_s)
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
                except httpx.ConnectError as e:
                    last = f"cannot connect ({e or type(e).__name__}): is the server running?"
                except (httpx.TransportError, httpx.StreamError, ValueError) as e:  # ValueError: bad JSON in stream
                    last = f"{type(e).__name__}: {e}"
                finally:
                    st.in_flight -= 1
            st.discarded_samples += body.get("n", 1)
            if attempt < self.max_retries:
                await asyncio.sleep(wait if wait is not None else backoff_s(attempt, self.backoff_base_s, rng=self._rng))
        st.failed += 1
        raise AdaptiveError(f"OpenAI-compatible server {self.base_url + path} failed after {self.max_retries + 1} "
                            f"attempts ({self.max_retries} retries); last error: {last}")
