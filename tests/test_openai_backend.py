"""OpenAIBackend against a local fake OpenAI-compatible server (adaptive/testing/fake_openai.py), and one
test against a real `transformers serve` on the embedded model (marked `model`)."""
from __future__ import annotations

import asyncio
import os
import time

import pytest

from adaptive.answers import extractor_for
from adaptive.backends.base import Request, SamplingParams
from adaptive.backends.factory import make_backend
from adaptive.backends.openai import OpenAIBackend
from adaptive.compute import Ledger
from adaptive.errors import AdaptiveError, CapabilityError, ConfigError
from adaptive.plan import Plan
from adaptive.strategies import Query
from adaptive.strategies.sampling import run_sampling_batch
from adaptive.testing.fake_openai import FakeOpenAIServer

NUMBER = extractor_for("number")


def backend(srv, **kw) -> OpenAIBackend:
    kw.setdefault("backoff_base_s", 0.01)
    kw.setdefault("timeout_s", 5)
    return OpenAIBackend(srv.url, "fake-model", **kw)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from adaptive.backends.hf.loading import embedded_model_dir

    return AutoTokenizer.from_pretrained(embedded_model_dir())


def tasks(k=3):
    return [Query(prompt=f"What is {i} + {i + 2}?", extract=NUMBER, ledger=Ledger()) for i in range(k)]


# --- strategies run unchanged ----------------------------------------------------------------------

def test_sampling_and_beta_stopping_through_server():
    with FakeOpenAIServer() as srv, backend(srv) as b:
        ts = tasks(3)
        plans = [Plan(max_samples=8, wave_size=2, stopping="beta"), Plan(max_samples=3, wave_size=3),
                 Plan(max_samples=4, wave_size=2, stopping="beta", seed=7)]
        results = run_sampling_batch(ts, plans, b)
        assert [r.answer for r in results] == [str(2 * i + 2) for i in range(3)]
        assert results[0].stop_reason == "stopping:beta" and results[0].compute.samples < 8
        assert results[1].compute.samples == 3 and results[1].stop_reason == "max_samples"
        for r in results:
            assert r.compute.generated_tokens == sum(s.tokens for s in r.samples)
            assert r.compute.ttft_s is not None and r.compute.ttft_s >= 0
            assert not r.compute.tokens_counted_locally
        # token counts come from the server's usage, nothing lost or double counted
        assert sum(r.compute.generated_tokens for r in results) == b.totals.generated_tokens == srv.completion_tokens_sent
        assert sum(r.compute.samples for r in results) == b.totals.samples
        assert b.caps.n is True and all(body.get("stream") for body in srv.requests)
        assert all(body["stream_options"] == {"include_usage": True} for body in srv.requests)


def test_completion_fields_and_timestamps():
    with FakeOpenAIServer(tokens_per_delta=2) as srv, backend(srv) as b:
        g = b.generate([Request("What is 1 + 2?", n=2)], SamplingParams(max_new_tokens=20, top_logprobs=3, seed=1))
        for c in g.completions[0]:
            assert c.text == "The answer is 3." and c.finish_reason == "eos"
            assert c.n_tokens == 5 == len(c.token_times)          # 4 words + EOS (server usage)
            assert len(c.logprobs) == 4 and all(len(t) == 3 for t in c.top_logprobs)
            assert c.token_times == sorted(c.token_times) and c.token_times[0] >= g.usage.started
            assert c.token_times[0] == c.token_times[1]           # one delta carried two tokens
        body = srv.requests[0]
        assert body["n"] == 2 and body["logprobs"] is True and body["top_logprobs"] == 3 and body["seed"] == 1
        assert "top_k" not in body
        assert {"logprobs", "top_logprobs", "timestamps", "prefix"} <= b.capabilities()
        assert "hidden_states" not in b.capabilities()
        b.generate([Request("What is 1 + 2?")], SamplingParams(top_k=5, max_new_tokens=4))
        assert srv.requests[-1]["top_k"] == 5 and srv.requests[-1]["max_tokens"] == 4


@pytest.mark.parametrize("style", ["vllm", "keep"])
def test_stop_strings_and_finish_reasons(style):
    script = lambda prompt, prefix, i, seed: "Step one.\n\nStep two is long and goes on."  # noqa: E731
    with FakeOpenAIServer(script, stop_style=style) as srv, backend(srv) as b:
        g = b.generate([Request("go")], SamplingParams(stop=("\n\n",)))
        c = g.completions[0][0]
        assert (c.text, c.finish_reason, c.stop_string) == ("Step one.", "stop", "\n\n")
        assert srv.requests[0]["stop"] == ["\n\n"]
        g = b.generate([Request("go")], SamplingParams(max_new_tokens=3))
        c = g.completions[0][0]
        assert c.finish_reason == "length" and c.n_tokens == 3


