"""Stopping rules on hand-worked vectors (Aggarwal et al. 2023; Li et al. 2024; Fu et al. 2025)."""
import math

import numpy as np
import pytest

from adaptive.errors import ConfigError, InputError, UnknownNameError
from adaptive.registry import stopping_rules
from adaptive.stopping import SampleView, esc_expected_samples, make_rule
from adaptive.stopping.beta import beta_stop_probability
from adaptive.stopping.dirichlet import dirichlet_leader_probability
from adaptive.stopping.entropy import normalized_entropy

ALL_RULES = ("beta", "confidence", "dirichlet", "entropy", "esc", "fixed")


def views(*answers):
    return [SampleView(answer=a) for a in answers]


def stops(rule, *answers):
    return rule.should_stop(views(*answers))


# --- registry and make_rule -------------------------------------------------------------------------

def test_all_rules_registered_and_build_with_defaults():
    for name in ALL_RULES:
        assert name in stopping_rules
        rule = make_rule(name, {})
        assert rule.name == name
        assert rule.should_stop([]) is False
    assert make_rule("beta", None).threshold == 0.95


def test_unknown_rule_lists_known_names():
    with pytest.raises(UnknownNameError) as e:
        make_rule("nope", {})
    msg = str(e.value)
    assert "nope" in msg
    for name in ALL_RULES:
        assert name in msg


def test_unknown_param_names_rule_key_and_accepted():
    with pytest.raises(ConfigError) as e:
        make_rule("beta", {"thresh": 0.9})
    msg = str(e.value)
    assert "'beta'" in msg and "'thresh'" in msg and "threshold" in msg and "min_samples" in msg
    with pytest.raises(ConfigError) as e:
        make_rule("fixed", {"window": 3})
    assert "'fixed'" in str(e.value) and "'window'" in str(e.value) and "(none)" in str(e.value)
    with pytest.raises(ConfigError):
        make_rule("beta", [("threshold", 0.9)])


@pytest.mark.parametrize("name,key,value", [
    ("beta", "threshold", 1.5), ("beta", "threshold", 0), ("beta", "threshold", 1.0),
    ("beta", "threshold", "0.9"), ("dirichlet", "threshold", -0.1), ("entropy", "threshold", 1),
    ("esc", "window", 0), ("esc", "window", 2.5), ("esc", "window", True),
    ("confidence", "window", 0), ("confidence", "warmup", 0), ("confidence", "consensus", 0),
    ("confidence", "consensus", 1.2), ("confidence", "percentile", 0), ("confidence", "percentile", 150),
    ("confidence", "weight_by", "max"), ("dirichlet", "method", "quad"), ("beta", "min_samples", 0),
])
def test_bad_values_name_key_and_value(name, key, value):
    with pytest.raises(ConfigError) as e:
        make_rule(name, {key: value})
    assert f"{key}={value!r}" in str(e.value)


def test_consensus_one_is_allowed():
    assert make_rule("confidence", {"consensus": 1.0}).consensus == 1.0


# --- fixed ------------------------------------------------------------------------------------------

def test_fixed_never_stops():
    assert not stops(make_rule("fixed", {}), *["A"] * 100)


# --- beta -------------------------------------------------------------------------------------------

def test_beta_probability_worked_vectors():
    # Beta(a+1, 1) has CDF x^(a+1), so P(X > 0.5) = 1 - 0.5^(a+1)
    assert beta_stop_probability(4, 0) == pytest.approx(1 - 0.5 ** 5)  # 0.96875
    assert beta_stop_probability(3, 0) == pytest.approx(1 - 0.5 ** 4)  # 0.9375
    # Beta(5, 2): pdf 30 x^4 (1-x), CDF 6x^5 - 5x^6; at 0.5: 12/64 - 5/64 = 7/64 -> P = 57/64
    assert beta_stop_probability(4, 1) == pytest.approx(57 / 64)
    # Beta(6, 2): CDF 7x^6 - 6x^7; at 0.5: 14/128 - 6/128 = 1/16 -> P = 15/16
    assert beta_stop_probability(5, 1) == pytest.approx(15 / 16)
    # Beta(7, 2): CDF 8x^7 - 7x^8; at 0.5: 16/256 - 7/256 = 9/256 -> P = 247/256 = 0.9648
    assert beta_stop_probability(6, 1) == pytest.approx(247 / 256)
    # a tie is a coin flip
    assert beta_stop_probability(3, 3) == pytest.approx(0.5)


