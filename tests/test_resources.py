"""Shipped files (adaptive/resources): found by name through importlib.resources; an existing file path wins;
an unknown name is a ConfigError listing the shipped names."""
import os
from pathlib import Path

import pytest
import yaml

from adaptive import resources
from adaptive.bench.sweep import check_config
from adaptive.errors import ConfigError
from adaptive.evaluate import load_config
from adaptive.policies import load_policy, resolve_policy_path
from adaptive.tasks.registry_entries import resolve_task
from adaptive.tune.config import load_tune_config

EXPECTED = {
    "eval": {"default", "gsm8k", "backend_compare", "bank_arith"},
    "tune": {"default", "demo"},
    "bench": {"default", "quick", "sweep"},
    "demo": {"default", "draw_bank"},
    "policies": {"fixed_sc8", "adaptive_beta", "binned_manual", "binned_default",
                 "allocate_default"},
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_shipped_names_and_files(kind):
    assert set(resources.shipped_names(kind)) == EXPECTED[kind]
    for name in EXPECTED[kind]:
        p = resources.shipped(kind, name)
        assert p is not None and p.is_file() and resources.shipped(kind, name + ".yaml") == p
        assert Path(resources.__file__).parent in p.parents  # inside the package, not the repo root
        assert isinstance(yaml.safe_load(p.read_text()), dict)


def test_unknown_names_and_paths():
    assert resources.shipped("eval", "nope") is None
    assert resources.shipped("eval", "../tune/default") is None  # no path syntax in a name
    with pytest.raises(ValueError):
        resources.shipped("configs", "default")
    with pytest.raises(ConfigError) as e:
        resources.resolve("policies", "no_such_policy")
    assert all(n in str(e.value) for n in EXPECTED["policies"])
    with pytest.raises(ConfigError) as e:
        resources.resolve("eval", "configs/eval/default.yaml")  # a path that is not a file is not a name
    assert "default" in str(e.value) and "shipped" in str(e.value)


def test_an_existing_file_wins_over_the_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = {"schema": 1, "kind": "fixed", "name": "mine", "plan": {"max_samples": 3}}
    Path("fixed_sc8").write_text(yaml.safe_dump(mine))
    assert resolve_policy_path("fixed_sc8") == Path("fixed_sc8")
    assert load_policy("fixed_sc8").name == "mine"
    os.remove("fixed_sc8")
    assert load_policy("fixed_sc8").name == "fixed_sc8"  # now the shipped one


def test_every_loader_reads_shipped_files_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing of the repo is reachable by a relative path from here
    cfg = load_config("default")
    assert cfg.task == "arith_mixed" and Path(cfg.source) == resources.shipped("eval", "default")
    assert load_config("bank_arith").task == "arith_mixed"
    assert load_tune_config().source == str(resources.shipped("tune", "default"))
    assert load_tune_config("default").seeds >= 1
    assert resolve_task("gsm8k") == resources.shipped("tasks", "gsm8k")
    assert resolve_task("gsm8k.yaml") == resources.shipped("tasks", "gsm8k")
    check_config(yaml.safe_load(resources.resolve("bench", "sweep").read_text()), "sweep")
    for kind, call in (("eval", load_config), ("tune", load_tune_config), ("tasks", resolve_task)):
        with pytest.raises(ConfigError) as e:
            call("nope/x.yaml")
        assert resources.shipped_names(kind)[0] in str(e.value)