def test_completions_endpoint_raw_prompt():
    with FakeOpenAIServer() as srv, backend(srv) as b:
        g = b.generate([Request("What is 4 + 4?", n=2, raw=True)], SamplingParams(top_logprobs=2))
        assert [c.text for c in g.completions[0]] == ["The answer is 8."] * 2
        assert all(len(t) == 2 for t in g.completions[0][0].top_logprobs)
        assert srv.paths == ["/v1/completions"] and srv.requests[0]["logprobs"] == 2


# --- usage ------------------------------------------------------------------------------------------

def test_counted_locally_when_usage_omitted(tokenizer):
    with FakeOpenAIServer(usage=False) as srv, backend(srv, tokenizer=tokenizer) as b:
        g = b.generate([Request("What is 2 + 2?", n=2)], SamplingParams())
        assert g.usage.counted_locally and all(u.counted_locally for u in g.per_request)
        want = len(tokenizer("The answer is 4.", add_special_tokens=False).input_ids) + 1  # + EOS
        assert [c.n_tokens for c in g.completions[0]] == [want, want]
        assert g.completions[0][0].token_ids[-1] == tokenizer.eos_token_id     # real ids when counts agree
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}],
                                                 add_generation_prompt=True, tokenize=False)
        assert g.prompt_tokens == [len(tokenizer(rendered, add_special_tokens=False).input_ids)]
        r = run_sampling_batch(tasks(1), [Plan(max_samples=2)], b)[0]
        assert r.compute.tokens_counted_locally and r.answer == "2"


def test_no_usage_and_no_tokenizer_is_a_clear_error():
    with FakeOpenAIServer(usage=False) as srv, backend(srv) as b:
        with pytest.raises(AdaptiveError, match="no token usage.*tokenizer="):
            b.generate([Request("hi")], SamplingParams())


# --- capabilities -----------------------------------------------------------------------------------

def test_missing_top_logprobs_raises_capability_error():
    with FakeOpenAIServer(support_logprobs=False) as srv, backend(srv) as b:
        g = b.generate([Request("What is 1 + 1?")], SamplingParams())  # plain call: fine, no logprobs
        assert g.completions[0][0].text == "The answer is 2." and g.completions[0][0].logprobs == []
        with pytest.raises(CapabilityError, match="top_logprobs"):
            b.generate([Request("What is 1 + 1?")], SamplingParams(top_logprobs=5))
        assert "top_logprobs" not in b.capabilities()
        with pytest.raises(CapabilityError, match="top_logprobs"):  # remembered: refused before any call
            b.generate([Request("What is 1 + 1?")], SamplingParams(top_logprobs=5))
        with pytest.raises(CapabilityError, match="confidence|top_logprobs"):
            run_sampling_batch(tasks(1), [Plan(max_samples=2, stopping="confidence")], b)


def test_n_ignored_falls_back_to_concurrent_requests_with_distinct_seeds():
    seeds = []

    def script(prompt, prefix, i, seed):
        seeds.append(seed)
        return f"The answer is {seed % 3}."

    with FakeOpenAIServer(script, support_n=False) as srv, backend(srv) as b:
        g = b.generate([Request("q", n=4)], SamplingParams(seed=11))
        assert len(g.completions[0]) == 4 and b.caps.n is False
        assert srv.requests[0]["n"] == 4 and all("n" not in r for r in srv.requests[1:])
        assert len(set(seeds)) == 4  # the first call's seed plus three derived ones
        g = b.generate([Request("q", n=3)], SamplingParams(seed=12))
        assert len(g.completions[0]) == 3 and all("n" not in r for r in srv.requests[5:])
        assert g.per_request[0].samples == 3


