"""Reports for a run directory: a table per policy, plots, and a Markdown page tying them together."""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

from ..errors import BusyError, ConfigError
from ..locks import FileLock, holder_pid
from ..metrics.stats import percentile, wilson_interval
from .breakdown import format_breakdown, summarize_breakdown
from .records import LOCK, RECORDS, read_records, record_key, repair_tail

logger = logging.getLogger(__name__)

DIFFICULTY_KEYS = ("difficulty", "level")


def _pct(values, q):
    vals = [v for v in values if v is not None]
    return percentile(vals, q) if vals else None


def _mean(values):
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def summarize_policy(records: list[dict]) -> dict:
    n = len(records)
    correct = sum(1 for r in records if r["correct"] >= 0.5)
    ci = wilson_interval(correct, n)
    c = [r["compute"] for r in records]
    return {
        "n": n, "accuracy": correct / n, "ci_low": ci.low, "ci_high": ci.high,
        "mean_samples": _mean([x["samples"] for x in c]),
        "mean_prompt_tokens": _mean([x["prompt_tokens"] for x in c]),
        "mean_generated_tokens": _mean([x["generated_tokens"] for x in c]),
        "mean_gflops": _mean([x["flops"] / 1e9 for x in c]),
        "mean_wall_s": _mean([x["wall_s"] for x in c]),
        "ttft_p50_s": _pct([x["ttft_s"] for x in c], 50), "ttft_p99_s": _pct([x["ttft_s"] for x in c], 99),
        "tpot_p50_s": _pct([x["tpot_s"] for x in c], 50), "tpot_p99_s": _pct([x["tpot_s"] for x in c], 99),
        "fluidity_mean": _mean([x["fluidity"] for x in c]),
    }


def difficulty_of(r: dict):
    for k in DIFFICULTY_KEYS:
        if k in (r.get("meta") or {}):
            return str(r["meta"][k])
    if r.get("bin") is not None:
        return f"bin{r['bin']}"
    return None


def load_run(run_dir: str | Path, *, live: bool = False) -> list[dict]:
    """The run's records, one per (id, policy).

    `live`: another process holds the run directory and may be appending, so a last line without its
    newline is a write in progress: left out, not cut off. Otherwise a torn last line (a run killed
    mid-write) is repaired as a resume would.

    A key written twice (two runs on one directory before run directories were locked, or a log pieced
    together by hand) is counted once: the first record is kept, as a resume would (it skips keys already
    present), and a warning gives the count. Counting both would inflate n and skew the accuracy."""
    run_dir = Path(run_dir)
    log = run_dir / RECORDS
    if not log.exists():
        raise ConfigError(f"{run_dir}: no {RECORDS} here; is it a run directory?")
    if not live:
        repair_tail(log)
    records, dropped = dedupe(read_records(log, live=live))
    if dropped:
        logger.warning("%s: %d duplicate (id, policy) record%s ignored (the first of each key is counted); "
                       "the log was written by more than one run at once", log, dropped, "s" * (dropped != 1))
    return records


def dedupe(records: list[dict]) -> tuple[list[dict], int]:
    """(records with only the first of each (id, policy) key, how many were dropped)."""
    seen, kept = set(), []
    for r in records:
        key = record_key(r)
        if key not in seen:
            seen.add(key)
            kept.append(r)
    return kept, len(records) - len(kept)


def summarize(records: list[dict]) -> dict[str, dict]:
    by_pol: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_pol[r["policy"]].append(r)
    return {p: summarize_policy(rs) for p, rs in by_pol.items()}


def format_table(summary: dict[str, dict]) -> str:
    cols = [("policy", "{}"), ("n", "{}"), ("acc", "{:.3f}"), ("95% CI", "{}"), ("samples", "{:.2f}"),
            ("prompt tok", "{:.0f}"), ("gen tok", "{:.1f}"), ("GFLOP", "{:.1f}"), ("wall s", "{:.2f}"),
            ("TTFT p50/p99", "{}"), ("TPOT p50/p99 ms", "{}"), ("fluidity", "{:.2f}")]

    def f(v, fmt):
        return "-" if v is None else fmt.format(v)

    rows = []
    for p, s in summary.items():
        rows.append([p, str(s["n"]), f(s["accuracy"], "{:.3f}"), f"[{s['ci_low']:.2f}, {s['ci_high']:.2f}]",
                     f(s["mean_samples"], "{:.2f}"), f(s["mean_prompt_tokens"], "{:.0f}"),
                     f(s["mean_generated_tokens"], "{:.1f}"), f(s["mean_gflops"], "{:.1f}"),
                     f(s["mean_wall_s"], "{:.2f}"),
                     f"{f(s['ttft_p50_s'], '{:.2f}')}/{f(s['ttft_p99_s'], '{:.2f}')}",
                     f"{f(s['tpot_p50_s'] and s['tpot_p50_s'] * 1000, '{:.0f}')}/"
                     f"{f(s['tpot_p99_s'] and s['tpot_p99_s'] * 1000, '{:.0f}')}",
                     f(s["fluidity_mean"], "{:.2f}")])
    header = [c[0] for c in cols]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def accuracy_by_difficulty(records: list[dict]) -> dict[str, dict[str, tuple[float, int]]]:
    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        d = difficulty_of(r)
        if d is not None:
            table[r["policy"]][d].append(1.0 if r["correct"] >= 0.5 else 0.0)
    return {p: {d: (sum(v) / len(v), len(v)) for d, v in ds.items()} for p, ds in table.items()}


