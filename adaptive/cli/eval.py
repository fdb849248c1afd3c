"""`adaptive eval`: run the policies of an eval config over its task; records, report and plots (resumable)."""
from __future__ import annotations

from .common import add_backend_args, backend_config, backend_mapping, positive_int

HELP = "evaluate policies on a task; writes records, a report and plots (resumable)"


def run(args) -> int:
    from ..evaluate import load_config, run_eval

    config = load_config(args.config)
    base = config.raw.get("backend")
    mapping = backend_mapping(args, base)
    if mapping is not None:  # the flags on top of the config's backend: checked, and part of the fingerprint
        backend_config(args, base)
        config = config.with_backend(mapping)
    out = args.out or f"runs/{args.config.rsplit('/', 1)[-1].removesuffix('.yaml')}"
    only = [p for p in (args.policy or "").split(",") if p] or None
    run_eval(config, out, only=only, limit=args.limit, progress=not args.quiet)
    return 0


def add_arguments(p) -> None:
    p.add_argument("--config", default="default",
                   help="YAML run config: a file, or a shipped config by name (default, gsm8k, ...)")
    p.add_argument("--policy", default=None, help="comma-separated policy names from the config (default: all)")
    p.add_argument("--limit", type=positive_int, default=None, help="number of prompts, >= 1 (overrides the config)")
    p.add_argument("--out", default=None, help="run directory (default runs/<config name>); reused = resume")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    add_backend_args(p)