def test_prefix_continuation_and_fallbacks(tokenizer):
    with FakeOpenAIServer() as srv, backend(srv) as b:
        b.generate([Request("What is 3 + 3?", prefix="Let me think.")], SamplingParams())
        body = srv.requests[-1]
        assert body["continue_final_message"] is True and body["messages"][-1] == {"role": "assistant",
                                                                                   "content": "Let me think."}
    with FakeOpenAIServer(support_prefix=False) as srv:
        with backend(srv) as b:
            with pytest.raises(CapabilityError, match="prefix"):
                b.generate([Request("What is 3 + 3?", prefix="Let me think.")], SamplingParams())
        with backend(srv, tokenizer=tokenizer) as b:
            g = b.generate([Request("What is 3 + 3?", prefix="Let me think.")], SamplingParams())
            assert g.completions[0][0].text == "The answer is 6."
            assert srv.paths[-1] == "/v1/completions" and srv.requests[-1]["prompt"].endswith("Let me think.")
            assert b.caps.prefix is False


def test_strict_server_refusals_are_learned_or_named():
    with FakeOpenAIServer(strict=True) as srv, backend(srv) as b:
        with pytest.raises(CapabilityError, match="top_k"):
            b.generate([Request("What is 1 + 5?")], SamplingParams(top_k=4))
        with pytest.raises(CapabilityError, match="ignore_eos"):
            b.generate([Request("What is 1 + 5?")], SamplingParams(ignore_eos=True))
        with pytest.raises(CapabilityError, match="prefix"):
            b.generate([Request("What is 1 + 5?", prefix="So")], SamplingParams())
        assert b.stats.failed >= 2


def test_prompt_pass_and_hidden_states_need_hf():
    b = OpenAIBackend("http://127.0.0.1:9", "m")
    with pytest.raises(CapabilityError, match="HF backend"):
        b.prompt_pass(["hi"])
    with pytest.raises(CapabilityError, match="hidden"):
        b.generate([Request("hi")], SamplingParams(), hidden_states=True)


def test_generate_from_a_running_event_loop():
    with FakeOpenAIServer() as srv, backend(srv) as b:
        async def notebook_cell():  # Jupyter runs cells inside a loop; generate() still works
            return b.generate([Request("What is 2 + 7?")], SamplingParams())

        g = asyncio.run(notebook_cell())
        assert g.completions[0][0].text == "The answer is 9."


def test_factory_builds_openai_backend():
    with FakeOpenAIServer() as srv:
        with pytest.raises(ConfigError, match="needs model"):
            make_backend({"kind": "openai", "base_url": srv.url})
        b = make_backend({"kind": "openai", "base_url": srv.url.removesuffix("/v1"), "max_in_flight": 2},
                         model="fake-model")
        assert isinstance(b, OpenAIBackend) and b.max_in_flight == 2 and b.base_url == srv.url
        assert b.generate([Request("What is 1 + 1?")], SamplingParams()).completions[0][0].text == "The answer is 2."
        b.close()
    with pytest.raises(ConfigError, match="base_url"):
        env = os.environ.pop("OPENAI_BASE_URL", None)
        try:
            make_backend({"kind": "openai", "model": "m"})
        finally:
            if env is not None:
                os.environ["OPENAI_BASE_URL"] = env
    with pytest.raises(ConfigError, match="unknown key"):
        make_backend({"kind": "openai", "base_url": "http://x", "model": "m", "bogus": 1})


# --- faults, retries, concurrency -------------------------------------------------------------------

N_FAULTY = 10


@pytest.mark.parametrize("kind", ["drop", "hang", "500", "429", "cut"])
def test_faults_are_retried_without_loss_or_duplication(kind):
    faults = {"kind": kind, "times": 2}
    with FakeOpenAIServer(faults=faults, hang_s=1.0, token_delay_s=0.002) as srv, \
            backend(srv, timeout_s=0.3 if kind == "hang" else 5, max_retries=4) as b:
        reqs = [Request(f"What is {i} + 100?", n=1 + i % 2) for i in range(N_FAULTY)]
        g = b.generate(reqs, SamplingParams(top_logprobs=2))
        for i, comps in enumerate(g.completions):
            assert len(comps) == reqs[i].n
            assert all(c.text == f"The answer is {i + 100}." and c.finish_reason == "eos" for c in comps)
            assert all(c.n_tokens == 5 and len(c.logprobs) == 4 for c in comps)  # no partial tokens mixed in
        s = b.stats
        assert (s.requests, s.attempted, s.retried, s.failed) == (N_FAULTY, 3 * N_FAULTY, 2 * N_FAULTY, 0)
        assert len(srv.completed) == N_FAULTY        # one complete answer per request: none lost, none twice
        assert g.usage.generated_tokens == srv.completion_tokens_sent
        if kind == "cut":
            assert s.discarded_samples == 2 * sum(r.n for r in reqs)


