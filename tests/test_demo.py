"""`adaptive demo`: the pipeline end to end on a scripted backend (fast), and its figures on worked vectors."""
from __future__ import annotations

import json
import random
import zlib

import numpy as np
import pytest
import yaml

from adaptive.backends.fake import FakeBackend
from adaptive.bank import Bank
from adaptive.graded import GradedPrompt, GradedSample
from adaptive.demo import parse_demo_config, run_demo
from adaptive.demo.report import Bootstrap, _ratio, place_labels, uniform_subsets
from adaptive.errors import ConfigError


def _p_correct(question: str) -> float:
    """How often the scripted model answers a question right: 0.05 .. 0.9, fixed per question."""
    return [0.05, 0.3, 0.6, 0.9][zlib.crc32(question.encode()) % 4]


def _script(prompt, prefix, i, rng):
    q = prompt.split("Question: ")[-1]
    a, b = (int(x) for x in q.split("What is ")[1].rstrip("?").split(" + "))
    rng = random.Random(zlib.crc32(f"{q}|{i}".encode()))
    ans = a + b if rng.random() < _p_correct(q) else a + b + rng.choice([1, 2, 3])
    return f"The answer is {ans}."


@pytest.fixture
def tiny_demo(tmp_path):
    rows = [{"uid": f"q{i}", "q": f"What is {i} + {i % 7}?", "a": str(i + i % 7), "grade": "x"} for i in range(80)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = {"source": {"kind": "jsonl", "path": "t.jsonl"}, "template": "Question: {question}",
            "fields": {"question": "q", "gold": "a", "id": "uid", "meta": {"grade": "grade"}},
            "extractor": "number", "grader": "numeric"}
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(task))
    from adaptive.bank.draw import split_by_text
    from adaptive.tasks import load_task

    spec, examples, _ = load_task(str(tmp_path / "task.yaml"), shuffle=False)
    train, held = split_by_text(examples)
    bank = Bank([GradedPrompt(ex.id, ex.prompt, ex.gold,
                            [GradedSample(a := spec.extract(_script(ex.prompt, "", j, None), ex),
                                          float(spec.grade(a, ex)), 6, confidence=1.0) for j in range(12)], dict(ex.meta))
                 for ex in train], {"plan": {"strategy": "self_consistency", "max_new_tokens": 16}})
    bank.save(tmp_path / "bank.jsonl.gz")
    cfg = {"task": str(tmp_path / "task.yaml"), "bank": {"file": str(tmp_path / "bank.jsonl.gz"), "samples": 12},
           "estimator": {"kind": "heuristic", "folds": 3},
           "tune": {"config": "demo", "budgets": [1, 2, 4, 8]},
           "live": {"prompts": 20, "uniform_samples": 8, "budgets": [2, 4], "batch_size": 10, "max_new_tokens": 16,
                    "temperature": 0.7, "seed": 0},
           "report": {"bootstrap": 200}}
    return tmp_path, parse_demo_config(cfg, "tiny.yaml"), len(train), len(held)


def test_demo_runs_end_to_end_and_resumes(tiny_demo):
    tmp, cfg, n_train, n_held = tiny_demo
    out = tmp / "out"
    backend = FakeBackend(_script)
    s = run_demo(cfg, out, backend=backend, quiet=True)
    assert n_train > 20 and n_held > 20
    names = {p["policy"] for p in s["points"]}
    assert names >= {"SC@1", "SC@8", "adaptive_match_sc8", "adaptive_b2", "adaptive_b4"}
    saved = s["compute_saved"]
    lo, hi = saved["tokens_ratio_ci"]
    assert lo <= saved["tokens_ratio"] <= hi
    for g in s["accuracy_gained"]:
        assert g["accuracy_delta_ci"][0] <= g["accuracy_delta"] <= g["accuracy_delta_ci"][1]
    for name in ("report.md", "summary.json", "frontier.png", "reliability.png", "live/records.jsonl"):
        assert (out / name).exists(), name
    recs = [json.loads(x) for x in (out / "live/records.jsonl").read_text().splitlines()]
    assert len(recs) == 20 * 4 and all(r["decision"]["plan"] for r in recs)
    adaptive = [r for r in recs if r["policy"] == "adaptive_b2"]
    assert all(r["p_hat"] is not None for r in adaptive)  # the estimator scored every live prompt
    # resume: nothing is drawn again
    calls = len(backend.calls)
    run_demo(cfg, out, backend=backend, quiet=True)
    assert len(backend.calls) == calls
    # another config on the same out is refused
    other = parse_demo_config({**cfg.raw, "report": {"bootstrap": 300}}, "other.yaml")
    with pytest.raises(ConfigError, match="refusing to resume"):
        run_demo(other, out, backend=backend, quiet=True)