def test_beta_four_unanimous_stop_three_do_not():
    rule = make_rule("beta", {})
    assert stops(rule, "A", "A", "A", "A")       # 0.96875 >= 0.95
    assert not stops(rule, "A", "A", "A")        # 0.9375 < 0.95


def test_beta_uses_two_most_frequent():
    rule = make_rule("beta", {})
    assert not stops(rule, *"AAAAB")             # 57/64 = 0.8906
    assert not stops(rule, *"AAAAAB")            # 15/16 = 0.9375
    assert stops(rule, *"AAAAAAB")               # 247/256 = 0.9648
    assert stops(rule, *"AAAAAABC")              # still (6, 1): C is third and ignored
    assert make_rule("beta", {"threshold": 0.9}).should_stop(views(*"AAA"))  # 0.9375 >= 0.9


def test_beta_none_handling_and_min_samples():
    rule = make_rule("beta", {})
    assert not stops(rule, *[None] * 50)
    assert not stops(rule, "A", "A", "A", None, None, None)   # a = 3: Nones add nothing
    assert stops(rule, "A", None, "A", "A", None, "A")        # a = 4, b = 0
    assert not make_rule("beta", {"min_samples": 5}).should_stop(views(*"AAAA"))
    assert make_rule("beta", {"min_samples": 5}).should_stop(views(*"AAAAA"))


# --- dirichlet --------------------------------------------------------------------------------------

def test_dirichlet_exact_worked_vectors():
    # symmetric posteriors: every answer equally likely to be largest
    assert dirichlet_leader_probability([1, 1, 1]) == pytest.approx(1 / 3, abs=1e-9)
    assert dirichlet_leader_probability([2, 2]) == pytest.approx(0.5, abs=1e-9)
    # one answer: an unseen alternative with count 0 -> Beta(6, 1): 1 - 0.5^6 = 0.984375
    assert dirichlet_leader_probability([5]) == pytest.approx(1 - 0.5 ** 6)
    # two answers: exactly the beta rule, (6, 1) -> 247/256
    assert dirichlet_leader_probability([6, 1]) == pytest.approx(247 / 256)
    # alpha = (2, 1, 1); X1 ~ Gamma(2), X2, X3 ~ Exp(1):
    # P = int x e^-x (1 - e^-x)^2 dx = 1 - 2 * (1/4) + 1/9 = 11/18
    assert dirichlet_leader_probability([1, 0, 0]) == pytest.approx(11 / 18, abs=1e-9)
    # counts [2, 1, 1] -> alpha (3, 2, 2); X1 ~ Gamma(3) pdf x^2 e^-x / 2, F_2(x) = 1 - e^-x (1 + x):
    # int x^2/2 e^-x dx = 1
    # -2 int x^2/2 (1+x) e^-2x dx = -(2!/2^3 + 3!/2^4) = -(0.25 + 0.375) = -0.625
    # int x^2/2 (1+x)^2 e^-3x dx = (2/27 + 2*6/81 + 24/243) / 2 = (78/243) / 2 = 13/81
    # P = 1 - 0.625 + 13/81 = 0.5354938
    assert dirichlet_leader_probability([2, 1, 1]) == pytest.approx(1 - 0.625 + 13 / 81, abs=1e-9)


def test_dirichlet_monte_carlo_agrees_with_exact_and_is_seeded():
    draws = 40000
    for counts in ([2, 1, 1], [6, 2, 1, 1], [4, 3]):
        exact = dirichlet_leader_probability(counts)
        mc = dirichlet_leader_probability(counts, method="monte_carlo", draws=draws, seed=1)
        se = math.sqrt(exact * (1 - exact) / draws)
        assert abs(mc - exact) < 4 * se
        assert mc == dirichlet_leader_probability(counts, method="monte_carlo", draws=draws, seed=1)


