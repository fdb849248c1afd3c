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


# -- one process per run directory -------------------------------------------------------------------

def test_a_held_run_directory_is_refused_at_once_naming_it_and_the_holder(tmp_path):
    from adaptive.errors import BusyError
    from adaptive.locks import FileLock

    out = tmp_path / "run"
    out.mkdir()
    with FileLock(out / ".lock", what="test holder"):  # flock: another open file description conflicts
        t0 = time.perf_counter()
        with pytest.raises(BusyError) as e:
            run_eval(parse_config(CONFIG, "test"), out, backend=FakeBackend(script), progress=False)
        assert time.perf_counter() - t0 < 5
    msg = str(e.value)
    assert f"run directory {out}" in msg and f"pid {os.getpid()}" in msg and "--out" in msg
    assert "\n" not in msg and not (out / "records.jsonl").exists()
    # Released with its holder: the run now goes through, and releases it in turn (also on errors).
    run_eval(parse_config(CONFIG, "test"), out, backend=FakeBackend(script), progress=False)
    boom = FakeBackend(script)
    boom.generate = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("backend died"))
    with pytest.raises(RuntimeError):
        run_eval(parse_config({**CONFIG, "limit": 12}, "test"), out, backend=boom, progress=False)
    with FileLock(out / ".lock", what="free again"):
        pass


def test_cli_eval_on_a_held_directory_is_one_line_exit_2(tmp_path, capsys):
    from adaptive.cli import main
    from adaptive.locks import FileLock

    out = tmp_path / "run"
    out.mkdir()
    cfg = write(tmp_path, CONFIG)
    with FileLock(out / ".lock", what="test holder"):
        code = main(["eval", "--config", str(cfg), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"run directory {out} is in use" in err and f"pid {os.getpid()}" in err


def test_report_counts_each_key_once_and_warns_about_duplicates(tmp_path, caplog):
    out = run_eval(parse_config(CONFIG, "test"), tmp_path / "r", backend=FakeBackend(script), progress=False)
    log = out / "records.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    first = {tuple(json.loads(x)[k] for k in ("id", "policy")): json.loads(x)["correct"] for x in lines}
    # As two unlocked runs used to leave it: every key twice, the second copy graded differently.
    flipped = [json.dumps({**json.loads(x), "correct": 1.0 - json.loads(x)["correct"]}) + "\n" for x in lines]
    log.write_text("".join(lines + flipped))
    with caplog.at_level("WARNING"):
        write_report(out, print_table=False)
    assert "18 duplicate (id, policy) records ignored" in caplog.text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sc1"]["n"] == 9 and summary["sc4"]["n"] == 9
    acc = sum(v for (i, p), v in first.items() if p == "sc1" and v >= 0.5) / 9
    assert summary["sc1"]["accuracy"] == pytest.approx(acc)  # the first of each key counts


def test_report_on_a_running_eval_leaves_its_log_alone(tmp_path, capsys):
    from adaptive.locks import FileLock

    out = run_eval(parse_config(CONFIG, "test"), tmp_path / "r", backend=FakeBackend(script), progress=False)
    log = out / "records.jsonl"
    with open(log, "a") as f:
        f.write('{"id": "half-written')  # the running eval's write in progress
    size = log.stat().st_size
    with FileLock(out / ".lock", what="the running eval"):
        write_report(out, print_table=True)
    assert log.stat().st_size == size  # not "repaired" under the writer
    assert f"run in progress (pid {os.getpid()}): 18 records so far" in capsys.readouterr().out
    assert "In progress" in (out / "report.md").read_text()
    write_report(out, print_table=False)  # nobody holds it now: a torn tail is repaired as on resume
    assert log.read_text().endswith("}\n")


# -- one fingerprint over the config and the backend that actually runs --------------------------------

class SetBackend(FakeBackend):
    """A fake backend with settings, as a real one reports them."""

    def __init__(self, **settings):
        super().__init__(script)
        self._settings = {"kind": "fake", "model": "fake", "dtype": "float32", **settings}

    def settings(self):
        return dict(self._settings)


def test_records_and_run_json_carry_the_backend_settings(tmp_path):
    out = run_eval(parse_config(CONFIG, "test"), tmp_path / "r", backend=SetBackend(), progress=False)
    meta = json.loads((out / "run.json").read_text())
    assert meta["backend"] == SetBackend().settings() and meta["versions"]["torch"]
    recs = read_records(out / "records.jsonl")
    assert all(r["run"]["backend"] == meta["backend"] and r["run"]["fingerprint"] == meta["fingerprint"]
               for r in recs)


@pytest.mark.parametrize("change", [{"dtype": "bfloat16"}, {"quantization": "dynamic-int8"},
                                    {"model": "other"}, {"attention": "eager"}, {"device": "cuda"}])
def test_resume_with_other_backend_settings_is_refused_naming_them(tmp_path, change):
    out = tmp_path / "r"
    run_eval(parse_config({**CONFIG, "limit": 3}, "test"), out, backend=SetBackend(), progress=False)
    before = (out / "records.jsonl").read_text()
    with pytest.raises(ConfigError) as e:
        run_eval(parse_config(CONFIG, "test"), out, backend=SetBackend(**change), progress=False)
    (key, value), = change.items()
    assert "refusing to resume" in str(e.value) and f"backend.{key}" in str(e.value) and repr(value) in str(e.value)
    assert (out / "records.jsonl").read_text() == before
    run_eval(parse_config(CONFIG, "test"), out, backend=SetBackend(), progress=False)  # same settings: resumes
    assert len(read_records(out / "records.jsonl")) == 18


def test_without_run_json_the_records_still_guard_the_resume(tmp_path):
    out = run_eval(parse_config({**CONFIG, "limit": 3}, "test"), tmp_path / "r", backend=SetBackend(),
                   progress=False)
    (out / "run.json").unlink()
    with pytest.raises(ConfigError, match="backend.dtype"):
        run_eval(parse_config(CONFIG, "test"), out, backend=SetBackend(dtype="float16"), progress=False)
    run_eval(parse_config(CONFIG, "test"), out, backend=SetBackend(), progress=False)
    assert (out / "run.json").exists()


def test_a_start_that_fails_before_any_record_blocks_nothing(tmp_path):
    from adaptive.backends.openai import OpenAIBackend
    from adaptive.testing.fake_openai import FakeOpenAIServer

    cfg = {**CONFIG, "limit": 2, "policies": CONFIG["policies"][:1]}
    out = tmp_path / "r"
    bad = OpenAIBackend("http://127.0.0.1:9/v1", "fake-model", max_retries=0, connect_timeout_s=2)
    with pytest.raises(Exception):
        run_eval(parse_config(cfg, "test"), out, backend=bad, progress=False)
    assert not (out / "run.json").exists() and not read_records(out / "records.jsonl")
    with FakeOpenAIServer() as srv:
        good = OpenAIBackend(srv.url, "fake-model")
        run_eval(parse_config(cfg, "test"), out, backend=good, progress=False)
    meta = json.loads((out / "run.json").read_text())
    assert meta["backend"]["base_url"] == srv.url and len(read_records(out / "records.jsonl")) == 2


def test_a_run_json_without_records_is_a_failed_start_and_replaced(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"fingerprint": "0000", "config": {}, "backend": {"kind": "x"}}))
    run_eval(parse_config(CONFIG, "test"), out, backend=SetBackend(), progress=False)
    assert json.loads((out / "run.json").read_text())["backend"]["kind"] == "fake"


