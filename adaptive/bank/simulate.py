"""Offline replay of sampling policies on a sample bank: seconds instead of model hours.

For every seed, each prompt's bank samples are put in a random order (a permutation per (seed, prompt),
shared by every policy replayed with the same Simulator: common random numbers, so differences between
policies are not seed noise) and drawn WITHOUT replacement, in waves, exactly as the sampling strategy
draws them (adaptive/strategies/sampling.py): stop at the plan's `max_samples`, when its stopping rule
says so between waves, or when the token cap `max_total_tokens` is reached (a wave is shrunk so its worst
case, samples * max_new_tokens, fits). The answer is the majority vote (`vote`: None never wins, ties go to
the answer seen first), verifier-weighted with `aggregation: weighted`, or the best-scored sample with
`best_of_n` / `aggregation: best` (both need bank scores).

Reported per policy (`SimResult`):
- accuracy: mean over prompts of each prompt's accuracy averaged over the seeds;
- ci: normal-approximation 95% CI (`adaptive.metrics.stats.mean_ci`) over PROMPTS of those seed-averaged
  per-prompt accuracies: the uncertainty from which prompts were asked, the dominant one; `seed_std` is the
  std of the whole-bank accuracy across seeds (the Monte-Carlo noise of the replay itself);
- mean_samples / mean_tokens per prompt (tokens = generated tokens of the drawn samples).

Limits: only sampling strategies replay (self_consistency, best_of_n). Beam search, DVTS and refine build
each step on the previous one, so a bank of independent samples cannot reproduce them: `NotReplayable`.
Thinking plans neither: a bank does not record the trial answers along each trace (nor where a thinking
cap would cut it), which their exit rules and caps decide by: `NotReplayable`, saying so.
A plan wanting more samples than a prompt has stops there (`exhausted` counts those replays). The
`confidence` rule sees each bank sample's trace confidence (its lowest group confidence, when the bank
holds one): it calibrates its bar, drops low-confidence votes and weights the rest as it does live; a
bank cannot replay the backend cutting such traces short, so their tokens count in full.

Sample orders are the Simulator's own seeded permutations, or given (`orders=`: per seed, per prompt, a
permutation of that prompt's sample indices). `SimResult.stops[seed, prompt]` is how many samples each
replay drew before it stopped.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from ..metrics.stats import mean_ci
from ..plan import Plan
from ..stopping import SampleView, make_rule
from ..strategies.base import vote
from .bank import SAMPLING, as_bank

COUNT_RULES = ("beta", "dirichlet", "entropy")  # decisions depend only on the real-answer counts


class NotReplayable(ConfigError):
    """A plan whose strategy cannot be replayed from independent samples (beam search, DVTS, refine,
    thinking)."""


@dataclass
class SimResult:
    accuracy: float
    ci: tuple[float, float]
    seed_std: float
    mean_samples: float
    mean_tokens: float
    n_prompts: int
    n_seeds: int
    exhausted: int = 0
    samples_se: float = 0.0
    per_prompt_acc: np.ndarray = field(default=None, repr=False)
    per_prompt_samples: np.ndarray = field(default=None, repr=False)
    per_prompt_tokens: np.ndarray = field(default=None, repr=False)
    stops: np.ndarray = field(default=None, repr=False)  # [seed, prompt]: samples drawn when the replay stopped

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "ci": list(self.ci), "seed_std": self.seed_std,
                "mean_samples": self.mean_samples, "mean_tokens": self.mean_tokens, "n_prompts": self.n_prompts,
                "n_seeds": self.n_seeds, "exhausted": self.exhausted, "samples_se": self.samples_se}

    def line(self) -> str:
        return (f"acc {self.accuracy:.3f} [{self.ci[0]:.3f}, {self.ci[1]:.3f}]  samples {self.mean_samples:.2f}  "
                f"tokens {self.mean_tokens:.1f}")


@dataclass
class FixedCurve:
    """Fixed-N self-consistency for every N in 1..max_n: [prompt, N-1] arrays averaged over seeds."""

    acc: np.ndarray
    samples: np.ndarray
    tokens: np.ndarray
    acc_by_seed: np.ndarray  # [seed, N-1]: whole-bank accuracy per seed
    acc_all: np.ndarray = field(default=None, repr=False)  # [seed, prompt, N-1]


def _rule_key(plan: Plan):
    return plan.stopping, tuple(sorted((k, repr(v)) for k, v in plan.stopping_params.items()))


class Simulator:
    def __init__(self, bank, seeds: int = 20, seed: int = 0, orders: Sequence[Sequence[Sequence[int]]] | None = None):
        self.bank = as_bank(bank)
        if not len(self.bank):
            raise ConfigError("cannot simulate on an empty bank")
        self.answers = [[s.answer for s in p.samples] for p in self.bank.prompts]
        self.tokens = [[int(s.tokens) for s in p.samples] for p in self.bank.prompts]
        self.scores = [[s.score for s in p.samples] for p in self.bank.prompts]
        self.confidences = [[s.confidence for s in p.samples] for p in self.bank.prompts]
        self.correct = []
        for p in self.bank.prompts:
            c: dict = {}
            for s in p.samples:
                if s.answer is not None:
                    c[s.answer] = max(c.get(s.answer, 0.0), float(s.correct))
            self.correct.append(c)
        if orders is not None:
            self.perms = _check_orders(orders, self.answers)
            self.n_seeds = len(self.perms)
        else:
            if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
                raise ConfigError(f"seeds={seeds!r}: an integer >= 1")
            self.n_seeds = seeds
            rng = np.random.default_rng(seed)
            self.perms = [[rng.permutation(len(a)).tolist() for a in self.answers] for _ in range(seeds)]
        self._rules: dict = {}

    # -- policies ---------------------------------------------------------------------------------
    def run(self, policy, budget=None) -> SimResult:
        """Replay a Policy (fixed, binned, allocate, index) on the whole bank as one batch."""
        from ..policies import load_policy

        policy = load_policy(policy)
        diffs = self.bank.difficulties()
        if policy.needs_estimator and any(d is None for d in diffs):
            raise ConfigError(f"policy {policy.name!r} needs difficulties but the bank has no p_hat: build it with "
                              "an estimator, or use Bank.with_oracle_difficulty()")
        plans = policy.plans([p.prompt for p in self.bank.prompts], diffs if policy.needs_estimator else None,
                             budget)
        return self.run_plans(plans)

    def run_plan(self, plan: Plan) -> SimResult:
        return self.run_plans([plan] * len(self.bank))

    def run_plans(self, plans: Sequence[Plan]) -> SimResult:
        if len(plans) != len(self.bank):
            raise ConfigError(f"{len(plans)} plans for a bank of {len(self.bank)} prompts")
        for plan in {id(p): p for p in plans}.values():
            self._check(plan)
        n, S = len(self.bank), self.n_seeds
        acc = np.zeros((S, n))
        smp = np.zeros((S, n))
        tok = np.zeros((S, n))
        exhausted = 0
        for i, plan in enumerate(plans):
            stop = self._stopper(plan)
            for s in range(S):
                a, k, t, ex = self._replay(i, self.perms[s][i], plan, stop)
                acc[s, i], smp[s, i], tok[s, i] = a, k, t
                exhausted += ex
        return self._result(acc, smp, tok, exhausted)

    # -- fixed-N curves (fast path) ---------------------------------------------------------------
    def fixed_curve(self, max_n: int) -> FixedCurve:
        """Majority-vote accuracy, samples and tokens of fixed-N SC for N = 1..max_n, every prompt."""
        n, S = len(self.bank), self.n_seeds
        acc = np.zeros((S, n, max_n))
        smp = np.zeros((S, n, max_n))
        tok = np.zeros((S, n, max_n))
        for i in range(n):
            ans, toks, corr = self.answers[i], self.tokens[i], self.correct[i]
            for s in range(S):
                counts: dict = {}
                first: dict = {}
                best, best_key = None, None
                t = 0
                perm = self.perms[s][i]
                for j in range(max_n):
                    if j < len(perm):
                        a = ans[perm[j]]
                        t += toks[perm[j]]
                        if a is not None:
                            counts[a] = counts.get(a, 0) + 1
                            first.setdefault(a, j)
                            key = (counts[a], -first[a])
                            if best_key is None or key > best_key:
                                best, best_key = a, key
                    acc[s, i, j] = corr.get(best, 0.0) if best is not None else 0.0
                    smp[s, i, j] = min(j + 1, len(perm))
                    tok[s, i, j] = t
        return FixedCurve(acc.mean(axis=0), smp.mean(axis=0), tok.mean(axis=0), acc.mean(axis=1), acc)

    # -- internals --------------------------------------------------------------------------------
    def _check(self, plan: Plan) -> None:
        if plan.strategy == "thinking":
            raise NotReplayable("strategy 'thinking' cannot be replayed from a sample bank: a bank holds independent "
                                "final samples, not the trial answers probed along each thinking trace nor where "
                                "each thought would have been cut, so early exit and thinking caps cannot be "
                                "reproduced offline; run thinking plans live (adaptive eval)")
        if plan.strategy not in SAMPLING:
            raise NotReplayable(f"strategy {plan.strategy!r} cannot be replayed from a sample bank (only "
                                f"{', '.join(SAMPLING)}: beam search, DVTS and refine build on earlier steps)")
        if (plan.strategy == "best_of_n" or plan.aggregation in ("best", "weighted")) and any(
                s is None for sc in self.scores for s in sc):
            raise NotReplayable(f"{plan.strategy}/{plan.aggregation} needs a verifier score for every bank sample")

    def _stopper(self, plan: Plan):
        key = _rule_key(plan)
        if key not in self._rules:
            rule = make_rule(plan.stopping, plan.stopping_params)
            if plan.stopping == "fixed":
                fn = None
            elif plan.stopping in COUNT_RULES:
                cache: dict = {}

                def fn(views, rule=rule, cache=cache):
                    c = tuple(sorted(Counter(v.answer for v in views if v.answer is not None).values()))
                    if c not in cache:
                        cache[c] = rule.should_stop(views)
                    return cache[c]
            else:
                fn = rule.should_stop
            self._rules[key] = fn
        return self._rules[key]

    def _replay(self, i: int, perm: list[int], plan: Plan, stop) -> tuple[float, int, int, int]:
        ans, toks, scores, conf = self.answers[i], self.tokens[i], self.scores[i], self.confidences[i]
        cap, wave, max_new, tcap = plan.max_samples, plan.effective_wave, plan.max_new_tokens, plan.max_total_tokens
        drawn: list[int] = []
        tokens = 0
        exhausted = 0
        weighted = plan.aggregation == "weighted"
        while len(drawn) < cap:
            if drawn and stop is not None:
                views = [SampleView(ans[j], 1.0 if scores[j] is None else float(scores[j]), trace_confidence=conf[j])
                         for j in drawn]
                if stop(views):
                    break
            left = math.inf if tcap is None else tcap - tokens
            if left < 1:
                break
            k, mx = min(wave, cap - len(drawn)), max_new
            if left != math.inf and k * mx > left:
                k = max(1, min(k, int(left // mx)))
                mx = int(min(mx, left // k))
            if len(drawn) >= len(perm):
                exhausted = 1
                break
            new = perm[len(drawn):len(drawn) + k]
            drawn += new
            tokens += sum(min(toks[j], mx) for j in new)
        if not drawn:
            return 0.0, 0, 0, exhausted
        if plan.strategy == "best_of_n" or plan.aggregation == "best":
            real = [j for j in drawn if ans[j] is not None] or drawn
            best = max(real, key=lambda j: (scores[j], -drawn.index(j)))
            winner = ans[best]
        else:
            winner, _ = vote([ans[j] for j in drawn], [scores[j] for j in drawn] if weighted else None)
        return (self.correct[i].get(winner, 0.0) if winner is not None else 0.0), len(drawn), tokens, exhausted

    def _result(self, acc, smp, tok, exhausted) -> SimResult:
        per_acc = acc.mean(axis=0)
        a = float(per_acc.mean())
        ci = tuple(mean_ci(per_acc.tolist())) if len(per_acc) >= 2 else (a, a)
        ci = (max(0.0, ci[0]), min(1.0, ci[1]))
        seed_acc = acc.mean(axis=1)
        return SimResult(accuracy=a, ci=ci, seed_std=float(seed_acc.std(ddof=1)) if len(seed_acc) > 1 else 0.0,
                         mean_samples=float(smp.mean()), mean_tokens=float(tok.mean()), n_prompts=acc.shape[1],
                         n_seeds=acc.shape[0], exhausted=int(exhausted),
                         samples_se=float(smp.std(ddof=1) / math.sqrt(smp.size)) if smp.size > 1 else 0.0,
                         per_prompt_acc=per_acc, per_prompt_samples=smp.mean(axis=0),
                         per_prompt_tokens=tok.mean(axis=0), stops=smp.astype(int))


def _check_orders(orders, answers) -> list[list[list[int]]]:
    """Given sample orders: per seed, per prompt, a permutation of the prompt's sample indices."""
    out = []
    for s, per_prompt in enumerate(orders):
        if len(per_prompt) != len(answers):
            raise ConfigError(f"orders[{s}] has {len(per_prompt)} entries for a bank of {len(answers)} prompts")
        seed_orders = []
        for i, (perm, ans) in enumerate(zip(per_prompt, answers)):
            perm = [int(j) for j in perm]
            if sorted(perm) != list(range(len(ans))):
                raise ConfigError(f"orders[{s}][{i}] must be a permutation of 0..{len(ans) - 1}")
            seed_orders.append(perm)
        out.append(seed_orders)
    if not out:
        raise ConfigError("orders: at least one seed's orders")
    return out


def simulate(bank, policy, seeds: int = 20, seed: int = 0, budget=None) -> SimResult:
    """One-shot: replay `policy` (a Policy, a policy file/name, or a Plan) on `bank` (a Bank or a path)."""
    sim = Simulator(bank, seeds=seeds, seed=seed)
    if isinstance(policy, Plan):
        return sim.run_plan(policy)
    return sim.run(policy, budget)
