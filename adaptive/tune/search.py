"""The search: candidate policies per family, replayed on the tuning split (selection) and on the held-out
split (what is reported). Only sampling policies are simulated; see adaptive/bank/simulate.py.

Families
- fixed: self-consistency with N samples, N = 1..max budget (the SC curve).
- stopping: a stopping rule x wave size x sample cap. A threshold rule (beta, dirichlet, entropy,
  confidence) whose level parameter is `sweep` in the config is tried at every distinct level the bank
  can tell apart (adaptive/bank/sweep.py: exact, one pass per rule/wave/cap), its other parameters from
  the grid; the points on the tuning split's Pareto frontier are kept. Other rules (esc) replay each grid
  point.
- binned: one sample cap per difficulty bin. Fixed-N results are separable by prompt, so every combination
  of per-bin caps is scored exactly from the per-prompt fixed-N tables (no extra replay), the same numbers
  a replay of the binned policy gives with the same seeds.
- allocate: greedy marginal-gain allocation at several mean budgets, per success curve (best_of_b; majority
  = per-bin majority-vote curve fitted on the TUNING split only).
- binned_stopping (the difficulty prior): bins of p_hat (quantiles of the tuning split), and in each bin
  its own policy from the fixed and stopping candidates: for each price lambda of a sample, each bin takes
  the candidate maximising accuracy - lambda * samples over its tuning prompts (exact: results are
  separable by prompt). Hopeless and easy prompts can stop early while uncertain ones sample on. It is
  compared held out with the same stopping rules without the prior (the stopping family).
For each budget B the policy with the best tuning accuracy among those with tuning mean samples <= B is
chosen (per family and overall); frontiers and the numbers printed are on the held-out split.
"""
from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..metrics.stats import mean_ci
from ..plan import Plan
from ..policies import fit_majority_table, parse_policy
from ..policies.curves import Curve
from ..policies.schema import plan_fields
from ..registry import stopping_rules
from ..bank.bank import SAMPLING, Bank
from ..bank.simulate import Simulator
from ..bank.sweep import StatisticTable
from .config import TuneConfig
from .frontier import pareto

PLAN_KEEP = ("strategy", "max_new_tokens", "temperature", "top_p", "top_k", "seed", "extractor", "aggregation",
             "verifier", "verifier_params")
MAX_BINNED_COMBOS = 20000
ESTIMATOR_PLACEHOLDER = "<the estimator the tuner fitted>"


@dataclass
class Candidate:
    family: str
    label: str
    raw: dict
    tune: dict
    held: dict
    # per split: per-prompt accuracy / samples / tokens and per-(seed, prompt) accuracy, for the
    # families that combine candidates prompt by prompt (binned_stopping)
    per_prompt: dict | None = field(default=None, repr=False)

    def point(self, split: str = "held") -> dict:
        m = self.held if split == "held" else self.tune
        return {**m, "family": self.family, "label": self.label}


@dataclass
class TuneResult:
    candidates: list[Candidate]
    chosen: dict              # budget -> Candidate (overall best)
    chosen_by_family: dict    # family -> {budget -> Candidate}
    notes: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    estimator: object = None  # the estimator the tuner cross-fitted (policies that need one name its file)

    def family(self, name: str) -> list[Candidate]:
        return [c for c in self.candidates if c.family == name]


def metrics(per_acc: np.ndarray, per_smp: np.ndarray, per_tok: np.ndarray, seed_acc: np.ndarray | None) -> dict:
    a = float(np.mean(per_acc))
    lo, hi = (tuple(mean_ci(per_acc.tolist())) if len(per_acc) >= 2 else (a, a))
    return {"accuracy": a, "ci": [max(0.0, lo), min(1.0, hi)], "mean_samples": float(np.mean(per_smp)),
            "mean_tokens": float(np.mean(per_tok)),
            "seed_std": float(np.std(seed_acc, ddof=1)) if seed_acc is not None and len(seed_acc) > 1 else 0.0}


