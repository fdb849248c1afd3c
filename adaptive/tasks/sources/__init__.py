"""Row sources for tasks, picked by ``source: {kind: ...}`` (the ``task_sources`` registry). Each kind
lists its accepted keys so a typo in a task file is a ConfigError, and yields plain dict rows in a
stable order."""
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


def check_source(source: dict, task_path: Path | str) -> None:
    """Reject an unknown kind, a missing required key or an unknown key (naming the file)."""
    from ...registry import task_sources

    kind = source.get("kind")
    if kind not in task_sources:
        raise ConfigError(f"{task_path}: source.kind {kind!r} is not one of {', '.join(task_sources.names())}")
    k = task_sources.get(kind)
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
    from ...registry import task_sources

    return task_sources.get(source["kind"]).read(source, Path(task_path), report)
