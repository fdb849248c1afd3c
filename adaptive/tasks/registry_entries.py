"""The shipped task files (``adaptive/resources/tasks/*.yaml``) as entries of the ``datasets``
registry: one `TaskRef` per file, under the file's stem, listed when the registry is first asked.
Listing reads no data; `TaskRef.load` does."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import resources


@dataclass(frozen=True)
class TaskRef:
    name: str
    path: Path

    def load(self, **kw):
        from .loader import load_task

        return load_task(self.path, **kw)


def shipped_task_files() -> dict[str, Path]:
    return {name: resources.shipped("tasks", name) for name in resources.shipped_names("tasks")}


def task_refs() -> dict[str, TaskRef]:
    return {name: TaskRef(name, path) for name, path in shipped_task_files().items()}


def list_tasks() -> list[str]:
    """Names of the registered tasks (shipped task files)."""
    from ..registry import datasets

    return sorted(n for n in datasets.names() if isinstance(datasets.get(n), TaskRef))


def resolve_task(name_or_path: str | Path) -> Path:
    """An existing file path as given, else the file of a registered task name: the shipped tasks and any
    registered since (UnknownNameError lists the known names); a path that is not a file is a ConfigError
    listing the shipped tasks."""
    s = str(name_or_path)
    p = Path(s).expanduser()
    if p.is_file():
        return p
    if not resources.is_bare_name(name_or_path) or s.endswith(resources.SUFFIXES):
        hit = resources.shipped("tasks", s) if resources.is_bare_name(name_or_path) else None
        if hit is None:
            raise resources.not_found("tasks", s)
        return hit
    from ..registry import datasets

    ref = datasets.get(s)  # raises UnknownNameError: "unknown dataset 'x'; known: ..."
    if not isinstance(ref, TaskRef):
        from ..errors import UnknownNameError

        raise UnknownNameError(f"unknown task {s!r}; known: {', '.join(list_tasks())}")
    return ref.path
