"""`adaptive demo`: the whole adaptive-compute loop on one task, ending in held-out live runs.

Stages, each writing its output under `out` before the next starts (so a killed demo resumes at the
stage it was in; the live runs resume record by record like any eval run):

    1 bank        the training half of the task (split by prompt text): a shipped bank, or drawn
    2 estimator   a difficulty estimator fitted on the bank's prompts; the bank's p_hat out of fold
    3 tune        policies per mean budget, tuned on the bank (adaptive.tune) with that p_hat
    4 live        eval runs on held-out prompts: uniform SC@K (SC@k for k < K are its first k samples)
                  and the tuned adaptive policies: the cheapest one that matches SC@K's accuracy on the
                  bank, and the best one at each live budget
    5 report      report.md, summary.json and the plots (adaptive/demo/report.py)
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from ..errors import ConfigError
from .config import DemoConfig

STAGES = ("bank", "estimator", "tune", "live", "report")


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_demo(config: DemoConfig, out, backend=None, quiet: bool = False) -> dict:
    from ..evaluate.runner import run_directory
    from ..tasks import load_task

    out = run_directory(Path(out))
    meta_path = out / "demo.json"
    meta = {"config": config.raw, "config_path": config.source}
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("config") != config.raw:
            raise ConfigError(f"refusing to resume {out}: it was started with another demo config "
                              f"({old.get('config_path')}); use a new --out")
    else:
        meta_path.write_text(json.dumps(meta, indent=1))
    spec, examples, _ = load_task(config.task, shuffle=False)
    from ..bank.draw import split_by_text

    train, held = split_by_text(examples)
    timings: dict = {}

    def stage(name, fn):
        t0 = time.perf_counter()
        result = fn()
        timings[name] = time.perf_counter() - t0
        return result

    backend_box: dict = {"b": backend}

    def get_backend():
        if backend_box["b"] is None:
            from ..backends.hf import HFBackend

            _say("loading the embedded model", quiet)
            backend_box["b"] = HFBackend.from_pretrained(None)
        return backend_box["b"]

    bank = stage("bank", lambda: _bank(config, out, spec, train, get_backend, quiet))
    est_path, bank = stage("estimator", lambda: _estimator(config, out, bank, get_backend, quiet))
    tuned = stage("tune", lambda: _tune(config, out, bank, est_path, quiet))
    held_examples = _live_examples(held, train, config.live.prompts)
    pols = live_policies(config, tuned)
    twins = policy_twins(out / "policies", pols)
    runs = stage("live", lambda: _live(config, out, spec, held_examples, pols, twins, get_backend, quiet))
    from .report import write_demo_report

    summary = stage("report", lambda: write_demo_report(config, out, bank, tuned, runs, twins, quiet=quiet))
    summary["stage_seconds"] = {**summary.get("stage_seconds", {}), **timings}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


# -- 1. bank ---------------------------------------------------------------------------------------

def _bank(config: DemoConfig, out: Path, spec, train, get_backend, quiet):
    from ..bank import Bank

    path = out / "bank.jsonl.gz"
    if path.exists():
        return Bank.load(path)
    if config.bank.file is not None:
        from ..resources import resolve

        src = resolve("banks", config.bank.file)
        bank = Bank.load(src)
        if bank.min_samples < config.bank.samples:
            raise ConfigError(f"bank {src} has {bank.min_samples} samples per prompt; the demo config asks for "
                              f"{config.bank.samples}")
        ids = {ex.id for ex in train}
        if not all(p.id in ids for p in bank.prompts):
            raise ConfigError(f"bank {src} holds prompts that are not in {config.task}'s training half")
        _say(f"bank: {len(bank)} training prompts x {bank.max_samples} samples from {src.name}", quiet)
        shutil.copyfile(src, path)
        return bank
    from ..bank.draw import draw_bank

    todo = train[: config.bank.limit] if config.bank.limit else train
    _say(f"bank: drawing {config.bank.samples} samples for each of {len(todo)} training prompts", quiet)
    bank = draw_bank(get_backend(), spec, todo, config.bank.samples, max_new_tokens=config.live.max_new_tokens,
                     temperature=config.live.temperature, partial=out / "bank.partial.jsonl",
                     progress=None if quiet else lambda d, n: _say(f"bank: {d}/{n} prompts", quiet),
                     source={"task": config.task, "split": "train (even sha256 of the prompt text)"})
    bank.save(path)
    return bank


# -- 2. estimator ----------------------------------------------------------------------------------

def _estimator(config: DemoConfig, out: Path, bank, get_backend, quiet):
    from ..bank import Bank
    from ..estimators import make_estimator
    from ..estimators.crossfit import attach_crossfit
    from ..tune.outputs import ESTIMATOR_SUFFIX

    policies = out / "policies"
    policies.mkdir(exist_ok=True)
    est_path = policies / f"estimator_{config.estimator.kind}{ESTIMATOR_SUFFIX}"
    crossfit_path = out / "bank_crossfit.jsonl.gz"
    if est_path.exists() and crossfit_path.exists():
        return est_path, Bank.load(crossfit_path)
    backend = get_backend() if config.estimator.kind == "probe" else None
    est = make_estimator(config.estimator.kind, backend)
    _say(f"estimator: fitting {config.estimator.kind} on {len(bank)} prompts "
         f"({config.estimator.folds}-fold p_hat for tuning)",
         quiet)
    attach_crossfit(bank, est, folds=config.estimator.folds)
    bank.source["estimator"] = est_path.name  # policies name it relative to their folder
    est.save(est_path)
    bank.save(crossfit_path)
    return est_path, bank


# -- 3. tune ---------------------------------------------------------------------------------------

def _tune(config: DemoConfig, out: Path, bank, est_path: Path, quiet) -> dict:
    """Tuned policies per budget, plus `match_sc<K>`: the cheapest candidate whose tuning accuracy
    reaches uniform SC@K's (K = live uniform_samples)."""
    import yaml

    from ..bank.bank import Bank
    from ..tune.outputs import run_tune

    folder = out / "policies"
    done = folder / "tuned.json"
    if done.exists():
        return json.loads(done.read_text())
    _say(f"tune: {len(config.tune.budgets)} budgets on {len(bank)} prompts (config {config.tune.config})", quiet)
    res = run_tune(Bank(list(bank.prompts), dict(bank.source)), config.tune.budgets, folder / "tuned.yaml",
                   config=config.tune.config, bank_path="bank_crossfit.jsonl.gz", quiet=True,
                   echo=(lambda s: None) if quiet else print, estimator=None)
    result = res["result"]
    K = config.live.uniform_samples
    sc = next(c for c in result.family("fixed") if c.raw["plan"]["max_samples"] == K)
    adaptive = [c for c in result.candidates if c.family != "fixed"]
    ok = [c for c in adaptive if c.tune["accuracy"] >= sc.tune["accuracy"]]
    if not ok:
        raise ConfigError(f"no tuned policy reaches SC@{K}'s accuracy on the bank; widen the tune config")
    match = min(ok, key=lambda c: (c.tune["mean_tokens"], -c.tune["accuracy"]))
    name = f"match_sc{K}"
    raw = {"schema": 1, "name": name, **{k: v for k, v in match.raw.items() if k != "name"},
           "description": f"the cheapest tuned policy (mean tokens on the bank's tuning split) whose accuracy "
                          f"reaches uniform SC@{K}'s there: {match.family} {match.label}"}
    if raw.get("estimator"):
        raw["estimator"] = est_path.name
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False, width=120))
    chosen = {str(b): {"file": str(res["files"][b].name), "family": c.family, "label": c.label, "tune": c.tune,
                       "held": c.held} for b, c in result.chosen.items() if b in res["files"]}
    # The best of each difficulty-aware family at each live budget: what `scripts/ship_defaults.py` ships.
    for fam in ("binned_stopping", "allocate"):
        for b in config.live.budgets:
            c = result.chosen_by_family.get(fam, {}).get(float(b))
            if c is None:
                continue
            fraw = {"schema": 1, "name": f"{fam}_b{b:g}", **{k: v for k, v in c.raw.items() if k not in ("name", "schema")},
                    "description": f"tuned {fam} policy for a mean budget of {b:g} samples: {c.label}",
                    "meta": {"family": fam, "tuning": c.tune, "held_out": c.held}}
            if fraw.get("estimator"):
                fraw["estimator"] = est_path.name
            (folder / f"{fam}_b{b:g}.yaml").write_text(yaml.safe_dump(fraw, sort_keys=False, width=120))
    tuned = {"match": {"file": f"{name}.yaml", "family": match.family, "label": match.label, "tune": match.tune,
                       "held": match.held},
             "sc": {"label": sc.label, "tune": sc.tune, "held": sc.held},
             "chosen": chosen, "summary": res["summary"], "info": result.info, "notes": result.notes,
             "fixed": {str(c.raw["plan"]["max_samples"]): {"tune": c.tune, "held": c.held}
                       for c in result.family("fixed")}}
    done.write_text(json.dumps(tuned, indent=1, default=str))
    return tuned