def plot_all(records: list[dict], summary: dict[str, dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for p, s in summary.items():
        err = [[s["accuracy"] - s["ci_low"]], [s["ci_high"] - s["accuracy"]]]
        ax.errorbar([s["mean_generated_tokens"]], [s["accuracy"]], yerr=err, fmt="o", capsize=4, label=p)
        ax.annotate(p, (s["mean_generated_tokens"], s["accuracy"]), textcoords="offset points", xytext=(5, 5))
    paths.append(_save(fig, ax, out / "accuracy_vs_tokens.png", "mean generated tokens per prompt",
                       "accuracy (95% CI)", "Accuracy vs compute"))

    by_diff = accuracy_by_difficulty(records)
    if by_diff:
        levels = sorted({d for ds in by_diff.values() for d in ds}, key=_level_order)
        fig, ax = plt.subplots(figsize=(6, 4))
        width = 0.8 / max(len(by_diff), 1)
        for i, (p, ds) in enumerate(by_diff.items()):
            xs = [j + i * width for j in range(len(levels))]
            ax.bar(xs, [ds.get(d, (0, 0))[0] for d in levels], width=width, label=p)
        ax.set_xticks([j + width * (len(by_diff) - 1) / 2 for j in range(len(levels))], levels)
        paths.append(_save(fig, ax, out / "accuracy_by_difficulty.png", "difficulty", "accuracy",
                           "Accuracy by difficulty", grid=False))

    fig, ax = plt.subplots(figsize=(6, 4))
    for p in summary:
        walls = sorted(r["compute"]["wall_s"] for r in records if r["policy"] == p)
        ax.step(walls, [(i + 1) / len(walls) for i in range(len(walls))], where="post", label=p)
    paths.append(_save(fig, ax, out / "latency_cdf.png", "request wall time (s)", "fraction of requests",
                       "Latency CDF"))
    return paths


def _level_order(d: str):
    order = {"easy": 0, "medium": 1, "hard": 2}
    return (order.get(d, 3), d)


def _save(fig, ax, path: Path, xlabel: str, ylabel: str, title: str, grid: bool = True) -> Path:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if grid:
        ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_report(run_dir: str | Path, print_table: bool = True, *, lock_held: bool = False) -> Path:
    """Table, plots, report.md and summary.json for a run directory. If an eval holds the directory
    (`lock_held`: the caller is that eval), the report covers the records written so far and says so."""
    run_dir = Path(run_dir)
    if lock_held:
        return _write_report(run_dir, print_table, running=None)
    if not (run_dir / RECORDS).exists():  # not a run directory: say so (load_run), and create nothing
        return _write_report(run_dir, print_table, running=None)
    lock = FileLock(run_dir / LOCK, what=f"run directory {run_dir}")
    try:
        lock.acquire()
    except BusyError:
        return _write_report(run_dir, print_table, running=holder_pid(lock.path) or "unknown")
    try:
        return _write_report(run_dir, print_table, running=None)
    finally:
        lock.release()


def _write_report(run_dir: Path, print_table: bool, running) -> Path:
    records = load_run(run_dir, live=running is not None)
    if not records:
        raise ConfigError(f"{run_dir}: the run has no records yet")
    summary = summarize(records)
    table = format_table(summary)
    plots = plot_all(records, summary, run_dir)
    meta_path = run_dir / "run.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    lines = [f"# Evaluation report: {meta.get('task', '?')}", "",
             f"model: `{meta.get('model_id', '?')}` · config: `{meta.get('config_path', '?')}` · "
             f"fingerprint `{meta.get('fingerprint', '?')}` · records: {len(records)}", "", table, ""]
    if running is not None:
        lines[3:3] = [f"**In progress** (pid {running} holds the run directory): the records written so far.", ""]
    by_diff = accuracy_by_difficulty(records)
    if by_diff:
        lines += ["## Accuracy by difficulty", ""]
        for p, ds in by_diff.items():
            cells = ", ".join(f"{d}: {a:.2f} (n={n})" for d, (a, n) in sorted(ds.items(), key=lambda x: _level_order(x[0])))
            lines.append(f"- **{p}**: {cells}")
        lines.append("")
    shares = summarize_breakdown(records)
    if shares:
        lines += ["## Where the time went (share of request wall time)", "", format_breakdown(shares), ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    md = run_dir / "report.md"
    md.write_text("\n".join(lines) + "\n")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if print_table:
        if running is not None:
            print(f"run in progress (pid {running}): {len(records)} records so far")
        print(table)
        if shares:
            print("\ntime breakdown (share of request wall time):\n" + format_breakdown(shares))
        print(f"\nreport: {md}\nplots: {', '.join(str(p) for p in plots)}")
    return md
