"""One config mechanism: YAML mappings -> typed dataclasses, through one strict loader.

Every config (eval, task, policy, tune, bench, sweep files and the backend section) is a tree of
dataclasses, read by `load(cls, raw, source)`; a file goes through `load_file` (yaml.safe_load, never
code). Anything wrong is a ConfigError of one line, `<source>: key '<dotted.path[0].key>': <reason>`.

    @dataclass(frozen=True)
    class Budget:
        mean: float = option(check=above(0))          # no default: required
        unit: Literal["samples", "tokens"] = "samples"

    load(Budget, {"mean": 2}, "p.yaml")               # Budget(mean=2.0, unit='samples')
    load(Budget, {"mean": 0}, "p.yaml")               # p.yaml: key 'mean': must be > 0, got 0

What `load` checks, each error at its key path:
- keys: an unknown key (the accepted ones are listed), a missing required key (a field without default);
- types: bool, int (a bool is not one), float (an int is accepted; NaN and infinities are not), str,
  `X | None`, list[X], tuple[X, ...], dict[K, V], Literal[...] (the choices are listed), Any, nested
  dataclasses, unions of scalar types (the first that fits), and unions of dataclasses told apart by
  their `kind: Literal[...]` field (a mapping without `kind` is read as the first member);
  `Annotated[X, Kinds(fn)]` picks the dataclass from a table `fn()` of kind -> class (registries);
- values: `option(check=fn)` or `Annotated[X, fn]`, where fn(value) returns an error message or None;
  rules across fields go in `__post_init__`, raising `Invalid(key, reason)` with the key relative to
  the object; `Annotated[X, Parse(fn)]` reads a value with fn (e.g. a Plan, validated by Plan itself).

`option(internal=True)` marks a field that is not a key (set by the code that loads, e.g. the source path);
`option(key="...")` reads a field from a differently named key.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Union

import yaml

from .errors import ConfigError

Check = Callable[[Any], "str | None"]


class Invalid(ConfigError):
    """A value or a rule across fields is wrong. `key` is relative to the object being built ('' = the
    object itself); `load` re-raises it with the source and the full key path."""

    def __init__(self, key: str, reason: str, source: str | None = None):
        self.key, self.reason, self.source = key, reason, source
        where = f"key {key!r}: " if key else ""
        super().__init__(f"{source + ': ' if source else ''}{where}{reason}")

    def at(self, source: str | None, prefix: str = "") -> "Invalid":
        """This error seen from `prefix` within `source` (unchanged if it already names its own source:
        it came from another file)."""
        if self.source is not None:
            return self
        if not prefix:
            key = self.key
        elif not self.key:
            key = prefix
        else:
            key = prefix + ("" if self.key.startswith("[") else ".") + self.key
        return Invalid(key, self.reason, source)


@dataclasses.dataclass(frozen=True)
class Parse:
    """`Annotated[X, Parse(fn)]`: fn(raw value) -> X, raising Invalid for a bad value."""
    fn: Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class Kinds:
    """`Annotated[X, Kinds(table)]`: a mapping whose `kind` names its dataclass in `table()` (kind -> class),
    e.g. a registry's entries; `kind` is required."""
    table: Callable[[], Mapping[str, type]]


def option(default=dataclasses.MISSING, *, default_factory=dataclasses.MISSING, check: Check | None = None,
           key: str | None = None, internal: bool = False):
    """A dataclass field with what the loader needs to know about it (see the module docstring)."""
    meta = {"check": check, "key": key, "internal": internal}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


# -- value checks: fn(value) -> error message or None --------------------------------------------

def at_least(lo) -> Check:
    return lambda v: None if v >= lo else f"must be >= {lo}, got {v!r}"


def above(lo) -> Check:
    return lambda v: None if v > lo else f"must be > {lo}, got {v!r}"


def between(lo, hi, *, open_low: bool = False, open_high: bool = False) -> Check:
    text = f"{'(' if open_low else '['}{lo}, {hi}{')' if open_high else ']'}"

    def check(v):
        ok = (v > lo if open_low else v >= lo) and (v < hi if open_high else v <= hi)
        return None if ok else f"must be in {text}, got {v!r}"
    return check


def non_empty(v) -> str | None:
    return None if len(v) else "must not be empty"


def equals(expected) -> Check:
    return lambda v: None if v == expected else f"{v!r}: must be {expected!r}"


def registered(registry, also: tuple[str, ...] = ()) -> Check:
    """The value names an entry of `registry` (or one of `also`)."""
    def check(v):
        if v in registry or v in also:
            return None
        return f"unknown {registry.kind} {v!r}; known: {', '.join([*also, *registry.names()])}"
    return check


# -- paths and descriptions ------------------------------------------------------------------------