def test_permanent_failure_gives_clear_error_after_max_retries():
    with FakeOpenAIServer(faults={"kind": "500", "times": None}) as srv, backend(srv, max_retries=3) as b:
        with pytest.raises(AdaptiveError) as e:
            b.generate([Request("What is 1 + 1?")], SamplingParams())
        msg = str(e.value)
        assert srv.url + "/chat/completions" in msg and "500" in msg and "4 attempts" in msg
        assert (b.stats.attempted, b.stats.retried, b.stats.failed) == (4, 3, 1)
        assert len(srv.requests) == 4


def test_retry_after_is_honoured():
    with FakeOpenAIServer(faults={"kind": "429", "times": 1}, retry_after="0.3") as srv, backend(srv) as b:
        t0 = time.perf_counter()
        b.generate([Request("What is 1 + 1?")], SamplingParams())
        assert time.perf_counter() - t0 >= 0.3 and b.stats.retried == 1


def test_concurrency_is_bounded_by_max_in_flight():
    with FakeOpenAIServer(support_n=False, token_delay_s=0.01) as srv, backend(srv, max_in_flight=3) as b:
        g = b.generate([Request(f"What is {i} + 1?", n=2) for i in range(6)], SamplingParams())
        assert sum(len(c) for c in g.completions) == 12
        assert 2 <= srv.max_active <= 3 and b.stats.max_in_flight_seen <= 3


# --- a real server ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_server():
    """`transformers serve` on the embedded model (converted copy), CPU, bounded startup, always stopped."""
    from adaptive.testing.transformers_serve import start_transformers_serve

    srv = start_transformers_serve(startup_s=75)
    if isinstance(srv, str):
        pytest.skip(srv)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.model
def test_real_transformers_serve(real_server, tokenizer):
    b = OpenAIBackend(real_server.url, real_server.model, tokenizer=tokenizer, timeout_s=60, max_in_flight=4)
    try:
        g = b.generate([Request("What is 2 + 3? Answer with a number.", n=2)],
                       SamplingParams(max_new_tokens=12, temperature=0.7, seed=3))
        assert len(g.completions[0]) == 2 and b.caps.n is False  # transformers serve ignores n
        for c in g.completions[0]:
            assert c.n_tokens >= 1 and len(c.token_times) == c.n_tokens and c.finish_reason in ("eos", "length")
        assert g.usage.generated_tokens == sum(c.n_tokens for c in g.completions[0]) and not g.usage.counted_locally
        with pytest.raises(CapabilityError, match="top_logprobs"):
            b.generate([Request("Hi")], SamplingParams(max_new_tokens=2, top_logprobs=3))
        ts = [Query(prompt="What is 2 + 2? Answer with a number.", extract=NUMBER, ledger=Ledger())]
        r = run_sampling_batch(ts, [Plan(max_samples=4, wave_size=2, stopping="beta", max_new_tokens=16,
                                         temperature=0.2, seed=1)], b)[0]
        assert 2 <= r.compute.samples <= 4 and r.compute.generated_tokens == sum(s.tokens for s in r.samples)
        assert r.stop_reason in ("stopping:beta", "max_samples") and r.compute.ttft_s is not None
        assert b.stats.failed == 0
    finally:
        b.close()


# --- bugs found against vLLM, reproduced on the fake server (it seeds choice i with seed + i, as vLLM) --

def _seed_script(prompt, prefix, i, seed):
    return f"The answer is {seed}."


def test_waves_with_a_seed_draw_distinct_samples():
    """Wave k was seeded plan.seed + k: with vLLM's seed + i per choice, wave k's second sample was wave
    k+1's first. Seeds now follow the samples already drawn, so every sample has its own seed."""
    with FakeOpenAIServer(_seed_script) as srv, backend(srv) as b:
        r = run_sampling_batch(tasks(1), [Plan(max_samples=6, wave_size=2, seed=1)], b)[0]
        assert [s.answer for s in r.samples] == ["1", "2", "3", "4", "5", "6"]
        assert [(body["seed"], body["n"]) for body in srv.requests] == [(1, 2), (3, 2), (5, 2)]


def test_cli_wave_and_seed_give_distinct_samples(capsys):
    import json

    from adaptive.cli import main

    with FakeOpenAIServer(_seed_script) as srv:
        rc = main(["generate", "What is 1 + 1?", "--backend", "openai", "--base-url", srv.url, "--model", "fake-model",
                   "--samples", "4", "--wave", "2", "--seed", "1", "--json"])
        assert rc == 0
        answers = [s["answer"] for s in json.loads(capsys.readouterr().out)["samples"]]
        assert answers == ["1", "2", "3", "4"]


