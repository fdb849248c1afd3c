"""`adaptive demo`: the adaptive-compute loop end to end — bank, estimator, tuned policies, live held-out
runs against uniform self-consistency, report (the README's `make demo`)."""
from __future__ import annotations

HELP = "the whole loop on the embedded model: bank -> estimator -> tuned policies -> live held-out runs -> report"


def run(args) -> int:
    from ..demo import load_demo_config, run_demo

    run_demo(load_demo_config(args.config), args.out, quiet=args.quiet)
    return 0


def add_arguments(p) -> None:
    p.add_argument("--config", default="default",
                   help="demo config: a file, or a shipped one by name (default; draw_bank also draws the bank)")
    p.add_argument("--out", default="runs/demo", help="output directory; run again with the same one to resume")
    p.add_argument("--quiet", action="store_true", help="no progress or tables")
