"""Per-request time breakdown: the clock's nesting rules, the pure breakdown arithmetic, and on a real
generation the parts adding up to the request's wall time."""
import time

import pytest

from adaptive import timing
from adaptive.backends.base import CallUsage
from adaptive.evaluate.breakdown import format_breakdown, summarize_breakdown
from adaptive.timing import Clock


def _spin(s):
    end = time.perf_counter() + s
    while time.perf_counter() < end:
        pass


def test_nested_phases_are_exclusive_and_absorbing_phases_own_their_children():
    c = Clock()
    c.enabled = True
    with c.phase("control"):
        _spin(0.02)
        with c.phase("backend"):
            _spin(0.03)
        with c.phase("verify"):
            _spin(0.01)
            with c.phase("backend"):  # a verifier's model call: verify's time, not backend's
                _spin(0.02)
    t = c.snapshot()
    assert t["control"] == pytest.approx(0.02, abs=0.008)
    assert t["backend"] == pytest.approx(0.03, abs=0.008)
    assert t["verify"] == pytest.approx(0.03, abs=0.008)


def test_snapshot_counts_the_running_phase_and_off_records_nothing():
    c = Clock()
    with c.phase("control"):
        _spin(0.005)
    assert c.snapshot() == {}
    c.enabled = True
    with c.phase("control"):
        _spin(0.01)
        assert c.snapshot()["control"] >= 0.01


def test_breakdown_adds_own_calls_and_counts_other_batches_as_queue(monkeypatch):
    clock = Clock()
    clock.enabled = True
    clock._totals.update({"control": 1.0, "backend": 2.0})
    monkeypatch.setattr(timing, "CLOCK", clock)
    since = {"control": 0.5, "backend": 0.0}
    own = CallUsage(wall_s=1.5, times={"tokenize": 0.1, "prefill": 0.4, "decode": 0.9, "queue": 0.05})
    untimed = CallUsage(wall_s=9.0)  # an estimator share: no split, so not part of the call time seen
    parts = timing.breakdown(3.0, since, [own, untimed])
    # control 0.5 from the clock; backend 2.0 seen, 1.5 of it this request's own calls -> 0.5 queue extra
    assert parts["control"] == pytest.approx(0.5)
    assert parts["prefill"] == pytest.approx(0.4) and parts["decode"] == pytest.approx(0.9)
    assert parts["queue"] == pytest.approx(0.55)
    assert parts["residual"] == pytest.approx(3.0 - (0.5 + 0.1 + 0.4 + 0.9 + 0.55))
    assert "backend" not in parts


def test_usage_add_merges_times():
    a = CallUsage(times={"prefill": 1.0})
    a.add(CallUsage(times={"prefill": 0.5, "decode": 2.0}))
    assert a.times == {"prefill": 1.5, "decode": 2.0}


def test_report_shares_per_policy():
    recs = [{"policy": "a", "compute": {"wall_s": 2.0, "time_breakdown": {"decode": 1.5, "prefill": 0.3,
                                                                           "residual": 0.2}}},
            {"policy": "a", "compute": {"wall_s": 2.0, "time_breakdown": {"decode": 2.0}}},
            {"policy": "b", "compute": {"wall_s": 1.0, "time_breakdown": None}}]
    s = summarize_breakdown(recs)
    assert set(s) == {"a"}
    assert s["a"]["decode"] == pytest.approx(3.5 / 4) and s["a"]["residual"] == pytest.approx(0.05)
    assert "87.50%" in format_breakdown(s)


@pytest.mark.model
def test_parts_sum_to_wall_on_a_real_generation(hf_backend):
    from adaptive.generator import AdaptiveGenerator
    from adaptive.plan import Plan

    gen = AdaptiveGenerator(backend=hf_backend, plan=Plan(max_samples=4, wave_size=2, stopping="beta",
                                                          max_new_tokens=12, seed=0))
    assert gen.generate("What is 1 + 1?").compute.time_breakdown is None  # off by default
    gen.time_breakdown = True
    # Two very different prompt lengths land in different buckets only with a small batch: force it.
    rows, hf_backend.max_batch_rows = hf_backend.max_batch_rows, 2
    try:
        results = gen.generate(["What is 2 + 3?", "Explain, step by step and in detail, " * 20 + "what 9 * 9 is."])
    finally:
        hf_backend.max_batch_rows = rows
    for r in results:
        tb, wall = r.compute.time_breakdown, r.compute.wall_s
        assert set(timing.PARTS) | {"residual"} == set(tb)
        assert all(tb[p] >= 0 for p in timing.PARTS)
        assert tb["tokenize"] > 0 and tb["prefill"] > 0 and tb["decode"] > 0 and tb["control"] > 0
        assert sum(tb.values()) == pytest.approx(wall, rel=1e-6)  # by construction, with the residual
        assert abs(tb["residual"]) < 0.05 * wall + 0.02           # and the residual is small
    assert max(r.compute.time_breakdown["queue"] for r in results) > 0  # one waited for the other's bucket
