"""The CLI: help lists subcommands; user errors give one line and a non-zero exit, never a traceback."""
import subprocess
import sys

import pytest

from adaptive.cli import build_parser, main


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "adaptive.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_every_subcommand():
    out = run("--help")
    assert out.returncode == 0
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, parser in sub.choices.items():
        assert name in out.stdout
        assert sub._name_parser_map[name] is parser
    assert all(a.help for a in sub._choices_actions)  # one line each


@pytest.mark.parametrize("args, needle", [
    (["generate", "   "], "empty prompt"),
    (["generate", "hi", "--samples", "0"], "max_samples=0"),
    (["generate", "hi", "--temperature", "-1"], "temperature=-1"),
    (["generate", "hi", "--device", "tpu"], "unknown device 'tpu'"),
    (["generate", "hi", "--stopping", "nope"], "known: beta"),
    (["generate", "hi", "--exit-rule", "convergence"], "exit_rule='convergence': does not apply to strategy="),
    (["generate", "hi", "--strategy", "thinking", "--min-thinking-tokens", "9", "--max-thinking-tokens", "8"],
     "min_thinking_tokens=9: must be <= max_thinking_tokens=8"),
    (["generate", "hi", "--strategy", "thinking", "--exit-rule", "stable"], "known: confidence, convergence, none"),
    (["generate", "hi", "--strategy", "thinking", "--exit-threshold", "0.5"], "does not apply to exit_rule='none'"),
])
def test_bad_input_is_one_line_and_nonzero(args, needle, capsys):
    code = main(args)
    err = capsys.readouterr().err
    assert code != 0
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.model
def test_generate_prints_answer_and_summary():
    out = run("generate", "What is 1 + 1? Answer with a number.", "--samples", "2", "--max-new-tokens", "16",
              "--seed", "0")
    assert out.returncode == 0, out.stderr
    assert "answer:" in out.stdout and "samples 2" in out.stdout and "GFLOP" in out.stdout
    assert "Traceback" not in out.stderr


@pytest.mark.model
def test_generate_thinking_prints_the_token_split():
    out = run("generate", "What is 3 + 4? Think inside <think> ... </think>, then answer with a number.",
              "--strategy", "thinking", "--samples", "1", "--max-thinking-tokens", "16", "--max-new-tokens", "8",
              "--exit-rule", "convergence", "--probe-interval", "8", "--answer-cue", "\\nAnswer:", "--seed", "0")
    assert out.returncode == 0, out.stderr
    assert "answer:" in out.stdout and "samples 1" in out.stdout and "thinking " in out.stdout
    assert "probes " in out.stdout and "Traceback" not in out.stderr


def test_bad_prompt_fails_before_any_model_load(monkeypatch, capsys):
    import adaptive.backends.factory as factory

    monkeypatch.setattr(factory, "make_backend", lambda *a, **k: pytest.fail("model loaded for a bad prompt"))
    assert main(["generate", " \n "]) == 2
    assert "empty prompt" in capsys.readouterr().err


# -- every bad invocation is one line ------------------------------------------------------------------

def one_line_error(code: int, err: str, needle: str, prog: str = "adaptive") -> None:
    assert code == 2, err
    assert err.startswith(f"{prog}") and ": error: " in err and needle in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_version(capsys):
    from adaptive import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"adaptive {__version__}"


def test_every_option_of_every_subcommand_has_help():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    missing = [f"{name} {a.option_strings or a.dest}" for name, sp in sub.choices.items() for a in sp._actions
               if not a.help]
    assert not missing


@pytest.mark.parametrize("args, needle, prog", [
    (["eval", "--limit", "0"], "argument --limit: must be >= 1, got 0", "adaptive eval"),
    (["eval", "--limit", "-3"], "argument --limit: must be >= 1, got -3", "adaptive eval"),
    (["bank", "--config", "bank_arith", "--out", "b.jsonl", "--limit", "0"], "must be >= 1, got 0", "adaptive bank"),
    (["bank", "--task", "arith_mixed", "--out", "b.jsonl", "--samples", "0"], "must be >= 1, got 0", "adaptive bank"),
    (["eval", "--limt", "2"], "unrecognized arguments: --limt 2", "adaptive eval"),
    (["generate"], "the following arguments are required: prompt", "adaptive generate"),
    (["tune", "--bank", "b.jsonl", "--out", "p.yaml", "--seeds", "x"], "'x' is not an integer", "adaptive tune"),
    (["nope"], "invalid choice: 'nope'", "adaptive"),
    ([], "a command is required", "adaptive"),
])
def test_usage_errors_are_one_line(args, needle, prog, capsys):
    code = main(args)
    one_line_error(code, capsys.readouterr().err, needle, prog)


