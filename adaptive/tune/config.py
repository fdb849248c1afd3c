"""The tuner's search space (a file, or a shipped one: adaptive/resources/tune/*.yaml), validated like every other file: errors name the file
and the key.

    schema: 1
    seeds: 20                 # replay orders per prompt
    held_out: 0.5             # fraction of prompts held out; the split is by prompt, seeded by split_seed
    split_seed: 0
    match_tolerance: 0.01     # an adaptive point "matches SC@max" at held-out acc >= SC@max acc - this
    families: [fixed, stopping, binned, allocate]
    stopping: {caps: null, wave_sizes: [1, 2, 4], rules: {beta: {threshold: [...]}, esc: {window: [...]}}}
    binned: {caps: null}      # per-bin sample-cap choices
    allocate: {curves: [best_of_b, majority], means: null, per_prompt_cap: null}
null means "derived from --budgets" (see each key in adaptive/resources/tune/default.yaml).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from ..errors import ConfigError
from ..policies.schema import check_keys, is_int, is_num, need
from ..resources import resolve

FAMILIES = ("fixed", "stopping", "binned", "allocate", "binned_stopping")
TOP = {"schema", "seeds", "held_out", "split_seed", "match_tolerance", "families", "stopping", "binned",
       "allocate", "binned_stopping", "description"}
DEFAULT = "default"  # the shipped search space (adaptive/resources/tune/default.yaml)


@dataclass
class TuneConfig:
    seeds: int = 20
    held_out: float = 0.5
    split_seed: int = 0
    match_tolerance: float = 0.01
    families: list = field(default_factory=lambda: list(FAMILIES))
    stop_caps: list | None = None
    wave_sizes: list = field(default_factory=lambda: [1, 2, 4])
    rules: dict = field(default_factory=lambda: {"beta": {"threshold": [0.6, 0.8, 0.9, 0.95]},
                                                 "esc": {"window": [2, 4]}})
    binned_caps: list | None = None
    curves: list = field(default_factory=lambda: ["best_of_b", "majority"])
    means: list | None = None
    per_prompt_cap: int | None = None
    prior_bins: int = 4       # binned_stopping: quantile bins of p_hat
    prior_prices: int = 40    # binned_stopping: sample prices tried (geometric, 1e-4 .. 1)
    source: str = "<defaults>"


def _int_list(v, path, key, allow_null=True):
    if v is None and allow_null:
        return None
    need(isinstance(v, list) and v and all(is_int(x) and x >= 1 for x in v), path, key,
         f"{v!r}: a non-empty list of integers >= 1" + (" or null" if allow_null else ""))
    return sorted(set(v))


def parse_tune_config(raw, path: str = "<tune config>") -> TuneConfig:
    need(isinstance(raw, dict), path, "<top>", "must be a mapping")
    check_keys(raw, TOP, path)
    need(raw.get("schema", 1) == 1, path, "schema", f"{raw.get('schema')!r}: unsupported (reads 1)")
    c = TuneConfig(source=path)
    c.seeds = raw.get("seeds", c.seeds)
    need(is_int(c.seeds) and c.seeds >= 1, path, "seeds", f"{c.seeds!r}: an integer >= 1")
    c.held_out = raw.get("held_out", c.held_out)
    need(is_num(c.held_out) and 0 < c.held_out < 1, path, "held_out", f"{c.held_out!r}: a fraction in (0, 1)")
    c.split_seed = raw.get("split_seed", 0)
    need(is_int(c.split_seed) and c.split_seed >= 0, path, "split_seed", "an integer >= 0")
    c.match_tolerance = raw.get("match_tolerance", c.match_tolerance)
    need(is_num(c.match_tolerance) and c.match_tolerance >= 0, path, "match_tolerance", "a number >= 0")
    fam = raw.get("families", c.families)
    need(isinstance(fam, list) and fam and all(f in FAMILIES for f in fam), path, "families",
         f"{fam!r}: a list from {', '.join(FAMILIES)}")
    c.families = list(fam)
    st = raw.get("stopping", {}) or {}
    need(isinstance(st, dict), path, "stopping", "a mapping")
    check_keys(st, {"caps", "wave_sizes", "rules"}, path, "stopping.")
    c.stop_caps = _int_list(st.get("caps"), path, "stopping.caps")
    c.wave_sizes = _int_list(st.get("wave_sizes", c.wave_sizes), path, "stopping.wave_sizes", False)
    rules = st.get("rules", c.rules)
    need(isinstance(rules, dict) and rules, path, "stopping.rules", "a mapping rule -> {param: [values]}")
    from ..stopping import make_rule

    from ..registry import stopping_rules

    for name, grid in rules.items():
        need(isinstance(grid, dict), path, f"stopping.rules.{name}", "a mapping param -> list of values")
        if name not in stopping_rules:
            raise ConfigError(f"{path}: key 'stopping.rules.{name}': unknown stopping rule; known: "
                              f"{', '.join(stopping_rules.names())}")
        level = getattr(stopping_rules.get(name), "level_param", None)
        for k, vals in grid.items():
            if vals == "sweep":
                need(k == level, path, f"stopping.rules.{name}.{k}",
                     f"'sweep' applies to a threshold rule's level parameter ({level or 'this rule has none'})")
                continue
            need(isinstance(vals, list) and vals, path, f"stopping.rules.{name}.{k}", "a non-empty list, or 'sweep'")
            for v in vals:
                try:
                    make_rule(name, {k: v})
                except Exception as e:  # noqa: BLE001 - unknown rule or bad value, reported with the key
                    raise ConfigError(f"{path}: key 'stopping.rules.{name}.{k}': {e}") from None
    c.rules = rules
    b = raw.get("binned", {}) or {}
    need(isinstance(b, dict), path, "binned", "a mapping")
    check_keys(b, {"caps"}, path, "binned.")
    c.binned_caps = _int_list(b.get("caps"), path, "binned.caps")
    a = raw.get("allocate", {}) or {}
    need(isinstance(a, dict), path, "allocate", "a mapping")
    check_keys(a, {"curves", "means", "per_prompt_cap"}, path, "allocate.")
    c.curves = a.get("curves", c.curves)
    need(isinstance(c.curves, list) and c.curves and all(x in ("best_of_b", "majority") for x in c.curves), path,
         "allocate.curves", f"{c.curves!r}: a list from best_of_b, majority")
    means = a.get("means")
    need(means is None or (isinstance(means, list) and means and all(is_num(m) and m >= 1 for m in means)), path,
         "allocate.means", f"{means!r}: a list of numbers >= 1, or null")
    c.means = sorted(set(float(m) for m in means)) if means else None
    cap = a.get("per_prompt_cap")
    need(cap is None or (is_int(cap) and cap >= 1), path, "allocate.per_prompt_cap", f"{cap!r}: an integer >= 1")
    c.per_prompt_cap = cap
    bs = raw.get("binned_stopping", {}) or {}
    need(isinstance(bs, dict), path, "binned_stopping", "a mapping")
    check_keys(bs, {"bins", "prices"}, path, "binned_stopping.")
    c.prior_bins = bs.get("bins", c.prior_bins)
    need(is_int(c.prior_bins) and c.prior_bins >= 2, path, "binned_stopping.bins", f"{c.prior_bins!r}: an integer >= 2")
    c.prior_prices = bs.get("prices", c.prior_prices)
    need(is_int(c.prior_prices) and c.prior_prices >= 1, path, "binned_stopping.prices",
         f"{c.prior_prices!r}: an integer >= 1")
    return c


def load_tune_config(path=None) -> TuneConfig:
    """Read and validate a search space: a file path, or the name of a shipped one (default: `default`)."""
    p = resolve("tune", path or DEFAULT)
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    return parse_tune_config(raw, str(p))
