"""The `adaptive` command line: one module per subcommand, each with HELP, add_arguments(parser) and
run(args) -> exit code. Every bad invocation prints one line and exits 2 (usage errors included: see
ArgumentParser); no tracebacks unless ADAPTIVE_DEBUG=1. Scripts get the same error boundary from `run_main`."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable

from ..errors import AdaptiveError

# subcommand -> module (imported when the parser is built; each imports its heavy parts inside run)
SUBCOMMANDS = {"demo": "demo", "generate": "generate", "eval": "eval", "report": "report",
               "train-estimator": "train_estimator", "bank": "bank", "tune": "tune", "bench": "bench",
               "serve": "serve"}


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (`<prog>: error: ...`, exit 2) instead of the usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)}\n")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run_main(fn: Callable[[], int | None], prog: str | None = None) -> int:
    """Run `fn` inside the CLI's error boundary and return the exit code: an AdaptiveError prints
    `<prog>: error: <message>` and gives 2, Ctrl-C gives 130, any other exception is an internal error
    (one line and 1; the traceback with ADAPTIVE_DEBUG=1)."""
    prog = prog or os.path.basename(sys.argv[0] or "adaptive")
    try:
        return fn() or 0
    except AdaptiveError as e:
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an internal bug: still one line, with a way to see the traceback
        if os.environ.get("ADAPTIVE_DEBUG"):
            raise
        print(f"{prog}: internal error: {type(e).__name__}: {_one_line(e)} (set ADAPTIVE_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1


def build_parser() -> ArgumentParser:
    from .. import __version__

    p = ArgumentParser(prog="adaptive", description="Adaptive inference-time compute controller.")
    p.add_argument("--version", action="version", version=f"adaptive {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        mod = importlib.import_module(f"{__name__}.{module}")
        sp = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(sp)
        sp.set_defaults(func=mod.run, parser=sp)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # named by the subcommand's parser: `adaptive eval: error: unrecognized arguments: ...`
            getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
        if not getattr(args, "command", None):
            parser.error(f"a command is required: {', '.join(SUBCOMMANDS)} (adaptive --help says more)")
    except SystemExit as e:  # --help, --version, or a usage error (already printed as one line)
        return e.code if isinstance(e.code, int) else 2

    def command() -> int:
        from ..backends.hf.loading import quiet_transformers

        quiet_transformers()
        return args.func(args)

    return run_main(command, "adaptive")


__all__ = ["ArgumentParser", "SUBCOMMANDS", "build_parser", "main", "run_main"]