def test_dirichlet_rule_clear_vs_tied():
    rule = make_rule("dirichlet", {})
    assert stops(rule, *"AAAAA")                 # [5, (0)]: 0.984375
    assert not stops(rule, *"AABB")              # [2, 2]: 0.5
    assert not stops(rule, *"AAA")               # [3, (0)]: 0.9375
    assert not stops(rule, *"AABC")              # [2, 1, 1]: 0.5355
    mc = make_rule("dirichlet", {"method": "monte_carlo", "draws": 5000, "seed": 3})
    assert stops(mc, *"AAAAA") and not stops(mc, *"AABB")


def test_dirichlet_many_answers_agrees_with_monte_carlo_decision():
    samples = views(*("A" * 9 + "BC"))
    exact = make_rule("dirichlet", {}).probability(samples)
    mc = make_rule("dirichlet", {"method": "monte_carlo", "draws": 40000}).probability(samples)
    assert abs(exact - mc) < 4 * math.sqrt(exact * (1 - exact) / 40000)
    assert exact > 0.95


def test_dirichlet_none_never_stops():
    rule = make_rule("dirichlet", {})
    assert not stops(rule, *[None] * 30)
    assert not stops(rule, "A", "A", "A", None, None)


# --- entropy ----------------------------------------------------------------------------------------

def test_normalized_entropy_worked_vectors():
    # [4] + pseudo 1 -> (0.8, 0.2): 0.8*0.321928 + 0.2*2.321928 = 0.257542 + 0.464386 = 0.721928; / log2 2
    assert normalized_entropy([4]) == pytest.approx(0.721928, abs=1e-6)
    # [3] + 1 -> (0.75, 0.25): 0.75*0.415037 + 0.25*2 = 0.811278
    assert normalized_entropy([3]) == pytest.approx(0.811278, abs=1e-6)
    # [2, 1, 1]: 0.5*1 + 2*0.25*2 = 1.5 bits; / log2 3 = 1.5 / 1.584963 = 0.946395
    assert normalized_entropy([2, 1, 1]) == pytest.approx(0.946395, abs=1e-6)
    # [8, 1, 1]: 0.8*0.321928 + 2*0.1*3.321928 = 0.921928; / 1.584963 = 0.581671
    assert normalized_entropy([8, 1, 1]) == pytest.approx(0.581671, abs=1e-6)
    assert normalized_entropy([5, 5]) == pytest.approx(1.0)
    assert normalized_entropy([]) == 1.0


def test_entropy_rule():
    rule = make_rule("entropy", {})
    assert stops(rule, *"AAAA")                  # 0.7219 <= 0.75
    assert not stops(rule, *"AAA")               # 0.8113
    assert stops(rule, *("A" * 8 + "BC"))        # 0.5817
    assert not stops(rule, *"AABC")              # 0.9464
    assert not stops(rule, *"AABB")              # 1.0
    # the pseudo-count keeps one sample from stopping: [1, 1] -> 1.0; min_samples guards the rest
    assert not make_rule("entropy", {"threshold": 0.99}).should_stop(views("A"))
    assert make_rule("entropy", {"threshold": 0.99}).should_stop(views("A", "A"))  # 0.918
    assert not make_rule("entropy", {"threshold": 0.99, "min_samples": 3}).should_stop(views("A", "A"))


def test_entropy_none_never_stops():
    rule = make_rule("entropy", {})
    assert not stops(rule, *[None] * 30)
    assert not stops(rule, "A", "A", "A", None, None, None, None)


# --- esc --------------------------------------------------------------------------------------------

