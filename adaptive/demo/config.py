"""The demo's settings (a file, or a shipped one: adaptive/resources/demo/*.yaml), read by the one config
loader (adaptive/schema.py): errors name the file and the key.

    task: skills_mixed                 # split by prompt text: bank on one half, live runs on the other
    bank: {file: skills_train_k32, samples: 32}          # a shipped bank; or {draw: true, samples: K}
    estimator: {kind: probe, folds: 5}
    tune: {config: demo, budgets: [1, 2, 3, 4, 6, 8, 12, 16, 32]}
    live: {prompts: 96, uniform_samples: 8, budgets: [2, 4], batch_size: 16}
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from ..schema import Invalid, above, at_least, load, non_empty, option, read_yaml

Budget = Annotated[int | float, at_least(1)]  # mean samples per prompt


@dataclass(frozen=True)
class DemoBank:
    file: str | None = None          # a shipped bank (by name) or a path
    draw: bool = False               # draw the bank instead (minutes to hours)
    samples: int = option(32, check=at_least(2))
    limit: int | None = option(None, check=at_least(10))  # draw: at most this many training prompts

    def __post_init__(self):
        if self.draw == (self.file is not None):
            raise Invalid("", "give exactly one of 'file' (a bank) or 'draw: true'")


@dataclass(frozen=True)
class DemoEstimator:
    kind: Literal["probe", "heuristic"] = "probe"
    folds: int = option(5, check=at_least(2))  # cross-fitting folds for the tuning split's p_hat


@dataclass(frozen=True)
class DemoTune:
    config: str = "demo"  # the tune search space: a file, or a shipped one by name
    budgets: Annotated[list[Budget], non_empty] = option(default_factory=lambda: [1, 2, 3, 4, 6, 8, 12, 16, 32])


@dataclass(frozen=True)
class DemoLive:
    prompts: int = option(96, check=at_least(4))
    uniform_samples: int = option(8, check=at_least(2))
    budgets: list[Budget] = option(default_factory=lambda: [2, 4])
    batch_size: int = option(16, check=at_least(1))
    max_new_tokens: int = option(40, check=at_least(1))
    temperature: float = option(0.7, check=above(0))  # > 0: samples must differ
    seed: int = option(0, check=at_least(0))


@dataclass(frozen=True)
class DemoReport:
    bootstrap: int = option(2000, check=at_least(100))  # resamples of the paired bootstrap


@dataclass(frozen=True)
class DemoConfig:
    bank: DemoBank
    task: str = option("skills_mixed", check=non_empty)
    description: str = ""
    estimator: DemoEstimator = field(default_factory=DemoEstimator)
    tune: DemoTune = field(default_factory=DemoTune)
    live: DemoLive = field(default_factory=DemoLive)
    report: DemoReport = field(default_factory=DemoReport)
    source: str = option("<defaults>", internal=True)
    raw: dict = option(default_factory=dict, internal=True)

    def __post_init__(self):
        if self.live.uniform_samples > self.bank.samples:
            raise Invalid("live.uniform_samples", f"{self.live.uniform_samples}: at most the bank's samples per "
                                                  f"prompt ({self.bank.samples})")


def parse_demo_config(raw, path: str = "<demo config>") -> DemoConfig:
    return load(DemoConfig, raw, str(path), internal={"source": str(path), "raw": raw if isinstance(raw, dict) else {}})


def load_demo_config(name_or_path=None) -> DemoConfig:
    from ..resources import resolve

    p = resolve("demo", name_or_path or "default")
    return parse_demo_config(read_yaml(p), str(p))