def test_search_and_refine_calls_never_share_seeds():
    def script(prompt, prefix, i, seed):
        return f"Step {seed} of {len(prefix)}.\n\nmore"

    with FakeOpenAIServer(script) as srv, backend(srv) as b:
        plan = Plan(strategy="beam_search", verifier="logprob", search_width=2, search_beams=2, search_depth=3, seed=5,
                    max_new_tokens=16)
        run_strategy_on(b, plan)
        ranges = [(body["seed"], body["seed"] + body.get("n", 1)) for body in srv.requests]
        seeds = [s for lo, hi in ranges for s in range(lo, hi)]
        assert len(ranges) == 5 and len(seeds) == len(set(seeds)) == 10  # 1 root call, 2 beams x 2 depths
    with FakeOpenAIServer(lambda p, pre, i, seed: f"The answer is {seed}.") as srv, backend(srv) as b:
        run_strategy_on(b, Plan(strategy="refine", refine_steps=2, seed=5, max_new_tokens=16))
        seeds = [body["seed"] for body in srv.requests]
        assert len(seeds) >= 3 and len(set(seeds)) == len(seeds)


def run_strategy_on(b, plan):
    from adaptive.strategies import run_strategy
    from adaptive.verifiers.base import make_verifier

    verifier = make_verifier(plan.verifier, plan.verifier_params, b) if plan.verifier else None
    return run_strategy(tasks(1)[0], plan, b, verifier)


def test_greedy_with_several_samples_is_split_into_single_calls():
    """vLLM refuses n > 1 at temperature 0 with a 400 that does not quote 'n': learned, then split."""
    with FakeOpenAIServer() as srv, backend(srv) as b:
        g = b.generate([Request("What is 2 + 5?", n=3)], SamplingParams(temperature=0, seed=4))
        assert [c.text for c in g.completions[0]] == ["The answer is 7."] * 3
        assert srv.requests[0]["n"] == 3 and [r.get("n", 1) for r in srv.requests[1:]] == [1, 1, 1]
        assert sorted(r["seed"] for r in srv.requests[1:]) == [4, 5, 6]
        assert b.caps.greedy_n is False and b.caps.n is not False and b.stats.failed == 0
        assert g.usage.samples == 3 and g.usage.generated_tokens == 15
        before = len(srv.requests)
        b.generate([Request("What is 2 + 5?", n=2)], SamplingParams(temperature=0))  # known now: no 400
        assert [r.get("n", 1) for r in srv.requests[before:]] == [1, 1]
        b.generate([Request("What is 2 + 5?", n=2)], SamplingParams(temperature=0.5))  # sampling keeps n
        assert srv.requests[-1]["n"] == 2
        r = run_sampling_batch(tasks(1), [Plan(max_samples=3, temperature=0.0)], b)[0]
        assert r.answer == "2" and r.compute.samples == 3


def test_confidence_floor_aborts_a_sample_by_closing_its_stream():
    long = " ".join(f"w{i}" for i in range(40))
    with FakeOpenAIServer(lambda p, pre, i, seed: long, token_delay_s=0.01) as srv, backend(srv) as b:
        # the fake's top-5 logprobs -0.1 .. -2.1 give token confidence 1.1: below a floor of 2, cut after 3 tokens
        g = b.generate([Request("go", n=2)], SamplingParams(max_new_tokens=40, top_logprobs=5, confidence_floor=2.0,
                                                            confidence_window=3, seed=0))
        for c in g.completions[0]:
            assert (c.finish_reason, c.n_tokens, c.text) == ("abort", 3, " ".join(long.split()[:3]))
            assert len(c.token_times) == len(c.logprobs) == 3
        assert [r.get("n", 1) for r in srv.requests] == [1, 1]  # each sample in its own stream, so each can be cut
        assert all(r["stream_options"]["continuous_usage_stats"] for r in srv.requests)
        assert g.usage.generated_tokens == 6 and g.usage.prompt_tokens == 1 and not g.usage.counted_locally
        deadline = time.monotonic() + 5
        while srv.disconnects < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert srv.disconnects == 2 and not srv.completed  # the server saw both streams closed early
        g = b.generate([Request("go")], SamplingParams(max_new_tokens=5, top_logprobs=5, confidence_floor=0.5,
                                                       confidence_window=3))
        assert g.completions[0][0].finish_reason == "length"  # above the floor: nothing cut


