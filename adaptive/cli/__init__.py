"""The `adaptive` command line: one module per subcommand, each with HELP, add_arguments(parser) and
run(args) -> exit code. Every user error prints one line and exits 2; no tracebacks unless
ADAPTIVE_DEBUG=1."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import AdaptiveError

# subcommand -> module (imported when the parser is built; each imports its heavy parts inside run)
SUBCOMMANDS = {"demo": "demo", "generate": "generate", "eval": "eval", "report": "report",
               "train-estimator": "train_estimator", "bank": "bank", "tune": "tune", "bench": "bench",
               "serve": "serve"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="adaptive", description="Adaptive inference-time compute controller.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        mod = importlib.import_module(f"{__name__}.{module}")
        sp = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(sp)
        sp.set_defaults(func=mod.run)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        from ..backends.hf.loading import quiet_transformers

        quiet_transformers()
        return args.func(args)
    except AdaptiveError as e:
        print(f"adaptive: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("adaptive: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an internal bug: still one line, with a way to see the traceback
        if os.environ.get("ADAPTIVE_DEBUG"):
            raise
        print(f"adaptive: internal error: {type(e).__name__}: {e} (set ADAPTIVE_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1


__all__ = ["SUBCOMMANDS", "build_parser", "main"]
