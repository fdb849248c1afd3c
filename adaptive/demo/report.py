"""The demo's figures: compute saved at equal accuracy, accuracy gained at an equal budget, the
frontier, and the estimator on held-out prompts — live, each beside the simulator's prediction.

Uncertainty: paired bootstrap over prompts (every policy answered the same held-out prompts; a
resample draws prompts with replacement and recomputes each figure on it), percentile 95% intervals.
Uniform SC@k for k < K are the first k of the same K live samples per prompt (search-and-learn scores
subsets of one generation the same way): they are what SC@k would have drawn with that seed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..strategies.base import vote


# -- per-prompt outcomes ---------------------------------------------------------------------------

def uniform_subsets(records: list[dict], K: int) -> dict[int, dict]:
    """SC@k for k = 1..K from each record's first k samples: per-prompt correct, samples, tokens."""
    out = {}
    for k in range(1, K + 1):
        correct, tokens = [], []
        for r in records:
            s = r["samples"][:k]
            winner, _ = vote([x["answer"] for x in s])
            correct.append(max((float(x["correct"]) for x in s if x["answer"] == winner), default=0.0)
                           if winner is not None else 0.0)
            tokens.append(sum(int(x["tokens"]) for x in s))
        out[k] = {"correct": np.array(correct), "samples": np.full(len(records), float(k)), "tokens": np.array(tokens, float)}
    return out


def live_outcomes(records: list[dict]) -> dict:
    return {"correct": np.array([float(r["correct"]) for r in records]),
            "samples": np.array([float(r["compute"]["samples"]) for r in records]),
            "tokens": np.array([float(r["compute"]["generated_tokens"]) for r in records])}


class Bootstrap:
    """Paired resamples of prompt indices, shared by every figure (so their intervals are comparable)."""

    def __init__(self, n: int, draws: int, seed: int = 0):
        self.idx = np.random.default_rng(seed).integers(0, n, size=(draws, n))

    def ci(self, stat) -> tuple[float, float]:
        vals = np.array([stat(i) for i in self.idx])
        vals = vals[np.isfinite(vals)]
        return (float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))) if len(vals) else (np.nan, np.nan)


def _ratio(a: np.ndarray, b: np.ndarray):
    """sum(a) / sum(b) on a resample (inf-safe)."""
    return lambda i: a[i].sum() / b[i].sum() if b[i].sum() > 0 else np.inf


# -- the report ------------------------------------------------------------------------------------

