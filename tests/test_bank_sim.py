"""Sample banks (import, save/load, from eval records) and the offline simulator."""
import json
import math

import pytest

from adaptive.bank import Bank, NotReplayable, Simulator, simulate
from adaptive.graded import GradedPrompt, GradedSample
from adaptive.errors import ConfigError
from adaptive.plan import Plan
from adaptive.policies import parse_policy
from adaptive.stopping import esc_expected_samples


def prompt(pid, answers, gold="g", tokens=10, p_hat=None, bin_=None):
    return GradedPrompt(pid, f"question {pid}", gold,
                      [GradedSample(a, float(a == gold), tokens) for a in answers], {}, p_hat, bin_)


def test_esc_mean_samples_matches_closed_form():
    # answer distribution p = (0.6, 0.3), 10% unparseable; 200 samples per prompt in exact proportions, so
    # drawing 8 without replacement is close to i.i.d.; window w = 2, cap K*w = 8.
    answers = ["a"] * 120 + ["b"] * 60 + [None] * 20
    bank = Bank([prompt(str(i), answers, gold="a") for i in range(4)])
    sim = Simulator(bank, seeds=250, seed=0)
    for w, k in ((2, 4), (3, 3)):
        r = sim.run_plan(Plan(max_samples=k * w, wave_size=w, stopping="esc", stopping_params={"window": w}))
        expected = esc_expected_samples([0.6, 0.3], w, k * w)
        assert abs(r.mean_samples - expected) < 4 * r.samples_se + 0.05, (w, r.mean_samples, expected)
        assert r.mean_tokens == pytest.approx(10 * r.mean_samples)


def test_fixed_n_accuracy_equals_hand_computed():
    # Deterministic at N = 4 (all of each prompt's samples): majority g, majority w, g against Nones
    # (None never wins), all None.
    det = Bank([prompt("a", ["g", "g", "w", None]), prompt("b", ["w", "w", "g", None]),
                prompt("c", ["g", None, None, None]), prompt("d", [None] * 4)])
    r = simulate(det, Plan(max_samples=4), seeds=5)
    assert r.accuracy == 0.5 and r.mean_samples == 4 and r.mean_tokens == 40
    # Random order: from {g, g, w, w} draw 3 without replacement: g wins in 2 of the 4 subsets -> 0.5;
    # N = 1 -> 0.5; N = 2: a 1-1 tie goes to the first drawn -> 0.5; N = 4: tie, first drawn -> 0.5.
    # From {g, g, g, w}: N = 1 -> .75, N = 2 -> 1 - P(w first) = .75, N = 3 -> 1 (g has >= 2 of any 3).
    bank = Bank([prompt("e", ["g", "g", "w", "w"]), prompt("f", ["g", "g", "g", "w"])])
    sim = Simulator(bank, seeds=600, seed=1)
    curve = sim.fixed_curve(4)
    for n, (pe, pf) in {1: (0.5, 0.75), 2: (0.5, 0.75), 3: (0.5, 1.0), 4: (0.5, 1.0)}.items():
        r = sim.run_plan(Plan(max_samples=n))
        assert r.per_prompt_acc[0] == pytest.approx(pe, abs=0.07)
        assert r.per_prompt_acc[1] == pytest.approx(pf, abs=0.07)
        assert curve.acc[:, n - 1] == pytest.approx(r.per_prompt_acc)  # fast path = replay (same seeds)
    assert r.ci[0] <= r.accuracy <= r.ci[1]


def test_stopping_and_policies_replay():
    bank = Bank([prompt(str(i), ["g"] * 8 if i % 2 else ["g", "w", "x", "g", "w", "g", "y", "g"],
                        p_hat=0.9 if i % 2 else 0.2, bin_=1 if i % 2 else 0) for i in range(6)])
    sim = Simulator(bank, seeds=20)
    beta = sim.run_plan(Plan(max_samples=8, wave_size=2, stopping="beta", stopping_params={"threshold": 0.8}))
    assert beta.mean_samples < 8
    binned = parse_policy({"schema": 1, "kind": "binned", "bins": [{"bin": 0, "plan": {"max_samples": 8}},
                                                                  {"bin": 1, "plan": {"max_samples": 1}}]}, "mem")
    r = sim.run(binned)
    assert r.mean_samples == pytest.approx((8 + 1) / 2)
    alloc = parse_policy({"schema": 1, "kind": "allocate", "budget": {"unit": "samples", "mean": 3},
                          "per_prompt_cap": 8, "curve": "best_of_b"}, "mem")
    ra = sim.run(alloc)
    assert ra.mean_samples <= 3 + 1e-9
    capped = sim.run_plan(Plan(max_samples=8, max_new_tokens=10, max_total_tokens=35))
    # as fit_wave: 3 samples of <= 10 tokens fit in 35, then one more cut to the 5 tokens left
    assert capped.mean_tokens == 35 and capped.mean_samples == 4
    with pytest.raises(NotReplayable, match="beam_search"):
        sim.run_plan(Plan(strategy="beam_search", verifier="logprob"))
    with pytest.raises(ConfigError, match="p_hat"):
        Simulator(Bank([prompt("z", ["g"])]), seeds=1).run(binned)


