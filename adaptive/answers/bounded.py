"""Run a function under a wall-clock bound, from any thread.

Symbolic math can hang on inputs like ``9^{9^{9^{9}}}`` and math_verify's own timeouts use
``signal.alarm``, which only works in the main thread (it raises ``ValueError`` elsewhere). So:

* in the main thread (POSIX, SIGALRM unused by anyone else) the call runs in-process under a
  repeating ``ITIMER_REAL``; the handler raises a ``BaseException`` so library ``except Exception``
  blocks cannot swallow it, and the timer re-fires until we leave if something does;
* anywhere else it runs in a pooled worker subprocess (``python -m adaptive.answers.worker``)
  that is killed on timeout: threads cannot be cancelled, but a process can be killed even when
  it is stuck inside C code.

Functions are named by ``"module:function"`` and talk JSON, so the worker needs no pickling and
does not re-import the caller's ``__main__`` (unlike multiprocessing's spawn).
"""
from __future__ import annotations

import importlib
import json
import os
import queue
import signal
import site
import subprocess
import sys
import threading
from pathlib import Path

STARTUP_TIMEOUT_S = 120.0  # a fresh worker imports sympy; that is not the call's fault
MAX_IDLE_WORKERS = 4


class BoundTimeout(Exception):
    """The bounded call did not finish within its time limit."""


class _Alarm(BaseException):
    """Raised by our SIGALRM handler; a BaseException so `except Exception` cannot eat it."""


def resolve(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def call_bounded(target: str, args: list, timeout: float, mode: str = "auto"):
    """``resolve(target)(*args)`` within `timeout` seconds, else raise `BoundTimeout`.

    `mode`: ``"auto"`` (signal in the main thread when possible, else process), ``"signal"`` or
    ``"process"``. Exceptions raised by the function propagate (as ``RuntimeError`` from a worker).
    """
    if mode not in ("auto", "signal", "process"):
        raise ValueError(f"mode must be auto, signal or process, not {mode!r}")
    if mode == "signal" or (mode == "auto" and _signal_usable()):
        return _call_with_alarm(resolve(target), args, timeout)
    return _POOL.call(target, args, timeout)


def _signal_usable() -> bool:
    if os.name != "posix" or threading.current_thread() is not threading.main_thread():
        return False
    if signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0):
        return False  # someone else's timer is running; do not clobber it
    return signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)


def _call_with_alarm(fn, args, timeout: float):
    def on_alarm(signum, frame):
        raise _Alarm()

    previous = signal.signal(signal.SIGALRM, on_alarm)  # ValueError outside the main thread
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, max(timeout, 1e-3), 0.05)
            return fn(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Alarm:
        raise BoundTimeout(f"timed out after {timeout:g}s") from None
    finally:
        signal.signal(signal.SIGALRM, previous)


def worker_env(environ=None) -> dict:
    """The worker's environment: it must import this same `adaptive`. An installed package (a wheel in
    site-packages) is found by the interpreter as it is, and putting site-packages on PYTHONPATH would put
    it ahead of the standard library; a source tree (a checkout, imported from its root or through sys.path
    or an editable install) goes first on PYTHONPATH."""
    env = dict(os.environ if environ is None else environ)
    root = Path(__file__).resolve().parents[2]  # the folder holding the `adaptive` package
    site_dirs = {Path(p).resolve() for p in (*site.getsitepackages(), site.getusersitepackages())}
    if root not in site_dirs:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(root), env.get("PYTHONPATH"))))
    return env


class _Worker:
    """One subprocess serving JSON-line requests; a reader thread feeds replies into a queue."""

    def __init__(self, preload: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "adaptive.answers.worker", preload],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=worker_env(), text=True, bufsize=1,
        )
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._expect("ready", STARTUP_TIMEOUT_S)

    def _read(self):
        for line in self.proc.stdout:
            self.replies.put(line)
        self.replies.put(None)  # EOF: the worker died or was killed

    def _expect(self, what: str, timeout: float):
        try:
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise BoundTimeout(f"worker gave no {what} within {timeout:g}s") from None
        if line is None:
            self.kill()
            raise RuntimeError(f"bounded worker exited before {what}")
        return json.loads(line)

    def call(self, target: str, args: list, timeout: float):
        self.proc.stdin.write(json.dumps({"target": target, "args": args}) + "\n")
        self.proc.stdin.flush()
        reply = self._expect("reply", timeout)
        if "error" in reply:
            raise RuntimeError(f"{target} failed in worker: {reply['error']}")
        return reply["result"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class _Pool:
    """Idle workers shared by all threads; each call checks one out so calls run in parallel."""

    def __init__(self, preload: str = "math_verify"):
        self.preload = preload
        self.idle: list[_Worker] = []
        self.lock = threading.Lock()

    def call(self, target: str, args: list, timeout: float):
        with self.lock:
            worker = self.idle.pop() if self.idle else None
        if worker is None or not worker.alive():
            worker = _Worker(self.preload)
        try:
            result = worker.call(target, args, timeout)
        except BaseException:
            worker.kill()  # after a timeout its state is unknown; never reuse it
            raise
        with self.lock:
            if len(self.idle) < MAX_IDLE_WORKERS:
                self.idle.append(worker)
                worker = None
        if worker is not None:
            worker.kill()
        return result

    def close(self):
        with self.lock:
            workers, self.idle = self.idle, []
        for w in workers:
            w.kill()


_POOL = _Pool()


def serve(preload: str) -> None:
    """Worker loop: one JSON request per stdin line, one JSON reply per stdout line."""
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints from libraries must not corrupt the protocol
    if preload:
        importlib.import_module(preload)
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        try:
            reply = {"result": resolve(req["target"])(*req["args"])}
        except Exception as e:  # reported to the caller, which raises it
            reply = {"error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