def test_esc_windows():
    rule = make_rule("esc", {"window": 4})
    assert not stops(rule, *"AAA")               # no complete window yet
    assert stops(rule, *"AAAA")
    assert not stops(rule, *"AAAB")
    assert stops(rule, *"AAABCCCC")              # second window [4, 8) unanimous
    assert not stops(rule, *"ABAAAAA")           # [4, 8) incomplete
    assert stops(rule, *"AAAABCDE")              # a wave spanning two windows: ESC stopped at 4
    assert make_rule("esc", {}).window == 8


def test_esc_none_never_unanimous():
    rule = make_rule("esc", {"window": 4})
    assert not stops(rule, *[None] * 16)
    assert not stops(rule, "A", "A", "A", None, "A", "A", None, "A")


def test_esc_expected_samples_worked_vectors():
    # always the same answer: q = 1, the first window stops: E = 4
    assert esc_expected_samples([1.0], 4, 16) == pytest.approx(4.0)
    # never an answer: q = 0, draws the cap: 4 * (1 + 1 + 1 + 1) = 16
    assert esc_expected_samples([], 4, 16) == pytest.approx(16.0)
    # p = (0.5, 0.5), w = 2: q = 0.25 + 0.25 = 0.5; K = 3: 2 * (1 + 0.5 + 0.25) = 3.5
    assert esc_expected_samples([0.5, 0.5], 2, 6) == pytest.approx(3.5)
    # cap 7: one leftover sample drawn when all 3 windows failed: 3.5 + 1 * 0.5^3 = 3.625
    assert esc_expected_samples([0.5, 0.5], 2, 7) == pytest.approx(3.625)
    # p = (0.6, 0.3), w = 4: q = 0.1296 + 0.0081 = 0.1377, 1 - q = 0.8623; K = 4, r = 2:
    # 4 * (1 + 0.8623 + 0.743561 + 0.641173) + 2 * 0.552883 = 12.988137 + 1.105767 = 14.093904
    assert esc_expected_samples([0.6, 0.3], 4, 18) == pytest.approx(14.0939, abs=1e-3)
    # cap below one window: nothing can stop, E = cap
    assert esc_expected_samples([0.9], 8, 5) == pytest.approx(5.0)


def test_esc_expected_samples_bad_inputs():
    for args in (([0.5], 0, 8), ([0.5], 2, -1), ([0.7, 0.7], 2, 8), ([-0.1], 2, 8)):
        with pytest.raises(InputError):
            esc_expected_samples(*args)


def _simulate_esc(p, window, cap, runs, seed):
    """Draw answers one at a time (None with the leftover mass), ask the rule after each, record N."""
    rule = make_rule("esc", {"window": window})
    rng = np.random.default_rng(seed)
    labels = list(range(len(p))) + [None]
    probs = list(p) + [1.0 - sum(p)]
    ns = []
    for _ in range(runs):
        draws = rng.choice(len(labels), size=cap, p=probs)
        samples = []
        for i in draws:
            samples.append(SampleView(answer=labels[i]))
            if rule.should_stop(samples):
                break
        ns.append(len(samples))
    return np.asarray(ns, dtype=float)


@pytest.mark.parametrize("p,window,cap", [
    ([0.6, 0.3], 4, 18),     # cap not a multiple of the window
    ([0.8, 0.1], 3, 12),
    ([0.5, 0.25, 0.25], 2, 10),
    ([0.9], 8, 40),          # 10% unparseable
])
def test_esc_closed_form_matches_simulation(p, window, cap):
    ns = _simulate_esc(p, window, cap, runs=4000, seed=7)
    se = ns.std(ddof=1) / math.sqrt(len(ns))
    assert abs(ns.mean() - esc_expected_samples(p, window, cap)) < 4 * se + 1e-9


# --- confidence (DeepConf online) -------------------------------------------------------------------

def trace(answer, conf, weight=1.0):
    """A trace whose every token has confidence `conf`, so every group (and the lowest) is `conf`."""
    return SampleView(answer=answer, weight=weight, token_confidences=[conf] * 4)


