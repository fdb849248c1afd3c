"""Worked-vector tests for adaptive.metrics (latency, flops, stats). Expected values are computed by
hand in the comments, not by calling the code under test."""
from types import SimpleNamespace

import numpy as np
import pytest

from adaptive.errors import InputError
from adaptive.metrics import (FlopsSpec, FluidityResult, decode_flops, fluidity_index, forward_flops,
                              inter_token_times, mean_ci, model_flops_spec, normalized_latency,
                              percentile, prefill_flops, summarize, tbt, tbt_percentiles, tpot, ttft,
                              wilson_interval)

approx = pytest.approx

# ------------------------------------------------------------------------------------- latency
# Stream: arrival 10.0, tokens at 10.5, 10.6, 10.8, 11.2
ARR, TIMES = 10.0, [10.5, 10.6, 10.8, 11.2]


def test_inter_token_times_worked():
    # TTFT 10.5-10.0 = 0.5; gaps 0.1, 0.2, 0.4
    assert inter_token_times(ARR, TIMES) == approx([0.5, 0.1, 0.2, 0.4])
    assert inter_token_times(ARR, []) == []


def test_ttft_tbt_tpot_normalized_worked():
    assert ttft(ARR, TIMES) == approx(0.5)
    assert tbt(TIMES) == approx([0.1, 0.2, 0.4])
    # TPOT = (11.2 - 10.5) / (4 - 1) = 0.7 / 3
    assert tpot(ARR, TIMES) == approx(0.7 / 3)
    # normalized latency = (11.2 - 10.0) / 4 = 0.3
    assert normalized_latency(ARR, TIMES) == approx(0.3)


def test_single_token_stream():
    assert ttft(1.0, [1.25]) == approx(0.25)
    assert tbt([1.25]) == []
    assert tpot(1.0, [1.25]) == 0.0          # defined: no decode interval
    assert normalized_latency(1.0, [1.25]) == approx(0.25)
    with pytest.raises(InputError, match="at least 2 tokens"):
        tbt_percentiles([1.25])


def test_tbt_percentiles_worked():
    # gaps 0.1, 0.2, 0.4 sorted; p50: h = 2*0.5 = 1 -> 0.2
    # p99: h = 2*0.99 = 1.98 -> 0.2 + 0.98*(0.4-0.2) = 0.396; max 0.4
    p = tbt_percentiles(TIMES)
    assert p["p50"] == approx(0.2)
    assert p["p99"] == approx(0.396)
    assert p["max"] == approx(0.4)


@pytest.mark.parametrize("fn", [ttft, tpot, normalized_latency])
def test_empty_stream_undefined(fn):
    with pytest.raises(InputError, match="no tokens"):
        fn(0.0, [])


@pytest.mark.parametrize("times", [[0.5, 0.4], [-1.0, 0.5], [0.5, float("nan")], [0.5, float("inf")]])
def test_bad_timestamps(times):
    with pytest.raises(InputError):
        inter_token_times(0.0, times)


def test_token_before_arrival_and_non_numbers():
    with pytest.raises(InputError, match="before the request arrival"):
        ttft(5.0, [4.9])
    with pytest.raises(InputError, match="non-decreasing"):
        tbt([1.0, 0.9])
    with pytest.raises(InputError):
        ttft(0.0, ["soon"])


def test_equal_timestamps_allowed():
    # tokens flushed together: non-decreasing, gap 0
    assert tbt([1.0, 1.0, 1.5]) == approx([0.0, 0.5])


# -------------------------------------------------------------------------------- fluidity index
def test_fluidity_worked_example():
    # D_p=0.3, D_d=0.03. Cumulative arrivals and deadlines:
    # t1=0.25 <= 0.30 met; t2=0.27 <= 0.33 met; t3=0.29 <= 0.36 met; t4=0.31 <= 0.39 met;
    # t5=0.46 > 0.42: overrun 0.04 -> floor(0.04/0.03)+1 = 2 missed; reset deadline 0.46+0.03=0.49
    # t6=0.48 <= 0.49 met; t7=0.50 <= 0.52 met. met 6, missed 2, total 8, 1-2/8 = 0.75
    r = fluidity_index([0.25, 0.02, 0.02, 0.02, 0.15, 0.02, 0.02], 0.3, 0.03)
    assert (r.missed, r.total) == (2, 8)
    assert r.fluidity == approx(0.75)
    assert isinstance(r, FluidityResult)


