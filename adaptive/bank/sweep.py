"""Every level of a threshold stopping rule at once, replayed exactly on a bank.

A threshold rule (beta, dirichlet, entropy, confidence; `adaptive.stopping.base.ThresholdRule`) stops
once statistic(samples so far) >= level. With the sample orders fixed (the Simulator's permutations),
a prompt's trajectory of statistics at the wave boundaries does not depend on the level: replaying the
rule at level L stops at the first boundary whose statistic reaches L. So one pass computes the
statistic at every boundary of every (seed, prompt), and any level's replay is an index lookup:
the stop boundary is the first where the running maximum of the statistic reaches L.

The levels worth trying are the distinct values the statistic takes: between two consecutive ones
every level behaves the same. `ThresholdSweep.levels()` returns one level per distinct behaviour
(each attained value), so a tuner tries each once — thresholds refined as far as the bank can tell
them apart, not a short grid. Results equal `Simulator.run_plan` at the same parameter (tested).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..stopping import SampleView, make_rule
from .simulate import COUNT_RULES, Simulator


@dataclass
class ThresholdSweep:
    """One (rule without its level, wave size, cap) on one Simulator's bank and orders."""

    rule: str
    params: dict          # the rule's other parameters
    wave: int
    cap: int
    stat: np.ndarray      # [seed, prompt, boundary]: statistic after each wave (-inf at the last boundary)
    acc: np.ndarray       # [seed, prompt, boundary]: correctness of the majority vote so far
    samples: np.ndarray   # [seed, prompt, boundary]
    tokens: np.ndarray    # [seed, prompt, boundary]
    level_param: str

    def levels(self) -> np.ndarray:
        """Each distinct finite statistic value (ascending): one level per distinct behaviour; those whose
        parameter the rule refuses (e.g. entropy threshold 1, where normalized entropy is 1) left out."""
        from ..errors import ConfigError

        out = []
        for level in np.unique(self.stat[np.isfinite(self.stat)]):
            try:
                make_rule(self.rule, {**self.params, self.level_param: float(self.param_for(level))})
            except ConfigError:
                continue
            out.append(level)
        return np.asarray(out, dtype=float)

    def stop_index(self, level: float) -> np.ndarray:
        """[seed, prompt]: the boundary where a replay at `level` stops."""
        reached = np.maximum.accumulate(self.stat, axis=2) >= level
        reached[:, :, -1] = True  # the cap (or the prompt's last sample) always ends it
        return reached.argmax(axis=2)

    def at(self, level: float) -> dict:
        """Per-prompt seed-averaged accuracy / samples / tokens and per-seed bank accuracy at `level`."""
        j = self.stop_index(level)[:, :, None]
        acc = np.take_along_axis(self.acc, j, axis=2)[:, :, 0]
        return {"acc": acc.mean(axis=0), "samples": np.take_along_axis(self.samples, j, axis=2)[:, :, 0].mean(axis=0),
                "tokens": np.take_along_axis(self.tokens, j, axis=2)[:, :, 0].mean(axis=0),
                "acc_by_seed": acc.mean(axis=1), "acc_all": acc}

    def curve(self, levels: np.ndarray) -> dict:
        """Bank-mean accuracy and samples at every level at once: [len(levels)] arrays (the same numbers
        `at(level)` gives, averaged over prompts)."""
        run_max = np.maximum.accumulate(self.stat, axis=2)
        run_max[:, :, -1] = np.inf  # the last boundary always ends a replay
        S, n, m = self.stat.shape
        acc = np.zeros(len(levels))
        smp = np.zeros(len(levels))
        for s in range(S):
            for i in range(n):
                j = np.searchsorted(run_max[s, i], levels, side="left")  # first boundary reaching each level
                acc += self.acc[s, i, j]
                smp += self.samples[s, i, j]
        return {"accuracy": acc / (S * n), "mean_samples": smp / (S * n)}

    def param_for(self, level: float) -> float:
        return make_rule(self.rule, self.params).param_for(level)

    def stopping(self, level: float) -> dict:
        """The policy-file `stopping:` block that replays (and runs live) at `level`."""
        return {"rule": self.rule, "params": {**self.params, self.level_param: float(self.param_for(level))},
                "wave_size": self.wave}


class StatisticTable:
    """For one Simulator: the statistic of a rule after every sample count k = 1..K, per (seed, prompt);
    shared by every wave size and cap (they only pick which k are wave boundaries)."""

    def __init__(self, sim: Simulator):
        self.sim = sim
        self.K = max(len(a) for a in sim.answers)
        self.fixed = sim.fixed_curve(self.K)  # acc_all [S, n, K]: majority-vote correctness after k samples
        S, n = sim.n_seeds, len(sim.answers)
        self.tok = np.zeros((S, n, self.K))
        for s in range(S):
            for i, perm in enumerate(sim.perms[s]):
                t = np.cumsum([sim.tokens[i][j] for j in perm])
                self.tok[s, i, :len(t)] = t
                self.tok[s, i, len(t):] = t[-1] if len(t) else 0
        self._stats: dict = {}

    def statistic(self, rule: str, params: dict) -> np.ndarray:
        key = (rule, tuple(sorted((k, repr(v)) for k, v in params.items())))
        if key in self._stats:
            return self._stats[key]
        r = make_rule(rule, params)
        sim = self.sim
        S, n = sim.n_seeds, len(sim.answers)
        out = np.full((S, n, self.K), -math.inf)
        cache: dict = {}
        for s in range(S):
            for i, perm in enumerate(sim.perms[s]):
                ans, conf = sim.answers[i], sim.confidences[i]
                views: list[SampleView] = []
                counts: Counter = Counter()
                for k, j in enumerate(perm):
                    views.append(SampleView(ans[j], trace_confidence=conf[j]))
                    if ans[j] is not None:
                        counts[ans[j]] += 1
                    if rule in COUNT_RULES:  # depends only on the vote counts
                        c = tuple(sorted(counts.values()))
                        if c not in cache:
                            cache[c] = r.statistic(views)
                        out[s, i, k] = cache[c]
                    else:
                        out[s, i, k] = r.statistic(views)
        self._stats[key] = out
        return out

    def sweep(self, rule: str, params: dict, wave: int, cap: int) -> ThresholdSweep:
        """Boundaries after each wave: min(w, cap), min(2w, cap), ..., cap (each clipped to the prompt's
        samples); the rule is asked after every wave but the last."""
        stat = self.statistic(rule, params)
        bounds = list(range(wave, cap, wave)) + [cap]
        sim = self.sim
        S, n, m = sim.n_seeds, len(sim.answers), len(bounds)
        have = np.array([len(a) for a in sim.answers])
        # k samples drawn at boundary b for prompt i: min(b, have_i); index k - 1
        k = np.minimum(np.array(bounds)[None, :], have[:, None])       # [n, m]
        idx = np.broadcast_to(k[None, :, :] - 1, (S, n, m))
        # A prompt with fewer samples than a boundary repeats its last count there: the same outcome
        # wherever the replay stops among those, as the replay ends once the samples run out.
        st = np.take_along_axis(stat, idx, axis=2).copy()
        st[:, :, -1] = -math.inf
        acc = np.take_along_axis(self.fixed.acc_all, idx, axis=2)
        tokens = np.take_along_axis(self.tok, idx, axis=2)
        samples = np.broadcast_to(k[None, :, :], (S, n, m)).astype(float)
        level_param = make_rule(rule, params).level_param
        return ThresholdSweep(rule, dict(params), wave, cap, st, acc, samples, tokens, level_param)
