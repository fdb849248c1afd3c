"""``kind: reasoning_gym``: procedural problems from the reasoning-gym package, generated with a
fixed seed, at named difficulty levels.

``levels`` maps a level name (it becomes the row's ``difficulty``) to the generator's config
knobs, plus an optional ``dataset`` overriding the source-wide one, so one task can mix
generators. Item ``i`` of a level is generated from seed ``seed + crc32(level)`` and index ``i``:
the same YAML always gives the same problems, whatever the level order. ``max_operand`` drops
items whose expression has an integer above it (reasoning-gym's simple arithmetic draws operands
from ``randint(0, 10**digits)``, so "1 digit" can yield 10); dropped items are counted as
filtered in the LoadReport and generation continues until ``size`` items are kept; it may also be
set per level. ``interleave: true`` yields the levels round-robin instead of one after another.

Rows: ``question``, ``answer`` (string), ``difficulty``, ``dataset``, ``index``, ``id``
(``"<level>-<index>"``) and reasoning-gym's ``metadata``.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ...errors import AdaptiveError, ConfigError
from ...schema import Invalid, at_least, option
from . import SourceKind

_INT = re.compile(r"\d+")


@dataclass(frozen=True)
class ReasoningGymSource:
    levels: dict[str, dict[str, Any]]  # level name -> generator knobs (+ optional dataset, max_operand)
    kind: Literal["reasoning_gym"] = "reasoning_gym"
    dataset: str | None = None          # the generator, unless a level names its own
    seed: int = 0
    size: int = option(100, check=at_least(1))  # items per level
    max_operand: int | None = None
    interleave: bool = False

    def __post_init__(self):
        if not self.levels:
            raise Invalid("levels", "must map level names to generator settings")
        for name, cfg in self.levels.items():
            if "dataset" not in cfg and self.dataset is None:
                raise Invalid(f"levels.{name}", "has no 'dataset' (and source has none)")
            if "seed" in cfg or "size" in cfg:
                raise Invalid(f"levels.{name}", "set 'seed'/'size' on source, not per level")


def _import_rg():
    try:
        import reasoning_gym
    except ImportError:
        raise AdaptiveError("reasoning_gym tasks need the reasoning-gym package: "
                            "pip install reasoning-gym") from None
    return reasoning_gym


def level_seed(seed: int, level: str) -> int:
    return int(seed) + zlib.crc32(level.encode("utf-8")) % 1_000_000


def _level_items(rg, source: ReasoningGymSource, level: str, cfg: dict, task_path, report):
    size = source.size
    max_operand = cfg.get("max_operand", source.max_operand)
    knobs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()
             if k not in ("dataset", "max_operand")}
    name = cfg.get("dataset", source.dataset)
    cap = size if max_operand is None else size * 50
    try:
        ds = rg.create_dataset(name, seed=level_seed(source.seed, level), size=cap, **knobs)
    except (TypeError, AssertionError, ValueError, KeyError) as e:
        raise ConfigError(f"{task_path}: reasoning-gym dataset {name!r} level {level!r} "
                          f"rejected its settings {knobs}: {type(e).__name__}: {e}") from None
    out = []
    for i in range(cap):
        if len(out) >= size:
            break
        try:  # some generators check their settings only when they draw an item
            item = ds[i]
        except (TypeError, AssertionError, ValueError, KeyError, IndexError) as e:
            raise ConfigError(f"{task_path}: reasoning-gym dataset {name!r} level {level!r} failed to generate "
                              f"item {i} with settings {knobs}: {type(e).__name__}: {e}") from None
        if max_operand is not None:
            expr = (item.get("metadata") or {}).get("expression", item["question"])
            if any(int(n) > int(max_operand) for n in _INT.findall(expr)):
                report.rows_filtered += 1
                continue
        out.append({"question": item["question"], "answer": str(item["answer"]), "difficulty": level,
                    "dataset": name, "index": i, "id": f"{level}-{i}",
                    "metadata": item.get("metadata", {})})
    if len(out) < size:
        raise ConfigError(f"{task_path}: level {level!r} produced only {len(out)} of {size} items "
                          f"within max_operand={max_operand}")
    return out


def read(source: ReasoningGymSource, task_path: Path, report):
    rg = _import_rg()
    per_level = [_level_items(rg, source, level, cfg, task_path, report)
                 for level, cfg in source.levels.items()]
    if source.interleave:  # easy, medium, hard, easy, ... so a plain limit stays mixed
        for group in zip(*per_level):
            yield from group
    else:
        for items in per_level:
            yield from items


SOURCE = SourceKind(read, ReasoningGymSource)
