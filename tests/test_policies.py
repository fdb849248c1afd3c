"""Policy files: schema validation, shipped defaults, binned mapping, the greedy allocator."""
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive.errors import ConfigError, InputError
from adaptive.policies import greedy_allocate, load_policy, parse_policy
from adaptive.result import Difficulty

FIXED = {"schema": 1, "kind": "fixed", "plan": {"max_samples": 4}}
BINNED = {"schema": 1, "kind": "binned", "estimator": None, "base_plan": {"max_new_tokens": 32},
          "bins": [{"max_p": 0.3, "plan": {"max_samples": 8}}, {"max_p": 1.0, "plan": {"max_samples": 1}}]}
ALLOC = {"schema": 1, "kind": "allocate", "budget": {"unit": "samples", "mean": 2}, "per_prompt_cap": 4,
         "min_per_prompt": 1, "curve": "best_of_b", "base_plan": {"max_new_tokens": 32}}


def write(tmp_path, raw, name="p.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.mark.parametrize("raw, key", [
    ({**FIXED, "plna": {}}, "plna"),                                                # unknown top-level key
    ({**FIXED, "plan": {"max_sample": 4}}, "plan.max_sample"),                      # unknown Plan field
    ({**FIXED, "plan": {"max_samples": 0}}, "plan.max_samples"),                    # bad Plan value
    ({**FIXED, "schema": 2}, "schema"),                                             # wrong schema version
    ({k: v for k, v in FIXED.items() if k != "schema"}, "schema"),                  # missing schema
    ({**FIXED, "kind": "magic"}, "kind"),
    ({**BINNED, "bins": [BINNED["bins"][1], BINNED["bins"][0]]}, "bins[1].max_p"),  # bins not sorted
    ({**BINNED, "bins": [{"max_p": 0.3, "plan": {}}, {"max_p": 0.9, "plan": {}}]}, "bins[1].max_p"),  # last != 1
    ({**BINNED, "bins": [{"bin": 1, "plan": {}}]}, "bins[0].bin"),                  # bin indices not from 0
    ({**BINNED, "bins": [{"max_p": 1.0, "plan": {"stopping": "betta"}}]}, "bins[0].plan.stopping"),
    ({**BINNED, "bins": [{"max_p": 1.0, "plan": {"max_samples": 2}, "extra": 1}]}, "bins[0].extra"),
    ({**FIXED, "stopping": {"rule": "beta", "params": {"treshold": 0.9}}}, "stopping.params"),
    ({**ALLOC, "budget": {"unit": "flops", "mean": 2}}, "budget.unit"),
    ({**ALLOC, "min_per_prompt": 5}, "min_per_prompt"),
    ({**ALLOC, "curve": "majority"}, "curve"),
])
def test_schema_errors_name_file_and_key(tmp_path, raw, key):
    path = write(tmp_path, raw)
    with pytest.raises(ConfigError) as e:
        load_policy(path)
    assert str(path) in str(e.value) and repr(key)[1:-1] in str(e.value)


def test_shipped_defaults_load_and_plan():
    diffs = [Difficulty(0.1, 0), Difficulty(0.5, 2), Difficulty(0.95, 4)]
    for name in ("fixed_sc8", "adaptive_beta", "binned_manual", "binned_default", "allocate_default"):
        pol = load_policy(name)
        plans = pol.plans(["a", "b", "c"], diffs if pol.needs_estimator else None)
        assert len(plans) == 3 and all(p.max_samples >= 1 for p in plans)
    assert load_policy("adaptive_beta").plans(["x"])[0].stopping == "beta"
    assert [p.max_samples for p in load_policy("binned_manual").plans(["a"] * 3, diffs)] == [16, 8, 1]
    assert load_policy("binned_manual").needs_estimator and not load_policy("fixed_sc8").needs_estimator
    # the tuned default maps each p_hat to the plan of the first bin whose max_p it is below
    tuned = load_policy("binned_default")
    assert tuned.estimator_path().is_file() and tuned.by == "max_p" and tuned.edges[-1] == 1.0
    for d, plan in zip(diffs, tuned.plans(["a"] * 3, diffs)):
        first = next(i for i, e in enumerate(tuned.edges) if d.p_hat < e or e == 1.0)
        assert plan == tuned.bin_plans[first]
    with pytest.raises(ConfigError):
        load_policy("no_such_policy")


