"""The README's Python quick start runs as written, on the embedded model."""
import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python quick start"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.model
def test_python_quick_start_runs_verbatim():
    out = io.StringIO()
    scope: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(quick_start(), "README quick start", "exec"), scope)
    r, results = scope["r"], scope["results"]
    assert r.compute.samples <= 8 and r.plan.stopping == "beta"
    assert len(results) == 2 and all(x.plan.strategy == "beam_search" for x in results)
    printed = out.getvalue()
    assert "'policy': 'binned_default'" in printed and "p_hat" in printed