def test_cached_prompt_tokens_from_the_server_reach_the_ledger_and_flops():
    from adaptive.backends.hf.loading import embedded_model_dir
    from adaptive.metrics.flops import prefill_flops

    prompt = "What is 3 + 4? " + "Think about it carefully. " * 6
    with FakeOpenAIServer(prompt_cache=True) as srv, backend(srv, model_config=str(embedded_model_dir())) as b:
        first = b.generate([Request(prompt)], SamplingParams(max_new_tokens=8)).usage
        second = b.generate([Request(prompt)], SamplingParams(max_new_tokens=8)).usage
        p = first.prompt_tokens
        assert first.cached_prompt_tokens == 0 and second.cached_prompt_tokens == (p - 1) // 4 * 4 > 0
        s = b.flops_spec
        saved = prefill_flops(s.n_params_non_embedding, s.n_layers, s.d_attn, p) - prefill_flops(
            s.n_params_non_embedding, s.n_layers, s.d_attn, p - second.cached_prompt_tokens,
            past_len=second.cached_prompt_tokens)
        assert first.flops - second.flops == pytest.approx(saved)
        ledger = Ledger()
        ledger.add(second)
        record = ledger.close()
        assert (record.cached_prompt_tokens, record.flops) == (second.cached_prompt_tokens, second.flops)


# --- the process exits: no thread or event loop outlives its owner -------------------------------------

MODULE_LEVEL = """
import sys
from adaptive.errors import AdaptiveError
from adaptive.generator import AdaptiveGenerator

gen = AdaptiveGenerator.from_server(sys.argv[1], "fake-model", max_retries=0)  # held at module level (README)
try:
    print(gen.generate("What is 2 + 3?", samples=1).answer, flush=True)
except AdaptiveError as e:
    print("error:", e, flush=True)
"""


@pytest.mark.parametrize("outcome", ["answer", "error"])
def test_module_level_server_generator_exits_promptly(tmp_path, outcome):
    import subprocess
    import sys

    script = tmp_path / "hold.py"
    script.write_text(MODULE_LEVEL)
    faults = {"kind": "500", "times": None} if outcome == "error" else None
    with FakeOpenAIServer(faults=faults) as srv:
        proc = subprocess.Popen([sys.executable, str(script), srv.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            line = proc.stdout.readline()
            last_line = time.monotonic()
            rc = proc.wait(timeout=60)
        finally:
            proc.kill()
        exit_s = time.monotonic() - last_line
    assert line.strip() == ("5" if outcome == "answer" else f"error: OpenAI-compatible server {srv.url}"
                            "/chat/completions failed after 1 attempts (0 retries); last error: HTTP 500: "
                            '{"error": {"message": "injected 500"}}'), proc.stderr.read()
    assert rc == 0 and exit_s < 5


def test_cli_with_nothing_listening_exits_2_with_one_line_within_30_s():
    import inspect
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "adaptive", "generate", "hi", "--backend", "openai", "--base-url",
                        f"http://127.0.0.1:{port}/v1", "--model", "x"], capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and took < 30, r.stderr
    assert lines[0].startswith("adaptive: error:") and "cannot connect" in lines[0] and str(port) in lines[0]
    # A host that never answers (no refusal) also gives up within 30 s with the defaults: every attempt's
    # connect timeout plus the longest backoffs between them.
    d = {k: p.default for k, p in inspect.signature(OpenAIBackend).parameters.items()}
    worst = (d["max_retries"] + 1) * d["connect_timeout_s"] + sum(d["backoff_base_s"] * 2 ** a
                                                                   for a in range(d["max_retries"]))
    assert worst <= 30


def test_close_or_collection_stops_the_loop_thread():
    import gc

    with FakeOpenAIServer() as srv:
        b = backend(srv)
        b.generate([Request("What is 1 + 1?")], SamplingParams())
        thread = b.session._loop.thread
        b.close()
        b.close()  # idempotent
        assert not thread.is_alive()
        with pytest.raises(AdaptiveError, match="closed"):  # a new loop thread would outlive the backend
            b.generate([Request("What is 1 + 1?")], SamplingParams())
        b = backend(srv)
        b.generate([Request("What is 1 + 1?")], SamplingParams())
        thread = b.session._loop.thread
        del b
        gc.collect()
        thread.join(5)
        assert not thread.is_alive()
