"""The shipped task files (``configs/tasks/*.yaml``) as entries of the ``datasets`` registry: one
`TaskRef` per file, under the file's stem, listed when the registry is first asked. Listing reads
no data; `TaskRef.load` does."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


TASK_DIR = Path(__file__).resolve().parents[2] / "configs" / "tasks"


@dataclass(frozen=True)
class TaskRef:
    name: str
    path: Path

    def load(self, **kw):
        from .loader import load_task

        return load_task(self.path, **kw)


def shipped_task_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(TASK_DIR.glob("*.yaml"))}


def task_refs() -> dict[str, TaskRef]:
    return {name: TaskRef(name, path) for name, path in shipped_task_files().items()}


def list_tasks() -> list[str]:
    """Names of the registered tasks (shipped task files)."""
    from ..registry import datasets

    return sorted(n for n in datasets.names() if isinstance(datasets.get(n), TaskRef))


def resolve_task(name_or_path: str | Path) -> Path:
    """A YAML path as given, or the file of a registered task name (UnknownNameError lists the
    known names)."""
    s = str(name_or_path)
    p = Path(s).expanduser()
    if isinstance(name_or_path, Path) or s.endswith((".yaml", ".yml")) or "/" in s or "\\" in s:
        if not p.is_file():
            from ..errors import ConfigError

            raise ConfigError(f"task file not found: {s}")
        return p
    from ..registry import datasets

    ref = datasets.get(s)  # raises UnknownNameError: "unknown dataset 'x'; known: ..."
    if not isinstance(ref, TaskRef):
        from ..errors import UnknownNameError

        raise UnknownNameError(f"unknown task {s!r}; known: {', '.join(list_tasks())}")
    return ref.path
