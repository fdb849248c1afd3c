"""The policies shipped for the embedded model work out of the box: they load their shipped estimator
(no pickle), score each prompt and say why they chose its plan."""
import pytest

from adaptive.estimators import load_estimator
from adaptive.policies import load_policy

pytestmark = pytest.mark.model


@pytest.mark.parametrize("name", ["binned_default", "allocate_default"])
def test_shipped_difficulty_policy_runs_out_of_the_box(name, hf_backend):
    from adaptive.generator import AdaptiveGenerator

    policy = load_policy(name)
    assert policy.needs_estimator and policy.estimator_path().is_file()
    est = load_estimator(policy.estimator_path(), hf_backend)  # the model-identity check passes
    assert est.kind == "probe" and est.model_id == hf_backend.model_id
    gen = AdaptiveGenerator(backend=hf_backend, policy=name)
    results = gen.generate(["What is 3 + 4? Answer with a number.", "How many legs do 2 cats have?"], budget=4)
    for r in results:
        assert r.difficulty is not None and r.difficulty.estimator == "probe" and 0 <= r.difficulty.p_hat <= 1
        assert "p_hat" in r.decision["reason"] and r.decision["plan"] == r.plan.summary()
        assert 1 <= r.compute.samples <= max(r.plan.max_samples, 1)
