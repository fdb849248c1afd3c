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


def _child(model, device, call, warm, kwargs, queue):
    try:
        import torch

        if not device.startswith("cuda"):
            release_large_blocks()
        from ..backends.hf import HFBackend

        b = HFBackend.from_pretrained(model, device=device)
        call(b, **warm)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            call(b, **kwargs)
            torch.cuda.synchronize()
            queue.put(("ok", (torch.cuda.max_memory_allocated() - base) / 2**20))
            return
        with PeakRSS() as m:
            call(b, **kwargs)
        queue.put(("ok", m.delta_mb))
    except BaseException as e:  # report to the parent instead of dying silently
        queue.put(("error", f"{type(e).__name__}: {e}"))


def peak_mb(model, device: str, call, warm: dict, kwargs: dict, timeout: float = 900) -> float:
    """Run `call(backend, **kwargs)` in a fresh process (after `call(backend, **warm)`); its peak MiB.

    `call` must be a module-level function (it is pickled into the child)."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(model, device, call, warm, kwargs, q))
    p.start()
    try:
        status, value = q.get(timeout=timeout)
    finally:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    if status != "ok":
        raise RuntimeError(f"memory measurement failed in the child process: {value}")
    return value