def test_binned_mapping_is_half_open_like_estimator_bins():
    pol = parse_policy(BINNED, "mem")
    ps = [p.max_samples for p in pol.plans(["a"] * 4, [Difficulty(x, 0) for x in (0.0, 0.299, 0.3, 1.0)])]
    assert ps == [8, 8, 1, 1]
    assert pol.plans(["a"], [Difficulty(0.1, 0)])[0].max_new_tokens == 32  # base_plan applies
    assert pol.plans(["a"], [Difficulty(0.1, 0)], budget=3)[0].max_samples == 3  # budget = per-prompt ceiling
    with pytest.raises(InputError):
        pol.plans(["a"], None)  # needs difficulties
    by_bin = parse_policy({**BINNED, "bins": [{"bin": 0, "plan": {"max_samples": 5}},
                                              {"bin": 1, "plan": {"max_samples": 2}}]}, "mem")
    assert [p.max_samples for p in by_bin.plans(["a", "b"], [Difficulty(0.9, 1), Difficulty(0.9, 0)])] == [2, 5]
    with pytest.raises(ConfigError, match="bin 3"):
        by_bin.plans(["a"], [Difficulty(0.9, 3)])


def test_allocate_gives_more_to_higher_marginal_gain_by_hand():
    # best_of_b, p = 0, .5, .9, 1; mean 2 -> 8 samples; everyone starts at 1, 4 left to hand out.
    # marginal gains: p=.5: .25, .125, .0625, ...; p=.9: .09, .009; p=0 and p=1: 0.
    # greedy order: .5 (->2), .5 (->3), .9 (->2), .5 (->4)  => [1, 4, 2, 1]
    pol = parse_policy({**ALLOC, "per_prompt_cap": 16}, "mem")
    diffs = [Difficulty(p, 0) for p in (0.0, 0.5, 0.9, 1.0)]
    batch = pol.plan_batch(["a"] * 4, diffs)
    assert [p.max_samples for p in batch.plans] == [1, 4, 2, 1]
    rep = batch.report
    assert rep.spent == 8 and rep.total == 8
    assert [round(r.expected_gain, 6) for r in rep.rows] == [0.0, 0.4375, 0.09, 0.0]
    assert rep.rows[1].expected_success == pytest.approx(1 - 0.5 ** 4)
    # a larger batch budget passed at call time
    assert sum(p.max_samples for p in pol.plans(["a"] * 4, diffs, budget=3)) <= 12
    # tokens: 2 samples' worth of tokens per prompt at 32 tokens/sample -> same allocation
    tok = parse_policy({**ALLOC, "per_prompt_cap": 16, "budget": {"unit": "tokens", "mean": 64}}, "mem")
    assert [p.max_samples for p in tok.plans(["a"] * 4, diffs)] == [1, 4, 2, 1]


def test_allocate_majority_curve_and_stopping_overlay():
    raw = {**ALLOC, "curve": {"kind": "majority", "acc": {0: [0.2, 0.2, 0.5, 0.5], 1: [0.9, 0.9, 0.95, 0.95]}},
           "stopping": {"rule": "beta", "params": {"threshold": 0.9}, "wave_size": 2}}
    pol = parse_policy(raw, "mem")
    plans = pol.plans(["a", "b"], [Difficulty(0.1, 0), Difficulty(0.9, 1)])
    # the flat step 1->2 is crossed by the two-sample step 1->3: bin 0 gains .3 for 2 samples
    assert [p.max_samples for p in plans] == [3, 1]
    assert all(p.stopping == "beta" and p.wave_size == 2 for p in plans)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.integers(1, 12)), min_size=1, max_size=25),
       st.floats(0, 6), st.integers(1, 3), st.floats(0.5, 3))
def test_allocator_never_exceeds_budget_or_caps(items, extra, minimum, cost):
    caps = [max(minimum, c) for _, c in items]
    values = [[1 - (1 - p) ** b for b in range(cap + 1)] for (p, _), cap in zip(items, caps)]
    total = len(items) * minimum * cost + extra * len(items) * cost
    alloc = greedy_allocate(values, total, cost, minimum)
    assert sum(alloc) * cost <= total + 1e-6
    assert all(minimum <= b <= cap for b, cap in zip(alloc, caps))


def test_allocator_rejects_budget_below_minimums():
    with pytest.raises(InputError):
        greedy_allocate([[0, 0.5, 0.7]] * 3, total=2, minimum=1)


def test_index_policy_picks_member_by_budget(tmp_path):
    write(tmp_path, {**FIXED, "plan": {"max_samples": 1}}, "t_b1.yaml")
    write(tmp_path, {**FIXED, "plan": {"max_samples": 4}}, "t_b4.yaml")
    idx = write(tmp_path, {"schema": 1, "kind": "index", "default_budget": 4,
                           "budgets": {1: "t_b1.yaml", 4: "t_b4.yaml"}}, "t.yaml")
    pol = load_policy(idx)
    assert pol.plans(["a"])[0].max_samples == 4
    assert pol.plans(["a"], budget=2)[0].max_samples == 1
    assert pol.plans(["a"], budget=100)[0].max_samples == 4
