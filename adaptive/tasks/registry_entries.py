"""The shipped task files (``configs/tasks/*.yaml``) and their entries in the ``datasets``
registry: one `TaskRef` per file, registered under the file's stem when `adaptive.tasks` is
imported. Registration reads no data; `TaskRef.load` does."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..registries import datasets

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


def register_shipped() -> None:
    for name, path in shipped_task_files().items():
        if name not in datasets:
            datasets.register(name, TaskRef(name, path))


def list_tasks() -> list[str]:
    """Names of the registered tasks (shipped task files)."""
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
    ref = datasets.get(s)  # raises UnknownNameError: "unknown dataset 'x'; known: ..."
    if not isinstance(ref, TaskRef):
        from ..errors import UnknownNameError

        raise UnknownNameError(f"unknown task {s!r}; known: {', '.join(list_tasks())}")
    return ref.path
