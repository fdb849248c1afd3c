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


def test_bad_prompt_fails_before_any_model_load(monkeypatch, capsys):
    import adaptive.backends.factory as factory

    monkeypatch.setattr(factory, "make_backend", lambda *a, **k: pytest.fail("model loaded for a bad prompt"))
    assert main(["generate", " \n "]) == 2
    assert "empty prompt" in capsys.readouterr().err
