"""Difficulty estimators: metrics by hand, fit/save/load, metadata checks, cost contracts, training.

No LLM is loaded: a stub backend returns deterministic PromptPass tensors and scripted completions.
"""
from __future__ import annotations

import argparse
import json
import math
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from adaptive.backends.base import CallUsage, Completion, Generation, PromptPass, PromptPassBatch
from adaptive.errors import ConfigError, InputError
from adaptive.estimators import (Estimator, HeuristicEstimator, ProbeEstimator, SampleProbeEstimator, bin_of,
                                 check_edges, load_estimator, make_estimator, quantile_edges, uniform_edges)
from adaptive.estimators import metrics as M
from adaptive.estimators import persistence
from adaptive.estimators.heuristic import FEATURE_NAMES as TEXT_NAMES
from adaptive.estimators.heuristic import text_features
from adaptive.estimators.regression import ModelSpec
from adaptive.estimators.probe import next_token_stats, resolve_layers
from adaptive.cli.train_estimator import run as main_train
from adaptive.estimators.train import (build_labels, load_labels, normalize_records, split_by_prompt,
                                       train_estimator, write_jsonl)
from adaptive.registry import estimators as registry
from adaptive.result import Difficulty

N_LAYERS, HIDDEN, VOCAB = 4, 8, 16


def signal(text: str) -> float:
    """A deterministic per-prompt 'ease' in [-2, 2] the stub model 'knows' about."""
    return (zlib.crc32(text.encode()) % 1000) / 250.0 - 2.0


def true_rate(text: str) -> float:
    return 1.0 / (1.0 + math.exp(-2.0 * signal(text)))


class StubConfig:
    def __init__(self, **kw):
        self.d = {"model_type": "stub", "num_hidden_layers": N_LAYERS, "hidden_size": HIDDEN, **kw}

    def to_dict(self):
        return dict(self.d, transformers_version="0.0", _name_or_path="/somewhere")


class StubBackend:
    """Deterministic hidden states (one dimension carries the prompt's ease) and scripted samples."""

    def __init__(self, model_id="stub/model", **config):
        self.model_id = model_id
        self.context_window = 4096
        self.model = SimpleNamespace(config=StubConfig(**config))
        self.prompt_pass_calls: list[list] = []
        self.generate_calls = 0

    def capabilities(self):
        return {"logprobs", "top_logprobs", "hidden_states"}

    def count_tokens(self, text):
        return len(text.split())

    def make_pass(self, prompt) -> PromptPass:
        text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        g = torch.Generator().manual_seed(zlib.crc32(text.encode()))
        mean = torch.randn(N_LAYERS + 1, HIDDEN, generator=g)
        last = torch.randn(N_LAYERS + 1, HIDDEN, generator=g)
        mean[:, 0] = signal(text)
        lp = torch.log_softmax(torch.randn(VOCAB, generator=g), -1)
        return PromptPass(n_tokens=len(text.split()) + 3, mean_hidden=mean, last_hidden=last, next_token_logprobs=lp)

    def prompt_pass(self, prompts, raw=False):
        self.prompt_pass_calls.append(list(prompts))
        return PromptPassBatch([self.make_pass(p) for p in prompts], CallUsage(prompt_tokens=len(prompts)))

    def generate(self, requests, params, *, hidden_states=False):
        self.generate_calls += 1
        comps = []
        for r in requests:
            s = signal(r.prompt)
            out = []
            for j in range(r.n):
                lp = -0.1 - 0.3 * (2.0 - s) - 0.01 * j
                n = 5 + j
                tops = [[lp, lp - 1.0][: params.top_logprobs] for _ in range(n)] if params.top_logprobs else []
                text = "right" if (zlib.crc32(f"{r.prompt}:{j}".encode()) % 1000) / 1000 < true_rate(r.prompt) \
                    else "wrong"
                out.append(Completion(text=text, token_ids=list(range(n)), finish_reason="eos", logprobs=[lp] * n,
                                      top_logprobs=tops))
            comps.append(out)
        return Generation(comps, [None] * len(requests), [3] * len(requests), CallUsage(samples=len(requests)))


def prompts_and_rates(n, prefix="question"):
    ps = [f"{prefix} {i}: what is {i} + {i * 7}?" for i in range(n)]
    return ps, [round(true_rate(p) * 8) / 8 for p in ps]


@pytest.fixture(scope="module")
def data():
    return prompts_and_rates(60)


@pytest.fixture
def backend():
    return StubBackend()


# ------------------------------------------------------------------------------------------ metrics


def test_auroc_by_hand_with_ties():
    assert M.auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # positives 0.5, 0.9; negatives 0.5, 0.2 -> pairs: tie 0.5, 1, 1, 1 -> 3.5 / 4
    assert M.auroc([0.5, 0.5, 0.2, 0.9], [True, False, False, True]) == pytest.approx(0.875)
    assert M.auroc([0.3] * 4, [1, 0, 1, 0]) == pytest.approx(0.5)
    assert M.auroc([0.9, 0.1], [0, 1]) == 0.0
    with pytest.raises(InputError):
        M.auroc([0.1, 0.2], [1, 1])
    with pytest.raises(InputError):
        M.auroc([0.1, 0.2], [1, 2])
    with pytest.raises(InputError):
        M.auroc([0.1], [1, 0])


def test_spearman_by_hand_with_ties():
    # ranks x = 1, 2.5, 2.5, 4; ranks y = 1, 3, 2, 4 -> cov 4.5, var 4.5 and 5
    assert M.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert M.average_ranks([3, 1, 3, 2]) == [3.5, 1.0, 3.5, 2.0]
    assert M.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert M.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    from scipy.stats import spearmanr

    x, y = [0.2, 0.2, 0.5, 0.1, 0.9, 0.5], [1, 0, 0, 0, 1, 1]
    assert M.spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    with pytest.raises(InputError):
        M.spearman([1, 1, 1], [1, 2, 3])


