"""`adaptive serve`: an OpenAI-compatible HTTP endpoint in front of the Controller.

    settings.py   ServeSettings and SLOSettings: every limit and target, validated at start
    schemas.py    OpenAI request bodies -> ServeRequest (validated, 400s in OpenAI's error format) and
                  Results -> OpenAI responses and stream chunks, plus the `adaptive` object
    admission.py  LoadGovernor: queue limit (429), load pressure from recent latency and backlog against the
                  SLO, and the sample price that shrinks per-request budgets in marginal-gain order
    dispatch.py   Dispatcher: the worker threads that own the backend and run batches of waiting requests
                  through Controller.decide / execute / stream
    metrics.py    Prometheus metrics (/metrics)
    app.py        the Starlette app: routes, auth, body limit, SSE streaming, error handling
    server.py     uvicorn: serve_forever (the CLI) and BackgroundServer (tests, scripts)

Start it with `adaptive serve` (adaptive/cli/serve.py), or in-process:

    app = create_app(Controller(backend, policy, estimator), ServeSettings(model_name="m"))
    with BackgroundServer(app) as srv: ...   # srv.url is the /v1 base URL

Needs the `serve` extra (starlette, uvicorn, sse-starlette, prometheus-client); `import adaptive.serve` alone
imports none of them.
"""
from .settings import ServeSettings, SLOSettings

SERVE_PACKAGES = ("starlette", "uvicorn", "sse_starlette", "prometheus_client")


def check_installed() -> None:
    """InputError naming what is missing when the serve extra is not installed."""
    import importlib.util

    from ..errors import InputError

    missing = [m for m in SERVE_PACKAGES if importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(f"adaptive serve needs {', '.join(missing)}: pip install 'adaptive[serve]'")


def __getattr__(name):
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "BackgroundServer":
        from .server import BackgroundServer

        return BackgroundServer
    raise AttributeError(name)


__all__ = ["BackgroundServer", "ServeSettings", "SLOSettings", "check_installed", "create_app"]