def test_uniform_subsets_vote_first_k_samples():
    recs = [{"samples": [{"answer": "5", "correct": 1, "tokens": 3}, {"answer": "6", "correct": 0, "tokens": 4},
                         {"answer": "6", "correct": 0, "tokens": 5}]},
            {"samples": [{"answer": None, "correct": 0, "tokens": 2}, {"answer": "9", "correct": 1, "tokens": 2},
                         {"answer": "8", "correct": 0, "tokens": 2}]}]
    u = uniform_subsets(recs, 3)
    assert u[1]["correct"].tolist() == [1.0, 0.0]   # first sample only; None never wins
    assert u[2]["correct"].tolist() == [1.0, 1.0]   # 5 vs 6 tie -> first seen; None vs 9 -> 9
    assert u[3]["correct"].tolist() == [0.0, 1.0]   # 6 twice beats 5; 9 vs 8 tie -> first seen
    assert u[3]["tokens"].tolist() == [12.0, 6.0] and u[2]["samples"].tolist() == [2.0, 2.0]


def test_paired_bootstrap_ratio_interval():
    a, b = np.array([4.0, 8.0, 6.0, 2.0]), np.array([1.0, 2.0, 3.0, 2.0])
    boot = Bootstrap(4, 500, seed=0)
    assert np.allclose(boot.idx.shape, (500, 4))
    lo, hi = boot.ci(_ratio(a, b))
    assert lo <= a.sum() / b.sum() <= hi and 1.0 <= lo and hi <= 4.0  # each prompt's ratio is in [1, 4]
    assert boot.ci(_ratio(b, b)) == (1.0, 1.0)


def test_labels_do_not_overlap():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot(1, 1, 1)
    pts = [(10 + i * 0.3, 0.2 + 0.001 * i, f"label number {i}") for i in range(8)]  # nearly on top of each other
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o")
    ax.set_xlim(0, 30)
    ax.set_ylim(0, 0.5)
    place_labels(fig, ax, pts)
    from matplotlib.text import Text

    r = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(t, r) for t in ax.texts]  # the texts, without their leader lines
    assert len(boxes) == 8
    assert not any(boxes[i].overlaps(boxes[j]) for i in range(8) for j in range(i + 1, 8))


def test_demo_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="'live.prompts'"):
        parse_demo_config({"bank": {"file": "x"}, "live": {"prompts": 0}}, "d.yaml")
    with pytest.raises(ConfigError, match="'bank'"):
        parse_demo_config({"bank": {"file": "x", "draw": True}}, "d.yaml")
    with pytest.raises(ConfigError, match="'live.uniform_samples'"):
        parse_demo_config({"bank": {"file": "x", "samples": 4}, "live": {"uniform_samples": 8}}, "d.yaml")


def test_policy_twins_are_found_by_what_they_plan_not_by_name(tmp_path):
    from adaptive.demo.pipeline import policy_twins

    body = {"schema": 1, "kind": "fixed", "plan": {"max_samples": 4, "stopping": "beta"}}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({**body, "name": "a", "description": "one"}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({**body, "name": "b", "meta": {"family": "x"}}))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**body, "name": "c", "plan": {"max_samples": 5}}))
    pols = {"sc8": {"plan": {"max_samples": 8}}, "a": {"policy": "a.yaml"}, "b": {"policy": "b.yaml"},
            "c": {"policy": "c.yaml"}}
    assert policy_twins(tmp_path, pols) == {"b": "a"}
