"""The one config loader (adaptive/schema.py) on worked examples: each kind of error, with its exact key path."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pytest

from adaptive.errors import ConfigError
from adaptive.schema import (Invalid, Kinds, Parse, above, at_least, between, dump, load, load_file, non_empty,
                             option, read_yaml)


@dataclass(frozen=True)
class Step:
    size: int = option(check=at_least(1))
    weights: list[Annotated[float, between(0, 1)]] = option(default_factory=list)


@dataclass(frozen=True)
class Local:
    kind: Literal["local"] = "local"
    path: str = "."


@dataclass(frozen=True)
class Remote:
    kind: Literal["remote"] = "remote"
    url: str = ""
    retries: int = option(3, check=at_least(0))

    def __post_init__(self):
        if not self.url.startswith("http"):
            raise Invalid("url", f"{self.url!r}: must start with http")


def _double(v):
    if not isinstance(v, int) or isinstance(v, bool):
        raise Invalid("", "expected an integer to double")
    return 2 * v


@dataclass(frozen=True)
class Job:
    name: str = option(check=non_empty)
    steps: list[Step] = option(default_factory=list)
    verbose: bool = False
    mode: Literal["fast", "slow"] = "fast"
    limits: dict[int, str] = option(default_factory=dict)
    store: Local | Remote = option(default_factory=Local)
    rate: float | None = option(None, check=above(0))
    bins: int | Literal["auto"] = 4
    doubled: Annotated[int, Parse(_double)] = 0
    tags: tuple[str, ...] = ()
    extra: Any = None
    old_name: str = option("", key="legacy")
    source: str = option("", internal=True)

    def __post_init__(self):
        if self.mode == "slow" and not self.steps:
            raise Invalid("steps", "mode 'slow' needs at least one step")


def err(raw, cls=Job) -> str:
    with pytest.raises(ConfigError) as e:
        load(cls, raw, "job.yaml")
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_a_valid_mapping_becomes_typed_objects():
    job = load(Job, {"name": "j", "steps": [{"size": 2, "weights": [0, 0.5]}], "rate": 3, "limits": {1: "a"},
                     "store": {"kind": "remote", "url": "http://x"}, "bins": "auto", "doubled": 4,
                     "tags": ["a", "b"], "extra": {"any": [1]}, "legacy": "old"}, "job.yaml",
               internal={"source": "job.yaml"})
    assert job.steps == [Step(2, [0.0, 0.5])] and isinstance(job.rate, float) and job.rate == 3.0
    assert job.store == Remote(url="http://x") and job.bins == "auto" and job.doubled == 8
    assert job.tags == ("a", "b") and job.old_name == "old" and job.source == "job.yaml"
    assert load(Job, {"name": "j"}).store == Local()  # defaults; no kind: the union's first member
    assert dump(job)["store"] == {"kind": "remote", "url": "http://x", "retries": 3}
    assert "source" not in dump(job) and dump(job)["legacy"] == "old"


@pytest.mark.parametrize("raw, expected", [
    # keys
    ({"nme": "j"}, "job.yaml: key 'nme': unknown key 'nme'; accepted keys: "),
    ({}, "job.yaml: key 'name': required: a string"),
    ({"name": "j", "steps": [{"size": 1}, {"sise": 1}]}, "job.yaml: key 'steps[1].sise': unknown key 'sise'"),
    ({"name": "j", "steps": [{}]}, "job.yaml: key 'steps[0].size': required: an integer"),
    ({"name": "j", 7: 1}, "job.yaml: key '7': unknown key 7"),
    # types
    ({"name": 3}, "job.yaml: key 'name': expected a string, got int 3"),
    ({"name": "j", "verbose": "yes"}, "job.yaml: key 'verbose': expected true or false, got str 'yes'"),
    ({"name": "j", "steps": [{"size": True}]}, "job.yaml: key 'steps[0].size': expected an integer, got bool True"),
    ({"name": "j", "steps": [{"size": 1.5}]}, "job.yaml: key 'steps[0].size': expected an integer, got float 1.5"),
    ({"name": "j", "rate": "1"}, "job.yaml: key 'rate': expected a number, got str '1'"),
    ({"name": "j", "rate": float("inf")}, "job.yaml: key 'rate': expected a finite number, got inf"),
    ({"name": None}, "job.yaml: key 'name': expected a string, got null"),
    ({"name": "j", "steps": {"size": 1}}, "job.yaml: key 'steps': expected a list of mappings, got mapping"),
    ({"name": "j", "limits": {"a": "b"}}, "job.yaml: key 'limits.a': expected an integer, got str 'a'"),
    ({"name": "j", "limits": {1: 2}}, "job.yaml: key 'limits.1': expected a string, got int 2"),
    ({"name": "j", "mode": "medium"}, "job.yaml: key 'mode': 'medium': must be one of fast, slow"),
    ({"name": "j", "bins": "many"}, "job.yaml: key 'bins': expected an integer or one of auto, got str 'many'"),
    ({"name": "j", "tags": "a"}, "job.yaml: key 'tags': expected a list of strings, got str 'a'"),
    ({"name": "j", "doubled": "x"}, "job.yaml: key 'doubled': expected an integer to double"),
    # a union of kinds
    ({"name": "j", "store": {"kind": "cloud"}}, "job.yaml: key 'store.kind': 'cloud': must be one of local, remote"),
    ({"name": "j", "store": {"kind": "remote", "path": "/"}}, "job.yaml: key 'store.path': unknown key 'path'; "
                                                               "accepted keys: kind, retries, url"),
    ({"name": "j", "store": "remote"}, "job.yaml: key 'store': expected a mapping"),
    # value checks, per field and across fields
    ({"name": ""}, "job.yaml: key 'name': must not be empty"),
    ({"name": "j", "steps": [{"size": 0}]}, "job.yaml: key 'steps[0].size': must be >= 1, got 0"),
    ({"name": "j", "steps": [{"size": 1, "weights": [0.5, 1.5]}]},
     "job.yaml: key 'steps[0].weights[1]': must be in [0, 1], got 1.5"),
    ({"name": "j", "rate": 0}, "job.yaml: key 'rate': must be > 0, got 0.0"),
    ({"name": "j", "store": {"kind": "remote", "url": "ftp://x"}}, "job.yaml: key 'store.url': 'ftp://x': must start"),
    ({"name": "j", "store": {"kind": "remote", "url": "http://x", "retries": -1}},
     "job.yaml: key 'store.retries': must be >= 0, got -1"),
    ({"name": "j", "mode": "slow"}, "job.yaml: key 'steps': mode 'slow' needs at least one step"),
    # not a mapping at all
    ([1, 2], "job.yaml: expected a mapping, got list [1, 2]"),
    (None, "job.yaml: expected a mapping, got null"),
])
def test_each_error_names_the_file_and_the_key_path(raw, expected):
    assert err(raw).startswith(expected)


def test_unknown_key_lists_the_accepted_keys_but_not_internal_fields():
    msg = err({"nme": "j"})
    assert msg.endswith("accepted keys: bins, doubled, extra, legacy, limits, mode, name, rate, steps, store, tags, "
                        "verbose")


@dataclass(frozen=True)
class Shape:
    kind: str


@dataclass(frozen=True)
class Circle(Shape):
    kind: Literal["circle"] = "circle"
    r: float = 1.0


def test_kinds_from_a_table_need_a_kind():
    shape = Annotated[Shape, Kinds(lambda: {"circle": Circle})]
    assert load(shape, {"kind": "circle", "r": 2}) == Circle(r=2.0)
    with pytest.raises(ConfigError, match=r"^s.yaml: key 'kind': required: must be one of circle$"):
        load(shape, {"r": 2}, "s.yaml")
    with pytest.raises(ConfigError, match=r"^s.yaml: key 'kind': 'square': must be one of circle$"):
        load(shape, {"kind": "square"}, "s.yaml")


def test_invalid_raised_outside_the_loader_is_still_a_config_error():
    with pytest.raises(ConfigError, match="key 'url': 'x': must start with http"):
        Remote(url="x")


def test_yaml_syntax_error_is_one_line_with_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: arith\npolicies:\n  - {name: a, plan: {max_samples: 2}\n  - name: b\n")
    with pytest.raises(ConfigError) as e:
        read_yaml(bad)
    msg = str(e.value)
    assert msg.startswith(f"{bad}: not valid YAML: line 4 column 3: ")
    assert "\n" not in msg and "unicode string" not in msg
    tabs = tmp_path / "tabs.yaml"
    tabs.write_text("a:\n\tb: 1\n")
    assert "line 2 column 1" in str(pytest.raises(ConfigError, read_yaml, tabs).value)
    with pytest.raises(ConfigError, match="no such file"):
        read_yaml(tmp_path / "missing.yaml")


def test_loading_never_runs_code_from_the_file(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match=r"not valid YAML: line 1 column 7: .*python/object/apply"):
        load_file(Job, evil)


def test_load_file_sets_the_source(tmp_path):
    f = tmp_path / "job.yaml"
    f.write_text("name: j\nsteps: [{size: 0}]\n")
    with pytest.raises(ConfigError, match=rf"^{f}: key 'steps\[0\].size': must be >= 1, got 0$"):
        load_file(Job, f)
    f.write_text("name: j\n")
    assert load_file(Job, f).source == str(f)
