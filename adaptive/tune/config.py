"""The tuner's search space (a file, or a shipped one: adaptive/resources/tune/*.yaml), read by the one
config loader (adaptive/schema.py): errors name the file and the key.

    schema: 1
    seeds: 20                 # replay orders per prompt
    held_out: 0.5             # fraction of prompts held out; the split is by prompt, seeded by split_seed
    split_seed: 0
    match_tolerance: 0.01     # an adaptive point "matches SC@max" at held-out acc >= SC@max acc - this
    families: [fixed, stopping, binned, allocate, binned_stopping]
    stopping: {caps: null, wave_sizes: [1, 2, 4], rules: {beta: {threshold: sweep}, esc: {window: [2, 4]}}}
    binned: {caps: null}      # per-bin sample-cap choices
    allocate: {curves: [best_of_b, majority], means: null, per_prompt_cap: null}
    binned_stopping: {bins: 4, prices: 40}
null means "derived from --budgets"; `sweep` (a threshold rule's level parameter only) tries every level the
bank tells apart (see each key in adaptive/resources/tune/default.yaml).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from ..resources import resolve
from ..schema import Invalid, at_least, between, equals, load, non_empty, option, read_yaml

FAMILIES = ("fixed", "stopping", "binned", "allocate", "binned_stopping")
Family = Literal[FAMILIES]  # type: ignore[valid-type]
DEFAULT = "default"  # the shipped search space (adaptive/resources/tune/default.yaml)

Caps = Annotated[list[Annotated[int, at_least(1)]], non_empty]


def _distinct_sorted(obj, name: str) -> None:
    v = getattr(obj, name)
    if v is not None:
        object.__setattr__(obj, name, sorted(set(v)))


# a parameter's values to try, or "sweep": every level the bank tells apart (a threshold rule's level only)
ParamValues = Annotated[list[Any], non_empty] | Literal["sweep"]


@dataclass(frozen=True)
class StoppingSearch:
    caps: Caps | None = None  # sample caps; None: the budgets
    wave_sizes: Caps = option(default_factory=lambda: [1, 2, 4])
    rules: dict[str, dict[str, ParamValues]] = option(
        default_factory=lambda: {"beta": {"threshold": [0.6, 0.8, 0.9, 0.95]}, "esc": {"window": [2, 4]}},
        check=non_empty)  # rule -> parameter -> values to try

    def __post_init__(self):
        _distinct_sorted(self, "caps")
        _distinct_sorted(self, "wave_sizes")
        from ..registry import stopping_rules
        from ..stopping import make_rule

        for name, grid in self.rules.items():
            if name not in stopping_rules:
                raise Invalid(f"rules.{name}", f"unknown stopping rule; known: {', '.join(stopping_rules.names())}")
            level = getattr(stopping_rules.get(name), "level_param", None)
            for k, values in grid.items():
                if values == "sweep":
                    if k != level:
                        raise Invalid(f"rules.{name}.{k}", "'sweep' applies to a threshold rule's level parameter "
                                                           f"({level or 'this rule has none'})")
                    continue
                for v in values:
                    try:
                        make_rule(name, {k: v})
                    except Exception as e:  # noqa: BLE001 - a bad value, reported with the key
                        raise Invalid(f"rules.{name}.{k}", str(e)) from None


@dataclass(frozen=True)
class BinnedSearch:
    caps: Caps | None = None  # per-bin sample-cap choices; None: the budgets

    def __post_init__(self):
        _distinct_sorted(self, "caps")


@dataclass(frozen=True)
class AllocateSearch:
    curves: Annotated[list[Literal["best_of_b", "majority"]], non_empty] = \
        option(default_factory=lambda: ["best_of_b", "majority"])
    means: Annotated[list[Annotated[float, at_least(1)]], non_empty] | None = None  # None: from the budgets
    per_prompt_cap: int | None = option(None, check=at_least(1))                    # None: the largest budget

    def __post_init__(self):
        _distinct_sorted(self, "means")


@dataclass(frozen=True)
class BinnedStoppingSearch:
    bins: int = option(4, check=at_least(2))     # quantile bins of the tuning split's p_hat
    prices: int = option(40, check=at_least(1))  # sample prices tried, geometric from 1e-4 to 1


@dataclass(frozen=True)
class TuneConfig:
    schema: int = option(1, check=equals(1))
    seeds: int = option(20, check=at_least(1))
    held_out: float = option(0.5, check=between(0, 1, open_low=True, open_high=True))
    split_seed: int = option(0, check=at_least(0))
    match_tolerance: float = option(0.01, check=at_least(0))
    families: Annotated[list[Family], non_empty] = option(default_factory=lambda: list(FAMILIES))
    stopping: StoppingSearch = field(default_factory=StoppingSearch)
    binned: BinnedSearch = field(default_factory=BinnedSearch)
    allocate: AllocateSearch = field(default_factory=AllocateSearch)
    binned_stopping: BinnedStoppingSearch = field(default_factory=BinnedStoppingSearch)
    description: str = ""
    source: str = option("<defaults>", internal=True)


def parse_tune_config(raw, path: str = "<tune config>") -> TuneConfig:
    return load(TuneConfig, raw, str(path), internal={"source": str(path)})


def load_tune_config(path=None) -> TuneConfig:
    """Read and validate a search space: a file path, or the name of a shipped one (default: `default`)."""
    p = resolve("tune", path or DEFAULT)
    return parse_tune_config(read_yaml(p), str(p))
