"""The tuner end to end on a synthetic bank: policy files that load back, the index, the JSON and the PNG."""
import argparse
import json

import numpy as np
import pytest
import yaml

from adaptive.bank import Bank
from adaptive.graded import GradedPrompt, GradedSample
from adaptive.errors import ConfigError
from adaptive.policies import load_policy
from adaptive.result import Difficulty
from adaptive.cli.tune import add_arguments as add_tune_arguments
from adaptive.cli.tune import run as main_tune
from adaptive.tune import parse_tune_config, pareto

GRID = {"schema": 1, "seeds": 4, "held_out": 0.5, "split_seed": 0,
        "families": ["fixed", "stopping", "binned", "allocate"],
        "stopping": {"caps": [4, 8], "wave_sizes": [2], "rules": {"beta": {"threshold": [0.8]}, "esc": {"window": [2]}}},
        "binned": {"caps": [1, 4, 8]}, "allocate": {"curves": ["best_of_b", "majority"], "means": [2, 4]}}


def synthetic_rows(n=40, k=8, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        p = rng.beta(0.8, 0.8)
        answers, correct, tokens = [], [], []
        for _ in range(k):
            u = rng.random()
            a = "g" if u < p else (None if u > 0.9 + 0.1 * p else f"w{rng.integers(0, 3)}")
            answers.append(a)
            correct.append(int(a == "g"))
            tokens.append(int(rng.integers(20, 80)))
        rows.append({"id": f"q{i}", "question": f"question {i}", "gold": "g", "answers": answers,
                     "correct": correct, "tokens": tokens, "p_hat": float(np.clip(p + rng.normal(0, 0.1), 0, 1)),
                     "bin": min(4, int(p * 5))})
    return rows


def test_tune_end_to_end_writes_loadable_policies_and_png(tmp_path, capsys):
    src = tmp_path / "plain.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in synthetic_rows()) + "\n")
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(GRID))
    p = argparse.ArgumentParser()
    add_tune_arguments(p)
    out = tmp_path / "pol" / "tuned.yaml"
    args = p.parse_args(["--bank", str(src), "--import", "--budgets", "1,2,4,8", "--out", str(out),
                         "--config", str(grid)])
    assert main_tune(args) == 0
    text = capsys.readouterr().out
    assert "beam search, DVTS and refine cannot be replayed" in text
    assert "SC@max" in text and "mean budget 4 samples: allocate" in text
    for b in (1, 2, 4, 8):
        pol = load_policy(tmp_path / "pol" / f"tuned_b{b}.yaml")
        assert pol.meta["budget"] == b and pol.meta["tuning"]["mean_samples"] <= b + 1e-6
        plans = pol.plans(["x", "y"], [Difficulty(0.2, 1), Difficulty(0.8, 4)] if pol.needs_estimator else None)
        assert all(1 <= pl.max_samples <= 8 for pl in plans)
    index = load_policy(out)
    assert index.kind == "index" and sorted(index.members) == [1.0, 2.0, 4.0, 8.0]
    assert (tmp_path / "pol" / "tuned_frontier.png").stat().st_size > 5000
    report = json.loads((tmp_path / "pol" / "tuned_tune.json").read_text())
    fams = {c["family"] for c in report["candidates"]}
    assert fams == {"fixed", "stopping", "binned", "allocate"}
    assert report["summary"]["sc_max"]["label"] == "SC N=8"
    for c in report["candidates"]:  # fixed N draws exactly N samples
        if c["family"] == "fixed":
            assert c["held_out"]["mean_samples"] == pytest.approx(int(c["label"].split("=")[1]))


def test_tune_without_p_hat_skips_difficulty_families(tmp_path, capsys):
    from adaptive.tune import run_tune

    rows = synthetic_rows(n=16, k=4)
    bank = Bank([GradedPrompt(r["id"], r["question"], "g", [GradedSample(a, float(c), t) for a, c, t in
                                                         zip(r["answers"], r["correct"], r["tokens"])])
                 for r in rows])
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({**GRID, "stopping": {"caps": [4], "wave_sizes": [2],
                                                         "rules": {"beta": {"threshold": [0.8]}}}}))
    res = run_tune(bank, [1, 2, 4], tmp_path / "t.yaml", config=grid, echo=lambda s: None, estimator=None)
    assert any("binned: skipped" in n for n in res["result"].notes)
    assert all(load_policy(f).kind == "fixed" for f in res["files"].values())


def test_tune_without_p_hat_cross_fits_a_text_estimator(tmp_path):
    """By default a bank without p_hat gets out-of-fold p_hat from a heuristic (text-only) estimator; the
    estimator fitted on the whole bank is saved beside the policies that need it, and they load with it."""
    from adaptive.generator import AdaptiveGenerator
    from adaptive.backends.fake import FakeBackend
    from adaptive.tune import run_tune

    rows = synthetic_rows(n=30, k=4)
    bank = Bank([GradedPrompt(r["id"], r["question"] + " x" * (i % 7), "g",
                            [GradedSample(a, float(c), t) for a, c, t in zip(r["answers"], r["correct"], r["tokens"])])
                 for i, r in enumerate(rows)])
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({**GRID, "families": ["fixed", "binned", "binned_stopping"],
                                    "stopping": {"caps": [4], "wave_sizes": [2], "rules": {"beta": {"threshold": "sweep"}}}}))
    res = run_tune(bank, [1, 2, 4], tmp_path / "t.yaml", config=grid, echo=lambda s: None)
    result = res["result"]
    assert "cross-fitted" in result.info["difficulty"] and res["estimator"] is not None
    assert {c.family for c in result.candidates} >= {"fixed", "binned", "binned_stopping"}
    for f in res["files"].values():
        pol = load_policy(f)
        if pol.needs_estimator:
            assert pol.estimator_path() == res["estimator"]
            gen = AdaptiveGenerator(backend=FakeBackend(["The answer is g"]), policy=f)
            assert gen.estimator is not None and gen.generate("question 3").difficulty.estimator == "heuristic"


def test_tune_config_errors_and_pareto():
    with pytest.raises(ConfigError, match="stopping.rules.beta.treshold"):
        parse_tune_config({**GRID, "stopping": {"rules": {"beta": {"treshold": [0.9]}}}}, "g.yaml")
    with pytest.raises(ConfigError, match="'familes'"):
        parse_tune_config({**GRID, "familes": []}, "g.yaml")
    pts = [{"mean_samples": 1, "accuracy": 0.5}, {"mean_samples": 2, "accuracy": 0.4},
           {"mean_samples": 3, "accuracy": 0.7}, {"mean_samples": 3, "accuracy": 0.6}]
    assert [p["accuracy"] for p in pareto(pts)] == [0.5, 0.7]
