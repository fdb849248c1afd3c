"""`adaptive tune --bank BANK --budgets 1,2,4,8,16 --out policies/<name>.yaml`

Writes, next to --out:
  <name>_b<B>.yaml     the best policy (all families) with tuning mean samples <= B, one per budget
  <name>.yaml          an index policy (kind: index) over those files: load_policy(out).plans(..., budget=B)
  <name>_tune.json     every candidate with tuning and held-out metrics, the frontiers and the choices
  <name>_frontier.png  held-out accuracy vs mean samples and vs mean tokens
and prints the held-out frontiers, the choices, where each adaptive family matches SC@max and allocate vs
uniform at a mean of 4 samples. The tuner replays sampling policies only: it does not run beam search,
DVTS or refine (they cannot be replayed from a bank of independent samples).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import yaml

from ..errors import InputError
from ..policies import load_policy, parse_policy
from .config import load_tune_config
from .frontier import cheapest_matching, pareto
from .plot import plot_frontier
from .search import ESTIMATOR_PLACEHOLDER, Tuner, TuneResult, fmt_budget

ESTIMATOR_SUFFIX = ".npz"
PRIOR_TOLERANCE = 0.005  # "within 0.5 pt of SC@max"

REPLAY_NOTE = ("note: the tuner replays sampling policies only (self_consistency / best_of_n on the bank's "
               "samples); beam search, DVTS and refine cannot be replayed from a bank and are not tuned")


def _row(p: dict) -> str:
    return (f"  {p['label']:<44} acc {p['accuracy']:.3f} [{p['ci'][0]:.3f}, {p['ci'][1]:.3f}]  "
            f"samples {p['mean_samples']:6.2f}  tokens {p['mean_tokens']:8.1f}")


def write_outputs(result: TuneResult, out, bank_path: str) -> dict:
    out = Path(out)
    stem, folder = out.stem, out.parent
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    estimator_file = None
    if result.estimator is not None:
        estimator_file = result.estimator.save(folder / f"{stem}_estimator{ESTIMATOR_SUFFIX}")
    for b, c in sorted(result.chosen.items()):
        name = f"{stem}_b{fmt_budget(b)}"
        if c.raw.get("estimator") == ESTIMATOR_PLACEHOLDER:
            c.raw["estimator"] = estimator_file.name  # resolved next to the policy file
        raw = {"schema": 1, "kind": c.raw["kind"], "name": name,
               "description": f"tuned for a mean budget of {b:g} samples per prompt: {c.family} {c.label}",
               **{k: v for k, v in c.raw.items() if k not in ("schema", "kind")},
               "meta": {"tuned_on": bank_path, "budget": b, "family": c.family, "label": c.label,
                        "difficulty": result.info.get("difficulty"),
                        "tuning": _clean(c.tune), "held_out": _clean(c.held)}}
        path = folder / f"{name}.yaml"
        parse_policy(raw, str(path))  # never write a file load_policy would refuse
        path.write_text(yaml.safe_dump(raw, sort_keys=False, width=120))
        load_policy(path)
        files[b] = path
    index = {"schema": 1, "kind": "index", "name": stem,
             "description": f"tuned policies by mean sample budget (bank {bank_path})", "unit": "samples",
             "default_budget": _num(min(files, key=lambda b: (abs(b - 4), b))) if files else 1,
             "budgets": {_num(b): p.name for b, p in sorted(files.items())},
             "meta": {"tuned_on": bank_path, **{k: v for k, v in result.info.items() if k != "base_plan"}}}
    if files:
        out.write_text(yaml.safe_dump(index, sort_keys=False, width=120))
        load_policy(out)
    return {"index": out, "files": files, "estimator": estimator_file}


def _num(b: float):
    return int(b) if float(b).is_integer() else b


def _clean(m: dict) -> dict:
    return {k: (round(v, 5) if isinstance(v, float) else [round(x, 5) for x in v] if isinstance(v, list) else v)
            for k, v in m.items()}


def summarize(result: TuneResult, tol: float) -> dict:
    """SC@max matching and allocate vs uniform at 4, on the held-out split."""
    fixed = sorted(result.family("fixed"), key=lambda c: c.held["mean_samples"])
    out = {"sc_max": None, "match": {}, "allocate_vs_uniform_at_4": None}
    if not fixed:
        return out
    sc = fixed[-1]
    out["sc_max"] = {"label": sc.label, **sc.held}
    target = sc.held["accuracy"] - tol
    for fam in ("stopping", "binned", "allocate", "binned_stopping"):
        pts = [c.point("held") for c in result.family(fam)]
        if not pts:
            continue
        by_s = cheapest_matching(pts, target, "mean_samples")
        by_t = cheapest_matching(pts, target, "mean_tokens")
        out["match"][fam] = {
            "samples": None if by_s is None else {"label": by_s["label"], "mean_samples": by_s["mean_samples"],
                                                  "ratio": by_s["mean_samples"] / sc.held["mean_samples"]},
            "tokens": None if by_t is None else {"label": by_t["label"], "mean_tokens": by_t["mean_tokens"],
                                                 "ratio": by_t["mean_tokens"] / max(sc.held["mean_tokens"], 1e-9)},
            "best": max(p["accuracy"] for p in pts)}
    # Selected on the TUNING split (no peeking): the cheapest candidate within 0.5 pt of SC@max's tuning
    # accuracy, with the difficulty prior (binned_stopping) and without it (stopping); held-out numbers.
    out["prior"] = {}
    for fam in ("stopping", "binned_stopping"):
        ok = [c for c in result.family(fam) if c.tune["accuracy"] >= sc.tune["accuracy"] - PRIOR_TOLERANCE]
        if ok:
            c = min(ok, key=lambda c: (c.tune["mean_samples"], -c.tune["accuracy"]))
            out["prior"][fam] = {"label": c.label, "tuning": c.tune, "held_out": c.held,
                                 "samples_ratio": c.held["mean_samples"] / sc.held["mean_samples"],
                                 "accuracy_delta": c.held["accuracy"] - sc.held["accuracy"]}
    alloc4 = [c for c in result.family("allocate") if abs(c.raw["budget"]["mean"] - 4) < 1e-9]
    uni4 = [c for c in fixed if c.raw["plan"]["max_samples"] == 4]
    if alloc4 and uni4:
        a = max(alloc4, key=lambda c: c.tune["accuracy"])
        out["allocate_vs_uniform_at_4"] = {"allocate": {"label": a.label, **a.held},
                                           "uniform": {"label": uni4[0].label, **uni4[0].held}}
    return out


def report(result: TuneResult, summary: dict, tol: float, quiet: bool = False) -> str:
    i = result.info
    lines = [REPLAY_NOTE,
             f"bank: {i['bank_prompts']} prompts x {i['samples_per_prompt']} samples; tuning {i['tuning_prompts']} / "
             f"held-out {i['held_out_prompts']} prompts (split seed {i['split_seed']}), {i['seeds']} replay seeds; "
             f"difficulty: {i['difficulty'] or 'none'}",
             "accuracy: mean over prompts (each averaged over seeds) with a normal 95% CI over prompts"]
    lines += [f"note: {n}" for n in result.notes]
    if not quiet:
        for fam in ("fixed", "stopping", "binned", "allocate", "binned_stopping"):
            pts = [c.point("held") for c in result.family(fam)]
            if not pts:
                continue
            for cost in ("mean_samples", "mean_tokens"):
                front = pareto(pts, cost)
                lines.append(f"\n{fam}: held-out Pareto frontier, accuracy vs {cost.replace('mean_', 'mean ')} "
                             f"({len(front)} of {len(pts)} candidates)")
                lines += [_row(p) for p in front]
    lines.append("\nchosen per budget (selected on the tuning split; held-out numbers):")
    for b, c in sorted(result.chosen.items()):
        lines.append(f"  budget {b:>5g}: {c.family:<8}" + _row(c.point("held"))[1:])
    sc = summary.get("sc_max")
    if sc:
        lines.append(f"\nSC@max = {sc['label']}: held-out acc {sc['accuracy']:.3f}, {sc['mean_samples']:.2f} samples, "
                     f"{sc['mean_tokens']:.1f} tokens; 'matches' = acc >= {sc['accuracy'] - tol:.3f} (tolerance {tol:g})")
        for fam, m in summary["match"].items():
            if m["samples"] is None:
                lines.append(f"  {fam:<8}: does not match SC@max in the grid (best held-out acc {m['best']:.3f})")
                continue
            t = m["tokens"]
            lines.append(f"  {fam:<8}: matches at {m['samples']['mean_samples']:.2f} samples = "
                         f"{m['samples']['ratio']:.2f}x SC@max samples ({m['samples']['label']}); at "
                         f"{t['mean_tokens']:.1f} tokens = {t['ratio']:.2f}x SC@max tokens ({t['label']})")
    if summary.get("prior"):
        lines.append(f"\nwithin {PRIOR_TOLERANCE * 100:g} pt of SC@max on the tuning split, fewest mean samples "
                     "(held-out numbers):")
        for fam, m in summary["prior"].items():
            h = m["held_out"]
            lines.append(f"  {'with the difficulty prior' if fam == 'binned_stopping' else 'without it (stopping)':<27}: "
                         f"{h['mean_samples']:.2f} samples = {m['samples_ratio']:.3f} of SC@max, held-out acc "
                         f"{h['accuracy']:.3f} ({m['accuracy_delta'] * 100:+.1f} pt)  [{m['label']}]")
    av = summary.get("allocate_vs_uniform_at_4")
    if av:
        a, u = av["allocate"], av["uniform"]
        lines.append(f"\nmean budget 4 samples: allocate ({a['label']}) acc {a['accuracy']:.3f} "
                     f"[{a['ci'][0]:.3f}, {a['ci'][1]:.3f}], {a['mean_samples']:.2f} samples  vs  uniform "
                     f"({u['label']}) acc {u['accuracy']:.3f} [{u['ci'][0]:.3f}, {u['ci'][1]:.3f}]")
    return "\n".join(lines)


def run_tune(bank, budgets, out, config=None, seeds=None, oracle=False, bank_path="<bank>", quiet=False,
             echo=print, estimator="heuristic") -> dict:
    """Tune on `bank`, write the policies next to `out`, print the report. A bank without p_hat gets a
    cross-fitted `estimator` (a kind name or an unfitted estimator; None: no difficulty families)."""
    cfg = load_tune_config(config)
    if seeds is not None:
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise InputError(f"seeds must be >= 1, got {seeds!r}")
        cfg = replace(cfg, seeds=seeds)
    result = Tuner(bank, budgets, cfg, oracle=oracle, estimator=estimator).run()
    written = write_outputs(result, out, bank_path)
    summary = summarize(result, cfg.match_tolerance)
    out = Path(out)
    png = plot_frontier(result, out.with_name(f"{out.stem}_frontier.png"))
    js = out.with_name(f"{out.stem}_tune.json")
    js.write_text(json.dumps({
        "info": result.info, "notes": result.notes, "summary": summary,
        "chosen": {str(b): {"family": c.family, "label": c.label, "file": str(written["files"].get(b)),
                            "tuning": c.tune, "held_out": c.held} for b, c in result.chosen.items()},
        "chosen_by_family": {f: {str(b): c.label for b, c in d.items()} for f, d in result.chosen_by_family.items()},
        "candidates": [{"family": c.family, "label": c.label, "tuning": c.tune, "held_out": c.held}
                       for c in result.candidates]}, indent=1, default=str))
    text = report(result, summary, cfg.match_tolerance, quiet)
    text += f"\n\nwrote {out} (index), {len(written['files'])} policy files, {png}, {js}"
    echo(text)
    return {"result": result, "summary": summary, "files": written["files"], "index": out, "png": png, "json": js,
            "estimator": written["estimator"]}
