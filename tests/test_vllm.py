"""OpenAIBackend, the strategies and `adaptive` commands against a real vLLM server (the `vllm_server`
session fixture in conftest.py: vLLM 0.32 CPU build, the embedded SmolLM2 in float32). Few and small:
every call asks for a handful of tokens."""
from __future__ import annotations

import json
import time

import pytest

from adaptive.answers import extractor_for
from adaptive.backends.base import Request, SamplingParams
from adaptive.backends.openai import OpenAIBackend
from adaptive.compute import Ledger
from adaptive.plan import Plan
from adaptive.strategies import Query
from adaptive.strategies.sampling import run_sampling_batch

pytestmark = pytest.mark.vllm

NUMBER = extractor_for("number")
RANDOM = "Write one random word."


@pytest.fixture(scope="module")
def model_dir():
    from adaptive.backends.hf.loading import embedded_model_dir

    return str(embedded_model_dir())


@pytest.fixture
def vllm(vllm_server, model_dir):
    """A fresh backend (nothing learned yet) with the model's tokenizer and config (token ids, FLOPs)."""
    with OpenAIBackend(vllm_server.base_url, vllm_server.model, tokenizer=model_dir, model_config=model_dir,
                       timeout_s=120) as b:
        yield b


def generated_on_server(server) -> float:
    return server.metrics()["vllm:generation_tokens_total"]


def test_n_samples_are_seeded_like_single_calls_and_usage_is_the_servers(vllm, vllm_server):
    before = generated_on_server(vllm_server)
    g = vllm.generate([Request(RANDOM, n=3)], SamplingParams(max_new_tokens=8, temperature=1.0, seed=11))
    texts = [c.text for c in g.completions[0]]
    assert len(set(texts)) == 3 and vllm.caps.n is True
    # vLLM seeds choice i with seed + i: the second choice is the single sample seeded 12
    single = vllm.generate([Request(RANDOM)], SamplingParams(max_new_tokens=8, temperature=1.0, seed=12))
    assert single.completions[0][0].text == texts[1]
    # the ledger holds what the server counted: generated tokens (its metrics), prompt tokens (its tokenizer)
    assert g.usage.generated_tokens + single.usage.generated_tokens == generated_on_server(vllm_server) - before
    from adaptive.testing.vllm_server import http_json

    _, tok = http_json(vllm_server.url + "/tokenize", timeout=30, data={
        "model": vllm_server.model, "messages": [{"role": "user", "content": RANDOM}], "add_generation_prompt": True})
    assert g.usage.prompt_tokens == tok["count"] and not g.usage.counted_locally and g.usage.samples == 3
    for c in g.completions[0]:  # ids from the local tokenizer agree with the server's counts
        assert len(c.token_ids) == c.n_tokens == len(c.token_times) and -1 not in c.token_ids


def test_waves_with_a_seed_draw_distinct_samples(vllm_server, capsys):
    """`--wave 2 --seed 1`: wave 2 used to be seeded seed + 1, which vLLM had already given wave 1's second
    sample, so samples 2 and 3 were the same text."""
    from adaptive.cli import main

    rc = main(["generate", RANDOM, "--backend", "openai", "--base-url", vllm_server.base_url, "--model",
               vllm_server.model, "--samples", "4", "--wave", "2", "--seed", "1", "--temperature", "1.0",
               "--max-new-tokens", "8", "--json"])
    assert rc == 0
    texts = [s["text"] for s in json.loads(capsys.readouterr().out)["samples"]]
    assert len(texts) == 4 and len(set(texts)) == 4, texts


def test_greedy_samples_match_the_hf_backend(vllm, hf_backend):
    """vLLM refuses n > 1 at temperature 0; the backend learns it and draws one sample per call."""
    p = SamplingParams(max_new_tokens=8, temperature=0, top_logprobs=5)
    g = vllm.generate([Request("What is 2 + 2?", n=3)], p)
    assert vllm.caps.greedy_n is False and vllm.stats.failed == 0
    ours = hf_backend.generate([Request("What is 2 + 2?")], p).completions[0][0]
    for c in g.completions[0]:  # float32 on both sides: the same tokens, logprobs within float noise
        assert c.text == ours.text and c.token_ids == ours.token_ids and c.finish_reason == ours.finish_reason
        assert max(abs(a - b) for a, b in zip(c.logprobs, ours.logprobs)) < 1e-3
        assert max(abs(a - b) for x, y in zip(c.top_logprobs, ours.top_logprobs) for a, b in zip(x, y)) < 1e-3
    r = run_sampling_batch([Query(prompt="What is 2 + 2?", extract=NUMBER, ledger=Ledger())],
                           [Plan(max_samples=2, temperature=0.0, max_new_tokens=8)], vllm)[0]
    assert r.compute.samples == 2 and len({s.text for s in r.samples}) == 1