def write_demo_report(config, out, bank, tuned: dict, run_dir, twins: dict[str, str], quiet: bool = False) -> dict:
    """`twins`: arm -> the arm whose run it shares (pipeline.policy_twins); it is reported under both names."""
    from ..evaluate.records import RECORDS, read_records

    out = Path(out)
    recs = read_records(Path(run_dir) / RECORDS)
    K = config.live.uniform_samples
    by_policy: dict[str, dict] = {}
    for r in recs:
        by_policy.setdefault(r["policy"], {})[str(r["id"])] = r
    ids = sorted(set.intersection(*(set(v) for v in by_policy.values())))
    rows = {p: [v[i] for i in ids] for p, v in by_policy.items()}
    for twin, first in twins.items():
        rows[twin] = rows[first]  # run once (same plans, same seed): reported under both names
    n = len(ids)
    boot = Bootstrap(n, config.report.bootstrap, seed=config.live.seed)
    uni = uniform_subsets(rows[f"sc{K}"], K)
    live = {name: live_outcomes(rs) for name, rs in rows.items() if name != f"sc{K}"}
    sim = _simulated(tuned, K)

    def point(name, o, prediction):
        return {"policy": name, "accuracy": float(o["correct"].mean()),
                "accuracy_ci": boot.ci(lambda i: o["correct"][i].mean()),
                "mean_samples": float(o["samples"].mean()), "mean_tokens": float(o["tokens"].mean()),
                "tokens_ci": boot.ci(lambda i: o["tokens"][i].mean()), "simulated": prediction}

    points = [point(f"SC@{k}", uni[k], sim["uniform"].get(k)) for k in range(1, K + 1)]
    points += [point(name, o, sim["adaptive"].get(name)) for name, o in live.items()]

    match = live[f"adaptive_match_sc{K}"]
    sc = uni[K]
    saved = {"policy": f"adaptive_match_sc{K}", "tuned_as": tuned["match"]["label"],
             "tokens_ratio": float(sc["tokens"].sum() / match["tokens"].sum()),
             "tokens_ratio_ci": boot.ci(_ratio(sc["tokens"], match["tokens"])),
             "samples_ratio": float(sc["samples"].sum() / match["samples"].sum()),
             "samples_ratio_ci": boot.ci(_ratio(sc["samples"], match["samples"])),
             "accuracy_delta": float((match["correct"] - sc["correct"]).mean()),
             "accuracy_delta_ci": boot.ci(lambda i: (match["correct"][i] - sc["correct"][i]).mean()),
             "simulated_tokens_ratio": _safe_div(sim["uniform"].get(K, {}).get("mean_tokens"),
                                                 sim["adaptive"].get(f"adaptive_match_sc{K}", {}).get("mean_tokens"))}
    gained = []
    for b in config.live.budgets:
        name = f"adaptive_b{b:g}"
        a, u = live[name], uni[max(1, min(K, int(round(b))))]
        gained.append({"budget": b, "policy": name, "tuned_as": tuned["chosen"][str(float(b))]["label"],
                       "adaptive_accuracy": float(a["correct"].mean()), "uniform_accuracy": float(u["correct"].mean()),
                       "adaptive_mean_samples": float(a["samples"].mean()), "uniform_samples": float(u["samples"][0]),
                       "accuracy_delta": float((a["correct"] - u["correct"]).mean()),
                       "accuracy_delta_ci": boot.ci(lambda i: (a["correct"][i] - u["correct"][i]).mean()),
                       "simulated_delta": _safe_sub(sim["adaptive"].get(name, {}).get("accuracy"),
                                                    sim["uniform"].get(int(round(b)), {}).get("accuracy"))})
    estimator = _estimator_figures(rows, K, out)
    frontier_png = plot_frontier(points, out / "frontier.png", K)
    summary = {"held_out_prompts": n, "uniform_samples": K, "points": points, "compute_saved": saved,
               "accuracy_gained": gained, "estimator": estimator, "frontier_png": str(frontier_png), "twins": twins,
               "tuned": {k: tuned[k] for k in ("match", "chosen", "notes", "info")}}
    text = _markdown(config, summary, bank, tuned)
    (out / "report.md").write_text(text)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    if not quiet:
        print(_terminal(summary))
        print(f"\nwrote {out / 'report.md'}, {frontier_png}, {estimator.get('reliability_png')}")
    return summary


def _safe_div(a, b):
    return None if a is None or not b else a / b


def _safe_sub(a, b):
    return None if a is None or b is None else a - b


def _simulated(tuned: dict, K: int) -> dict:
    """The simulator's prediction for each live policy: its replay on the bank's held-out split."""
    def pick(m):
        return {"accuracy": m["accuracy"], "mean_samples": m["mean_samples"], "mean_tokens": m["mean_tokens"]}

    uniform = {int(k): pick(v["held"]) for k, v in tuned["fixed"].items()}
    adaptive = {f"adaptive_match_sc{K}": pick(tuned["match"]["held"])}
    for b, c in tuned["chosen"].items():
        adaptive[f"adaptive_b{float(b):g}"] = pick(c["held"])
    return {"uniform": uniform, "adaptive": adaptive}


def _estimator_figures(rows: dict, K: int, out: Path) -> dict:
    """AUROC / Brier / ECE of the live p_hat for "one sample is correct", on the SC@K samples, and a
    reliability plot."""
    from ..estimators import metrics as M

    p_of = {}
    for name, rs in rows.items():
        for r in rs:
            if r.get("p_hat") is not None:
                p_of[str(r["id"])] = float(r["p_hat"])
    p, y = [], []
    for r in rows[f"sc{K}"]:
        if str(r["id"]) in p_of:
            for s in r["samples"]:
                p.append(p_of[str(r["id"])])
                y.append(float(s["correct"] >= 0.5))
    if not p:
        return {"note": "no live record carries a p_hat"}
    fig = out / "reliability.png"
    M.plot_reliability(p, y, fig, title=f"probe p_hat on {len(p_of)} held-out prompts")
    try:
        auroc = M.auroc(p, y)
    except Exception:  # noqa: BLE001 - one class only: undefined
        auroc = None
    return {"auroc": auroc, "brier": M.brier(p, y), "ece": M.expected_calibration_error(p, y), "pairs": len(p),
            "prompts": len(p_of), "mean_p_hat": float(np.mean(list(p_of.values()))), "mean_outcome": float(np.mean(y)),
            "reliability_png": str(fig)}