EVAL_HF = {"task": "arith_mixed", "limit": 1, "seed": 0, "shuffle": False, "batch_size": 1,
           "backend": {"kind": "hf", "device": "cpu"},
           "policies": [{"name": "greedy", "plan": {"max_samples": 1, "max_new_tokens": 4, "temperature": 0.0}}]}


@pytest.mark.model
def test_cli_resume_with_another_dtype_is_refused(tmp_path, capsys):
    from adaptive.cli import main

    cfg, out = write(tmp_path, EVAL_HF), tmp_path / "run"
    assert main(["eval", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    backend = read_records(out / "records.jsonl")[0]["run"]["backend"]
    assert backend["dtype"] == "float32" and backend["kind"] == "hf" and backend["device"] == "cpu"
    assert backend["model"] == "embedded:SmolLM2-135M-Instruct" and backend["revision"] and backend["torch"]
    capsys.readouterr()
    assert main(["eval", "--config", str(cfg), "--out", str(out), "--quiet", "--dtype", "bfloat16"]) == 2
    err = capsys.readouterr().err
    assert "refusing to resume" in err and "backend.dtype ('float32' -> 'bfloat16')" in err
    assert len(err.strip().splitlines()) == 1 and len(read_records(out / "records.jsonl")) == 1


# -- fault test: two evals on one --out, one killed with kill -9 mid-write ------------------------------

STALLING_EVAL = textwrap.dedent("""
    # `adaptive eval`, except that its 3rd batch write stops halfway (flushed to disk) and hangs there,
    # so the test can kill it with kill -9 in the middle of a write.
    import json, os, sys, time
    import adaptive.evaluate.runner as runner
    from adaptive.cli import main

    real, writes = runner.append_records, []

    def append_records(path, recs):
        writes.append(1)
        if len(writes) < 3:
            return real(path, recs)
        lines = "".join(json.dumps(r, default=str) + "\\n" for r in recs)
        with open(path, "a") as f:
            f.write(lines[: len(lines) // 2])
            f.flush()
            os.fsync(f.fileno())
        open(sys.argv[1], "w").close()
        time.sleep(3600)

    runner.append_records = append_records
    sys.exit(main(sys.argv[2:]))
""")


def test_two_evals_on_one_out_with_kill_9_mid_write(tmp_path):
    from adaptive.testing.fake_openai import FakeOpenAIServer

    def cli(*args, timeout=300):
        return subprocess.run([sys.executable, "-m", "adaptive", *args], capture_output=True, text=True,
                              timeout=timeout)

    with FakeOpenAIServer() as srv:
        cfg = write(tmp_path, {**CONFIG, "limit": 12, "batch_size": 2, "model": "fake-model",
                               "backend": {"kind": "openai", "base_url": srv.url}})
        out, mark = tmp_path / "run", tmp_path / "stalled"
        log = out / "records.jsonl"
        stalling = tmp_path / "stalling_eval.py"
        stalling.write_text(STALLING_EVAL)
        eval_args = ["eval", "--config", str(cfg), "--out", str(out), "--quiet"]
        a = subprocess.Popen([sys.executable, str(stalling), str(mark), *eval_args], stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 180
            while not mark.exists() and a.poll() is None and time.time() < deadline:
                time.sleep(0.1)
            assert mark.exists(), f"the first eval never reached its 3rd write: {a.stderr.read()!r}"
            torn = log.read_bytes()
            assert not torn.endswith(b"\n"), "the first eval must be stopped in the middle of a write"

            # While it is alive: a second eval on the same --out is refused, in one line, naming the holder.
            b = cli(*eval_args)
            assert a.poll() is None
            assert b.returncode == 2 and len(b.stderr.strip().splitlines()) == 1, b.stderr
            assert f"run directory {out} is in use" in b.stderr and f"pid {a.pid}" in b.stderr
            # ... and a report reads what is complete without touching the writer's log.
            r = cli("report", str(out))
            assert r.returncode == 0 and f"run in progress (pid {a.pid})" in r.stdout, r.stderr
            assert log.read_bytes() == torn
        finally:
            a.kill()  # SIGKILL, mid-write
            a.wait()
        complete = [json.loads(x) for x in torn[: torn.rfind(b"\n") + 1].splitlines()]
        assert len(complete) == 4  # two batches of 2, then the torn third

        resumed = cli(*eval_args)  # the lock died with its holder: the same command resumes
        assert resumed.returncode == 0, resumed.stderr
    recs = read_records(log)
    keys = [(r["id"], r["policy"]) for r in recs]
    assert len(keys) == len(set(keys)) == 24, "no duplicates, nothing lost"
    assert recs[:4] == complete  # what the killed run completed is kept as it was
    assert all(r["run"]["fingerprint"] == recs[0]["run"]["fingerprint"] for r in recs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sc1"]["n"] == summary["sc4"]["n"] == 12


def test_api_key_never_stored_in_run_files(tmp_path):
    cfg = parse_config({**CONFIG, "model": "m", "backend": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1",
                                              "api_key": "sk-secret-123"}}, "test")
    out = run_eval(cfg, tmp_path / "r", backend=FakeBackend(script), progress=False)
    for name in ("run.json", "records.jsonl"):
        text = (out / name).read_text()
        assert "sk-secret-123" not in text and "<redacted>" in text, name


def test_plans_without_a_seed_take_the_runs_seed_so_reruns_and_twin_policies_repeat(tmp_path):
    twin = {"max_samples": 4, "wave_size": 2, "stopping": "beta", "max_new_tokens": 32}
    cfg = {**CONFIG, "seed": 7, "policies": [{"name": "a", "plan": twin}, {"name": "b", "plan": twin},
                                             {"name": "own", "plan": {**twin, "seed": 3}}]}
    outs = [run_eval(parse_config(cfg, "test"), tmp_path / f"r{i}", backend=FakeBackend(script), progress=False)
            for i in range(2)]
    runs = [{(r["id"], r["policy"]): r for r in read_records(o / "records.jsonl")} for o in outs]
    for (ex, pol), r in runs[0].items():
        assert r["plan"]["seed"] == (3 if pol == "own" else 7)
        assert [s["answer"] for s in r["samples"]] == [s["answer"] for s in runs[1][(ex, pol)]["samples"]]
        if pol == "a":
            assert [s["answer"] for s in r["samples"]] == [s["answer"] for s in runs[0][(ex, "b")]["samples"]]