# -- 4. live ---------------------------------------------------------------------------------------

def _live_examples(held, train, n: int) -> list:
    """The first `n` held-out examples with distinct prompt texts (none of them in the bank)."""
    seen = {str(ex.prompt) for ex in train}
    out = []
    for ex in held:
        if str(ex.prompt) in seen:
            continue
        seen.add(str(ex.prompt))
        out.append(ex)
        if len(out) == n:
            break
    return out


def live_policies(config: DemoConfig, tuned: dict) -> dict[str, dict]:
    """Eval-config policy entries: uniform SC@K, the SC@K match, and the tuned policy per live budget."""
    K = config.live.uniform_samples
    base = {"strategy": "self_consistency", "max_new_tokens": config.live.max_new_tokens,
            "temperature": config.live.temperature, "seed": config.live.seed}
    pols = {f"sc{K}": {"plan": {**base, "max_samples": K}}, f"adaptive_match_sc{K}": {"policy": tuned["match"]["file"]}}
    for b in config.live.budgets:
        key = str(float(b))
        if key not in tuned["chosen"]:
            raise ConfigError(f"live budget {b}: not among the tuned budgets {sorted(tuned['chosen'])}")
        pols[f"adaptive_b{b:g}"] = {"policy": tuned["chosen"][key]["file"]}
    return pols