def test_confidence_threshold_is_percentile_of_warmup_lowest_groups():
    warm = [trace("A", 1), trace("B", 2), trace("A", 3), trace("A", 4)]
    # keep top 10%: 90th percentile of [1, 2, 3, 4]; position 0.9 * 3 = 2.7 -> 3 + 0.7 * (4 - 3) = 3.7
    assert make_rule("confidence", {}).calibrate(warm) == pytest.approx(3.7)
    # keep top 50%: median 2.5
    assert make_rule("confidence", {"percentile": 50}).calibrate(warm) == pytest.approx(2.5)
    # keep top 90%: 10th percentile; position 0.3 -> 1 + 0.3 * (2 - 1) = 1.3
    assert make_rule("confidence", {"percentile": 90}).calibrate(warm) == pytest.approx(1.3)
    # only the first `warmup` traces calibrate
    assert make_rule("confidence", {}).calibrate(warm + [trace("A", 100)]) == pytest.approx(3.7)
    assert make_rule("confidence", {}).calibrate(warm[:3]) is None
    assert make_rule("confidence", {}).calibrate(views(*"AAAA")) is None  # no token confidences


def test_confidence_keep_uses_lowest_group():
    rule = make_rule("confidence", {"window": 2})
    # tokens [5, 5, 1, 5], window 2 -> groups [5, 3, 3] -> lowest 3
    t = SampleView(answer="A", token_confidences=[5, 5, 1, 5])
    assert rule.trace_confidence(t) == pytest.approx(3.0)
    assert rule.keep(t, 3.0) and rule.keep(t, 2.9) and not rule.keep(t, 3.1)
    assert rule.keep(t, None)
    assert rule.keep(SampleView(answer="A"), 10.0)  # no confidences: cannot be judged, kept


def test_confidence_vote_weights():
    # tokens [1, 3, 5], window 2: groups [2, 4] -> lowest 2; mean 9/3 = 3
    t = SampleView(answer="A", weight=0.25, token_confidences=[1, 3, 5])
    assert make_rule("confidence", {"window": 2}).vote_weight(t) == pytest.approx(2.0)
    assert make_rule("confidence", {"window": 2, "weight_by": "mean"}).vote_weight(t) == pytest.approx(3.0)
    assert make_rule("confidence", {"window": 2, "weight_by": "weight"}).vote_weight(t) == pytest.approx(0.25)
    assert make_rule("confidence", {}).vote_weight(SampleView(answer="A", weight=0.5)) == 0.5


def test_confidence_consensus_worked():
    warm = [trace("A", 1), trace("B", 2), trace("A", 3), trace("A", 4)]
    # top 50%: s = 2.5, kept A(3), A(4): share 7/7 = 1 -> stop
    assert make_rule("confidence", {"percentile": 50}).should_stop(warm)
    # top 90%: s = 1.3, kept B(2), A(3), A(4): share 7/9 = 0.778 -> continue
    high = make_rule("confidence", {"percentile": 90})
    assert high.consensus_share(warm) == (pytest.approx(7 / 9), 3)
    assert not high.should_stop(warm)
    # + A(5): A = 3 + 4 + 5 = 12, B = 2: 12/14 = 0.857 -> continue at tau 0.95, stop at 0.85
    more = warm + [trace("A", 5)]
    assert not high.should_stop(more)
    assert make_rule("confidence", {"percentile": 90, "consensus": 0.85}).should_stop(more)
    # + a low-confidence B(1) is dropped (1 < 1.3): share unchanged
    assert high.consensus_share(more + [trace("B", 1)]) == (pytest.approx(12 / 14), 4)


def test_confidence_default_needs_two_kept_votes():
    rule = make_rule("confidence", {})
    warm = [trace("A", 1), trace("B", 2), trace("A", 3), trace("A", 4)]
    # s = 3.7: only A(4) kept -> one vote, share 1 but below min_votes 2
    assert not rule.should_stop(warm)
    assert rule.should_stop(warm + [trace("A", 5)])          # A(4) + A(5): share 1
    assert not rule.should_stop(warm + [trace("B", 5)])      # 5 / 9 for B
    assert not rule.should_stop(warm + [trace("A", 2)])      # 2 < 3.7: dropped
    assert make_rule("confidence", {"min_votes": 1}).should_stop(warm)


