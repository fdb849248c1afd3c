"""The sweep's orchestration, config checks and agreement arithmetic (rows themselves need a model)."""
import pytest

from adaptive.bench import sweep
from adaptive.errors import ConfigError


def _cfg(**kw):
    base = {"prompt": "p", "samples": 2, "new_tokens": 4, "batch_sizes": [1, 2],
            "agreement": {"prompts": ["a", "b"], "new_tokens": 3},
            "settings": [{"name": "baseline"}, {"name": "bf16", "dtype": "bfloat16"},
                         {"name": "bnb-4bit", "quantization": "bnb-4bit"}, {"name": "compile", "compile": True}]}
    base.update(kw)
    return base


@pytest.mark.parametrize("change, msg", [({"speed": 1}, "unknown key 'speed'"),
                                         ({"settings": [{"name": "x"}]}, "baseline"),
                                         ({"settings": [{"name": "baseline", "fast": 1}]}, "unknown key 'fast'"),
                                         ({"settings": [{"name": "baseline"}, {"name": "baseline"}]}, "duplicate")])
def test_bad_sweep_configs(change, msg):
    with pytest.raises(ConfigError, match=msg):
        sweep.check_config(_cfg(**change))


def test_agreement():
    assert sweep.agreement([[1, 2], [3]], [[1, 2], [4]]) == 0.5
    with pytest.raises(ValueError):
        sweep.agreement([[1]], [])


def test_run_sweep_compares_rows_to_the_baseline_and_reports_skips(tmp_path, monkeypatch):
    def fake_row(cfg, setting, batch_sizes, timeout=0):
        m = lambda t: {"tok_s": t, "ttft_s": 0.1, "peak_mb": 10.0}  # noqa: E731
        if setting.name == "baseline":
            return "ok", {"load_s": 1, "weights_mb": 500, **m(10.0), "greedy": [[1, 2], [3]], "accuracy": 0.5,
                          "n": 4, "batch": {bs: {**m(10.0 * bs), "greedy_same": True} for bs in batch_sizes}}
        if setting.name == "bf16":
            return "ok", {"load_s": 1, "weights_mb": 250, **m(5.0), "greedy": [[1, 2], [9]], "accuracy": 0.25,
                          "n": 4, "batch": {}}
        if setting.name == "bnb-4bit":
            return "skipped", "quantization='bnb-4bit' needs a CUDA device"
        return "failed", "InductorError: boom"

    monkeypatch.setattr(sweep, "_run_row", fake_row)
    rep = sweep.run_sweep(_cfg(), str(tmp_path))
    rows = {r["setting"]: r for r in rep["rows"]}
    assert rows["2 samples"]["speedup"] == pytest.approx(2.0)
    assert rows["bf16"]["speedup"] == pytest.approx(0.5) and rows["bf16"]["greedy_agreement"] == 0.5
    assert rows["bnb-4bit"]["status"].startswith("skipped: ") and rows["compile"]["status"].startswith("failed")
    assert list(tmp_path.glob("sweep-*.json")) and list(tmp_path.glob("sweep-*.png"))


@pytest.mark.model
def test_row_measurements_on_the_model(hf_backend, monkeypatch):
    monkeypatch.setattr(hf_backend, "prefix_cache", hf_backend.prefix_cache)  # _measure turns it off: restore it
    m = sweep._measure(hf_backend, "Tell me a story.", 2, 6)
    assert m["tok_s"] > 0 and 0 < m["ttft_s"] and m["peak_mb"] >= 0
    a = sweep._greedy(hf_backend, ["What is 2 + 2?", "Hi"], 5)
    assert a == sweep._greedy(hf_backend, ["What is 2 + 2?", "Hi"], 5)
