"""`adaptive` as an installable package: a light `import adaptive`, `python -m adaptive`, and (marked
`packaging`) a wheel built from this tree, installed non-editable into a fresh venv and run from outside
the repository on its shipped configs and policies."""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "numpy", "adaptive.testing", "adaptive.generator")


def _run(cmd, cwd, env=None, timeout=300):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}"
    return r


def test_import_adaptive_is_light(tmp_path):
    # -X importtime lists every module `import adaptive` imports (on stderr), cached ones aside: a fresh process
    r = _run([sys.executable, "-X", "importtime", "-c", "import adaptive"], cwd=tmp_path)
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "adaptive" in imported and "adaptive.plan" in imported
    assert not [m for m in imported if m.split(".")[0] in ("torch", "transformers", "numpy")]
    assert not [m for m in imported if m.startswith(("adaptive.testing", "adaptive.generator", "adaptive.result"))]


def test_lazy_top_level_names(tmp_path):
    code = ("import sys, adaptive\n"
            f"assert not [m for m in {HEAVY!r} if m in sys.modules]\n"
            "from adaptive import AdaptiveGenerator, Plan, Result\n"
            "import adaptive.generator, adaptive.result\n"
            "assert AdaptiveGenerator is adaptive.generator.AdaptiveGenerator and Result is adaptive.result.Result\n"
            "assert all(hasattr(adaptive, n) for n in adaptive.__all__), adaptive.__all__\n"
            "assert {'AdaptiveGenerator', 'Result', 'Plan'} <= set(dir(adaptive))\n"
            "try:\n    adaptive.no_such_name\nexcept AttributeError as e:\n    assert 'no_such_name' in str(e)\n"
            "else:\n    raise SystemExit('no AttributeError')\n")
    _run([sys.executable, "-c", code], cwd=tmp_path)


def test_python_dash_m_adaptive(tmp_path):
    r = _run([sys.executable, "-m", "adaptive", "--help"], cwd=tmp_path)
    assert "eval" in r.stdout and "generate" in r.stdout


# ------------------------------------------------------------------------------------------ the wheel
def _source_copy(dest: Path) -> Path:
    """What a wheel is built from: pyproject, README and the package (no build/, egg-info or caches from
    this checkout, which could leak stale files into the wheel)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "adaptive", dest / "adaptive", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


@pytest.mark.packaging
def test_wheel_installs_and_runs_outside_the_repo(tmp_path):
    t0 = time.monotonic()
    # 1. build a wheel with this venv's setuptools (no network, no isolated build env)
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(wheels), str(_source_copy(tmp_path / "src"))], cwd=tmp_path)
    (wheel,) = wheels.glob("adaptive-*.whl")
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("adaptive/resources/eval/default.yaml", "adaptive/resources/policies/fixed_sc8.yaml",
              "adaptive/resources/policies/README.md", "adaptive/resources/tasks/arith_mixed.yaml",
              "adaptive/resources/tune/default.yaml", "adaptive/resources/bench/sweep.yaml",
              "adaptive/testing/fake_openai.py", "adaptive/__main__.py", "adaptive/resources/policies/embedded_probe.npz",
              "adaptive/resources/policies/embedded_probe.npz.json", "adaptive/resources/banks/skills_train_k32.jsonl.gz",
              "adaptive/resources/demo/default.yaml"):
        assert f in names, f

    # 2. a fresh venv; the wheel installed non-editable without dependencies; the dependencies come from
    # this venv's site-packages through a .pth of plain paths (which, unlike site.addsitedir, does not run
    # the .pth files there, so the editable install of this checkout stays off)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    py = venv / "bin" / "python"
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp_path)
    fresh_site = Path(purelib.stdout.strip())
    (fresh_site / "deps-from-project-venv.pth").write_text("".join(p + "\n" for p in site.getsitepackages()))
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index", str(wheel)],
         cwd=tmp_path)

    work = tmp_path / "elsewhere"  # the working dir: no repo, no configs/, no policies/ reachable from here
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error", PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")
    where = _run([str(py), "-c", "import adaptive, adaptive.resources as r; print(adaptive.__file__); "
                                 "print(r.shipped('eval', 'default'))"], cwd=work, env=env)
    for line in where.stdout.split():
        assert Path(line).resolve().is_relative_to(fresh_site.resolve()), where.stdout
    assert REPO.as_posix() not in where.stdout

    # (a) the installed console script runs a shipped eval config by name, with a cheap policy
    run_dir = tmp_path / "run"
    _run([str(venv / "bin" / "adaptive"), "eval", "--config", "default", "--limit", "2", "--policy", "sc1",
          "--out", str(run_dir), "--quiet"], cwd=work, env=env, timeout=600)
    records = [json.loads(x) for x in (run_dir / "records.jsonl").read_text().splitlines() if x.strip()]
    records = [r for r in records if r.get("policy") == "sc1"]
    assert len(records) == 2, records

    # (b) the Python API with a shipped policy file by name; the bounded-call worker starts from the wheel too
    code = (
        "import os, adaptive\n"
        "from adaptive import AdaptiveGenerator, Result\n"
        "gen = AdaptiveGenerator.from_pretrained(policy='fixed_sc8', device='cpu')\n"
        "assert gen.policy.name == 'fixed_sc8' and os.path.dirname(adaptive.__file__) in gen.policy.source\n"
        "r = gen.generate('What is 2 + 3? Answer with a number.', max_new_tokens=8)\n"
        "assert isinstance(r, Result) and r.plan.max_samples == 8 and r.compute.samples >= 1, r\n"
        "from adaptive.answers.bounded import call_bounded\n"
        "assert call_bounded('os:getenv', ['PYTHONPATH'], 60, mode='process') is None\n"
        "d = AdaptiveGenerator(backend=gen.backend, policy='binned_default').generate('What is 6 + 1?')\n"
        "assert d.difficulty.estimator == 'probe' and 'p_hat' in d.decision['reason'], d.decision\n"
        "print('answer', repr(r.answer))\n")
    out = _run([str(py), "-c", code], cwd=work, env=env)
    assert "answer" in out.stdout

    # (c) python -m adaptive
    assert "eval" in _run([str(py), "-m", "adaptive", "--help"], cwd=work, env=env).stdout
    print(f"wheel build + install + runs: {time.monotonic() - t0:.1f}s")