def policy_twins(folder: Path, pols: dict[str, dict]) -> dict[str, str]:
    """arm -> the earlier arm whose policy file plans the same (names, descriptions and notes aside).
    Every arm runs with the same seed, so a twin's live run would repeat the first one's exactly."""
    import yaml

    seen: dict[str, str] = {}
    twins = {}
    for name, entry in pols.items():
        if "policy" not in entry:
            continue
        raw = yaml.safe_load((Path(folder) / entry["policy"]).read_text())
        key = json.dumps({k: v for k, v in raw.items() if k not in ("name", "description", "meta")}, sort_keys=True)
        if key in seen:
            twins[name] = seen[key]
        else:
            seen[key] = name
    return twins


def _live(config: DemoConfig, out: Path, spec, examples, pols: dict[str, dict], twins: dict[str, str], get_backend,
          quiet) -> Path:
    import yaml

    from ..evaluate import parse_config, run_eval

    task_dir = out / "heldout"
    task_dir.mkdir(exist_ok=True)
    rows = [{"id": ex.id, "prompt": ex.prompt, "gold": ex.gold, "meta": ex.meta} for ex in examples]
    (task_dir / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = {"name": f"{spec.name}_heldout",
            "description": f"{len(rows)} held-out prompts of {spec.name} (odd sha256 of the prompt text)",
            "source": {"kind": "jsonl", "path": "heldout.jsonl"}, "template": "{prompt}",
            "extractor": spec.extractor, "grader": spec.grader, "extractor_kwargs": spec.extractor_kwargs,
            "grader_kwargs": spec.grader_kwargs,
            "fields": {"prompt": "prompt", "gold": "gold", "id": "id",
                       "meta": {k: f"meta.{k}" for k in (examples[0].meta if examples else {})}}}
    (task_dir / "task.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    folder = (out / "policies").resolve()
    entries = []
    for name, entry in pols.items():
        if name in twins:
            _say(f"live: {name} is the same policy as {twins[name]}: run once, reported under both names", quiet)
            continue
        if "policy" in entry:
            entries.append({"name": name, "policy": str(folder / entry["policy"])})
        else:
            entries.append({"name": name, **entry})
    raw = {"description": "adaptive demo: live runs on held-out prompts", "task": str((task_dir / "task.yaml").resolve()),
           "seed": config.live.seed, "shuffle": False, "batch_size": config.live.batch_size, "policies": entries}
    cfg = parse_config(raw, str(out / "live.yaml"))
    (out / "live.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    _say(f"live: {len(examples)} held-out prompts x {len(entries)} policies (resumable: {out / 'live'})", quiet)
    run_eval(cfg, out / "live", backend=get_backend(), progress=not quiet, report=False)
    return out / "live"
