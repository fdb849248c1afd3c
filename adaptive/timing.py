"""Where a request's wall time goes: a phase clock, off by default.

Parts: tokenize (chat template + tokenizer), estimate (difficulty estimation, its model pass included),
prefill, decode, verify (verifier scoring, its model calls included), control (voting, stopping, policy
decisions, answer extraction), detokenize (stop-string checks and decoding text), queue (waiting while
other requests' batches run). What no part covers is reported as `residual`, never folded in.

Backends report their own split per request in `CallUsage.times` (a batched call is shared, so they know
which rows belong to whom); code outside backends marks phases on this process-wide clock. Nested phases
are exclusive (the inner one's time is not the outer one's), except `estimate` and `verify`, which own
everything under them. When the clock is off, `phase` does nothing and nothing synchronises CUDA.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict

PARTS = ("tokenize", "estimate", "prefill", "decode", "verify", "control", "detokenize", "queue")
BACKEND = "backend"               # clock phase around backend calls; their split comes from CallUsage.times
ABSORBING = frozenset({"estimate", "verify"})


class Clock:
    def __init__(self):
        self.enabled = False
        self.cuda = False  # set by a backend on a CUDA device: synchronise before reading the clock
        self._totals: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        self._local = threading.local()

    def now(self) -> float:
        if self.cuda and self.enabled:
            import torch

            torch.cuda.synchronize()  # kernels are asynchronous: wait so the time is the work's
        return time.perf_counter()

    def _stack(self) -> list:
        s = getattr(self._local, "stack", None)
        if s is None:
            s = self._local.stack = []
        return s

    def absorbing(self) -> bool:
        s = self._stack() if self.enabled else ()
        return bool(s) and s[-1][0] in ABSORBING

    @contextlib.contextmanager
    def phase(self, name: str):
        if not self.enabled or self.absorbing():
            yield
            return
        stack = self._stack()
        t0 = self.now()
        if stack:  # pause the enclosing phase
            self._add(stack[-1][0], t0 - stack[-1][1])
        stack.append([name, t0])
        try:
            yield
        finally:
            t1 = self.now()
            self._add(name, t1 - stack.pop()[1])
            if stack:
                stack[-1][1] = t1  # resume the enclosing phase

    def _add(self, name: str, dt: float) -> None:
        with self._lock:
            self._totals[name] += dt

    def snapshot(self) -> dict[str, float]:
        """Totals so far, including the running part of this thread's innermost open phase."""
        with self._lock:
            out = dict(self._totals)
        stack = self._stack() if self.enabled else ()
        if stack:
            name, start = stack[-1]
            out[name] = out.get(name, 0.0) + time.perf_counter() - start
        return out


CLOCK = Clock()


def phase(name: str):
    return CLOCK.phase(name)


def enabled() -> bool:
    return CLOCK.enabled


@contextlib.contextmanager
def timing(on: bool = True):
    """Enable the per-request time breakdown for the enclosed work (restores the previous state)."""
    old = CLOCK.enabled
    CLOCK.enabled = on
    try:
        yield
    finally:
        CLOCK.enabled = old


def breakdown(wall: float, since: dict[str, float], calls) -> dict[str, float]:
    """A request's parts from the clock's change since its arrival plus its backend calls' own splits.

    Time the clock saw in backend calls that this request did not ride in is queueing (another batch ran).
    """
    now = CLOCK.snapshot()
    delta = {k: v - since.get(k, 0.0) for k, v in now.items()}
    parts = {p: 0.0 for p in PARTS}
    for k, v in delta.items():
        if k != BACKEND:
            parts[k] = parts.get(k, 0.0) + v
    own_wall = 0.0
    for c in calls:
        if c.times:
            own_wall += c.wall_s
            for k, v in c.times.items():
                parts[k] = parts.get(k, 0.0) + v
    parts["queue"] += max(delta.get(BACKEND, 0.0) - own_wall, 0.0)
    parts["residual"] = wall - sum(parts.values())
    return parts
