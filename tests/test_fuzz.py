"""Fuzzing the config loaders and the CLI (hypothesis): random YAML values at random and at known keys of eval,
task, policy, tune, bench, sweep and demo configs, random YAML text, and random argv for `adaptive` subcommands
(stopped before any model loads). Every failure must be an AdaptiveError with a one-line message, and the CLI
must exit 2 with one line on stderr: never another exception type, never a traceback. The number of inputs
tried is printed at the end of the test run (tests/conftest.py)."""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptive.errors import AdaptiveError
from adaptive.resources import resolve
from adaptive.schema import load, read_yaml

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

scalars = (st.none() | st.booleans() | st.integers(-3, 3) | st.integers() | st.floats(allow_nan=True)
           | st.text(max_size=6) | st.sampled_from(["auto", "openai", "hf", "beta", "fixed", "1.0", "", "{x}", "*"])
           | st.dates())
keys = st.text(max_size=6) | st.integers(-2, 5) | st.booleans() | st.none() | st.floats(allow_nan=False)
yaml_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(keys, inner, max_size=4), max_leaves=8)


def _slots(obj, out):
    """(container, key) of every value inside `obj`."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        out.append((obj, k))
        _slots(v, out)
    return out


def mutate(data, raw):
    """`raw` with 1-3 random edits: a value replaced by a random one, a key removed, a key added."""
    raw = copy.deepcopy(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        slots = _slots(raw, [])
        op = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if op == "add" or not slots:
            targets = [raw] + [c[k] for c, k in slots if isinstance(c[k], dict)]
            target = data.draw(st.sampled_from(targets))
            if isinstance(target, dict):
                target[data.draw(keys)] = data.draw(yaml_values)
            continue
        container, key = data.draw(st.sampled_from(slots))
        if op == "delete":
            container.pop(key) if isinstance(container, dict) else container.pop(key)
        else:
            container[key] = data.draw(yaml_values)
    return raw


def must_fail_cleanly(fn, raw):
    try:
        fn(raw)
    except AdaptiveError as e:
        msg = str(e)
        assert msg and "\n" not in msg, f"multi-line message: {msg!r}"
    # anything else propagates and fails the test with the input hypothesis found


def shipped(kind, name):
    return read_yaml(resolve(kind, name))


def _eval(raw):
    from adaptive.evaluate import parse_config

    parse_config(raw, "fuzz.yaml")


def _task(raw):
    from adaptive.tasks import parse_task

    parse_task(raw, "fuzz.yaml")


def _policy(raw):
    from adaptive.policies import parse_policy

    parse_policy(raw, "fuzz.yaml")


def _tune(raw):
    from adaptive.tune import parse_tune_config

    parse_tune_config(raw, "fuzz.yaml")


def _bench(raw):
    from adaptive.bench.config import BenchConfig

    load(BenchConfig, raw, "fuzz.yaml")


def _demo(raw):
    from adaptive.demo import parse_demo_config

    parse_demo_config(raw, "fuzz.yaml")


def _sweep(raw):
    from adaptive.bench.sweep import check_config

    check_config(raw, "fuzz.yaml")


PLAN = {"strategy": "self_consistency", "max_samples": 4, "wave_size": 2, "stopping": "beta",
        "stopping_params": {"threshold": 0.9}, "max_new_tokens": 32, "seed": 0}
BASES = {
    "eval": (_eval, [shipped("eval", "default"),
                     {"task": "arith_mixed", "limit": 3, "latency_targets": {"ttft_s": 1.0},
                      "backend": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m",
                                  "max_in_flight": 2, "headers": {"X": "y"}},
                      "policies": [{"name": "a", "plan": PLAN}, {"name": "b", "policy": "fixed_sc8"}]}]),
    "task": (_task, [shipped("tasks", "arith_mixed"), shipped("tasks", "mmlu"), shipped("tasks", "gsm8k"),
                     {"source": {"kind": "csv", "path": "x.csv", "delimiter": ";"},
                      "fields": {"question": "q", "choices": ["a", "b"], "gold": "g", "meta": {"m": "m"}},
                      "gold_format": "index_to_letter", "template": "{question}\n{choices} ({letters})",
                      "extractor": "choice", "grader": "choice"}]),
    "policy": (_policy, [shipped("policies", n) for n in ("fixed_sc8", "adaptive_beta", "binned_default",
                                                            "allocate_default")]
               + [{"schema": 1, "kind": "allocate", "budget": {"unit": "tokens", "mean": 200},
                   "per_prompt_cap": 4, "tokens_per_sample": 40,
                   "curve": {"kind": "majority", "acc": {0: [0.2, 0.3], 1: [0.5]}}},
                  {"schema": 1, "kind": "index", "unit": "samples", "default_budget": 4,
                   "budgets": {1: "fixed_sc8", 4: "adaptive_beta"}},
                  {"schema": 1, "kind": "binned", "bins": [{"bin": 0, "plan": PLAN}, {"bin": 1, "plan": {}}],
                   "stopping": {"rule": "esc", "params": {"window": 2}, "wave_size": 2}}]),
    "tune": (_tune, [shipped("tune", "default")]),
    "bench": (_bench, [shipped("bench", "default"), shipped("bench", "quick")]),
    "sweep": (_sweep, [shipped("bench", "sweep")]),
    "demo": (_demo, [shipped("demo", "default"), shipped("demo", "draw_bank")]),
}


def test_the_fuzz_bases_are_valid():
    for name, (fn, bases) in BASES.items():
        for raw in bases:
            fn(copy.deepcopy(raw))


@pytest.mark.parametrize("name", list(BASES))
@FUZZ
@given(data=st.data())
def test_config_loaders_fail_cleanly_on_random_values(name, data, fuzz_inputs):
    fn, bases = BASES[name]
    raw = mutate(data, data.draw(st.sampled_from(bases)))
    fuzz_inputs[f"config:{name}"] = fuzz_inputs.get(f"config:{name}", 0) + 1
    must_fail_cleanly(fn, raw)


@FUZZ
@given(doc=yaml_values, which=st.sampled_from(list(BASES)))
def test_config_loaders_fail_cleanly_on_random_documents(doc, which, fuzz_inputs):
    fuzz_inputs["document"] = fuzz_inputs.get("document", 0) + 1
    must_fail_cleanly(BASES[which][0], doc)


yaml_text = st.lists(st.sampled_from(["task: x", "  - a", "{", "}", "[", "]", ":", "- ", "\t", "'", '"', "&a",
                                      "*a", "!!python/object:os.system", "? ", "a: b: c", "%YAML 1.1", "---",
                                      "\n", "  ", "k: [1, 2", "k: {a: 1", "# c", "\\x00", "é", "|", ">"]),
                     max_size=12).map("".join) | st.text(max_size=40)


@FUZZ
@given(text=yaml_text)
def test_random_yaml_text_is_a_value_or_a_one_line_error(text, fuzz_inputs):
    fuzz_inputs["yaml text"] = fuzz_inputs.get("yaml text", 0) + 1
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.yaml"
        path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        must_fail_cleanly(lambda _: read_yaml(path), None)


# -- the CLI -------------------------------------------------------------------------------------------

class ReachedTheModel(BaseException):
    """Raised where a model or a server would be used: the invocation got that far without an error."""


def _options() -> dict[str, list[str]]:
    from adaptive.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {name: [o for a in sp._actions for o in a.option_strings if o not in ("-h", "--help")]
            for name, sp in sub.choices.items()}


OPTIONS = _options()
VALUES = ["0", "-3", "1", "2", "2.5", "abc", "", " ", "nope", "default", "quick", "sweep", "openai", "hf", "cpu",
          "tpu", "float32", "int3", "http://127.0.0.1:9/v1", "fixed_sc8", "sc1,nope", "sc1", "load,nope", "load",
          "/nonexistent/x.yaml", "CONFIG_FILE", "GARBAGE_FILE", "RUN_DIR", "1,2,x", "quantile", "0.5,0.75"]


@st.composite
def argvs(draw):
    sub = draw(st.sampled_from(list(OPTIONS) + ["nope", "--version", "--bogus"]))
    argv = [sub]
    if sub == "generate" and draw(st.booleans()):
        argv.append(draw(st.sampled_from(["What is 2 + 3?", "", "   ", "x" * 5])))
    for _ in range(draw(st.integers(0, 5))):
        flag = draw(st.sampled_from(OPTIONS.get(sub, ["--x"]) + ["--bogus"]))
        argv.append(flag)
        if draw(st.integers(0, 4)):
            argv.append(draw(st.sampled_from(VALUES) | st.text(max_size=5)))
    return argv


@pytest.fixture
def cli_sandbox(tmp_path, monkeypatch):
    """cwd in a temporary folder, files to name, and every way to a model or a server cut off."""
    import adaptive.backends.factory as factory
    import adaptive.bench.runner as runner
    import adaptive.bench.sweep as sweep
    from adaptive.backends.hf.backend import HFBackend

    def reached(*a, **k):
        raise ReachedTheModel

    monkeypatch.setattr(factory, "make_backend", reached)
    monkeypatch.setattr(HFBackend, "from_pretrained", classmethod(reached))
    monkeypatch.setattr(runner, "run", reached)
    monkeypatch.setattr(sweep, "run_sweep", reached)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("task: arith_mixed\nlimit: 2\npolicies: [{name: sc1, plan: {}}]\n")
    (tmp_path / "garbage.yaml").write_text("a: [1\n\x00 b")
    (tmp_path / "run").mkdir()
    return {"CONFIG_FILE": str(tmp_path / "config.yaml"), "GARBAGE_FILE": str(tmp_path / "garbage.yaml"),
            "RUN_DIR": str(tmp_path / "run")}


@settings(max_examples=250, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(argv=argvs())
def test_cli_fails_in_one_line_with_exit_2(argv, cli_sandbox, capsys, fuzz_inputs):
    from adaptive.cli import main

    argv = [cli_sandbox.get(a, a) for a in argv]
    fuzz_inputs["argv"] = fuzz_inputs.get("argv", 0) + 1
    capsys.readouterr()
    try:
        code = main(argv)
    except ReachedTheModel:
        return
    err = capsys.readouterr().err
    if code == 0:
        return  # --help, --version
    assert code == 2, f"{argv}: exit {code}: {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("adaptive") and ": error: " in lines[0], f"{argv}: {err!r}"