def join(prefix: str, key) -> str:
    """The path of `key` under `prefix`: an int is a list index (`bins[1]`), anything else a mapping key."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{prefix}[{key}]"
    return join_key(prefix, key)


def join_key(prefix: str, key) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _short(v, limit: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _got(v) -> str:
    if v is None:
        return "got null"
    return f"got {_TYPE_NAMES.get(type(v), type(v).__name__)} {_short(v)}"


_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "mapping"}


def _args(tp) -> tuple:
    return typing.get_args(tp)


def _is_union(tp) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def describe(tp) -> str:
    """What a value of type `tp` must be, in words."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return "any value"
    if origin is typing.Annotated:
        base, *meta = _args(tp)
        kinds = next((m for m in meta if isinstance(m, Kinds)), None)
        if kinds is not None:
            return f"a mapping with kind: {' | '.join(kinds.table())}"
        return describe(base)
    if _is_union(tp):
        members = [a for a in _args(tp) if a is not type(None)]
        classes = [a for a in members if dataclasses.is_dataclass(a)]
        parts = [describe(a) for a in members if a not in classes]
        if len(classes) > 1:
            parts.append(f"a mapping with kind: {' | '.join(_kind_table(classes))}")
        elif classes:
            parts.append(describe(classes[0]))
        text = " or ".join(parts)
        return text + " or null" if type(None) in _args(tp) else text
    if origin is Literal:
        return "one of " + ", ".join(str(c) for c in _args(tp))
    if origin in (list, tuple):
        item = describe(_args(tp)[0])
        if item.startswith(("a ", "an ")) and " " not in item.split(" ", 1)[1]:
            return f"a list of {item.split(' ', 1)[1]}s"
        return f"a list (each item: {item})"
    if origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, "a mapping" if dataclasses.is_dataclass(tp) else getattr(tp, "__name__", str(tp)))


def config_keys(cls) -> dict[str, dataclasses.Field]:
    """YAML key -> field of a config dataclass (internal fields left out)."""
    return {f.metadata.get("key") or f.name: f for f in dataclasses.fields(cls)
            if f.init and not f.metadata.get("internal")}


def _hints(cls) -> dict:
    try:
        return _HINTS[cls]
    except KeyError:
        _HINTS[cls] = typing.get_type_hints(cls, include_extras=True)
        return _HINTS[cls]


_HINTS: dict[type, dict] = {}


def _kind_table(members) -> dict[str, type]:
    """kind -> dataclass for a union of dataclasses, each with a `kind: Literal[...]` field."""
    table = {}
    for cls in members:
        kind_tp = _hints(cls).get("kind")
        if typing.get_origin(kind_tp) is not Literal:
            raise TypeError(f"{cls.__name__} is in a union of configs but has no `kind: Literal[...]` field")
        for k in _args(kind_tp):
            table[k] = cls
    return table


# -- the loader ------------------------------------------------------------------------------------

def load(cls, raw, source: str = "<config>", *, prefix: str = "", internal: dict | None = None):
    """`raw` (what yaml.safe_load returned) as a `cls`, checked as the module docstring says, its keys
    under `prefix`; `internal` sets internal fields (e.g. {"source": path}). Raises ConfigError (an
    Invalid) naming `source` and the key."""
    try:
        if internal:
            return _dataclass(cls, raw, prefix, internal)
        return _value(cls, raw, prefix)
    except Invalid as e:
        raise e.at(source) from None


def _fail(key: str, reason: str):
    raise Invalid(key, reason)


def _value(tp, v, key: str):
    origin = typing.get_origin(tp)
    if tp is Any:
        return v
    if origin is typing.Annotated:
        return _annotated(tp, v, key)
    if _is_union(tp):
        return _union(tp, v, key)
    if v is None:
        _fail(key, f"expected {describe(tp)}, got null")
    if origin is Literal:
        choices = _args(tp)
        if not any(v == c and type(v) is type(c) for c in choices):
            _fail(key, f"{_short(v)}: must be one of {', '.join(str(c) for c in choices)}")
        return v
    if tp is bool:
        if not isinstance(v, bool):
            _fail(key, f"expected true or false, {_got(v)}")
        return v
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, int):
            _fail(key, f"expected an integer, {_got(v)}")
        return v
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            _fail(key, f"expected a number, {_got(v)}")
        if not math.isfinite(v):
            _fail(key, f"expected a finite number, got {v!r}")
        return float(v)
    if tp is str:
        if not isinstance(v, str):
            _fail(key, f"expected a string, {_got(v)}")
        return v
    if origin in (list, tuple):
        if not isinstance(v, list):
            _fail(key, f"expected {describe(tp)}, {_got(v)}")
        item = _args(tp)[0]
        out = [_value(item, x, join(key, i)) for i, x in enumerate(v)]
        return out if origin is list else tuple(out)
    if origin is dict:
        if not isinstance(v, dict):
            _fail(key, f"expected {describe(tp)}, {_got(v)}")
        ktp, vtp = _args(tp)
        return {_value(ktp, k, join_key(key, k)): _value(vtp, x, join_key(key, k)) for k, x in v.items()}
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, v, key)
    raise TypeError(f"schema: unsupported type {tp!r} at {key!r}")  # a bug in a schema, not in the input


