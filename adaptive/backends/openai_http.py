"""HTTP plumbing for OpenAIBackend: the httpx import, SSE line parsing, retry classification, and the
private event-loop thread that lets a synchronous `generate()` drive asyncio from any thread."""
from __future__ import annotations

import asyncio
import email.utils
import json
import random
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, asdict

try:  # the maintained fork ships as `httpx2` (pulled in by huggingface_hub and openai); same API
    import httpx2 as httpx
except ImportError:  # pragma: no cover - plain httpx works as well
    import httpx  # type: ignore[no-redef]

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0


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

    def as_dict(self) -> dict:
        return asdict(self)


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


def backoff_s(attempt: int, base: float, cap: float = 30.0, rng: random.Random | None = None) -> float:
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
        self.loop.run_forever()

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

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()
