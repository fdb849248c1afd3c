"""Plan: the one typed, validated object that tells a strategy how much compute to spend.

Like vLLM's SamplingParams: construct it, and any invalid field raises PlanError naming the field
and the value. Construction is pure — ranges and cross-field rules only, no registry, no imports of
the components it names — so a Plan costs nothing to build. Checking the names it holds (strategy,
stopping rule and its params, verifier, extractor) against the registry is a separate step,
`plan.check_names()`, which the controller and the config loaders run before anything is spent.
Plans are frozen; use `plan.replace(...)` to derive another.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any

from .errors import PlanError
from .schema import Invalid, Parse

AGGREGATIONS = ("majority", "weighted", "best")
SAMPLING = ("self_consistency", "best_of_n")   # draw samples in waves, vote or pick
SEARCH = ("beam_search", "dvts")               # step-level search scored by a verifier
THINKING = ("thinking",)                       # N thinking traces with budget forcing / early exit, then a vote
NEEDS_VERIFIER = ("best_of_n",) + SEARCH
THINKING_FIELDS = ("max_thinking_tokens", "min_thinking_tokens", "think_open", "think_close", "continuation_cue",
                   "answer_cue", "exit_rule", "probe_interval", "probe_max_tokens", "exit_patience", "exit_threshold")
# Fields only some built-in strategies read: elsewhere a non-default value would be silently ignored,
# so it is an error naming the field. (A strategy registered by a user is not checked here.)
# Thinking budgets belong to the `thinking` strategy alone (sampling strategies draw one-call samples:
# a thinking plan with max_samples=N is their counterpart, N traces voted by majority).
APPLIES_TO = {
    "max_samples": SAMPLING + THINKING, "wave_size": SAMPLING, "stopping": SAMPLING, "stopping_params": SAMPLING,
    "search_width": SEARCH, "search_beams": SEARCH, "search_depth": SEARCH, "step_delimiter": SEARCH,
    "refine_steps": ("refine",), "verifier": SAMPLING + SEARCH, "aggregation": SAMPLING + SEARCH,
    **{f: THINKING for f in THINKING_FIELDS},
}
# Exit-rule fields only some built-in exit rules read (same reasoning; a user's exit rule is not checked).
# "none" draws no probes, so the probe settings apply to every rule but it.
EXIT_RULES = ("none", "convergence", "confidence")
EXIT_APPLIES_TO = {"probe_interval": EXIT_RULES[1:], "probe_max_tokens": EXIT_RULES[1:],
                   "exit_patience": ("convergence",), "exit_threshold": ("confidence",)}
BUILTIN_STRATEGIES = SAMPLING + SEARCH + THINKING + ("refine",)


@dataclass(frozen=True)
class Plan:
    strategy: str = "self_consistency"
    max_samples: int = 1          # hard cap on samples drawn (all waves together)
    wave_size: int = 0            # samples per wave; 0 = all at once
    stopping: str = "fixed"       # stopping rule name, applied between waves
    stopping_params: dict = field(default_factory=dict)
    aggregation: str = "majority"  # how samples become one answer
    verifier: str | None = None    # verifier name for weighted/best aggregation and search
    verifier_params: dict = field(default_factory=dict)
    search_width: int = 4         # beam search: candidate steps per beam per depth
    search_beams: int = 2         # beam search: beams kept per depth
    search_depth: int = 8         # beam search: maximum number of steps
    step_delimiter: str = "\n\n"
    refine_steps: int = 0         # self-refinement rounds after the first answer
    max_new_tokens: int = 256     # per sample / per step call
    max_total_tokens: int | None = None  # hard cap on generated tokens for the whole request
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    extractor: str = "auto"       # answer extractor name
    # Thinking (strategy="thinking"; s1 budget forcing, probe-based early exit). max_new_tokens caps each answer.
    max_thinking_tokens: int = 1024   # hard cap on each trace's generated thinking tokens; then the answer is forced
    min_thinking_tokens: int = 0      # a thought closed earlier is reopened with continuation_cue
    think_open: str | None = None     # thinking delimiters; None: from the chat template's reasoning
    think_close: str | None = None    #   format where detected, else <think> / </think>
    continuation_cue: str = "\nWait,"  # replaces the end delimiter when the model stops before the minimum
    answer_cue: str = "\nFinal answer:"  # after a closed-by-us thought, and before every trial answer
    exit_rule: str = "none"           # early-exit rule name: none, convergence, confidence
    probe_interval: int = 64          # thinking tokens between trial-answer probes (the chunk size)
    probe_max_tokens: int = 16        # tokens of one (greedy) trial answer
    exit_patience: int = 2            # convergence: equal trial answers in a row to exit
    exit_threshold: float = 0.9       # confidence: mean token probability of the trial answer to exit

    def __post_init__(self):
        for name in ("strategy", "stopping", "extractor"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise PlanError(name, getattr(self, name), "must be a non-empty name")
        self._check_int("max_samples", minimum=1)
        self._check_int("wave_size", minimum=0)
        self._check_int("search_width", minimum=1)
        self._check_int("search_beams", minimum=1)
        self._check_int("search_depth", minimum=1)
        self._check_int("refine_steps", minimum=0)
        self._check_int("max_new_tokens", minimum=1)
        self._check_int("top_k", minimum=0)
        if self.max_total_tokens is not None:
            self._check_int("max_total_tokens", minimum=1)
        if self.seed is not None:
            self._check_int("seed", minimum=0)
        self._check_float("temperature", 0.0, None)
        self._check_float("top_p", 0.0, 1.0, low_open=True)
        if self.aggregation not in AGGREGATIONS:
            raise PlanError("aggregation", self.aggregation, f"must be one of {', '.join(AGGREGATIONS)}")
        if self.verifier is not None and (not isinstance(self.verifier, str) or not self.verifier):
            raise PlanError("verifier", self.verifier, "must be a verifier name or None")
        if self.aggregation in ("weighted", "best") and not self.verifier:
            raise PlanError("verifier", self.verifier, f"aggregation={self.aggregation!r} needs a verifier")
        if not isinstance(self.step_delimiter, str) or not self.step_delimiter:
            raise PlanError("step_delimiter", self.step_delimiter, "must be a non-empty string")
        for name in ("stopping_params", "verifier_params"):
            if not isinstance(getattr(self, name), dict):
                raise PlanError(name, getattr(self, name), "must be a mapping")
        if self.verifier_params and not self.verifier:
            raise PlanError("verifier_params", self.verifier_params, "given without a verifier")
        self._check_thinking_fields()
        self._check_strategy_fields()
        self._check_exit_fields()

    def _check_thinking_fields(self) -> None:
        self._check_int("max_thinking_tokens", minimum=1)
        self._check_int("min_thinking_tokens", minimum=0)
        if self.min_thinking_tokens > self.max_thinking_tokens:
            raise PlanError("min_thinking_tokens", self.min_thinking_tokens,
                            f"must be <= max_thinking_tokens={self.max_thinking_tokens}")
        for name in ("think_open", "think_close"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v.strip()):
                raise PlanError(name, v, "must be a non-empty delimiter string, or None (from the chat template)")
        if (self.think_open is None) != (self.think_close is None):
            name = "think_open" if self.think_open is not None else "think_close"
            raise PlanError(name, getattr(self, name), "give both think_open and think_close, or neither "
                                                        "(then both come from the chat template)")
        if self.think_open is not None and self.think_open == self.think_close:
            raise PlanError("think_close", self.think_close, "must differ from think_open")
        if not isinstance(self.continuation_cue, str) or not self.continuation_cue:
            raise PlanError("continuation_cue", self.continuation_cue, "must be a non-empty string")
        if not isinstance(self.answer_cue, str):
            raise PlanError("answer_cue", self.answer_cue, "must be a string (may be empty)")
        if not isinstance(self.exit_rule, str) or not self.exit_rule:
            raise PlanError("exit_rule", self.exit_rule, "must be a non-empty name")
        self._check_int("probe_interval", minimum=1)
        self._check_int("probe_max_tokens", minimum=1)
        self._check_int("exit_patience", minimum=1)
        self._check_float("exit_threshold", 0.0, 1.0, low_open=True)

    def _check_exit_fields(self) -> None:
        if self.exit_rule in EXIT_RULES:  # a user's exit rule: check_names() finds out whether it exists
            for name, rules in EXIT_APPLIES_TO.items():
                value = getattr(self, name)
                if self.exit_rule not in rules and value != _DEFAULTS[name]:
                    raise PlanError(name, value, f"does not apply to exit_rule={self.exit_rule!r} "
                                                 f"(used by: {', '.join(rules)})")

    def _check_strategy_fields(self) -> None:
        s = self.strategy
        if s not in BUILTIN_STRATEGIES:
            return  # a user's strategy: check_names() finds out whether it exists
        if s in NEEDS_VERIFIER and not self.verifier:
            what = "picks the best sample by its score" if s == "best_of_n" else "scores partial solutions"
            raise PlanError("verifier", self.verifier, f"strategy={s!r} {what} and needs a verifier")
        if s == "best_of_n" and self.aggregation == "weighted":
            raise PlanError("aggregation", self.aggregation, "strategy='best_of_n' always picks the best sample")
        default = _DEFAULTS
        for name, strategies in APPLIES_TO.items():
            value = getattr(self, name)
            if s not in strategies and value != default[name]:
                raise PlanError(name, value, f"does not apply to strategy={s!r} (used by: {', '.join(strategies)})")

    def _check_int(self, name: str, minimum: int):
        v = getattr(self, name)
        if isinstance(v, bool) or not isinstance(v, int):
            raise PlanError(name, v, "must be an integer")
        if v < minimum:
            raise PlanError(name, v, f"must be >= {minimum}")

    def _check_float(self, name: str, lo, hi, low_open: bool = False):
        v = getattr(self, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise PlanError(name, v, "must be a number")
        if v != v:
            raise PlanError(name, v, "must not be NaN")
        if (low_open and v <= lo) or (not low_open and v < lo):
            raise PlanError(name, v, f"must be {'>' if low_open else '>='} {lo}")
        if hi is not None and v > hi:
            raise PlanError(name, v, f"must be <= {hi}")

    def check_names(self) -> "Plan":
        """Check the names this plan holds against the registry (and the stopping rule's params);
        PlanError lists the known names. Imports only the stopping rule it names. Returns self."""
        from .errors import ConfigError
        from .registry import exit_rules, extractors, stopping_rules, strategies, verifiers

        for fname, reg in (("strategy", strategies), ("stopping", stopping_rules), ("extractor", extractors),
                           ("exit_rule", exit_rules)):
            val = getattr(self, fname)
            if val not in reg and not (fname == "extractor" and val == "auto"):
                raise PlanError(fname, val, f"unknown name; known: {', '.join(reg.names())}")
        if self.verifier is not None and self.verifier not in verifiers:
            raise PlanError("verifier", self.verifier, f"unknown name; known: {', '.join(verifiers.names())}")
        from .stopping import make_rule

        try:  # a typo'd stopping parameter is a plan error, caught before anything is spent
            make_rule(self.stopping, self.stopping_params)
        except ConfigError as e:
            raise PlanError("stopping_params", self.stopping_params, str(e)) from None
        return self

    def summary(self) -> str:
        """One line a person can read: what this plan spends and how it decides."""
        s = self.strategy
        if s in SAMPLING:
            wave = f" in waves of {self.effective_wave}" if self.effective_wave < self.max_samples else ""
            stop = "" if self.stopping == "fixed" else f", stopping by {self.stopping}" + (
                f"({', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in sorted(self.stopping_params.items()))})"
                if self.stopping_params else "")
            how = f", {self.aggregation} by {self.verifier}" if self.verifier else ""
            text = f"{s}: up to {self.max_samples} sample{'s' * (self.max_samples > 1)}{wave}{stop}{how}"
        elif s in SEARCH:
            text = (f"{s} with {self.verifier}: {self.search_beams} beams x {self.search_width} candidates, "
                    f"depth <= {self.search_depth}")
        elif s == "refine":
            text = f"refine: up to {self.refine_steps} critique-and-revise rounds"
        elif s in THINKING:
            least = f" (>= {self.min_thinking_tokens})" if self.min_thinking_tokens else ""
            exit_ = "" if self.exit_rule == "none" else (
                f", exit by {self.exit_rule} (probe every {self.probe_interval} tokens"
                + (f", patience {self.exit_patience}" if self.exit_rule == "convergence" else "")
                + (f", threshold {self.exit_threshold:g}" if self.exit_rule == "confidence" else "") + ")")
            text = (f"thinking: {self.max_samples} trace{'s' * (self.max_samples > 1)} of <= "
                    f"{self.max_thinking_tokens} thinking tokens{least}{exit_}, majority vote")
            cap = f", <= {self.max_total_tokens} tokens in all" if self.max_total_tokens else ""
            return f"{text}, answers <= {self.max_new_tokens} tokens{cap}"
        else:
            text = s
        cap = f", <= {self.max_total_tokens} tokens in all" if self.max_total_tokens else ""
        return f"{text}, <= {self.max_new_tokens} tokens each{cap}"

    @property
    def effective_wave(self) -> int:
        return self.max_samples if self.wave_size in (0, None) else min(self.wave_size, self.max_samples)

    def replace(self, **changes) -> "Plan":
        return dataclasses.replace(self, **changes)

    def with_strategy(self, strategy: str, **changes) -> "Plan":
        """This plan run by another strategy: fields the new strategy does not read go back to their
        defaults (unless given in `changes`), so switching strategy never trips the cross-field rules."""
        keep = {k: v for k, v in self.to_dict().items()
                if k not in APPLIES_TO or strategy not in BUILTIN_STRATEGIES or strategy in APPLIES_TO[k]}
        return Plan(**{**keep, "strategy": strategy, **changes})

    def override(self, **changes) -> "Plan":
        """This plan with some fields changed; a change of strategy goes through `with_strategy`, so fields
        the new strategy does not read fall back to their defaults. PlanError on an invalid result."""
        if not changes:
            return self
        if changes.get("strategy", self.strategy) != self.strategy:
            changes = dict(changes)
            return self.with_strategy(changes.pop("strategy"), **changes)
        return self.replace(**changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Plan":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PlanError(unknown[0], d[unknown[0]], f"unknown Plan field; known: {', '.join(sorted(known))}")
        return cls(**d)


def plan_from_mapping(raw) -> Plan:
    """A Plan from a config's mapping of Plan fields, names checked (check_names); for the config loader
    (adaptive/schema.py): a PlanError becomes an error at the key `<field>`."""
    if not isinstance(raw, dict):
        raise Invalid("", f"expected a mapping of Plan fields, got {type(raw).__name__}")
    for k in raw:
        if not isinstance(k, str):
            raise Invalid(str(k), f"unknown Plan field {k!r}; known: {', '.join(sorted(_DEFAULTS))}")
    try:
        return Plan.from_dict(raw).check_names()
    except PlanError as e:
        raise Invalid(e.field, str(e)) from None


PlanMapping = Annotated[Plan, Parse(plan_from_mapping)]  # a config field holding Plan fields

_DEFAULTS = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
             for f in dataclasses.fields(Plan)}
