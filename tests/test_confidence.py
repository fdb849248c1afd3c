"""DeepConf confidence measures (Fu et al. 2025) on hand-computed vectors."""
import math

import pytest

from adaptive.confidence import (
    bottom_percent_confidence,
    group_confidences,
    lowest_group_confidence,
    mean_confidence,
    tail_confidence,
    token_confidence,
)
from adaptive.errors import InputError


def test_token_confidence_is_negative_mean_of_top_k():
    # -(-0.1 - 2.3 - 3.0) / 3 = 5.4 / 3 = 1.8
    assert token_confidence([-0.1, -2.3, -3.0]) == pytest.approx(1.8)
    # a peaked distribution (runners-up improbable) is more confident than a flat one:
    # flat top-2 of ln(0.5): -ln 0.5 = 0.693147; peaked [ln 0.99, ln 0.001]: (0.0100503 + 6.9077553) / 2 = 3.4589028
    flat = token_confidence([math.log(0.5), math.log(0.5)])
    peaked = token_confidence([math.log(0.99), math.log(0.001)])
    assert flat == pytest.approx(0.693147, abs=1e-6)
    assert peaked == pytest.approx(3.4589028, abs=1e-6)
    assert peaked > flat


def test_token_confidence_empty_is_zero():
    assert token_confidence([]) == 0.0


def test_group_confidences_sliding_means():
    c = [1, 2, 3, 4, 5]
    # window 2: (1+2)/2, (2+3)/2, (3+4)/2, (4+5)/2
    assert group_confidences(c, 2) == pytest.approx([1.5, 2.5, 3.5, 4.5])
    # window 3: 6/3, 9/3, 12/3
    assert group_confidences(c, 3) == pytest.approx([2.0, 3.0, 4.0])
    # window = length: one group, 15/5
    assert group_confidences(c, 5) == pytest.approx([3.0])
    # shorter than the window: one group = its mean
    assert group_confidences(c, 10) == pytest.approx([3.0])
    assert group_confidences([], 4) == []


def test_group_confidences_match_backend_floor():
    # the HF backend cuts a trace when mean(token conf of the last `window` positions) < floor;
    # that is the last sliding group here: tokens [2, 0.5, 4, 1], window 3 -> (0.5 + 4 + 1) / 3
    c = [2.0, 0.5, 4.0, 1.0]
    assert group_confidences(c, 3)[-1] == pytest.approx(5.5 / 3)


def test_group_confidences_bad_window():
    for w in (0, -1, 2.0, True):
        with pytest.raises(InputError):
            group_confidences([1.0], w)


def test_mean_confidence():
    assert mean_confidence([1, 2, 3, 4, 5]) == pytest.approx(3.0)  # 15 / 5
    assert mean_confidence([]) == 0.0


def test_lowest_group_confidence():
    c = [4, 1, 1, 4, 4]
    # window 2: [2.5, 1.0, 2.5, 4.0] -> 1.0
    assert lowest_group_confidence(c, 2) == pytest.approx(1.0)
    # window 3: [6/3, 6/3, 9/3] = [2, 2, 3] -> 2.0
    assert lowest_group_confidence(c, 3) == pytest.approx(2.0)
    # window 1: the lowest token
    assert lowest_group_confidence(c, 1) == 1
    assert lowest_group_confidence([], 2) == 0.0


def test_tail_confidence():
    c = [1, 2, 3, 4, 5]
    assert tail_confidence(c, tail=2) == pytest.approx(4.5)   # (4 + 5) / 2
    assert tail_confidence(c, tail=1) == pytest.approx(5.0)
    assert tail_confidence(c, tail=10) == pytest.approx(3.0)  # whole trace
    assert tail_confidence([], tail=3) == 0.0
    with pytest.raises(InputError):
        tail_confidence(c, tail=0)


def test_bottom_percent_confidence():
    c = list(range(1, 21))  # 1..20; window 1 -> groups are the tokens
    # 10% of 20 groups = 2 lowest: (1 + 2) / 2
    assert bottom_percent_confidence(c, 1, percent=10) == pytest.approx(1.5)
    # 25% -> 5 lowest: (1+2+3+4+5) / 5 = 3
    assert bottom_percent_confidence(c, 1, percent=25) == pytest.approx(3.0)
    # 12% of 20 = 2.4 -> ceil 3: (1+2+3) / 3 = 2
    assert bottom_percent_confidence(c, 1, percent=12) == pytest.approx(2.0)
    # 100% -> mean of all groups: 210 / 20
    assert bottom_percent_confidence(c, 1, percent=100) == pytest.approx(10.5)
    # window 2: 19 groups 1.5, 2.5, ..., 19.5; 10% -> ceil(1.9) = 2: (1.5 + 2.5) / 2
    assert bottom_percent_confidence(c, 2, percent=10) == pytest.approx(2.0)
    # fewer groups than 1/percent: still at least one group. [5, 3], window 1, 10% -> 3
    assert bottom_percent_confidence([5, 3], 1) == pytest.approx(3.0)
    assert bottom_percent_confidence([], 4) == 0.0
    for bad in (0, -5, 101):
        with pytest.raises(InputError):
            bottom_percent_confidence(c, 1, percent=bad)


def test_one_set_of_constants():
    from adaptive import confidence as C
    from adaptive.backends.base import SamplingParams
    from adaptive.estimators.sample_probe import DEFAULT_PARAMS, SampleProbeEstimator
    from adaptive.stopping import make_rule
    from adaptive.verifiers.logprob import Confidence

    v = Confidence()
    assert (v.window, v.tail) == (C.DEFAULT_WINDOW, C.DEFAULT_TAIL)
    assert make_rule("confidence", {}).window == C.DEFAULT_WINDOW
    assert SamplingParams().confidence_window == C.DEFAULT_WINDOW
    assert DEFAULT_PARAMS["top_logprobs"] == C.TOP_LOGPROBS
    probe = SampleProbeEstimator()
    assert (probe.window, probe.tail) == (C.DEFAULT_WINDOW, C.DEFAULT_TAIL)


def test_trace_confidence_modes_and_last_group():
    from adaptive.confidence import last_group_confidence, trace_confidence

    tops = [[-1.0, -3.0], [-0.5, -0.5], [-2.0, -2.0]]  # token confidences 2, 0.5, 2
    assert trace_confidence(tops, "mean") == pytest.approx(1.5)
    assert trace_confidence(tops, "lowest_group", window=2) == pytest.approx(1.25)
    assert trace_confidence(tops, "tail", tail=1) == pytest.approx(2.0)
    assert trace_confidence(tops, "bottom10", window=1) == pytest.approx(0.5)
    assert last_group_confidence([2, 0.5, 2], 2) == pytest.approx(1.25)
    assert last_group_confidence([2], 2) is None
    with pytest.raises(InputError, match="mode"):
        trace_confidence(tops, "median")
