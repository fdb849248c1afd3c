"""`adaptive report RUN`: print a run's table and (re)write its plots and report.md."""
from __future__ import annotations

HELP = "print the table and (re)write plots and report.md for a run directory"


def run(args) -> int:
    from ..evaluate import write_report

    write_report(args.run)
    return 0


def add_arguments(p) -> None:
    p.add_argument("run", help="a run directory (runs/<id>)")
