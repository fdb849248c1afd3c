"""Files shipped inside the package, one folder per kind, read through ``importlib.resources``:

    eval/      eval configs (``adaptive eval --config default``; ``adaptive bank --config bank_arith``)
    tasks/     task files (registered as datasets under their stem: ``gsm8k``, ``arith_mixed``, ...)
    tune/      tuner search spaces (``default``)
    bench/     bench configs (``default``, ``quick``, ``sweep``)
    policies/  policy files (``fixed_sc8``, ``adaptive_beta``, ``binned_default``, ``allocate_default``) and
               the estimator files the tuned ones use, beside them
    demo/      demo configs (``adaptive demo``: ``default``)
    banks/     sample banks (``skills_train_k32``: the demo's training bank, gzipped JSONL)

The rule everywhere a file of one of these kinds is named: an existing file path wins; else a bare name
(``default`` or ``default.yaml``) is the shipped file of that kind; else a ConfigError that lists the
shipped names.

    shipped("policies", "fixed_sc8")   # Path of the shipped file, or None
    shipped_names("tasks")             # ['arc_challenge', 'arc_easy', ...]
    resolve("eval", "default")         # a path as given if it is a file, else the shipped file, else ConfigError
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import ConfigError

KINDS = {"eval": "eval config", "tasks": "task", "tune": "tune config", "bench": "bench config",
         "policies": "policy", "demo": "demo config", "banks": "sample bank"}
SUFFIXES = (".yaml", ".yml")
KIND_SUFFIXES = {"banks": (".jsonl.gz", ".jsonl")}  # every other kind: SUFFIXES


def _suffixes(kind: str) -> tuple[str, ...]:
    return KIND_SUFFIXES.get(kind, SUFFIXES)


def _folder(kind: str) -> Path:
    if kind not in KINDS:
        raise ValueError(f"unknown resource kind {kind!r}; kinds: {', '.join(KINDS)}")
    root = resources.files(__name__)
    if not isinstance(root, Path):  # a zipped install: tasks read data files beside them, so we need real files
        raise ConfigError(f"adaptive's shipped files must be installed as files, not inside {root}")
    return root / kind


def shipped_names(kind: str) -> list[str]:
    """Names (file stems) of the shipped files of `kind`, sorted."""
    folder = _folder(kind)
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(suf)] for p in folder.iterdir() for suf in _suffixes(kind)
                  if p.name.endswith(suf) and not any(p.name.endswith(o) for o in _suffixes(kind) if len(o) > len(suf)))


def shipped(kind: str, name: str) -> Path | None:
    """The shipped file of `kind` called `name` (with or without .yaml), or None."""
    name = str(name)
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    folder = _folder(kind)
    sufs = _suffixes(kind)
    for cand in ((name,) if name.endswith(sufs) else tuple(name + s for s in sufs)):
        p = folder / cand
        if p.is_file():
            return p
    return None


def is_bare_name(path_or_name) -> bool:
    """A name with no folder part and no path syntax (what can mean a shipped file)."""
    s = str(path_or_name)
    return not isinstance(path_or_name, Path) and bool(s) and "/" not in s and "\\" not in s and not s.startswith(("~", "."))


def not_found(kind: str, path_or_name) -> ConfigError:
    names = shipped_names(kind)
    what = KINDS[kind]
    return ConfigError(f"{what} {str(path_or_name)!r} not found: not a file, nor a shipped {what} "
                       f"(shipped: {', '.join(names) or 'none'})")


def resolve(kind: str, path_or_name) -> Path:
    """An existing file path as given; else the shipped file of `kind` a bare name names; else ConfigError
    listing the shipped names."""
    p = Path(str(path_or_name)).expanduser()
    if p.is_file():
        return p
    hit = shipped(kind, str(path_or_name)) if is_bare_name(path_or_name) else None
    if hit is None:
        raise not_found(kind, path_or_name)
    return hit


__all__ = ["KINDS", "SUFFIXES", "is_bare_name", "not_found", "resolve", "shipped", "shipped_names"]