def test_brier_and_ece_by_hand(tmp_path):
    assert M.brier([0.9, 0.2, 0.5], [1, 0, 1]) == pytest.approx((0.01 + 0.04 + 0.25) / 3)
    p, y = [0.05, 0.15, 0.18, 0.95], [0, 1, 0, 1]
    # bins: {0.05}: |0.05 - 0|; {0.15, 0.18}: |0.165 - 0.5|; {0.95}: |0.95 - 1|, weighted 1/4, 2/4, 1/4
    assert M.expected_calibration_error(p, y, 10) == pytest.approx(0.25 * 0.05 + 0.5 * 0.335 + 0.25 * 0.05)
    bins = M.reliability_bins([0.0, 1.0, 0.5], [0, 1, 1], n_bins=2)
    assert [b["count"] for b in bins] == [1, 2]  # 1.0 lands in the last (closed) bin
    assert bins[1]["mean_p"] == pytest.approx(0.75) and bins[1]["mean_y"] == 1.0
    assert M.reliability_bins([0.1], [0], 3)[1]["mean_p"] is None
    assert M.expected_calibration_error([0.3, 0.7], [0.3, 0.7]) == pytest.approx(0.0)
    with pytest.raises(InputError):
        M.brier([1.2], [1])
    with pytest.raises(InputError):
        M.expected_calibration_error([], [])
    png = M.plot_reliability(p, y, tmp_path / "rel.png", n_bins=5)
    assert (tmp_path / "rel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png == tmp_path / "rel.png"


# ------------------------------------------------------------------------------------------ bins


def test_bins_monotone_and_edges():
    edges = uniform_edges()
    assert edges == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0) and check_edges(None) == edges
    grid = np.linspace(-0.1, 1.1, 241)
    b = [bin_of(p, edges) for p in grid]
    assert b == sorted(b) and b[0] == 0 and b[-1] == 4
    assert bin_of(0.2, edges) == 1 and bin_of(0.1999, edges) == 0 and bin_of(1.0, edges) == 4
    assert check_edges(3) == pytest.approx((0, 1 / 3, 2 / 3, 1))
    for bad in ([0.0, 0.5, 0.5, 1.0], [0.1, 1.0], [0.0], [0.0, 0.9], "abc"):
        with pytest.raises(InputError):
            check_edges(bad)
    q = quantile_edges([0.1, 0.1, 0.2, 0.3, 0.9, 0.95], 3)
    assert q[0] == 0.0 and q[-1] == 1.0 and list(q) == sorted(set(q))


def test_scores_bins_monotone_in_p_hat(data, backend):
    prompts, rates = data
    est = ProbeEstimator(backend, calibration="none").fit(prompts, rates)
    ds = est.score(prompts)
    ds.sort(key=lambda d: d.p_hat)
    assert [d.bin for d in ds] == sorted(d.bin for d in ds)
    assert all(isinstance(d, Difficulty) and d.estimator == "probe" and 0 <= d.p_hat <= 1 for d in ds)
    assert all(d.bin == bin_of(d.p_hat, est.bin_edges) for d in ds)


# ------------------------------------------------------------------------------------------ numpy model


COMBINATIONS = [(m, c, pca) for m, c in (("logistic", "none"), ("logistic", "sigmoid"), ("logistic", "isotonic"),
                                         ("ridge", "none")) for pca in (None, 4)]


def _random_problem(seed=0, n=300, d=10):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(size=d)
    rates = np.round(8 / (1 + np.exp(-(X @ rng.normal(size=d)) / 3))) / 8
    counts = rng.integers(1, 9, size=n)
    # Held-out rows, some far outside the training range (isotonic clipping, sigmoid tails).
    X_test = np.vstack([rng.normal(size=(400, d)) * 3, rng.normal(size=(100, d)) * 50])
    return X, rates, counts, X_test


@pytest.mark.parametrize("model,calibration,pca", COMBINATIONS)
def test_numpy_model_equals_the_sklearn_pipeline(model, calibration, pca):
    from adaptive.estimators.regression import FittedModel, fit_model, fit_sklearn

    X, rates, counts, X_test = _random_problem()
    spec = ModelSpec(model=model, calibration=calibration, pca=pca, C=0.5)
    fitted, kind, cal, C = fit_sklearn(X, rates, spec, counts)
    assert (kind, cal) == (model, calibration)
    if cal != "none":
        assert fitted.ensemble is False and len(fitted.calibrated_classifiers_) == 1
    want = fitted.predict_proba(X_test)[:, 1] if kind == "logistic" else np.clip(fitted.predict(X_test), 0, 1)
    ours = FittedModel.from_sklearn(fitted, kind, cal, C)
    got = ours.predict(X_test)
    assert got.dtype == np.float64 and got.shape == want.shape
    assert np.max(np.abs(got - want)) <= 1e-9
    assert set(ours.arrays) == set(FittedModel.array_shapes(ours.describe()))
    assert ("pca_components" in ours.arrays) == (pca is not None)
    # fit_model is fit_sklearn + the conversion.
    assert fit_model(X, rates, spec, counts).predict(X_test).tolist() == got.tolist()


