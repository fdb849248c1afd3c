"""Where the run's wall time went: per policy, each part's share of summed request wall time."""
from __future__ import annotations

from collections import defaultdict

from ..timing import PARTS

COLUMNS = PARTS + ("residual",)


def summarize_breakdown(records: list[dict]) -> dict[str, dict[str, float]]:
    """{policy: {part: share of wall, ..., "wall_s": summed wall}}; policies without timing are left out.

    Requests in one batch each count the batch's time they sat through, so summed seconds exceed the
    run's clock time; the shares are what a request experiences."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in records:
        c = r["compute"]
        tb = c.get("time_breakdown")
        if not tb:
            continue
        s = sums[r["policy"]]
        s["wall_s"] += c["wall_s"]
        for k in COLUMNS:
            s[k] += tb.get(k, 0.0)
    out = {}
    for pol, s in sums.items():
        wall = s["wall_s"] or 1.0
        out[pol] = {k: s[k] / wall for k in COLUMNS} | {"wall_s": s["wall_s"]}
    return out


def format_breakdown(shares: dict[str, dict[str, float]]) -> str:
    header = ["policy", *COLUMNS, "wall s"]
    rows = [[p, *(f"{100 * s[k]:.2f}%" for k in COLUMNS), f"{s['wall_s']:.1f}"] for p, s in shares.items()]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])