def test_fluidity_first_token_stall():
    # t1=0.95 > D_p=0.3: overrun 0.65, 0.65/0.03 = 21.67 -> floor 21, +1 = 22 missed; reset to 0.98
    # t2=0.97 <= 0.98 met; t3=0.99 <= 1.01 met. missed 22, total 24, fluidity 1-22/24 = 1/12
    r = fluidity_index([0.95, 0.02, 0.02], 0.3, 0.03)
    assert (r.missed, r.total) == (22, 24)
    assert r.fluidity == approx(1 / 12)


def test_fluidity_all_on_time():
    # t=0.1 <= 0.3; 0.12 <= 0.33; 0.14 <= 0.36; 0.16 <= 0.39 -> 4 met
    r = fluidity_index([0.1, 0.02, 0.02, 0.02], 0.3, 0.03)
    assert (r.missed, r.total, r.fluidity) == (0, 4, 1.0)


def test_fluidity_slack_carries_forward():
    # Early first token banks slack: t1=0.0 (deadline 0.3), then a 0.3 gap: t2=0.3 <= 0.33 met.
    # Without carry-over (gap vs D_d alone) the 0.3 gap would be a miss.
    r = fluidity_index([0.0, 0.3], 0.3, 0.03)
    assert (r.missed, r.total) == (0, 2)


def test_fluidity_deadline_inclusive_and_reset():
    # t1=0.3 == deadline 0.3 -> met (inclusive). next deadline 0.33.
    # t2=0.40 > 0.33: overrun 0.07 -> floor(2.33)+1 = 3 missed; reset deadline 0.43.
    # t3=0.44 > 0.43: overrun 0.01 -> floor(0.33)+1 = 1 missed (reset, not the old schedule 0.39/0.42).
    r = fluidity_index([0.3, 0.1, 0.04], 0.3, 0.03)
    assert (r.missed, r.total) == (4, 5)
    assert r.fluidity == approx(0.2)


def test_fluidity_epsilon_on_exact_multiple():
    # t1=0.7 vs D_p=0.4 with D_d=0.1: overrun 0.3 = 3·D_d -> floor(3)+1 = 4 missed.
    # In floats (0.7-0.4)/0.1 = 2.999999999999999, so without the epsilon this would say 3.
    assert (0.7 - 0.4) / 0.1 < 3
    r = fluidity_index([0.7], 0.4, 0.1)
    assert (r.missed, r.total, r.fluidity) == (4, 4, 0.0)


def test_fluidity_from_timestamps():
    # Same stream as test_fluidity_worked_example, given as absolute timestamps after arrival 100.
    times = [100.25, 100.27, 100.29, 100.31, 100.46, 100.48, 100.50]
    r = fluidity_index(inter_token_times(100.0, times), 0.3, 0.03)
    assert (r.missed, r.total) == (2, 8)


def test_fluidity_empty_stream_raises():
    with pytest.raises(InputError, match="empty stream"):
        fluidity_index([], 0.3, 0.03)


@pytest.mark.parametrize("dp,dd", [(0.0, 0.03), (-1.0, 0.03), (0.3, 0.0), (0.3, -0.1), (0.3, float("nan"))])
def test_fluidity_bad_targets(dp, dd):
    with pytest.raises(InputError, match="must be a positive"):
        fluidity_index([0.1], dp, dd)


def test_fluidity_negative_gap():
    with pytest.raises(InputError, match=r"itl\[1\]"):
        fluidity_index([0.1, -0.01], 0.3, 0.03)


# --------------------------------------------------------------------------------------- flops
def test_forward_flops_worked():
    # N=1000, L=2, d=8; contexts 1, 3:  (2000 + 2·2·1·8) + (2000 + 2·2·3·8) = 2032 + 2096 = 4128
    assert forward_flops(1000, 2, 8, [1, 3]) == 4128
    assert forward_flops(1000, 2, 8, []) == 0


def test_prefill_flops_worked():
    # N=1000, L=2, d=8, prompt 3, no past: t = 1,2,3
    # 3·2000 + 2·2·8·(1+2+3) = 6000 + 32·6 = 6192
    assert prefill_flops(1000, 2, 8, 3) == 6192
    # past 5, prompt 2: t = 6,7 -> 2·2000 + 32·13 = 4000 + 416 = 4416
    assert prefill_flops(1000, 2, 8, 2, past_len=5) == 4416
    assert prefill_flops(1000, 2, 8, 0) == 0


