"""Row sources for tasks, picked by ``source: {kind: ...}`` (the ``task_sources`` registry). Each kind has
a config dataclass of its keys (read by the schema loader, so a typo in a task file is a ConfigError) and
a reader that yields plain dict rows in a stable order."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from ...schema import Kinds


@dataclass(frozen=True)
class SourceKind:
    read: Callable[..., Iterator[dict]]  # read(source config, task_path: Path, report) -> rows
    config: type                         # the dataclass of its keys, with a `kind: Literal[...]` field


def _source_configs() -> dict[str, type]:
    from ...registry import task_sources

    return {kind: task_sources.get(kind).config for kind in task_sources.names()}


# `source:` of a task file: its `kind` names the source in the task_sources registry.
TaskSource = Annotated[Any, Kinds(_source_configs)]


def read_rows(source, task_path: Path | str, report) -> Iterator[dict]:
    from ...registry import task_sources

    return task_sources.get(source.kind).read(source, Path(task_path), report)
