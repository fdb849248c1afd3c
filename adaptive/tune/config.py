"""The tuner's search space (a file, or a shipped one: adaptive/resources/tune/*.yaml), read by the one
config loader (adaptive/schema.py): errors name the file and the key.

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
from typing import Annotated, Any, Literal

from ..resources import resolve
from ..schema import Invalid, at_least, between, equals, load, non_empty, option, read_yaml

FAMILIES = ("fixed", "stopping", "binned", "allocate")
DEFAULT = "default"  # the shipped search space (adaptive/resources/tune/default.yaml)

Caps = Annotated[list[Annotated[int, at_least(1)]], non_empty]


def _distinct_sorted(obj, name: str) -> None:
    v = getattr(obj, name)
    if v is not None:
        object.__setattr__(obj, name, sorted(set(v)))


@dataclass(frozen=True)
class StoppingSearch:
    caps: Caps | None = None  # sample caps; None: the budgets
    wave_sizes: Caps = option(default_factory=lambda: [1, 2, 4])
    rules: dict[str, dict[str, Annotated[list[Any], non_empty]]] = option(
        default_factory=lambda: {"beta": {"threshold": [0.6, 0.8, 0.9, 0.95]}, "esc": {"window": [2, 4]}},
        check=non_empty)  # rule -> parameter -> values to try

    def __post_init__(self):
        _distinct_sorted(self, "caps")
        _distinct_sorted(self, "wave_sizes")
        from ..stopping import make_rule

        for name, grid in self.rules.items():
            for k, values in grid.items():
                for v in values:
                    try:
                        make_rule(name, {k: v})
                    except Exception as e:  # noqa: BLE001 - an unknown rule or a bad value, reported with the key
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
class TuneConfig:
    schema: int = option(1, check=equals(1))
    seeds: int = option(20, check=at_least(1))
    held_out: float = option(0.5, check=between(0, 1, open_low=True, open_high=True))
    split_seed: int = option(0, check=at_least(0))
    match_tolerance: float = option(0.01, check=at_least(0))
    families: Annotated[list[Literal[FAMILIES]], non_empty] = option(default_factory=lambda: list(FAMILIES))  # type: ignore[valid-type]
    stopping: StoppingSearch = field(default_factory=StoppingSearch)
    binned: BinnedSearch = field(default_factory=BinnedSearch)
    allocate: AllocateSearch = field(default_factory=AllocateSearch)
    description: str = ""
    source: str = option("<defaults>", internal=True)


def parse_tune_config(raw, path: str = "<tune config>") -> TuneConfig:
    return load(TuneConfig, raw, str(path), internal={"source": str(path)})


def load_tune_config(path=None) -> TuneConfig:
    """Read and validate a search space: a file path, or the name of a shipped one (default: `default`)."""
    p = resolve("tune", path or DEFAULT)
    return parse_tune_config(read_yaml(p), str(p))