def test_bank_from_plain_jsonl_and_roundtrip(tmp_path):
    src = tmp_path / "plain.jsonl"
    rows = [{"id": "q1", "question": "2+2?", "gold": "4",
             "outputs": ["The answer is 4.", "I think 5", "no idea"]},
            {"question": "3+3?", "answer": "6", "answers": ["6", None], "correct": [1, 0], "tokens": [7, 9]},
            {"prompt": "1+1?", "gold": "2", "samples": [{"text": "2", "tokens": 3}, {"answer": "3", "score": 0.1}]}]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    bank = Bank.from_jsonl(src, extractor="number", grader="numeric")
    assert [p.id for p in bank.prompts] == ["q1", "row2", "row3"]
    a = bank.prompts[0].samples
    assert [s.answer for s in a] == ["4", "5", None] and [s.correct for s in a] == [1.0, 0.0, 0.0]
    assert a[0].tokens == 4  # whitespace words of the raw output
    assert [s.tokens for s in bank.prompts[1].samples] == [7, 9]
    assert [s.correct for s in bank.prompts[2].samples] == [1.0, 0.0] and bank.prompts[2].samples[1].score == 0.1
    path = bank.save(tmp_path / "bank.jsonl")
    again = Bank.load(path)
    assert again.prompts == bank.prompts and again.source["kind"] == "jsonl"
    with pytest.raises(ConfigError, match="grader"):
        Bank.from_jsonl(src, extractor="number")
    with pytest.raises(ConfigError, match="not a sample bank"):
        Bank.load(src)
    tune, held = again.split(0.5, seed=0)
    assert len(tune) + len(held) == 3 and not {p.id for p in tune.prompts} & {p.id for p in held.prompts}


def test_bank_from_eval_run_with_fake_backend(tmp_path):
    import yaml

    from adaptive.backends.fake import FakeBackend
    from adaptive.bank.build import build_bank

    cfg = {"task": "arith_mixed", "limit": 3, "seed": 0, "shuffle": False, "batch_size": 3,
           "policies": [{"name": "sc", "plan": {"max_samples": 2, "max_new_tokens": 16, "seed": 0}}]}
    cpath = tmp_path / "c.yaml"
    cpath.write_text(yaml.safe_dump(cfg))
    fake = FakeBackend(lambda p, pre, i, rng: f"The answer is {rng.choice([1, 2, 3])}.")
    bank = build_bank(cpath, tmp_path / "bank.jsonl", samples=5, run_dir=tmp_path / "run", backend=fake,
                      progress=False)
    assert len(bank) == 3 and all(len(p.samples) == 5 for p in bank.prompts)
    assert bank.source["policy"] == "bank_k5" and bank.source["plan"]["max_samples"] == 5
    assert all(s.tokens > 0 for p in bank.prompts for s in p.samples)
    loaded = Bank.load(tmp_path / "bank.jsonl")
    assert loaded.prompts[0].meta.get("difficulty") and math.isclose(
        loaded.prompts[0].pass_rate, sum(s.correct for s in loaded.prompts[0].samples) / 5)
    assert Bank.from_eval_records(tmp_path / "run").source["policy"] == "bank_k5"


# --- threshold sweeps, given orders, stop indices ----------------------------------------------------

def _random_bank(n=12, k=10, seed=0, confidences=False):
    import numpy as np

    rng = np.random.default_rng(seed)
    prompts = []
    for i in range(n):
        p = rng.dirichlet([1.0] * 4)
        answers = [None if a == 3 else "abc"[a] for a in rng.choice(4, size=k, p=p)]
        samples = [GradedSample(a, float(a == "a"), int(rng.integers(5, 30)),
                                confidence=float(rng.uniform(0.5, 3.0)) if confidences else None) for a in answers]
        prompts.append(GradedPrompt(str(i), f"q{i}", "a", samples, {}))
    return Bank(prompts)


