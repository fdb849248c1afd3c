"""Stopping-rule protocol. Samples arrive in waves; after each wave the strategy asks the rule
whether to stop. Rules are pure functions of the samples so far (no hidden state).

`should_stop` takes SampleViews or plain answers: `make_rule("beta").should_stop(["12", "12", "7"])`.
`None` answers (unparseable output) never count as a vote and never make a rule stop by themselves.
"""
from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass
from typing import Hashable, Mapping, Protocol, Sequence

from ..errors import ConfigError
from ..registry import stopping_rules


@dataclass(frozen=True)
class SampleView:
    """What a stopping rule sees of one sample."""

    answer: Hashable | None
    weight: float = 1.0                                # verifier/confidence weight for weighted votes
    token_confidences: Sequence[float] | None = None   # DeepConf per-token confidence of this trace
    trace_confidence: float | None = None              # or only its lowest group confidence (a sample bank)


class StoppingRule(Protocol):
    name: str

    def should_stop(self, samples: Sequence[SampleView | Hashable | None]) -> bool: ...


class ThresholdRule(Protocol):
    """A rule that stops once a statistic of the samples reaches a level set by one parameter:
    should_stop(samples) == statistic(samples) >= level. The tuner sweeps the level over every value the
    statistic takes on a bank (adaptive/bank/sweep.py), so each distinct behaviour is tried once."""

    level_param: str  # the parameter that sets the level (e.g. "threshold")

    def statistic(self, samples: Sequence[SampleView]) -> float: ...   # -inf where the rule may not stop

    @property
    def level(self) -> float: ...

    @staticmethod
    def param_for(level: float) -> float: ...  # the parameter value that gives `level`


class LevelRule:
    """What every threshold rule shares (a ThresholdRule): it stops once statistic(samples) >= level, the
    level being its `level_param` (negated for a rule that stops when its statistic falls to the
    parameter, like entropy; negation is exact, so decisions match the parameter's own comparison)."""

    level_param = "threshold"
    negate = False

    def statistic(self, samples) -> float:
        raise NotImplementedError

    @property
    def level(self) -> float:
        v = getattr(self, self.level_param)
        return -v if self.negate else v

    @classmethod
    def param_for(cls, level: float) -> float:
        return -level if cls.negate else level

    def should_stop(self, samples: Sequence[SampleView | Hashable | None]) -> bool:
        return self.statistic(samples) >= self.level


def as_views(samples: Sequence) -> list[SampleView]:
    """SampleViews from SampleViews or plain answers (a string, a number, None for no answer)."""
    return [s if isinstance(s, SampleView) else SampleView(answer=s) for s in samples]


def real_counts(samples: Sequence[SampleView]) -> Counter:
    """Vote counts of the real (non-None) answers."""
    return Counter(s.answer for s in samples if s.answer is not None)


def top_two(counts: Counter) -> tuple[int, int]:
    """Counts of the two most frequent answers (0 where absent)."""
    top = [c for _, c in counts.most_common(2)] + [0, 0]
    return top[0], top[1]


# --- parameter checks: each raises ConfigError naming the rule, the key and the value -------------

def check_prob(rule: str, key: str, value, *, closed_high: bool = False) -> float:
    """A probability-like threshold in (0, 1) (or (0, 1] with closed_high)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if ok:
        ok = 0 < value < 1 or (closed_high and value == 1)
    if not ok:
        raise ConfigError(f"stopping rule {rule!r}: {key}={value!r} must be a number in "
                          f"(0, 1{']' if closed_high else ')'}")
    return float(value)


def check_int(rule: str, key: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"stopping rule {rule!r}: {key}={value!r} must be an integer >= {low}")
    return value


def check_choice(rule: str, key: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"stopping rule {rule!r}: {key}={value!r} must be one of {', '.join(choices)}")
    return value


def accepted_params(factory) -> list[str]:
    sig = inspect.signature(factory)
    return [p.name for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]


def make_rule(name: str, params: Mapping | None = None) -> StoppingRule:
    """Build the stopping rule registered as `name` with keyword `params`.

    Unknown names raise UnknownNameError (listing the known ones); unknown or bad params ConfigError.
    """
    factory = stopping_rules.get(name)
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise ConfigError(f"stopping rule {name!r}: params must be a mapping, got {type(params).__name__}")
    accepted = accepted_params(factory)
    for key in params:
        if key not in accepted:
            raise ConfigError(f"stopping rule {name!r}: unknown parameter {key!r}; accepted: "
                              f"{', '.join(accepted) or '(none)'}")
    return factory(**dict(params))