def base_plan(bank: Bank) -> dict:
    """The generation settings of the bank's own samples (so a tuned policy samples like the bank did)."""
    src = bank.source.get("plan") or {}
    if src and src.get("strategy") not in SAMPLING:
        raise ConfigError(f"the bank was drawn with strategy {src.get('strategy')!r}; only sampling policies "
                          "can be tuned on a bank")
    keep = {k: src[k] for k in PLAN_KEEP if k in src}
    plan = Plan.from_dict(keep) if keep else Plan()
    return {"strategy": plan.strategy, **plan_fields(plan)}


def stopping_rule_class(name: str):
    return stopping_rules.get(name)


def fmt_budget(b: float) -> str:
    return str(int(b)) if float(b).is_integer() else f"{b:g}".replace(".", "p")


class Tuner:
    """`estimator`: when the bank has no p_hat (and not `oracle`), an unfitted estimator (or a kind name,
    e.g. "heuristic": text only, no model needed) cross-fitted on the bank's own prompts for the
    difficulty families; it ends fitted on the whole bank as `self.fitted_estimator`, for the policies."""

    def __init__(self, bank: Bank, budgets, config: TuneConfig, oracle: bool = False, estimator=None):
        budgets = sorted(set(float(b) for b in budgets))
        if not budgets or budgets[0] < 1:
            raise ConfigError(f"--budgets {budgets!r}: numbers >= 1 (mean samples per prompt)")
        self.config, self.budgets, self.notes = config, budgets, []
        self.K = bank.min_samples
        if self.K < 1:
            raise ConfigError("the bank has a prompt without samples")
        if bank.max_samples != self.K:
            self.notes.append(f"prompts have {self.K}..{bank.max_samples} samples: caps are limited to {self.K}")
        if max(budgets) > self.K:
            self.notes.append(f"budgets above {self.K} (the bank's samples per prompt) are capped at {self.K}")
        self.difficulty = None
        self.fitted_estimator = None
        if bank.has_difficulty:
            self.difficulty = bank.source.get("difficulty", "bank p_hat")
        elif estimator is not None and not oracle:
            from ..estimators import make_estimator
            from ..estimators.crossfit import attach_crossfit

            est = make_estimator(estimator) if isinstance(estimator, str) else estimator
            bank = attach_crossfit(Bank([copy.copy(p) for p in bank.prompts], dict(bank.source)), est)
            self.fitted_estimator = est
            self.difficulty = bank.source["difficulty"]
        elif oracle:
            bank = bank.with_oracle_difficulty()
            self.difficulty = bank.source["difficulty"]
            self.notes.append("difficulty = each prompt's empirical pass rate on the bank (--oracle-p-hat): binned "
                              "and allocate numbers are an upper bound on what an estimator achieves")
        self.bank = bank
        self.base = base_plan(bank)
        self.estimator = bank.source.get("estimator") if not oracle or bank.source.get("estimator") else None
        if self.fitted_estimator is not None:
            self.estimator = ESTIMATOR_PLACEHOLDER  # written beside the policies, which then name its file
        self.tune_bank, self.held_bank = bank.split(config.held_out, config.split_seed)
        self.sims = {"tune": Simulator(self.tune_bank, config.seeds, seed=1),
                     "held": Simulator(self.held_bank, config.seeds, seed=2)}
        self.nmax = min(self.K, int(max(budgets + [config.per_prompt_cap or 0] + (config.binned_caps or [])
                                        + (config.stop_caps or []))))
        self.curves = {k: s.fixed_curve(self.nmax) for k, s in self.sims.items()}
        self._tables = None  # statistic tables for threshold sweeps, built on first use
        self._pool: list[Candidate] = []  # fixed and stopping candidates, for binned_stopping

    def caps(self, given) -> list[int]:
        top = min(self.K, int(max(self.budgets)))
        vals = given or [int(math.floor(b)) for b in self.budgets]
        return sorted({min(top, max(1, int(v))) for v in vals})

    # -- families --------------------------------------------------------------------------------
    def fixed(self) -> list[Candidate]:
        out = []
        for n in range(1, min(self.K, int(max(self.budgets))) + 1):
            ms, per = {}, {}
            for split, cv in self.curves.items():
                ms[split] = metrics(cv.acc[:, n - 1], cv.samples[:, n - 1], cv.tokens[:, n - 1], cv.acc_by_seed[:, n - 1])
                per[split] = {"acc": cv.acc[:, n - 1], "samples": cv.samples[:, n - 1], "tokens": cv.tokens[:, n - 1],
                              "acc_all": cv.acc_all[:, :, n - 1]}
            raw = {"schema": 1, "kind": "fixed", "plan": {**self.base, "max_samples": n}}
            out.append(Candidate("fixed", f"SC N={n}", raw, ms["tune"], ms["held"], per))
        return out

    def _replay(self, family: str, label: str, raw: dict) -> Candidate:
        pol = parse_policy(raw, f"<{family}: {label}>", name=family)
        runs = {k: sim.run(pol) for k, sim in self.sims.items()}
        per = {k: {"acc": r.per_prompt_acc, "samples": r.per_prompt_samples, "tokens": r.per_prompt_tokens,
                   "acc_all": None} for k, r in runs.items()}
        return Candidate(family, label, raw, runs["tune"].to_dict(), runs["held"].to_dict(), per)

    def stopping(self) -> list[Candidate]:
        out = []
        has_conf = all(c is not None for sim in self.sims.values() for cs in sim.confidences for c in cs)
        for rule, grid in self.config.rules.items():
            if rule == "confidence" and not has_conf:
                self.notes.append("stopping: the confidence rule is skipped, the bank has no trace confidences")
                continue
            level_param = getattr(stopping_rule_class(rule), "level_param", None)
            swept = level_param is not None and grid.get(level_param) == "sweep"
            keys = sorted(k for k in grid if not (swept and k == level_param))
            for values in itertools.product(*(grid[k] for k in keys)):
                params = dict(zip(keys, values))
                for cap in self.caps(self.config.stop_caps):
                    waves = [params["window"]] if rule == "esc" else self.config.wave_sizes
                    for w in waves:
                        if cap < 2 or w >= cap:
                            continue
                        if swept:
                            out += self._swept(rule, params, w, cap)
                            continue
                        ptxt = ",".join(f"{k}={v}" for k, v in params.items())
                        raw = {"schema": 1, "kind": "fixed", "plan": {**self.base, "max_samples": cap},
                               "stopping": {"rule": rule, "params": params, "wave_size": w}}
                        out.append(self._replay("stopping", f"{rule}({ptxt}) wave {w} cap {cap}", raw))
        return out

    def _swept(self, rule: str, params: dict, wave: int, cap: int) -> list[Candidate]:
        """Every distinct level of a threshold rule, kept where it is on the tuning Pareto frontier."""
        if self._tables is None:
            self._tables = {k: StatisticTable(sim) for k, sim in self.sims.items()}
        sweeps = {k: t.sweep(rule, params, wave, cap) for k, t in self._tables.items()}
        levels = sweeps["tune"].levels()
        cv = sweeps["tune"].curve(levels)
        points = [{"level": float(lv), "accuracy": float(a), "mean_samples": float(m)}
                  for lv, a, m in zip(levels, cv["accuracy"], cv["mean_samples"])]
        out = []
        for p in pareto(points):
            stop = sweeps["tune"].stopping(p["level"])
            ms, per = {}, {}
            for split, sw in sweeps.items():
                r = sw.at(p["level"])
                ms[split] = metrics(r["acc"], r["samples"], r["tokens"], r["acc_by_seed"])
                per[split] = {"acc": r["acc"], "samples": r["samples"], "tokens": r["tokens"], "acc_all": r["acc_all"]}
            ptxt = ",".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in stop["params"].items())
            raw = {"schema": 1, "kind": "fixed", "plan": {**self.base, "max_samples": cap}, "stopping": stop}
            out.append(Candidate("stopping", f"{rule}({ptxt}) wave {wave} cap {cap}", raw, ms["tune"], ms["held"], per))
        return out

    def binned(self) -> list[Candidate]:
        if self.difficulty is None:
            self.notes.append("binned: skipped, the bank has no p_hat (build it with --estimator, or --oracle-p-hat)")
            return []
        all_bins = list(range(max(int(p.bin or 0) for p in self.bank.prompts) + 1))
        tune_bins = sorted({int(p.bin or 0) for p in self.tune_bank.prompts})
        nearest = {b: min(tune_bins, key=lambda t: (abs(t - b), t)) for b in all_bins}
        choices = self.caps(self.config.binned_caps)
        while len(choices) ** len(tune_bins) > MAX_BINNED_COMBOS and len(choices) > 2:
            choices = choices[::2] if choices[-1] in choices[::2] else choices[::2] + [choices[-1]]
        cands = []
        bins_of = {k: np.array([nearest[int(p.bin or 0)] for p in b.prompts]) for k, b in
                   (("tune", self.tune_bank), ("held", self.held_bank))}
        for combo in itertools.product(choices, repeat=len(tune_bins)):
            cap_of = dict(zip(tune_bins, combo))
            if len(set(combo)) == 1 and len(tune_bins) > 1:
                continue  # the same cap everywhere is fixed-N SC
            ms = {}
            for split, cv in self.curves.items():
                idx = np.array([cap_of[b] for b in bins_of[split]]) - 1
                rows = np.arange(len(idx))
                ms[split] = metrics(cv.acc[rows, idx], cv.samples[rows, idx], cv.tokens[rows, idx],
                                    cv.acc_all[:, rows, idx].mean(axis=1))
            caps = [cap_of[nearest[b]] for b in all_bins]
            raw = {"schema": 1, "kind": "binned", "estimator": self.estimator, "base_plan": dict(self.base),
                   "bins": [{"bin": b, "plan": {"max_samples": c}} for b, c in zip(all_bins, caps)]}
            cands.append(Candidate("binned", "caps " + "/".join(map(str, caps)) + " (bin 0 = hardest)", raw,
                                   ms["tune"], ms["held"]))
        return cands

    def allocate(self) -> list[Candidate]:
        if self.difficulty is None:
            self.notes.append("allocate: skipped, the bank has no p_hat (build it with --estimator, or --oracle-p-hat)")
            return []
        cap = min(self.K, self.config.per_prompt_cap or int(max(self.budgets)))
        means = self.config.means
        if means is None:
            bs = [min(b, cap) for b in self.budgets]
            means = set(bs) | {(a + b) / 2 for a, b in zip(bs, bs[1:])} | {4.0}
        means = sorted(m for m in set(means) if 1 <= m <= cap)
        table = fit_majority_table(self.curves["tune"].acc[:, :cap], [int(p.bin or 0) for p in self.tune_bank.prompts])
        out = []
        for curve in self.config.curves:
            cyaml = "best_of_b" if curve == "best_of_b" else Curve("majority", table).to_yaml()
            for m in means:
                raw = {"schema": 1, "kind": "allocate", "estimator": self.estimator,
                       "budget": {"unit": "samples", "mean": m}, "per_prompt_cap": cap, "min_per_prompt": 1,
                       "curve": cyaml, "base_plan": dict(self.base)}
                out.append(self._replay("allocate", f"{curve} mean {m:g}", raw))
        return out

    def binned_stopping(self) -> list[Candidate]:
        """Per-bin choice among the fixed and stopping candidates, one combination per sample price."""
        if self.difficulty is None:
            self.notes.append("binned_stopping: skipped, the bank has no p_hat (build it with --estimator, or "
                              "--oracle-p-hat)")
            return []
        pool = [c for c in self._pool if c.per_prompt is not None and c.per_prompt["tune"]["acc_all"] is not None]
        if not pool:
            pool = self.fixed()
        tune_p = np.array([float(p.p_hat) for p in self.tune_bank.prompts])
        qs = np.quantile(tune_p, np.linspace(0, 1, self.config.prior_bins + 1)[1:-1])
        edges = sorted({float(q) for q in qs if 0.0 < q < 1.0}) + [1.0]
        bin_of = {k: np.searchsorted(edges[:-1], [float(p.p_hat) for p in b.prompts], side="right")
                  for k, b in (("tune", self.tune_bank), ("held", self.held_bank))}
        n_bins = len(edges)
        acc = np.array([c.per_prompt["tune"]["acc"] for c in pool])       # [cand, prompt]
        smp = np.array([c.per_prompt["tune"]["samples"] for c in pool])
        seen, out = set(), []
        for lam in np.geomspace(1e-4, 1.0, self.config.prior_prices):
            gain = acc - lam * smp
            choice = []
            for b in range(n_bins):
                rows = bin_of["tune"] == b
                choice.append(int(np.argmax(gain[:, rows].sum(axis=1))) if rows.any() else 0)
            key = tuple(choice)
            if key in seen or len(set(key)) == 1:
                continue  # the same choice in every bin is a candidate without the prior
            seen.add(key)
            ms = {}
            for split in ("tune", "held"):
                ci = np.array([choice[b] for b in bin_of[split]])
                rows = np.arange(len(ci))
                per = [pool[c].per_prompt[split] for c in choice]
                pick = lambda name: np.array([per[b][name][i] for i, b in zip(rows, bin_of[split])])  # noqa: E731
                acc_all = np.stack([pool[c].per_prompt[split]["acc_all"][:, i] for i, c in zip(rows, ci)], axis=1) \
                    if all(p["acc_all"] is not None for p in per) else None
                ms[split] = metrics(pick("acc"), pick("samples"), pick("tokens"),
                                    acc_all.mean(axis=1) if acc_all is not None else None)
            bins = []
            for b, c in enumerate(choice):
                plan = {k: v for k, v in pool[c].raw["plan"].items() if k not in self.base or self.base[k] != v}
                st = pool[c].raw.get("stopping")
                if st:
                    plan.update(stopping=st["rule"], stopping_params=dict(st["params"]), wave_size=st["wave_size"])
                bins.append({"max_p": edges[b], "plan": plan})
            raw = {"schema": 1, "kind": "binned", "estimator": self.estimator, "base_plan": dict(self.base),
                   "bins": bins, "meta": {"sample_price": float(lam)}}
            label = " | ".join(f"p<{e:.2g}: {pool[c].label}" for e, c in zip(edges, choice))
            out.append(Candidate("binned_stopping", label, raw, ms["tune"], ms["held"]))
        return out

    # -- selection --------------------------------------------------------------------------------
    def run(self) -> TuneResult:
        fams = {"fixed": self.fixed, "stopping": self.stopping, "binned": self.binned, "allocate": self.allocate,
                "binned_stopping": self.binned_stopping}
        cands: list[Candidate] = []
        for f in self.config.families:
            got = fams[f]()
            if f in ("fixed", "stopping"):
                self._pool += got
            cands += got
        chosen, by_family = {}, {}
        for b in self.budgets:
            ok = [c for c in cands if c.tune["mean_samples"] <= b + 1e-6]
            if ok:
                chosen[b] = max(ok, key=lambda c: (c.tune["accuracy"], -c.tune["mean_samples"]))
            for f in self.config.families:
                okf = [c for c in ok if c.family == f]
                if okf:
                    by_family.setdefault(f, {})[b] = max(okf, key=lambda c: (c.tune["accuracy"], -c.tune["mean_samples"]))
        info = {"bank_prompts": len(self.bank), "tuning_prompts": len(self.tune_bank),
                "held_out_prompts": len(self.held_bank), "samples_per_prompt": self.K, "seeds": self.config.seeds,
                "difficulty": self.difficulty, "budgets": self.budgets, "base_plan": self.base,
                "split_seed": self.config.split_seed, "held_out": self.config.held_out}
        return TuneResult(cands, chosen, by_family, self.notes, info, self.fitted_estimator)