@pytest.mark.parametrize("rule,params", [("beta", {}), ("dirichlet", {}), ("entropy", {}),
                                         ("entropy", {"min_samples": 3}),
                                         ("confidence", {"warmup": 2, "percentile": 50, "min_votes": 1})])
@pytest.mark.parametrize("wave,cap", [(1, 6), (2, 9), (3, 10), (4, 12)])  # 12 > the 10 samples a prompt has
def test_threshold_sweep_equals_replay_at_every_level(rule, params, wave, cap):
    from adaptive.bank.sweep import StatisticTable

    sim = Simulator(_random_bank(confidences=rule == "confidence"), seeds=6, seed=3)
    sweep = StatisticTable(sim).sweep(rule, params, wave, cap)
    levels = sweep.levels()
    assert len(levels) >= 2
    for level in list(levels[:: max(1, len(levels) // 8)]) + [levels[-1]]:
        fast = sweep.at(level)
        stop = sweep.stopping(level)
        r = sim.run_plan(Plan(max_samples=cap, wave_size=stop["wave_size"], stopping=rule,
                              stopping_params=stop["params"]))
        assert fast["acc"] == pytest.approx(r.per_prompt_acc, abs=1e-12)
        assert fast["samples"] == pytest.approx(r.per_prompt_samples, abs=1e-12)
        assert fast["tokens"] == pytest.approx(r.per_prompt_tokens, abs=1e-12)


def test_given_orders_and_stop_indices():
    bank = Bank([prompt("a", ["g", "g", "w", "g"]), prompt("b", ["w", "g", "w", "w"])])
    orders = [[[0, 1, 2, 3], [1, 0, 2, 3]], [[2, 0, 1, 3], [0, 2, 3, 1]]]
    sim = Simulator(bank, orders=orders)
    r = sim.run_plan(Plan(max_samples=4, wave_size=1, stopping="esc", stopping_params={"window": 2}))
    # seed 0: a draws g,g -> stops at 2; b draws g,w,w,w: windows (g,w) (w,w) -> stops at 4
    # seed 1: a draws w,g,g,g: windows (w,g) (g,g) -> 4; b draws w,w -> 2
    assert r.stops.tolist() == [[2, 4], [4, 2]]
    assert r.per_prompt_acc.tolist() == [1.0, 0.0]  # a: g wins both times; b: w wins both times
    with pytest.raises(ConfigError, match="permutation"):
        Simulator(bank, orders=[[[0, 1, 2], [0, 1, 2, 3]]])


def test_sweep_curve_equals_at_every_level():
    from adaptive.bank.sweep import StatisticTable

    sweep = StatisticTable(Simulator(_random_bank(seed=5), seeds=4, seed=1)).sweep("beta", {}, 2, 8)
    levels = sweep.levels()
    cv = sweep.curve(levels)
    for k, level in enumerate(levels):
        r = sweep.at(level)
        assert cv["accuracy"][k] == pytest.approx(r["acc"].mean(), abs=1e-12)
        assert cv["mean_samples"][k] == pytest.approx(r["samples"].mean(), abs=1e-12)


def test_bank_confidence_is_deepconf_and_mean_logprob_stays_mean_logprob(tmp_path):
    import yaml

    from adaptive.backends.fake import FakeBackend
    from adaptive.confidence import trace_confidence
    from adaptive.evaluate import load_config, run_eval

    plan = {"max_samples": 2, "max_new_tokens": 16, "seed": 0}
    cfg = {"task": "arith_mixed", "limit": 2, "seed": 0, "shuffle": False,
           "policies": [{"name": "plain", "plan": plan},
                        {"name": "conf", "plan": {**plan, "verifier": "confidence", "aggregation": "weighted"}}]}
    cpath = tmp_path / "c.yaml"
    cpath.write_text(yaml.safe_dump(cfg))
    fake = FakeBackend(["The answer is 2."], logprob=-0.5)
    run_eval(load_config(cpath), tmp_path / "run", backend=fake, progress=False, report=False)
    plain = Bank.from_eval_records(tmp_path / "run", policy="plain")
    assert all(s.mean_logprob == -0.5 and s.confidence is None for p in plain.prompts for s in p.samples)
    conf = Bank.from_eval_records(tmp_path / "run", policy="conf")
    # FakeBackend's top-2 logprobs are [-0.5, -1.5] at every position: token confidence 1.0
    want = trace_confidence([[-0.5, -1.5]] * 5)
    assert want == 1.0
    assert all(s.confidence == want and s.mean_logprob == -0.5 for p in conf.prompts for s in p.samples)