def _annotated(tp, v, key: str):
    base, *meta = _args(tp)
    parse = next((m for m in meta if isinstance(m, Parse)), None)
    kinds = next((m for m in meta if isinstance(m, Kinds)), None)
    if parse is not None:
        try:
            out = parse.fn(v)
        except Invalid as e:
            raise e.at(None, key) from None
    elif kinds is not None:
        out = _by_kind(dict(kinds.table()), v, key, default=None)
    else:
        out = _value(base, v, key)
    for check in meta:
        if callable(check) and not isinstance(check, (Parse, Kinds)):
            _checked(check, out, key)
    return out


def _checked(check: Check, v, key: str) -> None:
    msg = check(v)
    if msg:
        _fail(key, msg)


def _union(tp, v, key: str):
    members = [a for a in _args(tp) if a is not type(None)]
    if v is None:
        if type(None) in _args(tp):
            return None
        _fail(key, f"expected {describe(tp)}, got null")
    if len(members) == 1:
        return _value(members[0], v, key)
    classes = [m for m in members if dataclasses.is_dataclass(m)]
    if classes and isinstance(v, dict):
        if len(classes) == 1:
            return _dataclass(classes[0], v, key)
        return _by_kind(_kind_table(classes), v, key, default=classes[0])
    for m in members:
        if m in classes:
            continue
        try:
            return _value(m, v, key)
        except Invalid as e:
            if e.key != key or len(members) == 1:
                raise  # it fitted the type and failed deeper: that error is the one that helps
    _fail(key, f"expected {describe(tp)}, {_got(v)}")


def _by_kind(table: dict[str, type], v, key: str, default):
    if not isinstance(v, dict):
        _fail(key, f"expected a mapping with kind: {' | '.join(table)}, {_got(v)}")
    if "kind" not in v and default is not None:
        return _dataclass(default, v, key)
    kind = v.get("kind")
    if not isinstance(kind, str) or kind not in table:
        what = "required" if "kind" not in v else _short(kind)
        _fail(join_key(key, "kind"), f"{what}: must be one of {', '.join(table)}")
    return _dataclass(table[kind], v, key)


def _dataclass(cls, v, key: str, internal: dict | None = None):
    if not isinstance(v, dict):
        _fail(key, f"expected a mapping, {_got(v)}")
    fields = config_keys(cls)
    for k in v:
        if not isinstance(k, str) or k not in fields:
            _fail(join_key(key, k), f"unknown key {_short(k)}; accepted keys: {', '.join(sorted(fields))}")
    hints = _hints(cls)
    kwargs = dict(internal or {})
    for name, f in fields.items():
        sub = join_key(key, name)
        if name not in v:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                _fail(sub, f"required: {describe(hints[f.name])}")
            continue
        kwargs[f.name] = _value(hints[f.name], v[name], sub)
        if f.metadata.get("check") is not None and kwargs[f.name] is not None:
            _checked(f.metadata["check"], kwargs[f.name], sub)
    try:
        return cls(**kwargs)
    except Invalid as e:
        raise e.at(None, key) from None


# -- files -------------------------------------------------------------------------------------------

def read_yaml(path) -> Any:
    """yaml.safe_load of a file; an unreadable file or a YAML error is one line naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(e.problem or e.context or "syntax error").split())
        raise ConfigError(f"{path}: not valid YAML: {where}{problem}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None


def load_file(cls, path_or_name, kind: str | None = None, internal: dict | None = None):
    """Read a YAML file into `cls`; an internal field named `source` is set to the path read. With `kind`
    (a folder of adaptive/resources) a bare name may name a shipped file (adaptive.resources.resolve)."""
    from .resources import resolve

    path = resolve(kind, path_or_name) if kind else Path(path_or_name)
    internal = dict(internal or {})
    if dataclasses.is_dataclass(cls) and "source" in {f.name for f in dataclasses.fields(cls)
                                                      if f.metadata.get("internal")}:
        internal.setdefault("source", str(path))
    return load(cls, read_yaml(path), str(path), internal=internal)


# -- back to mappings --------------------------------------------------------------------------------

def dump(obj) -> Any:
    """A config object as the mapping it was read from (every key, internal fields left out)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: dump(getattr(obj, f.name)) for k, f in config_keys(type(obj)).items()}
    if isinstance(obj, (list, tuple)):
        return [dump(x) for x in obj]
    if isinstance(obj, dict):
        return {k: dump(x) for k, x in obj.items()}
    return obj


__all__ = ["Invalid", "Kinds", "Parse", "above", "at_least", "between", "config_keys", "describe", "dump",
           "equals", "join", "load", "load_file", "non_empty", "option", "read_yaml", "registered"]