def test_confidence_waits_for_warmup_and_ignores_none():
    rule = make_rule("confidence", {})
    assert not rule.should_stop([trace("A", 9)] * 3)         # unanimous but before warmup
    assert rule.should_stop([trace("A", 9)] * 4)             # s = 9, all kept, share 1
    assert not rule.should_stop([trace(None, 9)] * 20)
    # the only confident traces are None: the kept real vote is A(4) alone
    mixed = [trace(None, 9), trace(None, 9), trace("A", 1), trace("A", 4)]
    # s = 90th pct of [9, 9, 1, 4] = sorted [1, 4, 9, 9] at 2.7 -> 9: nothing real kept
    assert rule.calibrate(mixed) == pytest.approx(9.0)
    assert not rule.should_stop(mixed)


def test_confidence_without_token_confidences_uses_weights():
    rule = make_rule("confidence", {})
    assert rule.should_stop(views(*"AAAA"))                  # no bar, weights 1: share 1
    s = [SampleView("A", 1.0), SampleView("A", 1.0), SampleView("B", 0.05), SampleView("A", 1.0)]
    assert rule.should_stop(s)                               # 3 / 3.05 = 0.9836
    s2 = s[:3] + [SampleView("B", 0.2)]
    assert not rule.should_stop(s2)                          # 2 / 2.25 = 0.889


# --- plain answers and the fast exact Dirichlet ------------------------------------------------------

@pytest.mark.parametrize("name,params,answers,stop", [
    ("beta", {"threshold": 0.8}, ["12", "12", "12"], True),      # P(Beta(4,1) > .5) = 0.9375
    ("beta", {"threshold": 0.95}, ["12", "12", "7"], False),     # P(Beta(3,2) > .5) = 0.6875
    ("entropy", {"threshold": 0.5}, ["a", "a", "a", "b"], False),
    ("esc", {"window": 2}, ["5", "5"], True),
    ("esc", {"window": 2}, ["5", None], False),
    ("dirichlet", {"threshold": 0.9}, ["x"] * 6 + ["y", "z"], True),
    ("fixed", {}, ["1"] * 10, False),
])
def test_rules_take_plain_answers(name, params, answers, stop):
    rule = make_rule(name, params)
    assert rule.should_stop(answers) is stop
    assert rule.should_stop([SampleView(a) for a in answers]) is stop  # the same as SampleViews


def _dirichlet_by_adaptive_quadrature(counts):
    """Reference: P(p_1 largest) = integral_0^1 prod_i F_i(F_1^-1(u)) du by scipy's adaptive quad."""
    import numpy as np
    from scipy import integrate, stats

    alpha = np.asarray(counts, dtype=float) + 1
    f = lambda u: float(np.prod(stats.gamma.cdf(stats.gamma.ppf(u, alpha[0]), alpha[1:])))  # noqa: E731
    return integrate.quad(f, 0.0, 1.0, epsabs=1e-10, epsrel=1e-8, limit=200)[0]


def test_fast_exact_dirichlet_matches_adaptive_quadrature():
    import numpy as np

    rng = np.random.default_rng(0)
    cases = [[0, 0, 0], [1, 0, 0, 0], [2, 1, 1], [5, 3, 2, 1], [10, 9, 8], [40, 39, 1], [3] * 6, [0] * 12,
             [16, 8, 4, 2, 1, 1]]
    cases += [sorted(rng.integers(0, 60, size=rng.integers(3, 8)).tolist(), reverse=True) for _ in range(120)]
    worst = max(abs(dirichlet_leader_probability(c) - _dirichlet_by_adaptive_quadrature(c)) for c in cases)
    assert worst < 1e-8
    assert dirichlet_leader_probability([0, 0, 0]) == pytest.approx(1 / 3, abs=1e-12)
    assert dirichlet_leader_probability([0] * 12) == pytest.approx(1 / 12, abs=1e-12)
