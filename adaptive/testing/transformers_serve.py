"""Start `transformers serve` on the embedded model as a subprocess (for tests and scripts: serve_bench.py, compare_backends.py).

`start_transformers_serve()` returns a RealServer (url, model, stop()) or, when it cannot start (missing
FastAPI/Uvicorn, no model, no health answer within `startup_s`), a string saying why. The process runs in
its own session and is always terminated by stop() (then killed if it lingers)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RealServer:
    url: str
    model: str
    proc: subprocess.Popen
    log_path: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_transformers_serve(startup_s: float = 75.0, model_dir: str | None = None, threads: int = 1,
                             extra_args: tuple[str, ...] = ()) -> RealServer | str:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        return f"transformers serve needs FastAPI and Uvicorn (pip install fastapi uvicorn openai): {e}"
    exe = Path(sys.executable).parent / "transformers"
    if not exe.exists():
        return f"no `transformers` CLI next to {sys.executable}"
    if model_dir is None:
        try:
            from adaptive.backends.hf.loading import embedded_model_dir

            model_dir = str(embedded_model_dir())
        except Exception as e:  # pragma: no cover
            return f"embedded model unavailable: {e}"
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               TRANSFORMERS_VERBOSITY="error", TOKENIZERS_PARALLELISM="false")
    log = tempfile.NamedTemporaryFile(prefix="transformers-serve-", suffix=".log", delete=False)
    cmd = [str(exe), "serve", model_dir, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
           "--log-level", "warning", *extra_args]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    srv = RealServer(f"http://127.0.0.1:{port}/v1", model_dir, proc, log.name)
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"transformers serve exited with {proc.returncode}: {srv.log_tail(800)}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return srv
        except OSError:
            pass
        time.sleep(0.5)
    srv.stop()
    return f"transformers serve did not answer /health within {startup_s:g} s: {srv.log_tail(800)}"
