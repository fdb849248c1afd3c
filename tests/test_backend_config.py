"""The backend section: one BackendConfig for YAML, the CLI's flags and the Python API; an eval config with an
OpenAI-compatible backend runs end to end against the fake server (adaptive/testing/fake_openai.py)."""
from __future__ import annotations

import copy

import pytest
import yaml

from adaptive.backends.config import OpenAIBackendConfig
from adaptive.backends.factory import make_backend
from adaptive.backends.openai import OpenAIBackend
from adaptive.cli import main
from adaptive.errors import AdaptiveError, ConfigError
from adaptive.evaluate import load_config, parse_config, run_eval
from adaptive.evaluate.records import read_records
from adaptive.testing.fake_openai import FakeOpenAIServer

PLAN = {"strategy": "self_consistency", "max_samples": 2, "max_new_tokens": 16, "seed": 0}


def openai_config(url: str, **backend) -> dict:
    return {"task": "arith_mixed", "limit": 4, "shuffle": False, "batch_size": 2,
            "backend": {"kind": "openai", "base_url": url, "model": "served-name", "max_in_flight": 3,
                        "timeout_s": 5, "max_retries": 1, **backend},
            "policies": [{"name": "sc2", "plan": PLAN}]}


def test_eval_config_with_an_openai_backend_runs_end_to_end(tmp_path):
    with FakeOpenAIServer(model="served-name") as srv:
        path = tmp_path / "openai.yaml"
        path.write_text(yaml.safe_dump(openai_config(srv.url)))
        config = load_config(path)
        assert config.backend == OpenAIBackendConfig(base_url=srv.url, model="served-name", max_in_flight=3,
                                                     timeout_s=5.0, max_retries=1)
        out = run_eval(config, tmp_path / "run", progress=False)
        recs = read_records(out / "records.jsonl")
        assert {b["model"] for b in srv.requests} == {"served-name"} and srv.max_active <= 3
    assert len(recs) == 4 and {r["run"]["backend"]["model"] for r in recs} == {"served-name"}
    easy = [r for r in recs if r["meta"]["difficulty"] == "easy"]  # "a + b": the fake server adds them up
    assert easy and all(r["correct"] == 1.0 for r in easy)
    assert all(r["compute"]["samples"] == 2 for r in recs)
    assert (out / "report.md").exists()


def test_eval_model_flag_names_the_served_model_and_wins_over_yaml(tmp_path, capsys):
    with FakeOpenAIServer(model="other") as srv:
        path = tmp_path / "openai.yaml"
        path.write_text(yaml.safe_dump(openai_config(srv.url)))
        code = main(["eval", "--config", str(path), "--model", "other", "--timeout", "5", "--max-retries", "0",
                     "--out", str(tmp_path / "run"), "--quiet"])
        assert code == 0, capsys.readouterr().err
        assert {b["model"] for b in srv.requests} == {"other"}
    recs = read_records(tmp_path / "run" / "records.jsonl")
    assert {r["run"]["backend"]["model"] for r in recs} == {"other"}
    assert recs[0]["run"]["config"]["backend"]["model"] == "other"  # the flag is part of the run's config


def test_eval_backend_flags_switch_a_config_to_a_server(tmp_path, capsys):
    with FakeOpenAIServer() as srv:
        code = main(["eval", "--config", "default", "--limit", "1", "--policy", "sc1", "--backend", "openai",
                     "--base-url", srv.url, "--model", "fake-model", "--out", str(tmp_path / "run"), "--quiet"])
        assert code == 0, capsys.readouterr().err
        assert len(srv.completed) == 1
    assert len(read_records(tmp_path / "run" / "records.jsonl")) == 1


def test_python_api_takes_a_config_or_a_mapping():
    with FakeOpenAIServer() as srv:
        cfg = OpenAIBackendConfig(base_url=srv.url, model="fake-model", timeout_s=7, connect_timeout_s=2,
                                  read_timeout_s=3, max_retries=2)
        with make_backend(cfg) as b:
            assert isinstance(b, OpenAIBackend) and b.model == "fake-model"
            s = b.session
            assert (s.timeout_s, s.connect_timeout_s, s.read_timeout_s, s.max_retries) == (7, 2, 3, 2)
        with make_backend({"kind": "openai", "base_url": srv.url, "model": "yaml-name"}, model="fake-model") as b:
            assert b.model == "fake-model"  # the explicit model wins
    with pytest.raises(ConfigError, match=r"^backend config: key 'timeout_s': must be > 0, got 0.0$"):
        make_backend({"kind": "openai", "base_url": "http://x", "model": "m", "timeout_s": 0})


def test_read_timeout_fails_a_stalled_stream():
    with FakeOpenAIServer(token_delay_s=0.5) as srv, \
            make_backend({"kind": "openai", "base_url": srv.url, "model": "fake-model", "read_timeout_s": 0.1,
                          "max_retries": 0}) as b:
        from adaptive.backends.base import Request, SamplingParams

        with pytest.raises(AdaptiveError, match="read timeout"):
            b.generate([Request("What is 1 + 1?")], SamplingParams())