# -- plot -------------------------------------------------------------------------------------------

def plot_frontier(points: list[dict], path: Path, K: int) -> Path:
    """Accuracy vs mean generated tokens: the uniform SC curve and the adaptive points, 95% CIs both ways,
    labels placed where they overlap no other label or marker."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    uni = [p for p in points if p["policy"].startswith("SC@")]
    ada = sorted([p for p in points if not p["policy"].startswith("SC@")], key=lambda p: p["mean_tokens"])
    for group, color, marker, name in ((uni, "tab:gray", "o", f"uniform self-consistency (SC@1..{K})"),
                                       (ada, "tab:red", "s", "tuned adaptive policies")):
        x = [p["mean_tokens"] for p in group]
        y = [p["accuracy"] for p in group]
        yerr = np.array([[p["accuracy"] - p["accuracy_ci"][0], p["accuracy_ci"][1] - p["accuracy"]] for p in group]).T
        xerr = np.array([[p["mean_tokens"] - p["tokens_ci"][0], p["tokens_ci"][1] - p["mean_tokens"]] for p in group]).T
        ax.errorbar(x, y, yerr=yerr, xerr=xerr, color=color, marker=marker, linestyle="-", capsize=3, label=name,
                    linewidth=1.2, markersize=5, alpha=0.9)
    ax.set_xlabel("mean generated tokens per prompt (live, held-out)")
    ax.set_ylabel("accuracy (live, held-out)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    labels = [(p["mean_tokens"], p["accuracy"], p["policy"].replace("adaptive_", "")) for p in uni + ada]
    place_labels(fig, ax, labels)
    fig.tight_layout()
    fig.savefig(str(path), format="png")
    return path


def place_labels(fig, ax, labels: list[tuple[float, float, str]]) -> None:
    """Annotate each (x, y, text) at the nearest of rings of offsets where its box overlaps no placed label
    and no marker (greedy, in display coordinates); where none is free, the offset overlapping least."""
    import math

    from matplotlib.text import Text

    if not hasattr(fig.canvas, "get_renderer"):  # a bare Figure: measure text with the Agg renderer
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    markers = [ax.transData.transform((x, y)) for x, y, _ in labels]
    placed: list = []
    offsets = [(r * math.cos(a), r * math.sin(a)) for r in (8, 14, 22, 32, 44, 58, 74, 92)
               for a in [math.pi / 4 + k * math.pi / 6 for k in range(12)]]

    def overlap(bb) -> float:
        area = sum(max(0.0, min(bb.x1, o.x1) - max(bb.x0, o.x0)) * max(0.0, min(bb.y1, o.y1) - max(bb.y0, o.y0))
                   for o in placed)
        return area + sum(100.0 for mx, my in markers if bb.x0 - 3 <= mx <= bb.x1 + 3 and bb.y0 - 3 <= my <= bb.y1 + 3)

    for x, y, text in labels:
        best = None
        for dx, dy in offsets:
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=7,
                              ha="left" if dx >= 0 else "right", va="bottom" if dy >= 0 else "top",
                              arrowprops={"arrowstyle": "-", "color": "0.6", "linewidth": 0.5})
            bb = Text.get_window_extent(ann, renderer)  # the text alone (an Annotation's box holds its arrow)
            cost = overlap(bb)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann, bb)
            else:
                ann.remove()
            if cost == 0:
                break
        placed.append(best[2])


# -- text -------------------------------------------------------------------------------------------

def _fmt_ci(ci, pct=False) -> str:
    a, b = ci
    return f"[{a * 100:.1f}, {b * 100:.1f}]" if pct else f"[{a:.2f}, {b:.2f}]"


def _table(summary: dict) -> list[str]:
    lines = ["| policy | accuracy [95% CI] | mean samples | mean tokens [95% CI] | simulated acc / samples / tokens |",
             "|---|---|---|---|---|"]
    for p in summary["points"]:
        s = p["simulated"]
        sim = f"{s['accuracy'] * 100:.1f}% / {s['mean_samples']:.2f} / {s['mean_tokens']:.1f}" if s else "n/a"
        lines.append(f"| {p['policy']} | {p['accuracy'] * 100:.1f}% {_fmt_ci(p['accuracy_ci'], True)} | "
                     f"{p['mean_samples']:.2f} | {p['mean_tokens']:.1f} {_fmt_ci(p['tokens_ci'])} | {sim} |")
    return lines


def _headlines(summary: dict) -> list[str]:
    K = summary["uniform_samples"]
    s = summary["compute_saved"]
    lines = [f"Compute saved at equal accuracy: {s['policy']} draws {s['tokens_ratio']:.2f}x fewer generated tokens "
             f"{_fmt_ci(s['tokens_ratio_ci'])} and {s['samples_ratio']:.2f}x fewer samples "
             f"{_fmt_ci(s['samples_ratio_ci'])} than uniform SC@{K}; accuracy difference "
             f"{s['accuracy_delta'] * 100:+.1f} pt {_fmt_ci(s['accuracy_delta_ci'], True)} "
             f"(simulated token ratio {s['simulated_tokens_ratio']:.2f}x)" if s["simulated_tokens_ratio"] else
             f"Compute saved at equal accuracy: {s['tokens_ratio']:.2f}x fewer tokens {_fmt_ci(s['tokens_ratio_ci'])}"]
    for g in summary["accuracy_gained"]:
        sim = f" (simulated {g['simulated_delta'] * 100:+.1f} pt)" if g["simulated_delta"] is not None else ""
        lines.append(f"Accuracy at a mean budget of {g['budget']:g} samples: {g['policy']} "
                     f"{g['adaptive_accuracy'] * 100:.1f}% ({g['adaptive_mean_samples']:.2f} samples) vs uniform "
                     f"SC@{g['uniform_samples']:g} {g['uniform_accuracy'] * 100:.1f}%: {g['accuracy_delta'] * 100:+.1f} pt "
                     f"{_fmt_ci(g['accuracy_delta_ci'], True)}{sim}")
    e = summary["estimator"]
    if e.get("auroc") is not None:
        lines.append(f"Estimator on held-out prompts: AUROC {e['auroc']:.3f}, Brier {e['brier']:.3f}, ECE {e['ece']:.3f} "
                     f"({e['prompts']} prompts, {e['pairs']} sample outcomes)")
    return lines


def _terminal(summary: dict) -> str:
    return "\n".join(["", f"held-out live runs on {summary['held_out_prompts']} prompts:"] + _table(summary) + [""]
                     + _headlines(summary))


def _markdown(config, summary: dict, bank, tuned: dict) -> str:
    K = summary["uniform_samples"]
    info = tuned["info"]
    lines = ["# Adaptive compute on held-out prompts", "",
             f"Task `{config.task}`, split by prompt text. Training bank: {len(bank)} prompts x {bank.max_samples} "
             f"samples ({bank.source.get('difficulty', 'no p_hat')}); live: {summary['held_out_prompts']} held-out "
             f"prompts the bank never saw. Policies were tuned on the bank's tuning split "
             f"({info.get('tuning_prompts')} prompts) and predicted on its held-out split "
             f"({info.get('held_out_prompts')} prompts): those are the simulated figures.", "",
             "## Headlines", ""] + [f"- {h}" for h in _headlines(summary)] + [
             "", "## Live runs", ""] + _table(summary) + [
             "", f"Uniform SC@k for k < {K} are the first k of the same {K} live samples per prompt (scored as subsets "
             "of one generation, as search-and-learn does). Every arm's plans are seeded with the live run's seed "
             f"({config.live.seed}), so a rerun reproduces them. Intervals: paired bootstrap over prompts "
             f"({config.report.bootstrap} resamples), percentile 95%.", "",
             "## What the adaptive policies are", ""]
    lines.append(f"- `adaptive_match_sc{K}`: {tuned['match']['family']} — {tuned['match']['label']}")
    for b in config.live.budgets:
        c = tuned["chosen"][str(float(b))]
        same = summary["twins"].get(f"adaptive_b{b:g}")
        note = (f" (the same policy as `{same}`: with the same seed its live run would repeat that one's, so it "
                "ran once and its figures are that run's)" if same else "")
        lines.append(f"- `adaptive_b{b:g}`: {c['family']} — {c['label']}{note}")
    lines += ["", "## Figures", "", "![frontier](frontier.png)", "", "![reliability](reliability.png)", "",
              "## Tuner notes", ""] + [f"- {n}" for n in tuned.get("notes", [])]
    return "\n".join(lines) + "\n"
