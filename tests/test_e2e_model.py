"""Every strategy end to end on the embedded model: the Result's ledger equals what the backend counted."""
import pytest

from adaptive import Plan
from adaptive.generator import AdaptiveGenerator

pytestmark = pytest.mark.model

PROMPT = "What is 4 + 3? Answer with a number."

PLANS = {
    "self_consistency": Plan(max_samples=4, wave_size=2, stopping="beta", max_new_tokens=16, seed=0),
    "weighted_confidence": Plan(max_samples=3, stopping="fixed", aggregation="weighted", verifier="confidence",
                                max_new_tokens=16, seed=0),
    "best_of_n": Plan(strategy="best_of_n", max_samples=3, verifier="logprob", max_new_tokens=16, seed=0),
    "deepconf": Plan(max_samples=6, wave_size=2, stopping="confidence",
                     stopping_params={"warmup": 2, "window": 4}, max_new_tokens=16, seed=0),
    "beam_search": Plan(strategy="beam_search", verifier="logprob", search_width=2, search_beams=2, search_depth=2,
                        max_new_tokens=12, seed=0),
    "dvts": Plan(strategy="dvts", verifier="judge", search_width=2, search_beams=2, search_depth=2,
                 max_new_tokens=12, seed=0),
    "refine": Plan(strategy="refine", refine_steps=1, max_new_tokens=16, seed=0),
}


@pytest.mark.parametrize("name", list(PLANS))
def test_strategy_ledger_matches_backend(hf_backend, totals_delta, name):
    plan = PLANS[name]
    result = AdaptiveGenerator(backend=hf_backend, plan=plan).generate(PROMPT)
    spent = totals_delta()
    c = result.compute
    assert c.prompt_tokens == spent["prompt_tokens"]
    assert c.generated_tokens == spent["generated_tokens"]
    assert c.samples == spent["samples"]
    assert c.forward_passes == spent["forward_passes"]
    assert c.model_calls == spent["model_calls"]
    assert c.generated_tokens >= 1 and result.stop_reason
    assert c.wall_s >= c.model_s > 0 and c.flops > 0
    if plan.strategy in ("self_consistency", "best_of_n"):
        assert c.samples == len(result.samples) <= plan.max_samples
    if result.text:
        assert c.ttft_s is not None and 0 <= c.fluidity <= 1


def test_stream_yields_tokens_then_result(hf_backend):
    gen = AdaptiveGenerator(backend=hf_backend, plan=Plan(max_samples=1, max_new_tokens=12, seed=1))
    events = list(gen.stream(PROMPT))
    final = events[-1].result
    assert final is not None
    assert "".join(e.text for e in events[:-1]) == final.text
    assert len(events) >= 3  # streamed piece by piece, not in one chunk
    assert final.compute.samples == 1 and final.compute.ttft_s < final.compute.wall_s


def test_batch_of_prompts_shares_calls(hf_backend, totals_delta):
    gen = AdaptiveGenerator(backend=hf_backend, plan=Plan(max_samples=2, max_new_tokens=8, seed=0))
    results = gen.generate(["What is 1 + 1?", "What is 2 + 2?", "What is 3 + 3?"])
    spent = totals_delta()
    assert len(results) == 3
    assert spent["model_calls"] == 1  # one batched call served all three prompts
    assert sum(r.compute.generated_tokens for r in results) == spent["generated_tokens"]
    assert sum(r.compute.prompt_tokens for r in results) == spent["prompt_tokens"]


def test_probe_estimator_pass_is_reused_by_the_generation_after_it(hf_backend, totals_delta):
    """A policy with a probe: the estimator's prompt pass is the only prompt forward; generation decodes from
    the cached K/V and logits (0 prompt tokens computed), so FLOPs count the prompt once."""
    from adaptive.estimators import ProbeEstimator
    from adaptive.policies import parse_policy

    prompts = ["What is 4 + 3? Answer with a number.", "Name a planet.", "What is 12 * 3?", "Spell cat backwards."]
    probe = ProbeEstimator(hf_backend).fit(prompts, [0.9, 0.2, 0.5, 0.1])  # made-up labels: cost is what counts
    hf_backend.prefix_cache.clear()
    policy = parse_policy({"schema": 1, "kind": "fixed", "name": "t",
                           "plan": {"max_samples": 2, "max_new_tokens": 8, "seed": 0}})
    before = totals_delta()
    results = AdaptiveGenerator(backend=hf_backend, policy=policy, estimator=probe).generate(prompts)
    spent = {k: v - before[k] for k, v in totals_delta().items()}
    assert all(r.difficulty is not None and r.difficulty.estimator == "probe" for r in results)
    longest = max(s.tokens for r in results for s in r.samples)
    assert spent["forward_passes"] == 1 + (longest - 1)  # the prompt pass, then decode steps only
    for r in results:
        assert r.compute.cached_prompt_tokens * 2 == r.compute.prompt_tokens  # pass + generation's cached copy