@pytest.mark.parametrize("backend, key", [
    ({"kind": "openai", "base_url": "http://x", "dtype": "float32"}, "backend.dtype"),
    ({"kind": "hf", "base_url": "http://x"}, "backend.base_url"),
    ({"kind": "vllm"}, "backend.kind"),
    ({"kind": "openai", "max_in_flight": 0}, "backend.max_in_flight"),
    ({"kind": "openai", "headers": {"X-A": 1}}, "backend.headers.X-A"),
    ({"device": "tpu"}, "backend.device"),
    ({"kind": "openai", "model": "m", "timeout_s": 0}, "backend.timeout_s"),
    ({"quantization": "int3"}, "backend.quantization"),
])
def test_backend_section_errors_name_the_key(backend, key):
    raw = {"task": "arith_mixed", "backend": backend, "policies": [{"name": "a", "plan": PLAN}]}
    with pytest.raises(ConfigError) as e:
        parse_config(raw, "c.yaml")
    assert str(e.value).startswith(f"c.yaml: key '{key}': ")


@pytest.mark.parametrize("argv, message", [
    (["generate", "hi", "--backend", "openai", "--dtype", "float32"], "--dtype does not apply to --backend openai"),
    (["generate", "hi", "--timeout", "5"], "--timeout does not apply to --backend hf"),
    (["generate", "hi", "--backend", "openai", "--base-url", "http://x", "--timeout", "0"],
     "--timeout: must be > 0, got 0.0"),
    (["generate", "hi", "--backend", "openai", "--base-url", "http://x", "--max-retries", "-1"],
     "--max-retries: must be >= 0, got -1"),
    (["generate", "hi", "--quantization", "int3"], "--quantization: 'int3': must be one of dynamic-int8"),
    (["eval", "--backend", "openai", "--dtype", "bf16"], "--dtype does not apply to --backend openai"),
])
def test_backend_flag_errors_are_one_line_naming_the_flag(argv, message, capsys, monkeypatch):
    import adaptive.backends.factory as factory

    monkeypatch.setattr(factory, "make_backend", lambda *a, **k: pytest.fail("a backend was built"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("adaptive: error: ") and message in err and len(err.strip().splitlines()) == 1


def test_top_level_model_is_backend_model_and_the_flag_wins(tmp_path, capsys):
    base = {"task": "t", "policies": [{"name": "a", "plan": PLAN}]}
    cfg = parse_config({**base, "model": "m", "backend": {"kind": "openai"}}, "c.yaml")
    assert cfg.backend.model == "m" and cfg.model is None
    assert parse_config({**base, "model": "m", "backend": {"kind": "openai", "model": "m"}}).backend.model == "m"
    with pytest.raises(ConfigError, match=r"^c.yaml: key 'model': 'm' disagrees with backend.model 'n'"):
        parse_config({**base, "model": "m", "backend": {"kind": "openai", "model": "n"}}, "c.yaml")
    assert cfg.with_backend({"kind": "openai", "model": "flag"}).backend.model == "flag"
    assert cfg.with_backend({"kind": "openai", "timeout_s": 3}).backend.model == "m"
    with FakeOpenAIServer() as srv:
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({**base, "task": "arith_mixed", "limit": 1, "model": "yaml-name",
                                        "backend": {"kind": "openai", "base_url": srv.url}}))
        assert main(["eval", "--config", str(path), "--model", "flag-name", "--out", str(tmp_path / "r"),
                     "--quiet"]) == 0, capsys.readouterr().err
        assert {b["model"] for b in srv.requests} == {"flag-name"}


def test_fingerprint_is_stable_for_equal_content():
    base = {"task": "t", "policies": [{"name": "a", "plan": PLAN}], "description": "x"}
    settings = {"kind": "openai", "model": "m"}
    fp = parse_config(base).fingerprint(settings)
    assert parse_config(copy.deepcopy(base)).fingerprint(dict(settings)) == fp
    assert parse_config({**base, "description": "y", "limit": 3}).fingerprint(settings) == fp
    assert parse_config({**base, "backend": {"kind": "openai", "timeout_s": 5}}).fingerprint(settings) == fp
    assert parse_config({**base, "seed": 1}).fingerprint(settings) != fp
    assert parse_config(base).fingerprint({**settings, "model": "other"}) != fp


def test_resume_across_timeouts_but_not_across_models(tmp_path, capsys):
    with FakeOpenAIServer() as srv:
        path = tmp_path / "openai.yaml"
        path.write_text(yaml.safe_dump({**openai_config(srv.url), "limit": 2}))
        out = ["--out", str(tmp_path / "run"), "--quiet"]
        assert main(["eval", "--config", str(path), "--model", "fake-model", *out]) == 0, capsys.readouterr().err
        # connection settings do not change results: the run resumes (nothing left to do)
        assert main(["eval", "--config", str(path), "--model", "fake-model", "--timeout", "7", "--max-retries", "2",
                     "--max-in-flight", "1", "--limit", "4", *out]) == 0, capsys.readouterr().err
        assert len(read_records(tmp_path / "run" / "records.jsonl")) == 4
        assert main(["eval", "--config", str(path), "--model", "other", *out]) == 2
        err = capsys.readouterr().err
        assert "refusing to resume" in err and "backend.model ('fake-model' -> 'other')" in err
