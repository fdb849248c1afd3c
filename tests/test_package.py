"""`adaptive` as an installable package: a light `import adaptive` and `python -m adaptive`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
