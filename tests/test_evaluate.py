"""Evaluation runner: config validation, records, resume after kill -9, report and plots (fake backend)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from adaptive.backends.fake import FakeBackend
from adaptive.errors import ConfigError
from adaptive.evaluate import load_config, parse_config, run_eval, write_report
from adaptive.evaluate.records import read_records, repair_tail

CONFIG = {
    "task": "arith_mixed", "limit": 9, "seed": 0, "shuffle": False, "batch_size": 3,
    "policies": [{"name": "sc1", "plan": {"max_samples": 1, "max_new_tokens": 32}},
                 {"name": "sc4", "plan": {"max_samples": 4, "wave_size": 2, "stopping": "beta",
                                          "max_new_tokens": 32}}],
}


def script(prompt, prefix, i, rng):
    return f"The answer is {rng.choice([2, 3, 5, 7, 10])}."


def write(tmp_path, cfg, name="c.yaml"):
    import yaml

    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_run_writes_one_record_per_prompt_and_policy(tmp_path):
    cfg = parse_config(CONFIG, "test")
    out = run_eval(cfg, tmp_path / "run", backend=FakeBackend(script), progress=False)
    recs = read_records(out / "records.jsonl")
    assert len(recs) == 18 and len({(r["id"], r["policy"]) for r in recs}) == 18
    r = recs[0]
    for key in ("compute", "plan", "samples", "correct", "gold", "meta", "run", "stop_reason"):
        assert key in r
    assert r["run"]["versions"]["torch"] and r["run"]["fingerprint"] and r["run"]["seed"] == 0
    assert all(0 <= x["correct"] <= 1 for x in recs)
    assert all(x["compute"]["samples"] <= x["plan"]["max_samples"] for x in recs)
    for png in ("accuracy_vs_tokens.png", "accuracy_by_difficulty.png", "latency_cdf.png"):
        assert (out / png).stat().st_size > 1000
    md = (out / "report.md").read_text()
    assert "sc1" in md and "sc4" in md and "easy" in md


def test_correctness_is_graded_against_gold(tmp_path):
    from adaptive.tasks import load_task

    _, examples, _ = load_task("arith_mixed", limit=3, shuffle=False)
    golds = {ex.prompt: ex.gold for ex in examples}
    cfg = parse_config({**CONFIG, "limit": 3, "policies": CONFIG["policies"][:1]}, "test")
    out = run_eval(cfg, tmp_path / "r", backend=FakeBackend(lambda p, pre, i, rng: f"The answer is {golds[p]}."),
                   progress=False)
    assert all(r["correct"] == 1.0 for r in read_records(out / "records.jsonl"))


@pytest.mark.parametrize("bad, key", [
    ({**CONFIG, "polices": []}, "polices"),
    ({**CONFIG, "policies": [{"name": "a", "plan": {"max_sample": 2}}]}, "max_sample"),
    ({**CONFIG, "policies": [{"name": "a", "plan": {"max_samples": 0}}]}, "max_samples"),
    ({**CONFIG, "backend": {"kind": "hf", "devcie": "cpu"}}, "devcie"),
    ({**CONFIG, "batch_size": 0}, "batch_size"),
])
def test_config_errors_name_file_and_key(tmp_path, bad, key):
    path = write(tmp_path, bad)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value) and key in str(e.value)


def test_unknown_task_lists_known(tmp_path):
    cfg = parse_config({**CONFIG, "task": "gsm9k"}, "test")
    with pytest.raises(Exception, match="gsm8k"):
        run_eval(cfg, tmp_path / "r", backend=FakeBackend(script), progress=False)


def test_changed_config_refuses_to_resume(tmp_path):
    run_eval(parse_config(CONFIG, "test"), tmp_path / "r", backend=FakeBackend(script), progress=False)
    changed = {**CONFIG, "policies": [{"name": "sc1", "plan": {"max_samples": 2, "max_new_tokens": 32}}]}
    with pytest.raises(ConfigError, match="refusing to resume.*policies"):
        run_eval(parse_config(changed, "test"), tmp_path / "r", backend=FakeBackend(script), progress=False)


def test_torn_last_line_is_repaired(tmp_path):
    log = tmp_path / "records.jsonl"
    log.write_text('{"id": "a", "policy": "p"}\n{"id": "b", "pol')
    assert repair_tail(log) > 0
    assert [r["id"] for r in read_records(log)] == ["a"]


CHILD = textwrap.dedent("""
    import sys
    from adaptive.backends.fake import FakeBackend
    from adaptive.evaluate import parse_config, run_eval
    cfg = parse_config({cfg!r}, "test")
    backend = FakeBackend(lambda p, pre, i, rng: "The answer is 7.", delay_s=float(sys.argv[2]))
    run_eval(cfg, sys.argv[1], backend=backend, progress=False, report=False)
""")


def test_resume_after_kill_9_loses_and_duplicates_nothing(tmp_path):
    cfg = {**CONFIG, "limit": 12, "batch_size": 2}
    child = tmp_path / "child.py"
    child.write_text(CHILD.format(cfg=cfg))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(child), str(out), "0.15"])
    log = out / "records.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = read_records(log) if repair_tail(log) >= 0 else []
    assert 4 <= len(first) < 24, "the run must have been interrupted mid-way"
    subprocess.run([sys.executable, str(child), str(out), "0"], check=True, timeout=300)
    recs = read_records(log)
    keys = [(r["id"], r["policy"]) for r in recs]
    assert len(keys) == len(set(keys)) == 24
    assert {(r["id"], r["policy"]) for r in first} <= set(keys)
    assert write_report(out, print_table=False).exists()