def test_predicting_and_loading_import_no_sklearn(data, tmp_path):
    import subprocess
    import sys

    prompts, rates = data
    path = HeuristicEstimator(calibration="isotonic").fit(prompts, rates).save(tmp_path / "h.npz")
    code = ("import sys; from adaptive.estimators import load_estimator; "
            f"est = load_estimator({str(path)!r}); p = est.predict(['What is 2 + 2?']); "
            "assert 0 <= p[0] <= 1; bad = [m for m in sys.modules if m.split('.')[0] in ('sklearn', 'joblib')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------ estimators


def test_registry_and_needs():
    assert {"heuristic", "probe", "sample_probe"} <= set(registry.names())
    assert (HeuristicEstimator.needs, ProbeEstimator.needs, SampleProbeEstimator.needs) == (
        "text", "prompt_pass", "first_sample")
    assert isinstance(make_estimator("heuristic"), HeuristicEstimator)


def test_empty_batch_gives_empty_list(data, backend, tmp_path):
    prompts, rates = data
    probe = ProbeEstimator(backend).fit(prompts, rates)
    calls = len(backend.prompt_pass_calls)
    assert probe.score([]) == [] and probe.score([], prompt_passes=[]) == []
    assert len(backend.prompt_pass_calls) == calls  # nothing spent on an empty batch
    heur = HeuristicEstimator().fit(prompts, rates)
    assert heur.score([]) == []
    sp = SampleProbeEstimator(backend, calibration="none").fit(prompts[:10], rates[:10])
    g = backend.generate_calls
    assert sp.score([]) == [] and backend.generate_calls == g
    # An unfitted estimator still answers [] for [] (nothing to predict).
    assert HeuristicEstimator().score([]) == []


def test_heuristic_features_and_fit(data):
    from adaptive.estimators.heuristic import FEATURE_NAMES, text_features

    f = text_features("What is 12 + 7^2 = ? Compute it. Then find x.")
    assert len(f) == len(FEATURE_NAMES)
    named = dict(zip(FEATURE_NAMES, f))
    assert named["log_numbers"] == pytest.approx(math.log1p(3))
    assert named["log10_max_number"] == pytest.approx(math.log10(13))
    assert named["log_question_words"] == pytest.approx(math.log1p(3))  # what, compute, find
    assert named["log_op_plus"] == pytest.approx(math.log1p(1))
    assert named["log_sentences"] == pytest.approx(math.log1p(3))
    prompts, rates = data
    est = HeuristicEstimator(model="ridge").fit(prompts, rates)
    assert all(0 <= d.p_hat <= 1 for d in est.score(prompts[:5]))
    chat = [{"role": "user", "content": "What is 2 + 2?"}]
    assert len(HeuristicEstimator().fit(prompts, rates).score([chat])) == 1


def test_fit_rejects_bad_labels(data):
    prompts, _ = data
    with pytest.raises(InputError):
        HeuristicEstimator().fit(prompts[:3], [0.5, 1.5, 0.0])
    with pytest.raises(InputError):
        HeuristicEstimator().fit(prompts[:3], [1.0, 1.0, 1.0])  # one class: nothing to learn
    with pytest.raises(InputError):
        HeuristicEstimator().fit(prompts[:3], [0.5])
    with pytest.raises(InputError):
        HeuristicEstimator().predict(prompts[:2])  # unfitted
    with pytest.raises(InputError):
        HeuristicEstimator(calibration="maybe")


def test_probe_learns_the_signal(data, backend):
    prompts, rates = data
    est = ProbeEstimator(backend, pooling="mean").fit(prompts, rates)
    assert est.model_.calibration == "sigmoid"  # 60 prompts: auto picks Platt scaling
    test_prompts, test_rates = prompts_and_rates(40, prefix="held-out")
    p = est.predict(test_prompts)
    assert M.spearman(p, test_rates) > 0.6


def test_probe_uses_given_passes_without_backend_calls(data, backend):
    prompts, rates = data
    passes = backend.prompt_pass(prompts).passes
    backend.prompt_pass_calls.clear()
    est = ProbeEstimator(backend).fit(prompts, rates, prompt_passes=passes)
    ds = est.score(prompts[:7], prompt_passes=passes[:7])
    assert backend.prompt_pass_calls == [] and est.backend_calls == 0 and len(ds) == 7
    # Without a backend at all, given passes are enough.
    loose = ProbeEstimator(model_id="stub/model").fit(prompts, rates, prompt_passes=passes)
    assert len(loose.score(prompts[:2], prompt_passes=passes[:2])) == 2
    with pytest.raises(InputError):
        loose.score(prompts[:2])


def test_probe_calls_prompt_pass_once_per_batch(data, backend):
    prompts, rates = data
    est = ProbeEstimator(backend).fit(prompts, rates)
    assert len(backend.prompt_pass_calls) == 1  # fit: one prompt-only pass for the batch
    backend.prompt_pass_calls.clear()
    batch = prompts[:9]
    est.score(batch)
    assert backend.prompt_pass_calls == [batch]
    backend.prompt_pass_calls.clear()
    passes = [backend.make_pass(p) if i % 2 else None for i, p in enumerate(batch)]
    full = est.predict(batch)
    backend.prompt_pass_calls.clear()
    mixed = est.predict(batch, prompt_passes=passes)  # only the missing ones, still one call
    assert backend.prompt_pass_calls == [[p for i, p in enumerate(batch) if i % 2 == 0]]
    assert np.allclose(mixed, full)
    with pytest.raises(InputError):
        est.score(batch, prompt_passes=passes[:3])


def test_probe_layers_and_stats():
    assert resolve_layers((0.5, 0.75), N_LAYERS + 1) == [2, 3]
    assert resolve_layers((0, -1, 0.0, 1.0), N_LAYERS + 1) == [0, 4]
    for bad in ((1.5,), (9,), ("x",), (True,)):
        with pytest.raises(InputError):
            resolve_layers(bad, N_LAYERS + 1)
    ent, pmax = next_token_stats(torch.log(torch.tensor([0.5, 0.25, 0.25])))
    assert ent == pytest.approx(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25))) and pmax == pytest.approx(0.5)
    assert next_token_stats(None) == (0.0, 0.0)
    b = StubBackend()
    est = ProbeEstimator(b, layers=(1, 0.75), pooling=("last",), token_stats=False, text_features=False)
    X = est.features(["a b", "c d e"])
    assert X.shape == (2, 2 * HIDDEN) and est.layer_indices_ == [1, 3]
    other = PromptPass(3, torch.zeros(7, HIDDEN), torch.zeros(7, HIDDEN))
    with pytest.raises(InputError, match="different model"):
        est.features(["x"], prompt_passes=[other])


