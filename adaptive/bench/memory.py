"""Peak memory of one call, measured fairly on CPU or CUDA.

CUDA: the allocator's peak above the level before the call. CPU has no allocator statistics, and the
resident size of a process that has already run one contender keeps that contender's freed pages, so
each contender runs in a fresh spawned process where glibc returns large blocks to the system on free
(a fixed mmap threshold); its resident size then follows live tensors. A short warm-up of the same call
first keeps one-time costs (thread pools, kernel caches) out of the figure.
"""
from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import threading

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


class PeakRSS:
    """Peak resident memory above the starting level, sampled every 2 ms."""

    def __enter__(self):
        self.base = self.peak = rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss())
        self.delta_mb = (self.peak - self.base) / 2**20


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def release_large_blocks() -> None:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)  # fixed: blocks >= 1 MiB are mapped and unmapped on free
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 20)


class PeakMemory:
    """Peak MiB used by the enclosed work: the CUDA allocator's peak above its level at entry, else PeakRSS."""

    def __init__(self, cuda: bool):
        self.cuda = cuda

    def __enter__(self):
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self._rss = PeakRSS().__enter__()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
        else:
            self._rss.__exit__(*exc)
            self.mb = self._rss.delta_mb


def in_fresh_process(target, args: tuple, timeout: float) -> tuple[str, object]:
    """Run `target(*args, queue)` in a spawned process; the (status, value) it puts on the queue.

    A process that dies without a word or outlives `timeout` gives ("failed", why). `target` must be a
    module-level function (it is pickled into the child)."""
    import queue as queue_mod
    import time

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                return q.get(timeout=1.0)
            except queue_mod.Empty:
                if not p.is_alive():  # killed, out of memory
                    return "failed", f"the process exited with code {p.exitcode} and no result"
        return "failed", f"no result within {timeout:.0f}s"
    finally:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()


def _child(model, device, call, warm, kwargs, queue):
    try:
        if not device.startswith("cuda"):
            release_large_blocks()
        from ..backends.hf import HFBackend

        b = HFBackend.from_pretrained(model, device=device)
        call(b, **warm)
        with PeakMemory(device.startswith("cuda")) as m:
            call(b, **kwargs)
        queue.put(("ok", m.mb))
    except BaseException as e:  # report to the parent instead of dying silently
        queue.put(("error", f"{type(e).__name__}: {e}"))


def peak_mb(model, device: str, call, warm: dict, kwargs: dict, timeout: float = 900) -> float:
    """Run `call(backend, **kwargs)` in a fresh process (after `call(backend, **warm)`); its peak MiB.

    `call` must be a module-level function (it is pickled into the child)."""
    status, value = in_fresh_process(_child, (model, device, call, warm, kwargs), timeout)
    if status != "ok":
        raise RuntimeError(f"memory measurement failed in the child process: {value}")
    return value
