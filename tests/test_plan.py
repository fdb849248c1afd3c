"""Plan validation: every bad field raises PlanError naming the field and the value."""
import dataclasses

import pytest

from adaptive.errors import PlanError
from adaptive.plan import AGGREGATIONS, Plan
from adaptive.registry import extractors, stopping_rules, strategies, verifiers


def _raises(field, value, **kw):
    with pytest.raises(PlanError) as e:
        Plan(**kw)
    err = e.value
    msg = str(err)
    assert field in msg, msg
    assert repr(value) in msg, msg
    assert err.field == field
    assert err.value == value or (err.value != err.value and value != value)
    return msg


def _strategy_for(field: str) -> dict:
    """A strategy that reads `field` (search and refine fields do not apply to the default one)."""
    if field in ("search_depth", "search_width", "search_beams", "step_delimiter"):
        return {"strategy": "beam_search", "verifier": "logprob"}
    if field == "refine_steps":
        return {"strategy": "refine"}
    return {}


# --- defaults --------------------------------------------------------------------------------------

def test_default_plan_is_valid():
    p = Plan()
    assert p.strategy == "self_consistency"
    assert p.max_samples == 1
    assert p.aggregation in AGGREGATIONS


def test_plan_is_frozen():
    p = Plan()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.max_samples = 3  # type: ignore[misc]


# --- numeric ranges --------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [
    ("max_samples", 0),
    ("max_samples", -3),
    ("wave_size", -1),
    ("temperature", -0.1),
    ("top_p", 0),
    ("top_p", 0.0),
    ("top_p", 1.5),
    ("top_p", -0.2),
    ("max_new_tokens", 0),
    ("search_depth", 0),
    ("search_width", 0),
    ("search_beams", 0),
    ("refine_steps", -1),
    ("max_total_tokens", 0),
    ("max_total_tokens", -5),
    ("seed", -1),
    ("top_k", -1),
])
def test_out_of_range_value_names_field_and_value(field, value):
    _raises(field, value, **{field: value})


@pytest.mark.parametrize("field,value", [
    ("max_samples", "4"),
    ("max_samples", True),
    ("max_samples", 4.0),
    ("wave_size", False),
    ("max_new_tokens", "256"),
    ("search_depth", 2.5),
    ("refine_steps", None),
    ("max_total_tokens", "100"),
    ("max_total_tokens", True),
    ("seed", "1"),
    ("seed", True),
    ("top_k", 1.0),
    ("temperature", "0.7"),
    ("temperature", True),
    ("top_p", "1"),
    ("top_p", None),
])
def test_wrong_type_names_field_and_value(field, value):
    _raises(field, value, **{field: value})


def test_nan_float_rejected():
    with pytest.raises(PlanError) as e:
        Plan(temperature=float("nan"))
    assert "temperature" in str(e.value) and "nan" in str(e.value)


@pytest.mark.parametrize("kw", [
    dict(max_samples=1), dict(wave_size=0), dict(temperature=0.0), dict(top_p=1.0), dict(top_p=1e-6),
    dict(max_new_tokens=1), dict(search_depth=1), dict(refine_steps=0), dict(max_total_tokens=1),
    dict(max_total_tokens=None), dict(seed=0), dict(seed=None), dict(top_k=0),
])
def test_boundary_values_accepted(kw):
    p = Plan(**_strategy_for(*kw), **kw)
    for k, v in kw.items():
        assert getattr(p, k) == v


# --- aggregation / verifier ------------------------------------------------------------------------

def test_unknown_aggregation():
    msg = _raises("aggregation", "avg", aggregation="avg")
    for a in AGGREGATIONS:
        assert a in msg


@pytest.mark.parametrize("agg", ["weighted", "best"])
def test_weighted_and_best_need_a_verifier(agg):
    with pytest.raises(PlanError) as e:
        Plan(aggregation=agg)
    assert e.value.field == "verifier"
    assert agg in str(e.value)
    assert Plan(aggregation=agg, verifier="logprob").verifier == "logprob"


def test_empty_string_verifier_does_not_satisfy_weighted():
    with pytest.raises(PlanError):
        Plan(aggregation="weighted", verifier="")


# --- names -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,registry", [
    ("strategy", strategies),
    ("stopping", stopping_rules),
    ("verifier", verifiers),
    ("extractor", extractors),
])
def test_unknown_name_lists_known_names(field, registry):
    plan = Plan(**{field: "no_such_thing"})  # construction is pure: names are checked as a separate step
    with pytest.raises(PlanError) as e:
        plan.check_names()
    msg = str(e.value)
    assert e.value.field == field
    assert field in msg and "'no_such_thing'" in msg
    names = registry.names()
    assert names, "registry should not be empty after Plan validation loaded the builtins"
    for n in names:
        assert n in msg


def test_known_names_accepted():
    Plan(strategy="beam_search", verifier="logprob", extractor="number").check_names()
    Plan(strategy="dvts", verifier="logprob", extractor="boxed").check_names()
    Plan(strategy="refine", extractor="auto").check_names()
    Plan(stopping="esc", max_samples=4).check_names()
    Plan(stopping="dirichlet", max_samples=4, extractor="text").check_names()
    for s in ("self_consistency", "best_of_n", "beam_search", "dvts", "refine"):
        assert s in strategies
    for s in ("fixed", "beta", "dirichlet", "entropy", "esc", "confidence"):
        assert s in stopping_rules


