"""`adaptive serve`: an OpenAI-compatible endpoint (adaptive/serve/) on the local model or an upstream server."""
from __future__ import annotations

import logging
import os

from .common import add_backend_args, backend_config

HELP = "serve an OpenAI-compatible endpoint that spends compute per request, load- and SLO-aware"


def run(args) -> int:
    from ..errors import InputError
    from ..serve import ServeSettings, SLOSettings, check_installed

    check_installed()
    slo = SLOSettings(metric=args.slo, ttft_s=args.ttft_target_s, tbt_s=args.tbt_target_s,
                      fluidity=args.fluidity_target, compute_rate=args.compute_rate, window_s=args.slo_window_s)
    from ..serve.server import check_bindable

    check_bindable(args.host, args.port)  # before anything loads: a taken port costs nothing
    policies, default = _policies(args)  # a bad policy file costs nothing: checked before the model loads
    kind = args.backend or "hf"
    if args.tokenizer and kind != "openai":
        raise InputError("--tokenizer is for --backend openai (the local model brings its own)")
    cfg = backend_config(args, {"kind": kind, **({"tokenizer": args.tokenizer} if args.tokenizer else {})})
    if cfg.kind == "openai":
        if not (cfg.base_url or os.environ.get("OPENAI_BASE_URL")):
            raise InputError("--backend openai needs --base-url (the upstream server, e.g. http://127.0.0.1:8000/v1)")
        if not cfg.model:
            raise InputError("--backend openai needs --model: the model name the upstream server serves")
        _check_upstream(cfg.base_url or os.environ["OPENAI_BASE_URL"], cfg.api_key)
    name = args.served_model_name or args.model or "adaptive"
    settings = ServeSettings(host=args.host, port=args.port, model_name=name, default_policy=default,
                             api_key_env=args.api_key_env or None, max_body_bytes=args.max_body_bytes,
                             max_prompt_tokens=args.max_prompt_tokens, max_budget=args.max_budget,
                             max_tokens=args.max_tokens, request_timeout_s=args.request_timeout_s,
                             max_queue=args.max_queue, max_batch=args.max_batch, workers=args.workers, slo=slo)
    if settings.api_key_env and not os.environ.get(settings.api_key_env) and args.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("adaptive.serve").warning("no API key (%s is unset) while listening on %s",
                                                    settings.api_key_env, args.host)

    from ..backends.factory import make_backend
    from ..controller import Controller
    from ..serve import create_app
    from ..serve.server import serve_forever

    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    backend = make_backend(cfg, args.model)
    try:
        estimator = _estimator(args, policies, backend)
        controller = Controller(backend, policies[default], estimator, targets=slo.targets)
        app = create_app(controller, settings, policies=policies, extractor=args.extractor)
        print(f"adaptive serve: http://{args.host}:{args.port}/v1 (model {name!r}, policy {default!r}; "
              f"{slo.describe()})", flush=True)
        serve_forever(app, args.host, args.port, log_level=args.log_level)
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    return 0


def _policies(args):
    from ..generator import DEFAULT_PLAN
    from ..policies import FixedPolicy, load_policy

    default = load_policy(args.policy) if args.policy else FixedPolicy(name="default", plan=DEFAULT_PLAN)
    policies = {default.name: default}
    for ref in [p for item in args.allow_policy or [] for p in item.split(",") if p]:
        pol = load_policy(ref)
        policies.setdefault(pol.name, pol)
    return policies, default.name


def _estimator(args, policies, backend):
    from ..estimators import load_estimator

    if args.estimator:
        return load_estimator(args.estimator, backend)
    paths = {str(p) for pol in policies.values() if pol.needs_estimator and (p := pol.estimator_path()) is not None}
    if len(paths) > 1:
        from ..errors import InputError

        raise InputError(f"the policies name different estimator files ({', '.join(sorted(paths))}); pick one "
                         "with --estimator")
    return load_estimator(paths.pop(), backend) if paths else None


