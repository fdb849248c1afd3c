"""Run the app on uvicorn: in the calling thread until a signal (the CLI), or in a background thread that
the caller stops (tests, scripts/serve_load.py). Either way the app's lifespan starts the workers and
joins them on the way out, and an open stream holds shutdown for at most `graceful_s`."""
from __future__ import annotations

import threading
import time

import uvicorn

from ..errors import AdaptiveError


def _config(app, host: str, port: int, log_level: str, graceful_s: float) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on", access_log=False,
                          timeout_graceful_shutdown=graceful_s, ws="none")


class _Server(uvicorn.Server):
    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal once shut down; stopping is this server's normal end: exit 0 instead
        getattr(self, "_captured_signals", []).clear()


def serve_forever(app, host: str, port: int, log_level: str = "info", graceful_s: float = 5.0) -> None:
    """Serve until SIGINT/SIGTERM (then return); AdaptiveError when the server cannot start (the port is taken)."""
    server = _Server(_config(app, host, port, log_level, graceful_s))
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind
        pass
    if not server.started:
        raise AdaptiveError(f"the server could not start on {host}:{port} (see the log above)")


def check_bindable(host: str, port: int) -> None:
    """InputError now, before a model loads, when host:port cannot be listened on (taken, or not an address here)."""
    import socket

    from ..errors import InputError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise InputError(f"cannot listen on {host}:{port}: {e}") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


class BackgroundServer:
    """`with BackgroundServer(app) as srv:` serves on a free loopback port; `srv.url` is the /v1 base URL.
    Leaving the block (or stop()) shuts the server down and joins its thread."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                 graceful_s: float = 2.0, startup_s: float = 30.0):
        self.server = uvicorn.Server(_config(app, host, port, log_level, graceful_s))
        self.server.install_signal_handlers = lambda: None  # signals belong to the main thread's owner
        self.host, self.startup_s = host, startup_s
        self.thread = threading.Thread(target=self.server.run, name="adaptive-serve-uvicorn", daemon=True)
        self.port: int | None = None

    def start(self) -> "BackgroundServer":
        self.thread.start()
        deadline = time.monotonic() + self.startup_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise AdaptiveError(f"the server did not start within {self.startup_s:g} s")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base + "/v1"

    def stop(self, timeout_s: float = 30.0) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout_s)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