def test_probe_round_trip_identical_scores_and_metadata(data, backend, tmp_path):
    prompts, rates = data
    est = ProbeEstimator(backend, pca=6, bin_edges=[0, 0.3, 0.7, 1.0]).fit(prompts, rates)
    path = est.save(tmp_path / "probe.npz")
    meta = json.loads((tmp_path / "probe.npz.json").read_text())
    assert meta["kind"] == "probe" and meta["model_id"] == "stub/model"
    assert meta["config_hash"] == persistence.config_hash(backend) and len(meta["config_hash"]) == 16
    assert meta["layers"] == [2, 3] and meta["feature_size"] == 2 * 2 * HIDDEN + 3 + len(TEXT_NAMES)
    assert meta["config"]["text_features"] is True and est.feature_names_[-1] == f"text_{TEXT_NAMES[-1]}"
    assert meta["bin_edges"] == [0, 0.3, 0.7, 1.0] and meta["calibration"] == "sigmoid"
    assert {"sklearn", "numpy", "torch", "transformers"} <= set(meta["versions"]) and meta["created"]
    fresh = StubBackend()
    loaded = Estimator.load(path, backend=fresh)
    assert isinstance(loaded, ProbeEstimator) and loaded.bin_edges == (0, 0.3, 0.7, 1.0)
    assert loaded.score(prompts) == est.score(prompts)  # identical p_hat and bins
    assert len(fresh.prompt_pass_calls) == 1
    assert ProbeEstimator.load(path).predict(prompts, backend.prompt_pass(prompts).passes).tolist() == \
        est.predict(prompts).tolist()


def test_probe_text_features_are_the_heuristics(data, backend):
    prompts, _ = data
    on = ProbeEstimator(backend).features(prompts[:3])
    off = ProbeEstimator(backend, text_features=False).features(prompts[:3])
    assert on.shape[1] == off.shape[1] + len(TEXT_NAMES)
    assert np.array_equal(on[:, :off.shape[1]], off)
    assert np.allclose(on[:, off.shape[1]:], [text_features(p) for p in prompts[:3]])


def test_probe_files_without_text_features_key(data, backend, tmp_path):
    """A file from before the option (no key) loads as it was trained: without text features."""
    prompts, rates = data
    est = ProbeEstimator(backend, text_features=False).fit(prompts, rates)
    path = est.save(tmp_path / "old.npz")
    side = persistence.sidecar_path(path)
    meta = json.loads(side.read_text())
    del meta["config"]["text_features"]
    side.write_text(json.dumps(meta))
    old = Estimator.load(path, backend=StubBackend())
    assert old.text_features is False and old.score(prompts) == est.score(prompts)
    meta["config"]["text_features"] = True  # a config that contradicts the model: refused, not mis-scored
    side.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="inconsistent") as e:
        Estimator.load(path, backend=StubBackend())
    assert str(path) in str(e.value)


def test_C_grid_is_validated_and_chosen_on_training_folds(data, backend, tmp_path):
    for bad in ([], [0.1, -1], ["x"], [True]):
        with pytest.raises(InputError, match="C_grid"):
            ModelSpec(C_grid=bad)
    with pytest.raises(InputError, match="logistic"):
        ModelSpec(model="ridge", C_grid=[1.0])
    prompts, rates = data
    passes = backend.prompt_pass(prompts).passes
    grid = [1e-4, 1.0]
    # The signal is strong: heavy shrinkage (1e-4) flattens p_hat and loses held-out log-loss.
    strong = ProbeEstimator(backend, C_grid=grid, calibration="none").fit(prompts, rates, prompt_passes=passes)
    assert strong.model_.C == 1.0
    # Labels unrelated to the features: the wide probe overfits at C=1, so CV keeps the shrinkage.
    noise = [((zlib.crc32(p.encode()) >> 3) % 9) / 8 for p in prompts]
    weak = ProbeEstimator(backend, C_grid=grid, calibration="none").fit(prompts, noise, prompt_passes=passes)
    assert weak.model_.C == 1e-4
    path = strong.save(tmp_path / "cv.npz")
    meta = json.loads(persistence.sidecar_path(path).read_text())
    assert meta["config"]["C_grid"] == grid and meta["C"] == 1.0
    loaded = Estimator.load(path, backend=backend)
    assert loaded.spec.C_grid == (1e-4, 1.0) and loaded.model_.C == 1.0
    assert loaded.predict(prompts, passes).tolist() == strong.predict(prompts, passes).tolist()


def test_probe_picks_C_by_cv_unless_told_a_fixed_C(data, backend):
    from adaptive.estimators.probe import DEFAULT_C_GRID

    prompts, rates = data
    passes = backend.prompt_pass(prompts).passes
    auto = ProbeEstimator(backend, calibration="none").fit(prompts, rates, prompt_passes=passes)
    assert auto.spec.C_grid == DEFAULT_C_GRID and auto.model_.C in DEFAULT_C_GRID
    fixed = ProbeEstimator(backend, C=0.37, C_grid=None, calibration="none").fit(prompts, rates, prompt_passes=passes)
    assert fixed.spec.C_grid is None and fixed.model_.C == 0.37
    ridge = ProbeEstimator(backend, model="ridge")  # C applies to the logistic model only: no grid
    assert ridge.spec.C_grid is None