def test_decode_flops_worked():
    # start_ctx 4, 3 tokens: contexts 5,6,7 -> 3·2000 + 32·18 = 6000 + 576 = 6576
    assert decode_flops(1000, 2, 8, 4, 3) == 6576
    assert decode_flops(1000, 2, 8, 4, 0) == 0


@pytest.mark.parametrize("prompt_len,past_len", [(1, 0), (7, 0), (13, 29), (128, 1000)])
def test_closed_forms_match_explicit_sum(prompt_len, past_len):
    n, layers, d = 106203456, 30, 576
    explicit = sum(2 * n + 2 * layers * t * d for t in range(past_len + 1, past_len + prompt_len + 1))
    assert prefill_flops(n, layers, d, prompt_len, past_len) == explicit
    assert decode_flops(n, layers, d, past_len, prompt_len) == explicit
    ctxs = range(past_len + 1, past_len + prompt_len + 1)
    assert forward_flops(n, layers, d, ctxs) == explicit


def test_prefill_then_decode_equals_one_long_prefill():
    # a KV cache changes wall time, not FLOPs: 10 prompt + 5 decoded == 15 positions prefilled
    assert prefill_flops(500, 4, 16, 10) + decode_flops(500, 4, 16, 10, 5) == prefill_flops(500, 4, 16, 15)


@pytest.mark.parametrize("call", [
    lambda: prefill_flops(1000, 2, 8, -1),
    lambda: prefill_flops(1000, 2, 8, 3, past_len=-2),
    lambda: decode_flops(1000, 2, 8, -1, 3),
    lambda: decode_flops(1000, 2, 8, 1, 2.5),
    lambda: forward_flops(-1, 2, 8, [1]),
    lambda: forward_flops(1000, 2, 8, [1, -3]),
    lambda: prefill_flops(1000, float("nan"), 8, 3),
])
def test_flops_bad_input(call):
    with pytest.raises(InputError):
        call()


SMOL = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
            intermediate_size=1536, vocab_size=49152, head_dim=64)


def test_model_flops_spec_smollm2_135m():
    # head_dim 64: q/o width 9·64 = 576, k/v width 3·64 = 192
    # attention: q 576·576 = 331,776; o 331,776; k 576·192 = 110,592; v 110,592 -> 884,736
    # MLP: 3·576·1536 = 2,654,208; norms: 2·576 = 1,152
    # per layer: 884,736 + 2,654,208 + 1,152 = 3,540,096; ×30 = 106,202,880; + final norm 576
    # N = 106,203,456
    spec = model_flops_spec(SimpleNamespace(**SMOL))
    assert spec == FlopsSpec(n_params_non_embedding=106_203_456, n_layers=30, d_attn=576)
    # Cross-check: tied embedding 49152·576 = 28,311,552; N + that = 134,515,008, SmolLM2-135M's size.
    assert spec.n_params_non_embedding + 49152 * 576 == 134_515_008


def test_model_flops_spec_defaults_mha_and_head_dim():
    # no kv heads / head_dim -> MHA, head_dim = 64/4 = 16. hidden 64, L 2, inter 128:
    # attn 4·64·64 = 16,384; mlp 3·64·128 = 24,576; norms 128 -> 41,088/layer; ×2 + 64 = 82,240
    cfg = SimpleNamespace(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=128, vocab_size=100)
    assert model_flops_spec(cfg) == FlopsSpec(82_240, 2, 64)
    # head_dim=None (as some HF configs store it) behaves the same
    cfg.head_dim = None
    assert model_flops_spec(cfg).n_params_non_embedding == 82_240


def test_model_flops_spec_attention_bias_and_text_config():
    # same as above plus q,k,v,o biases: 64+64+64+64 = 256 per layer -> 82,240 + 512 = 82,752
    text = SimpleNamespace(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=128, vocab_size=100, attention_bias=True)
    assert model_flops_spec(SimpleNamespace(text_config=text)).n_params_non_embedding == 82_752


@pytest.mark.parametrize("change", [
    {"hidden_size": None}, {"num_hidden_layers": 0}, {"intermediate_size": -5},
    {"num_attention_heads": 7, "head_dim": None},   # 576 % 7 != 0 and no head_dim
    {"num_key_value_heads": 2},                     # 9 heads not a multiple of 2
    {"vocab_size": None},
])
def test_model_flops_spec_bad_config(change):
    with pytest.raises(InputError):
        model_flops_spec(SimpleNamespace(**{**SMOL, **change}))