def test_confidence_rule_and_deepconf_abort(vllm, vllm_server):
    plan = Plan(max_samples=4, wave_size=2, stopping="confidence", stopping_params={"warmup": 2, "window": 4},
                max_new_tokens=12, temperature=1.0, seed=3)
    r = run_sampling_batch([Query(prompt="What is 3 + 4?", extract=NUMBER, ledger=Ledger())], [plan], vllm)[0]
    assert 2 <= r.compute.samples <= 4 and all(s.confidence is not None and s.confidence > 0 for s in r.samples)
    assert r.compute.generated_tokens == sum(s.tokens for s in r.samples) and not r.compute.tokens_counted_locally
    # A floor no trace reaches: every sample is cut after `window` tokens, its stream closed.
    before = generated_on_server(vllm_server)
    g = vllm.generate([Request("Tell me a long story about a cat.", n=2)],
                      SamplingParams(max_new_tokens=64, temperature=1.0, seed=5, top_logprobs=5, confidence_floor=1e3,
                                     confidence_window=4))
    assert [(c.finish_reason, c.n_tokens) for c in g.completions[0]] == [("abort", 4), ("abort", 4)]
    assert g.usage.prompt_tokens > 0 and not g.usage.counted_locally
    time.sleep(0.5)  # the server's counters settle once it has seen the streams close
    served = generated_on_server(vllm_server) - before
    assert 8 <= served < 2 * 64  # the server stopped early; it may run a few tokens past the cut


def test_streaming_fills_ttft_and_tbt(vllm):
    from adaptive.generator import AdaptiveGenerator

    gen = AdaptiveGenerator(backend=vllm)
    events = list(gen.stream("Name three colors.", samples=1, max_new_tokens=12, temperature=0))
    pieces, final = events[:-1], events[-1].result
    assert len(pieces) >= 3 and "".join(e.text for e in pieces) == final.text
    c = final.compute
    assert c.ttft_s is not None and 0 < c.ttft_s < c.wall_s and c.tbt_p50_s is not None and c.tbt_p50_s > 0


def test_prefix_continuation_beam_search_and_local_completions(vllm, vllm_server, model_dir):
    plan = Plan(strategy="beam_search", verifier="confidence", search_width=2, search_beams=2, search_depth=2,
                step_delimiter=",", max_new_tokens=10, temperature=0.8, seed=2)
    from adaptive.controller import Controller
    from adaptive.policies import FixedPolicy

    ctl = Controller(vllm, FixedPolicy(name="beam", plan=plan))
    r = ctl.run([ctl.query("Name three colors, separated by commas.", NUMBER)]).results[0]
    # depth 2 continued the first steps as assistant prefixes (continue_final_message)
    assert vllm.caps.prefix is True and r.compute.model_calls >= 3 and any(s.text.count(",") for s in r.samples)
    # /v1/completions with the prompt rendered by the local chat template: the same greedy answer as chat
    with OpenAIBackend(vllm_server.base_url, vllm_server.model, tokenizer=model_dir, endpoint="completions") as comp:
        req = [Request("Complete the sentence.", prefix="Cats are")]
        p = SamplingParams(max_new_tokens=8, temperature=0)
        a, b = vllm.generate(req, p), comp.generate(req, p)
        assert a.completions[0][0].text == b.completions[0][0].text and a.prompt_tokens == b.prompt_tokens


def test_cached_prompt_tokens_reach_the_ledger(vllm):
    prompt = "Here is a list of facts about numbers. " * 30 + "What is 2 + 2?"
    first = vllm.generate([Request(prompt)], SamplingParams(max_new_tokens=2, temperature=0)).usage
    second = vllm.generate([Request(prompt)], SamplingParams(max_new_tokens=2, temperature=0)).usage
    # vLLM caches whole 128-token blocks, never the prompt's last token
    assert first.prompt_tokens == second.prompt_tokens > 256
    assert second.cached_prompt_tokens == (second.prompt_tokens - 1) // 128 * 128
    assert second.flops < first.flops


def test_eval_through_vllm(vllm_server, tmp_path):
    import yaml

    from adaptive.cli import main
    from adaptive.evaluate.records import read_records

    cfg = {"task": "arith_mixed", "limit": 2, "seed": 0, "shuffle": False, "model": vllm_server.model,
           "backend": {"kind": "openai", "base_url": vllm_server.base_url},
           "policies": [{"name": "sc2", "plan": {"max_samples": 2, "max_new_tokens": 24, "seed": 0}}]}
    path = tmp_path / "vllm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["eval", "--config", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    recs = read_records(tmp_path / "run" / "records.jsonl")
    assert len(recs) == 2 and all(r["compute"]["samples"] == 2 and r["compute"]["generated_tokens"] > 0
                                  and not r["compute"]["tokens_counted_locally"] for r in recs)
    assert recs[0]["run"]["model_id"] == vllm_server.model


def test_server_thinking_budget(vllm_server, model_dir):
    """vLLM's thinking_token_budget (the server runs with --reasoning-config <think>/</think>): one request of
    n traces per query; the server forces </think> at the budget and the model answers in the same sample."""
    from adaptive.strategies import run_strategy

    plan = Plan(strategy="thinking", max_samples=2, max_thinking_tokens=24, max_new_tokens=16, seed=1,
                temperature=0.8)
    prompt = "What is 3 + 4? Think inside <think> </think>, then give the answer."
    with OpenAIBackend(vllm_server.base_url, vllm_server.model, tokenizer=model_dir, timeout_s=120,
                       server_thinking_budget="thinking_token_budget") as b:
        before = generated_on_server(vllm_server)
        r = run_strategy(Query(prompt=prompt, extract=NUMBER, ledger=Ledger()), plan, b)
    info, c = r.extra["thinking"], r.compute
    assert r.extra["thinking_budget_by"] == "server" and len(info) == 2 == c.samples
    assert all(t["thinking_tokens"] <= 24 for t in info)
    assert "server_budget" in {t["end"] for t in info}  # this seed's trace 0 ends by EOS, trace 1 at the budget
    assert c.thinking_tokens + c.answer_tokens == c.generated_tokens == generated_on_server(vllm_server) - before
    assert not c.tokens_counted_locally