def test_train_cli_fixed_C_and_C_grid(data, backend, tmp_path, monkeypatch):
    import adaptive.estimators.train as T

    prompts, rates = data
    logs = tmp_path / "logs.jsonl"
    write_jsonl([{"id": str(i), "prompt": p, "pass_rate": r, "n_samples": 8}
                 for i, (p, r) in enumerate(zip(prompts, rates))], logs)
    seen = {}

    def fake_train(kind, records, backend_, out, **kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr(T, "train_estimator", fake_train)
    monkeypatch.setattr(T, "estimators_need_model", lambda kind: False)
    base = dict(logs=str(logs), estimator="probe", out=str(tmp_path / "x.npz"))
    for extra, want in (({"C": 0.5}, {"C": 0.5, "C_grid": None}),
                        ({"C_grid": "0.01,1"}, {"C_grid": [0.01, 1.0]}),
                        ({}, {})):
        seen.clear()
        with pytest.raises(SystemExit):
            main_train(argparse.Namespace(**base, **extra))
        assert {k: seen.get(k) for k in ("C", "C_grid") if k in seen} == want
    with pytest.raises(InputError, match="--C-grid"):
        main_train(argparse.Namespace(**base, C_grid="0.1,x"))


def test_heuristic_and_sample_probe_round_trip(data, backend, tmp_path):
    prompts, rates = data
    h = HeuristicEstimator(calibration="isotonic").fit(prompts, rates)
    h.save(tmp_path / "h.npz")
    assert json.loads((tmp_path / "h.npz.json").read_text())["model_id"] is None
    h2 = load_estimator(tmp_path / "h.npz", backend=StubBackend(model_id="any/other"))  # text only: no check
    assert h2.score(prompts) == h.score(prompts)
    firsts = [c[0] for c in backend.generate([_req(p) for p in prompts], _params()).completions]
    sp = SampleProbeEstimator(backend).fit(prompts, rates, first_samples=firsts)
    sp.save(tmp_path / "sp.npz")
    sp2 = SampleProbeEstimator.load(tmp_path / "sp.npz", backend=StubBackend())
    assert sp2.score(prompts, first_samples=firsts) == sp.score(prompts, first_samples=firsts)
    assert sp2.params == sp.params
    with pytest.raises(ConfigError, match="heuristic"):
        ProbeEstimator.load(tmp_path / "h.npz")


def _req(p):
    from adaptive.backends.base import Request

    return Request(p)


def _params():
    from adaptive.backends.base import SamplingParams

    return SamplingParams(max_new_tokens=8, top_logprobs=5)


def test_save_needs_model_identity(data):
    prompts, rates = data
    b = StubBackend()
    passes = b.prompt_pass(prompts).passes
    est = ProbeEstimator().fit(prompts, rates, prompt_passes=passes)
    with pytest.raises(InputError, match="model"):
        est.save("/tmp/never-written.npz")
    with pytest.raises(InputError):
        HeuristicEstimator().save("/tmp/never-written.npz")  # unfitted


@pytest.fixture
def saved_probe(data, backend, tmp_path):
    prompts, rates = data
    est = ProbeEstimator(backend, calibration="none").fit(prompts, rates)
    return est.save(tmp_path / "probe.npz")


def test_model_mismatch_raises_config_error(saved_probe, monkeypatch):
    import joblib

    def no_unpickle(*a, **k):
        raise AssertionError("unpickled before the metadata check")

    monkeypatch.setattr(joblib, "load", no_unpickle)
    with pytest.raises(ConfigError) as e:
        Estimator.load(saved_probe, backend=StubBackend(model_id="other/model"))
    msg = str(e.value)
    assert str(saved_probe) in msg and "'stub/model'" in msg and "'other/model'" in msg
    with pytest.raises(ConfigError, match="config with hash") as e:
        Estimator.load(saved_probe, backend=StubBackend(num_hidden_layers=99))
    assert str(saved_probe) in str(e.value)
    # Keys that vary by how a model is loaded do not change the hash.
    same = StubBackend()
    same.model.config.d["dtype"] = "bfloat16"
    monkeypatch.undo()
    assert isinstance(Estimator.load(saved_probe, backend=same), ProbeEstimator)


def test_corrupt_files_raise_config_error(saved_probe, tmp_path):
    side = persistence.sidecar_path(saved_probe)
    good_meta = side.read_text()
    good_payload = saved_probe.read_bytes()

    saved_probe.write_bytes(good_payload[: len(good_payload) // 2])  # truncated payload
    with pytest.raises(ConfigError, match="corrupt") as e:
        Estimator.load(saved_probe)
    assert str(saved_probe) in str(e.value)

    saved_probe.write_bytes(b"not a pickle at all")  # garbage, with a checksum that matches it
    meta = json.loads(good_meta)
    meta["payload_sha256"] = persistence._sha256(saved_probe)
    side.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="cannot be loaded"):
        Estimator.load(saved_probe)

    saved_probe.write_bytes(good_payload)
    side.write_text(good_meta[:40])  # malformed JSON
    with pytest.raises(ConfigError, match="malformed") as e:
        Estimator.load(saved_probe)
    assert str(side) in str(e.value)

    side.write_text(json.dumps({"format": "adaptive-estimator", "format_version": 1}))
    with pytest.raises(ConfigError, match="missing"):
        Estimator.load(saved_probe)

    side.unlink()
    with pytest.raises(ConfigError, match="missing"):
        Estimator.load(saved_probe)
    with pytest.raises(ConfigError, match="does not exist"):
        Estimator.load(tmp_path / "nope.npz")

    side.write_text(good_meta)
    assert isinstance(Estimator.load(saved_probe), ProbeEstimator)


class Detonator:
    """Unpickling this creates `marker`: if the file exists, loading ran code from the payload."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _swap_payload(path, data: bytes) -> None:
    """Replace an estimator's payload with `data` and make its sidecar's sha256 match (the checksum passes)."""
    path.write_bytes(data)
    side = persistence.sidecar_path(path)
    meta = json.loads(side.read_text())
    meta["payload_sha256"] = persistence._sha256(path)
    side.write_text(json.dumps(meta))


def _npz_bytes(**arrays) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)  # allow_pickle defaults to True here: an object array is pickled into the file
    return buf.getvalue()


@pytest.fixture
def saved_heuristic(data, tmp_path):
    prompts, rates = data
    return HeuristicEstimator(calibration="sigmoid").fit(prompts, rates).save(tmp_path / "h.npz")


def test_crafted_pickle_payloads_are_refused_unopened(saved_heuristic, tmp_path):
    import io
    import pickle
    import zipfile

    import joblib

    marker = tmp_path / "code-ran"
    bomb = {"kind": "heuristic", "state": {"model": Detonator(marker)}}
    pickle.loads(pickle.dumps(bomb))  # the payload is live: unpickling it does run code ...
    assert marker.exists()
    marker.unlink()
    payloads = {"pickle": (pickle.dumps(bomb), "it is a pickle")}
    for compress, says in ((0, "it is a pickle"), (3, "not an .npz archive")):
        joblib.dump(bomb, tmp_path / "bomb.joblib", compress=compress)
        payloads[f"joblib compress={compress}"] = ((tmp_path / "bomb.joblib").read_bytes(), says)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # a zip whose "array" is a pickle
        for name in ("scale_mean", "scale_scale", "coef", "intercept", "sigmoid_a", "sigmoid_b"):
            zf.writestr(f"{name}.npy", pickle.dumps(Detonator(marker)))
    payloads["zip of pickles"] = (buf.getvalue(), "cannot be loaded")
    for what, (blob, says) in payloads.items():
        _swap_payload(saved_heuristic, blob)
        with pytest.raises(ConfigError) as e:
            load_estimator(saved_heuristic)
        msg = str(e.value)
        assert str(saved_heuristic) in msg and says in msg and "\n" not in msg, what
        assert not marker.exists(), f"{what}: loading ran code from the payload"


def test_object_and_misshapen_arrays_are_refused(saved_heuristic, tmp_path):
    good = dict(np.load(saved_heuristic, allow_pickle=False))
    d = len(TEXT_NAMES)
    assert {k: v.shape for k, v in good.items()} == {"scale_mean": (d,), "scale_scale": (d,), "coef": (d,),
                                                      "intercept": (), "sigmoid_a": (), "sigmoid_b": ()}
    marker = tmp_path / "code-ran"
    obj = np.empty(d, dtype=object)
    obj[:] = [Detonator(marker)] * d
    cases = {"object": (dict(good, coef=obj), "dtype object"),
             "shape": (dict(good, coef=np.zeros(d + 1)), r"'coef' is float64\[%d\], its metadata says float64\[%d\]" % (d + 1, d)),
             "2-d": (dict(good, intercept=np.zeros((1, 1))), "'intercept'"),
             "float32": (dict(good, coef=good["coef"].astype(np.float32)), "dtype float32"),
             "int8": (dict(good, coef=good["coef"].astype(np.int8)), "dtype int8"),
             "extra": (dict(good, extra=np.zeros(3)), "unexpected arrays extra"),
             "missing": ({k: v for k, v in good.items() if k != "sigmoid_b"}, "missing arrays sigmoid_b")}
    for what, (arrays, match) in cases.items():
        _swap_payload(saved_heuristic, _npz_bytes(**arrays))
        with pytest.raises(ConfigError, match=match) as e:
            load_estimator(saved_heuristic)
        assert str(saved_heuristic) in str(e.value) and "\n" not in str(e.value), what
        assert not marker.exists()
    # Values are checked too: a non-finite coefficient or a zero scale would give NaN p_hat.
    for arrays in (dict(good, coef=np.full(d, np.nan)), dict(good, scale_scale=np.zeros(d))):
        _swap_payload(saved_heuristic, _npz_bytes(**arrays))
        with pytest.raises(ConfigError, match="malformed"):
            load_estimator(saved_heuristic)
    # A sidecar that describes another model than its arrays: refused before the arrays are read.
    _swap_payload(saved_heuristic, _npz_bytes(**good))
    side = persistence.sidecar_path(saved_heuristic)
    meta = json.loads(side.read_text())
    for model in ({**meta["model"], "calibration": "isotonic"}, {**meta["model"], "n_features": "13"},
                  {**meta["model"], "kind": "forest"}, "pickle"):
        side.write_text(json.dumps(dict(meta, model=model)))
        with pytest.raises(ConfigError, match="malformed"):
            load_estimator(saved_heuristic)
    side.write_text(json.dumps(dict(meta, arrays={**meta["arrays"], "coef": {"dtype": "object", "shape": [d]}})))
    with pytest.raises(ConfigError, match="'arrays' do not match"):
        load_estimator(saved_heuristic)
    side.write_text(json.dumps(meta))
    assert isinstance(load_estimator(saved_heuristic), HeuristicEstimator)


def test_old_joblib_files_are_refused_with_how_to_retrain(saved_heuristic, tmp_path):
    import joblib

    marker = tmp_path / "code-ran"
    old = tmp_path / "old.joblib"
    joblib.dump({"kind": "heuristic", "state": {"model": Detonator(marker)}}, old)
    meta = json.loads(persistence.sidecar_path(saved_heuristic).read_text())
    for key in ("model", "arrays", "state"):
        del meta[key]
    meta.update(format_version=1, payload=old.name, payload_sha256=persistence._sha256(old))
    persistence.sidecar_path(old).write_text(json.dumps(meta))
    for sidecar in (True, False):
        if not sidecar:
            persistence.sidecar_path(old).unlink()
        with pytest.raises(ConfigError, match="old joblib") as e:
            load_estimator(old)
        msg = str(e.value)
        assert str(old) in msg and "adaptive train-estimator" in msg and ".npz" in msg and "\n" not in msg
        assert not marker.exists()


def test_save_writes_npz_names_only(data, tmp_path):
    prompts, rates = data
    est = HeuristicEstimator().fit(prompts, rates)
    for bad in ("h.joblib", "h", "h.npz.json"):
        with pytest.raises(InputError, match=r"\.npz"):
            est.save(tmp_path / bad)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match=r"\.npz"):  # refused before any training
        train_estimator("heuristic", [{"prompt": "p", "pass_rate": 0.5}], out_path=tmp_path / "h.joblib")
    path = est.save(tmp_path / "h.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.npz", "h.npz.json"]
    with np.load(path, allow_pickle=False) as npz:  # a plain .npz: readable without this package
        assert all(npz[k].dtype == np.float64 for k in npz.files)
    meta = json.loads(persistence.sidecar_path(path).read_text())
    assert meta["format_version"] == persistence.FORMAT_VERSION and meta["state"]["feature_names"] == list(TEXT_NAMES)
    assert meta["model"] == {"kind": "logistic", "calibration": "sigmoid", "n_features": len(TEXT_NAMES),
                             "pca_components": None, "isotonic_points": None, "C": 1.0}


# ------------------------------------------------------------------------------------------ sample probe


def test_sample_probe_draws_once_and_exposes_samples(data, backend):
    prompts, rates = data
    est = SampleProbeEstimator(backend, max_new_tokens=16)
    est.fit(prompts, rates)
    assert backend.generate_calls == 1 and len(est.last_samples) == len(prompts)
    ds = est.score(prompts[:5])
    assert backend.generate_calls == 2 and len(ds) == 5
    assert all(isinstance(c, Completion) for c in est.last_samples) and len(est.last_samples) == 5
    firsts = list(est.last_samples)
    again = est.score(prompts[:5], first_samples=firsts)  # reuse: no new sample
    assert backend.generate_calls == 2 and again == ds
    assert est.score(prompts[:5], first_samples=[[c] for c in firsts]) == ds  # a list per prompt: its first
    assert M.spearman(est.predict(prompts, first_samples=None), rates) > 0.5
    with pytest.raises(InputError):
        est.score(prompts[:1], first_samples=["text"])


# ------------------------------------------------------------------------------------------ training


def test_load_labels_formats_and_errors(tmp_path):
    per_prompt = tmp_path / "a.jsonl"
    per_prompt.write_text("\n".join([
        json.dumps({"id": "q1", "prompt": "p1", "samples": [{"correct": True}, {"correct": False}],
                    "majority_correct": True}),
        "",
        json.dumps({"id": "q2", "prompt": "p2", "pass_rate": 0.25, "n_samples": 4}),
        json.dumps({"prompt": "p3", "pass_rate": 1.0}),
    ]))
    recs = load_labels(per_prompt)
    assert [r["pass_rate"] for r in recs] == [0.5, 0.25, 1.0]
    assert recs[0]["majority_correct"] is True and recs[1]["n_samples"] == 4 and recs[2]["n_samples"] is None
    assert recs[2]["id"].startswith("p")
    per_sample = tmp_path / "b.jsonl"
    per_sample.write_text("\n".join(json.dumps({"id": i, "prompt": f"p{i}", "correct": c, "text": "x"})
                                    for i, c in [(1, True), (2, False), (1, False), (1, True)]))
    recs = load_labels(per_sample)
    assert [(r["id"], r["pass_rate"], len(r["samples"])) for r in recs] == [("1", 2 / 3, 3), ("2", 0.0, 1)]
    bad = tmp_path / "c.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "pass_rate": 0.5}) + "\n\n{oops\n")
    with pytest.raises(ConfigError, match=r"c.jsonl line 3"):
        load_labels(bad)
    bad.write_text(json.dumps({"prompt": "p"}) + "\n")
    with pytest.raises(ConfigError, match="line 1"):
        load_labels(bad)
    bad.write_text("\n".join([json.dumps({"id": 1, "prompt": "p", "pass_rate": 0.5})] * 2))
    with pytest.raises(ConfigError, match="more than once"):
        load_labels(bad)
    bad.write_text(json.dumps({"prompt": "p", "pass_rate": 2}))
    with pytest.raises(ConfigError, match="pass_rate"):
        load_labels(bad)


def test_split_by_prompt_is_disjoint_and_seeded():
    recs = normalize_records([{"id": f"q{i}", "prompt": f"p{i}", "pass_rate": 0.5} for i in range(20)])
    tr, va = split_by_prompt(recs, 0.25, seed=3)
    assert len(va) == 5 and len(tr) == 15 and not {r["id"] for r in tr} & {r["id"] for r in va}
    tr2, va2 = split_by_prompt(list(reversed(recs)), 0.25, seed=3)
    assert {r["id"] for r in va2} == {r["id"] for r in va}  # independent of file order
    assert {r["id"] for r in split_by_prompt(recs, 0.25, seed=4)[1]} != {r["id"] for r in va}
    assert len(split_by_prompt(recs[:2], 0.01)[1]) == 1


def test_split_keeps_copies_of_one_question_on_one_side():
    # The same question under several ids (datasets repeat items): a copy on each side would leak.
    recs = normalize_records([{"id": f"q{i}", "prompt": f"p{i % 5}", "pass_rate": 0.5} for i in range(20)])
    for seed in range(5):
        tr, va = split_by_prompt(recs, 0.4, seed=seed)
        assert tr and va and not {r["prompt"] for r in tr} & {r["prompt"] for r in va}


def test_build_labels_and_train_estimator(tmp_path, backend):
    prompts, _ = prompts_and_rates(50)
    examples = [{"id": f"q{i}", "prompt": p, "answer": "right"} for i, p in enumerate(prompts)]
    recs = build_labels(backend, examples, k=4, grade=lambda ans, ex: ans == ex["answer"],
                        extract=lambda t, e: t, batch_size=20)
    assert backend.generate_calls == 3 and len(recs) == 50
    r0 = recs[0]
    assert len(r0["samples"]) == 4 and r0["pass_rate"] == sum(s["correct"] for s in r0["samples"]) / 4
    assert "logprobs" in r0["samples"][0] and "logprobs" not in r0["samples"][1]
    assert isinstance(r0["majority_correct"], bool)
    log = write_jsonl(recs, tmp_path / "labels.jsonl")
    loaded = load_labels(log)
    backend.prompt_pass_calls.clear()
    rep = train_estimator("probe", loaded, backend, tmp_path / "out" / "probe.npz", val_frac=0.3, seed=1,
                          batch_size=16, bins="quantile")
    assert rep["n_train"] == 35 and rep["n_val"] == 15 and rep["val"]["n_samples"] == 60
    assert len(backend.prompt_pass_calls) == 3 + 1  # 35 train prompts in chunks of 16, then 15 val
    for key in ("auroc", "spearman", "brier", "ece"):
        assert rep[key] is None or isinstance(rep[key], float)
    assert rep["auroc"] > 0.6 and rep["spearman"] > 0.4
    assert 0 <= rep["brier"] <= 1 and 0 <= rep["ece"] <= 1
    assert (tmp_path / "out" / "probe.reliability.png").is_file()
    assert json.loads((tmp_path / "out" / "probe.report.json").read_text())["n_val"] == 15
    est = Estimator.load(tmp_path / "out" / "probe.npz", backend=backend)
    assert list(est.bin_edges) == rep["bin_edges"] and len(rep["bin_edges"]) >= 3
    # The sample probe trains on the logged first samples without drawing new ones.
    g = backend.generate_calls
    rep_sp = train_estimator("sample_probe", loaded, backend, tmp_path / "sp.npz", calibration="none")
    assert backend.generate_calls == g and rep_sp["n_val"] == 10


def test_compare_shares_passes_and_fits_on_train_only(backend):
    from adaptive.estimators.compare import compare, summarize

    prompts, _ = prompts_and_rates(40)
    recs = build_labels(backend, [{"id": f"q{i}", "prompt": p} for i, p in enumerate(prompts)], k=4,
                        grade=lambda text, ex: text == "right", batch_size=40)
    specs = {"heuristic": ("heuristic", {}), "probe": ("probe", {}),
             "probe_hidden_only": ("probe", {"text_features": False}),
             "sample_probe": ("sample_probe", {"calibration": "none"})}
    backend.prompt_pass_calls.clear()
    g = backend.generate_calls
    rows = compare(recs, specs, backend, seeds=[0, 1, 2], val_frac=0.25, batch_size=16)
    assert len(backend.prompt_pass_calls) == 3 and backend.generate_calls == g  # 40 prompts / 16, shared
    assert [(r["seed"], r["name"]) for r in rows] == [(s, n) for s in (0, 1, 2) for n in specs]
    assert all(r["n_train"] == 30 and r["n_val"] == 10 for r in rows)
    # Seed 1's probe row is what fitting on that seed's training prompts alone gives.
    train, val = split_by_prompt(normalize_records(recs), 0.25, 1)
    own = ProbeEstimator(backend, seed=1).fit([r["prompt"] for r in train], [r["pass_rate"] for r in train],
                                              counts=[r["n_samples"] for r in train])
    from adaptive.estimators.train import evaluate

    want = evaluate(val, own.predict([r["prompt"] for r in val]))
    got = next(r for r in rows if r["seed"] == 1 and r["name"] == "probe")
    assert got["auroc"] == pytest.approx(want["auroc"]) and got["spearman"] == pytest.approx(want["spearman"])
    summary = summarize(rows, versus=("probe", "heuristic"))
    diffs = [a["auroc"] - b["auroc"] for a, b in zip(rows[1::4], rows[0::4])]
    assert summary["wins"]["wins"] == sum(d > 0 for d in diffs) and summary["wins"]["of"] == 3
    aurocs = [r["auroc"] for r in rows if r["name"] == "probe"]
    assert summary["probe"]["auroc"] == (pytest.approx(np.mean(aurocs)), pytest.approx(np.std(aurocs, ddof=1)))


def test_main_train_heuristic(tmp_path, capsys):
    prompts, rates = prompts_and_rates(30)
    log = write_jsonl([{"id": i, "prompt": p, "pass_rate": r, "n_samples": 8}
                       for i, (p, r) in enumerate(zip(prompts, rates))], tmp_path / "l.jsonl")
    args = argparse.Namespace(logs=str(log), estimator="heuristic", out=str(tmp_path / "h.npz"), model=None,
                              val_frac=0.2, seed=0, bins="4", layers=None, pooling=None, pca=None, C=None,
                              model_type="ridge", calibration=None, batch_size=8)
    assert main_train(args) == 0
    out = capsys.readouterr().out
    assert "heuristic: trained on 24 prompts, validated on 6" in out and "AUROC" in out
    est = load_estimator(tmp_path / "h.npz")
    assert est.spec.model == "ridge" and len(est.bin_edges) == 5


def test_cli_argument_helper():
    from adaptive.cli.train_estimator import _parse_numbers
    from adaptive.cli.train_estimator import add_arguments as add_train_arguments

    p = argparse.ArgumentParser()
    add_train_arguments(p)
    a = p.parse_args(["--logs", "x", "--out", "y", "--layers", "0.5,12", "--C", "0.3"])
    assert a.estimator == "probe" and a.C == 0.3 and _parse_numbers(a.layers, "--layers") == [0.5, 12]
    assert isinstance(_parse_numbers(a.layers, "--layers")[1], int)  # an index, not a depth
    with pytest.raises(InputError, match="--layers: 'x' is not a number"):
        _parse_numbers("0.5,x", "--layers")


@pytest.mark.model
def test_probe_on_the_embedded_model(hf_backend, totals_delta, tmp_path):
    """The real backend: one prompt-only pass per batch, zero when a generation's passes are reused."""
    from adaptive.backends.base import Request, SamplingParams

    prompts = ["2 + 2 =", "The capital of France is", "17 * 23 =", "Hello", "9 - 3 =", "Name a colour:"]
    est = ProbeEstimator(hf_backend, raw=True, calibration="none").fit(prompts, [1, 1, 0, 0.5, 1, 0.25])
    assert totals_delta()["forward_passes"] == 1 and est.backend_calls == 1
    gen = hf_backend.generate([Request(p, raw=True) for p in prompts[:2]], SamplingParams(max_new_tokens=1),
                              hidden_states=True)
    spent = totals_delta()["forward_passes"]
    reused = est.score(prompts[:2], prompt_passes=gen.prompt_passes)
    assert totals_delta()["forward_passes"] == spent and est.backend_calls == 1
    path = est.save(tmp_path / "probe.npz")
    loaded = Estimator.load(path, backend=hf_backend)
    assert [d.p_hat for d in loaded.score(prompts[:2])] == pytest.approx([d.p_hat for d in reused], abs=1e-6)
    meta = json.loads(persistence.sidecar_path(path).read_text())
    assert meta["model_id"] == hf_backend.model_id and meta["config_hash"] == persistence.config_hash(hf_backend)
    with pytest.raises(ConfigError, match="trained for model"):
        Estimator.load(path, backend=StubBackend())