# --------------------------------------------------------------------------------------- stats
def test_percentile_worked():
    xs = [15, 20, 35, 40, 50]
    # p40: h = 4·0.4 = 1.6 -> 20 + 0.6·(35-20) = 29
    assert percentile(xs, 40) == approx(29.0)
    # p0 = min, p100 = max, p50 = middle
    assert (percentile(xs, 0), percentile(xs, 100), percentile(xs, 50)) == (15, 50, 35)
    # unsorted input: [4, 1, 3, 2] -> sorted 1..4, p25: h = 0.75 -> 1.75
    assert percentile([4, 1, 3, 2], 25) == approx(1.75)
    assert percentile([7.0], 99) == 7.0


@pytest.mark.parametrize("q", [0, 1, 10, 33.3, 50, 90, 99, 99.9, 100])
def test_percentile_matches_numpy(q):
    xs = [0.3, 1.7, -2.0, 5.5, 5.5, 9.25, 0.0]
    assert percentile(xs, q) == approx(float(np.percentile(xs, q)))


@pytest.mark.parametrize("values,q", [([], 50), ([1, 2], -1), ([1, 2], 100.5), ([1, float("nan")], 50)])
def test_percentile_bad_input(values, q):
    with pytest.raises(InputError):
        percentile(values, q)


def test_summarize_worked():
    # [1,2,3,4]: mean 2.5; p50 h=1.5 -> 2.5; p90 h=2.7 -> 3.7; p99 h=2.97 -> 3.97
    s = summarize([4, 1, 3, 2])
    assert s == {"mean": approx(2.5), "p50": approx(2.5), "p90": approx(3.7), "p99": approx(3.97), "n": 4}


def test_summarize_empty():
    assert summarize([]) == {"mean": None, "p50": None, "p90": None, "p99": None, "n": 0}


def test_wilson_interval_worked():
    # s=8, n=10, z=1.96: p=0.8, z²=3.8416, z²/n=0.38416, denom=1.38416
    # center = (0.8 + 3.8416/20) / 1.38416 = 0.99208 / 1.38416 = 0.716738
    # half = 1.96/1.38416 · sqrt(0.8·0.2/10 + 3.8416/400) = 1.96·sqrt(0.025604)/1.38416
    #      = 1.96·0.1600125/1.38416 = 0.226581  ->  (0.490157, 0.943319)
    lo, hi = wilson_interval(8, 10)
    assert lo == approx(0.490157, abs=1e-6)
    assert hi == approx(0.943319, abs=1e-6)


def test_wilson_interval_edges():
    # s=0, n=4, z=2: p=0, z²/n=1, center = (0 + 4/8)/2 = 0.25, half = 2/2·sqrt(0 + 4/64) = 0.25
    # -> (0, 0.5). Stays inside [0,1] where Wald would give (0, 0).
    lo, hi = wilson_interval(0, 4, z=2.0)
    assert lo == approx(0.0, abs=1e-12) and hi == approx(0.5)
    # s=n mirrors it: (0.5, 1)
    lo, hi = wilson_interval(4, 4, z=2.0)
    assert lo == approx(0.5) and hi == approx(1.0)


@pytest.mark.parametrize("s,n,z", [(1, 0, 1.96), (5, 4, 1.96), (-1, 4, 1.96), (1.5, 4, 1.96), (1, 4, 0.0)])
def test_wilson_bad_input(s, n, z):
    with pytest.raises(InputError):
        wilson_interval(s, n, z)


def test_mean_ci_worked():
    # [1..5]: mean 3, sum of squared deviations 4+1+0+1+4 = 10, s² = 10/4 = 2.5,
    # s/sqrt(n) = sqrt(2.5/5) = sqrt(0.5) = 0.707107; half = 1.96·0.707107 = 1.385929
    lo, hi = mean_ci([1, 2, 3, 4, 5])
    assert lo == approx(3 - 1.385929, abs=1e-6)
    assert hi == approx(3 + 1.385929, abs=1e-6)
    # constant sample: zero-width interval
    assert mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)


@pytest.mark.parametrize("values,z", [([], 1.96), ([1.0], 1.96), ([1.0, 2.0], -1.0), ([1.0, float("inf")], 1.96)])
def test_mean_ci_bad_input(values, z):
    with pytest.raises(InputError):
        mean_ci(values, z)