@pytest.mark.parametrize("field", ["step_delimiter"])
@pytest.mark.parametrize("value", ["", 3, None])
def test_step_delimiter_must_be_nonempty_string(field, value):
    _raises(field, value, **{field: value})


@pytest.mark.parametrize("field", ["stopping_params", "verifier_params"])
def test_params_must_be_mappings(field):
    _raises(field, [("a", 1)], **{field: [("a", 1)]})


# --- from_dict / to_dict / replace -----------------------------------------------------------------

def test_from_dict_unknown_key_named():
    with pytest.raises(PlanError) as e:
        Plan.from_dict({"max_samples": 4, "max_sample": 5})
    msg = str(e.value)
    assert e.value.field == "max_sample"
    assert "max_sample" in msg and "5" in msg
    assert "max_samples" in msg  # lists the known fields


def test_from_dict_validates_values():
    with pytest.raises(PlanError) as e:
        Plan.from_dict({"max_samples": 0})
    assert "max_samples" in str(e.value) and "0" in str(e.value)


def test_round_trip_dict():
    p = Plan(strategy="beam_search", verifier="logprob", search_depth=3, search_width=2, seed=7,
             stopping_params={}, max_total_tokens=99)
    assert Plan.from_dict(p.to_dict()) == p


def test_replace_revalidates_and_leaves_original():
    p = Plan(max_samples=4)
    q = p.replace(max_samples=9, wave_size=3)
    assert (q.max_samples, q.wave_size) == (9, 3)
    assert p.max_samples == 4 and p.wave_size == 0
    with pytest.raises(PlanError) as e:
        p.replace(max_samples=0)
    assert "max_samples" in str(e.value)
    with pytest.raises(PlanError) as e:
        p.replace(top_p=1.5)
    assert "top_p" in str(e.value) and "1.5" in str(e.value)
    with pytest.raises(PlanError):
        p.replace(aggregation="weighted")
    with pytest.raises(PlanError):
        p.replace(strategy="nope").check_names()


# --- effective_wave --------------------------------------------------------------------------------

@pytest.mark.parametrize("max_samples,wave_size,expected", [
    (8, 0, 8),
    (8, 2, 2),
    (8, 8, 8),
    (3, 5, 3),
    (1, 0, 1),
    (1, 4, 1),
    (12, 5, 5),
])
def test_effective_wave(max_samples, wave_size, expected):
    assert Plan(max_samples=max_samples, wave_size=wave_size).effective_wave == expected


def test_typo_in_stopping_params_is_a_plan_error():
    with pytest.raises(PlanError, match="stopping_params.*windw"):
        Plan(stopping="esc", stopping_params={"windw": 4}).check_names()


# --- cross-field rules: caught at construction, naming the field --------------------------------

@pytest.mark.parametrize("strategy", ["best_of_n", "beam_search", "dvts"])
def test_strategy_that_scores_needs_a_verifier(strategy):
    with pytest.raises(PlanError) as e:
        Plan(strategy=strategy)
    assert e.value.field == "verifier" and strategy in str(e.value)
    assert Plan(strategy=strategy, verifier="logprob").verifier == "logprob"


@pytest.mark.parametrize("kw,field", [
    (dict(strategy="refine", stopping="beta"), "stopping"),
    (dict(strategy="refine", max_samples=4), "max_samples"),
    (dict(strategy="refine", verifier="logprob"), "verifier"),
    (dict(strategy="beam_search", verifier="logprob", wave_size=2), "wave_size"),
    (dict(strategy="beam_search", verifier="logprob", refine_steps=2), "refine_steps"),
    (dict(strategy="self_consistency", search_width=8), "search_width"),
    (dict(strategy="self_consistency", refine_steps=1), "refine_steps"),
    (dict(strategy="best_of_n", verifier="logprob", step_delimiter="\n"), "step_delimiter"),
    (dict(strategy="best_of_n", verifier="logprob", aggregation="weighted"), "aggregation"),
    (dict(verifier_params={"mode": "tail"}), "verifier_params"),
])
def test_field_that_does_not_apply_is_an_error(kw, field):
    with pytest.raises(PlanError) as e:
        Plan(**kw)
    assert e.value.field == field, str(e.value)
    assert f"Plan.{field}=" in str(e.value)


def test_with_strategy_resets_fields_the_new_strategy_does_not_read():
    p = Plan(max_samples=8, stopping="beta", wave_size=2, temperature=0.3)
    q = p.with_strategy("beam_search", verifier="logprob", search_depth=3)
    assert (q.strategy, q.max_samples, q.stopping, q.wave_size) == ("beam_search", 1, "fixed", 0)
    assert (q.temperature, q.search_depth) == (0.3, 3)
    assert q.with_strategy("self_consistency", max_samples=4).max_samples == 4


def test_a_plan_imports_no_component():
    """Plan() is pure: no registry lookups, no scipy / scikit-learn / torch / reward-model code."""
    import subprocess
    import sys

    code = ("import sys, adaptive; adaptive.Plan(); adaptive.Plan(strategy='beam_search', verifier='prm'); "
            "bad = [m for m in ('scipy', 'sklearn', 'torch', 'transformers', 'matplotlib', 'numpy', "
            "'adaptive.registry', 'adaptive.verifiers', 'adaptive.stopping') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
