"""The demo's settings (a file, or a shipped one: adaptive/resources/demo/*.yaml).

    task: skills_mixed                 # split by prompt text: bank on one half, live runs on the other
    bank: {file: skills_train_k32, samples: 32}          # a shipped bank; or {draw: true, samples: K}
    estimator: {kind: probe, folds: 5}
    tune: {config: demo, budgets: [1, 2, 3, 4, 6, 8, 12, 16, 32]}
    live: {prompts: 96, uniform_samples: 8, budgets: [2, 4], batch_size: 16}
"""
from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from ..errors import ConfigError
from ..policies.schema import check_keys, is_int, is_num, need


@dataclass
class DemoConfig:
    task: str = "skills_mixed"
    description: str = ""
    bank_file: str | None = "skills_train_k32"  # a shipped bank (by name) or a path; None: draw one
    bank_samples: int = 32
    bank_limit: int | None = None       # draw: at most this many training prompts
    estimator: str = "probe"
    folds: int = 5
    tune_config: str = "demo"
    budgets: list = field(default_factory=lambda: [1, 2, 3, 4, 6, 8, 12, 16, 32])
    live_prompts: int = 96
    uniform_samples: int = 8
    live_budgets: list = field(default_factory=lambda: [2, 4])
    batch_size: int = 16
    max_new_tokens: int = 40
    temperature: float = 0.7
    seed: int = 0
    bootstrap: int = 2000
    source: str = "<defaults>"
    raw: dict = field(default_factory=dict)


def parse_demo_config(raw, path: str = "<demo config>") -> DemoConfig:
    need(isinstance(raw, dict), path, "<top>", "must be a mapping")
    check_keys(raw, {"task", "description", "bank", "estimator", "tune", "live", "report"}, path)
    c = DemoConfig(source=path, raw=raw)
    c.task = raw.get("task", c.task)
    need(isinstance(c.task, str) and c.task, path, "task", "a task name or task file")
    c.description = str(raw.get("description", ""))
    b = raw.get("bank", {}) or {}
    need(isinstance(b, dict), path, "bank", "a mapping")
    check_keys(b, {"file", "draw", "samples", "limit"}, path, "bank.")
    need(bool(b.get("draw")) != ("file" in b), path, "bank", "give exactly one of 'file' (a bank) or 'draw: true'")
    c.bank_file = None if b.get("draw") else b["file"]
    c.bank_samples = b.get("samples", c.bank_samples)
    need(is_int(c.bank_samples) and c.bank_samples >= 2, path, "bank.samples", f"{c.bank_samples!r}: an integer >= 2")
    c.bank_limit = b.get("limit")
    need(c.bank_limit is None or (is_int(c.bank_limit) and c.bank_limit >= 10), path, "bank.limit",
         f"{c.bank_limit!r}: an integer >= 10")
    e = raw.get("estimator", {}) or {}
    need(isinstance(e, dict), path, "estimator", "a mapping")
    check_keys(e, {"kind", "folds"}, path, "estimator.")
    c.estimator = e.get("kind", c.estimator)
    need(c.estimator in ("probe", "heuristic"), path, "estimator.kind", f"{c.estimator!r}: probe or heuristic")
    c.folds = e.get("folds", c.folds)
    need(is_int(c.folds) and c.folds >= 2, path, "estimator.folds", f"{c.folds!r}: an integer >= 2")
    t = raw.get("tune", {}) or {}
    need(isinstance(t, dict), path, "tune", "a mapping")
    check_keys(t, {"config", "budgets"}, path, "tune.")
    c.tune_config = t.get("config", c.tune_config)
    c.budgets = t.get("budgets", c.budgets)
    need(isinstance(c.budgets, list) and c.budgets and all(is_num(x) and x >= 1 for x in c.budgets), path,
         "tune.budgets", f"{c.budgets!r}: a list of numbers >= 1")
    lv = raw.get("live", {}) or {}
    need(isinstance(lv, dict), path, "live", "a mapping")
    check_keys(lv, {"prompts", "uniform_samples", "budgets", "batch_size", "max_new_tokens", "temperature", "seed"},
               path, "live.")
    for key, lo in (("prompts", 4), ("uniform_samples", 2), ("batch_size", 1), ("max_new_tokens", 1), ("seed", 0)):
        v = lv.get(key, getattr(c, "live_prompts" if key == "prompts" else key))
        need(is_int(v) and v >= lo, path, f"live.{key}", f"{v!r}: an integer >= {lo}")
        setattr(c, "live_prompts" if key == "prompts" else key, v)
    c.temperature = lv.get("temperature", c.temperature)
    need(is_num(c.temperature) and c.temperature > 0, path, "live.temperature", "a number > 0 (samples must differ)")
    c.live_budgets = lv.get("budgets", c.live_budgets)
    need(isinstance(c.live_budgets, list) and all(is_num(x) and x >= 1 for x in c.live_budgets), path,
         "live.budgets", f"{c.live_budgets!r}: a list of mean sample budgets >= 1")
    need(c.uniform_samples <= c.bank_samples, path, "live.uniform_samples",
         f"{c.uniform_samples}: at most the bank's samples per prompt ({c.bank_samples})")
    r = raw.get("report", {}) or {}
    need(isinstance(r, dict), path, "report", "a mapping")
    check_keys(r, {"bootstrap"}, path, "report.")
    c.bootstrap = r.get("bootstrap", c.bootstrap)
    need(is_int(c.bootstrap) and c.bootstrap >= 100, path, "report.bootstrap", "an integer >= 100")
    return c


def load_demo_config(name_or_path=None) -> DemoConfig:
    from ..resources import resolve

    p = resolve("demo", name_or_path or "default")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    return parse_demo_config(raw, str(p))