def _check_upstream(base_url: str, api_key: str | None, timeout_s: float = 5.0) -> None:
    """One GET /models before serving: an unreachable upstream is a one-line error now, not 502s later."""
    import re
    import urllib.error
    import urllib.request

    from ..errors import AdaptiveError

    url = base_url.rstrip("/")
    url = (url if re.search(r"/v\d+$", url) else url + "/v1") + "/models"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            r.read(1 << 16)
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            raise AdaptiveError(f"upstream {url} refused the API key (HTTP {e.code}); pass --api-key") from None
        if e.code >= 500:
            raise AdaptiveError(f"upstream {url} answered HTTP {e.code}") from None
    except (OSError, ValueError) as e:
        raise AdaptiveError(f"upstream {url} is unreachable: {getattr(e, 'reason', e)}") from None


def add_arguments(p) -> None:
    from ..serve.settings import SLO_METRICS, ServeSettings, SLOSettings

    d, s = ServeSettings(), SLOSettings()
    add_backend_args(p)
    p.add_argument("--tokenizer", default=None,
                   help="openai: a local tokenizer (hub id or path) to count prompt tokens and tokens the server omits")
    p.add_argument("--host", default=d.host, help=f"address to bind (default {d.host}: this machine only)")
    p.add_argument("--port", type=int, default=d.port, help=f"port (default {d.port}; 0: any free port)")
    p.add_argument("--served-model-name", default=None,
                   help="the model name clients send (default: --model, or 'adaptive' for the embedded model)")
    p.add_argument("--policy", default=None,
                   help="the default policy: a policy file or shipped name (default: 4 samples, majority vote)")
    p.add_argument("--allow-policy", action="append", default=None, metavar="POLICY",
                   help="another policy a request may pick with adaptive.policy (by its name); repeat or comma-separate")
    p.add_argument("--estimator", default=None,
                   help="difficulty estimator file (.npz); default: the one the policy names, if any")
    p.add_argument("--extractor", default="auto", help="how answers are read from samples for the vote (default auto)")
    p.add_argument("--api-key-env", default=d.api_key_env,
                   help=f"environment variable holding the bearer key clients must send (default {d.api_key_env}; "
                        "unset variable: no key needed)")
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help=f"default {d.max_body_bytes}")
    p.add_argument("--max-prompt-tokens", type=int, default=d.max_prompt_tokens, help=f"default {d.max_prompt_tokens}")
    p.add_argument("--max-budget", type=int, default=d.max_budget,
                   help=f"hard cap on samples per request (n, adaptive.budget, any plan; default {d.max_budget})")
    p.add_argument("--max-tokens", type=int, default=d.max_tokens,
                   help=f"hard cap on max_tokens per sample (default {d.max_tokens})")
    p.add_argument("--request-timeout-s", type=float, default=d.request_timeout_s,
                   help=f"every request gets its answer or an error within this (default {d.request_timeout_s:g})")
    p.add_argument("--max-queue", type=int, default=d.max_queue,
                   help=f"waiting requests beyond which a new one gets 429 + Retry-After (default {d.max_queue})")
    p.add_argument("--max-batch", type=int, default=d.max_batch,
                   help=f"waiting requests one controller run takes together (default {d.max_batch})")
    p.add_argument("--workers", type=int, default=4,
                   help="openai backend: batches run concurrently (default 4); the local model always has one")
    p.add_argument("--slo", choices=SLO_METRICS, default=s.metric,
                   help="the latency the load governor holds by shrinking budgets: ttft, tbt, fluidity, or off "
                        "(fixed budgets; default)")
    p.add_argument("--ttft-target-s", type=float, default=s.ttft_s, help=f"TTFT target (default {s.ttft_s:g})")
    p.add_argument("--tbt-target-s", type=float, default=s.tbt_s, help=f"TBT target (default {s.tbt_s:g})")
    p.add_argument("--fluidity-target", type=float, default=s.fluidity,
                   help=f"lowest mean fluidity-index for --slo fluidity (default {s.fluidity:g})")
    p.add_argument("--compute-rate", type=float, default=None,
                   help="samples per second the backend sustains, to predict queueing (default: measured)")
    p.add_argument("--slo-window-s", type=float, default=s.window_s,
                   help=f"seconds of recent requests the latency signal looks at (default {s.window_s:g})")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="server log level (each request's decision is logged at info)")