def _no_backend(monkeypatch):
    import adaptive.backends.factory as factory

    monkeypatch.setattr(factory, "make_backend", lambda *a, **k: pytest.fail("a backend was built"))


def test_yaml_limit_zero_is_refused_like_the_flag(tmp_path, capsys, monkeypatch):
    _no_backend(monkeypatch)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: arith_mixed\nlimit: 0\npolicies: [{name: a, plan: {max_samples: 1}}]\n")
    one_line_error(main(["eval", "--config", str(cfg)]), capsys.readouterr().err,
                   f"{cfg}: key 'limit': must be >= 1, got 0")


def test_yaml_syntax_error_in_a_config_is_one_line(tmp_path, capsys, monkeypatch):
    _no_backend(monkeypatch)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: arith_mixed\npolicies: [{name: a, plan: {max_samples: 1}]\n")
    one_line_error(main(["eval", "--config", str(cfg)]), capsys.readouterr().err,
                   f"{cfg}: not valid YAML: line 2 column ")


def test_eval_out_naming_an_existing_file_is_a_named_error(tmp_path, capsys, monkeypatch):
    _no_backend(monkeypatch)
    out = tmp_path / "taken"
    out.write_text("not a directory")
    one_line_error(main(["eval", "--limit", "1", "--out", str(out), "--quiet"]), capsys.readouterr().err,
                   f"run directory {out} exists and is not a directory")


def test_corrupt_record_line_names_the_file_and_the_line(tmp_path):
    from adaptive.errors import ConfigError
    from adaptive.evaluate.records import read_records

    log = tmp_path / "records.jsonl"
    log.write_text('{"id": "a", "policy": "p"}\n{"id": "b", oops}\n{"id": "c", "policy": "p"}\n')
    with pytest.raises(ConfigError, match=rf"^{log}: line 2 is not valid JSON \(.*\); remove or fix that line"):
        read_records(log)
    log.write_text('{"id": "a", "policy": "p"}\n[1, 2]\n')
    with pytest.raises(ConfigError, match=rf"^{log}: line 2 is not a record"):
        read_records(log)


def test_resume_over_a_corrupt_record_line_is_one_line(tmp_path, capsys, monkeypatch):
    from adaptive.evaluate import load_config, run_eval
    from adaptive.backends.fake import FakeBackend

    out = tmp_path / "run"
    run_eval(load_config("default"), out, only=["sc1"], limit=2, progress=False,
             backend=FakeBackend(lambda p, pre, i, rng: "The answer is 3."))
    lines = (out / "records.jsonl").read_text().splitlines()
    (out / "records.jsonl").write_text("\n".join([lines[0][:-5], *lines[1:]]) + "\n")
    _no_backend(monkeypatch)
    one_line_error(main(["eval", "--policy", "sc1", "--limit", "2", "--out", str(out), "--quiet"]),
                   capsys.readouterr().err, f"{out / 'records.jsonl'}: line 1 is not valid JSON")


def test_bench_only_unknown_section_lists_the_known_ones(capsys, monkeypatch):
    import adaptive.bench.runner as runner

    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("the bench ran"))
    one_line_error(main(["bench", "--quick", "--only", "load,nope"]), capsys.readouterr().err,
                   "unknown bench section 'nope'; known: load, throughput,")


def test_bench_given_an_eval_config_is_a_named_error(capsys):
    from adaptive.resources import shipped

    path = shipped("eval", "default")
    one_line_error(main(["bench", "--config", str(path)]), capsys.readouterr().err,
                   f"{path}: key 'task': unknown key 'task'; accepted keys: batched_vs_loop,")


@pytest.mark.parametrize("script, args, needle", [
    ("compare_estimators.py", ["--logs", "missing.jsonl"], "missing.jsonl"),
    ("compare_estimators.py", ["--seeds", "x"], "argument --seeds: invalid int value: 'x'"),
    ("sim_vs_real.py", ["--run", "nope", "--bank", "nope.jsonl"], "nope"),
    ("compare_backends.py", ["--config", "nope.yaml"], "eval config 'nope.yaml' not found"),
    ("ship_defaults.py", ["nope"], "nope/policies: no fitted estimator"),
    ("evaluate.py", ["--limit", "0"], "argument --limit: must be >= 1, got 0"),
    ("bench.py", ["--only", "nope"], "unknown bench section 'nope'"),
])
def test_scripts_have_the_cli_error_boundary(script, args, needle, tmp_path):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / script
    out = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    prog = "adaptive" if script in ("evaluate.py", "bench.py") else script
    one_line_error(out.returncode, out.stderr, needle, prog)
