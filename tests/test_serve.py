"""`adaptive serve` driven by the official openai client, against servers started in-process on a free
loopback port and stopped by each test: the local model (the session's embedded model), a scripted
backend (FakeBackend, for exact control of timing and failures), and an upstream OpenAI-compatible server
(the `upstream` fixture: adaptive/testing/fake_openai.py; another upstream, e.g. a real vLLM, is one
more param of that fixture)."""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("sse_starlette")

from adaptive.backends.fake import FakeBackend  # noqa: E402
from adaptive.controller import Controller  # noqa: E402
from adaptive.plan import Plan  # noqa: E402
from adaptive.policies import FixedPolicy  # noqa: E402
from adaptive.serve import ServeSettings, SLOSettings, create_app  # noqa: E402
from adaptive.serve.admission import LoadGovernor, Overloaded  # noqa: E402
from adaptive.serve.server import BackgroundServer  # noqa: E402
from adaptive.testing.fake_openai import FakeOpenAIServer  # noqa: E402

try:  # the maintained fork the openai client ships with; same API
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

Q = "What is 7 + 5? End with 'The answer is N.'"
MSG = [{"role": "user", "content": Q}]
ONE = {"adaptive": {"max_samples": 1}}  # one sample: streamed live


@contextlib.contextmanager
def serving(backend, plan: Plan | None = None, *, policies=None, key: str = "", **settings):
    """An in-process server on a free port; yields (server, openai client)."""
    policy = FixedPolicy(name="default", plan=plan or Plan(max_samples=3, max_new_tokens=32))
    ctl = Controller(backend, policy, targets=settings.get("slo", SLOSettings()).targets)
    settings.setdefault("model_name", "m")
    app = create_app(ctl, ServeSettings(**settings), policies=policies, api_key=key)
    with BackgroundServer(app) as srv:
        client = openai.OpenAI(base_url=srv.url, api_key=key or "none", max_retries=0, timeout=60)
        try:
            yield srv, client
        finally:
            client.close()


def scripted(*answers, delay_s: float = 0.0) -> FakeBackend:
    return FakeBackend(list(answers) or ["The answer is 12."], delay_s=delay_s)


def adaptive_of(resp) -> dict:
    return resp.model_extra["adaptive"]


def serve_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("adaptive-serve", "adaptive-stream"))]


# -- the upstream fixture: any OpenAI-compatible server the adaptive server can sit in front of ---------
@dataclass
class Upstream:
    url: str
    model: str
    fake: FakeOpenAIServer | None = None   # the fault-injecting fake, when the upstream is the fake


@pytest.fixture(params=["fake", pytest.param("vllm", marks=pytest.mark.vllm)])
def upstream(request):
    if request.param == "fake":
        with FakeOpenAIServer(token_delay_s=0.002) as srv:
            yield Upstream(srv.url, srv.model, srv)
    else:  # the session's real vLLM (tests/conftest.py), on the embedded model
        srv = request.getfixturevalue("vllm_server")
        yield Upstream(srv.base_url, srv.model)


def openai_backend(url: str, model: str, **kw):
    from adaptive.backends.factory import make_backend

    cfg = {"kind": "openai", "base_url": url, "model": model, "max_retries": 2, "backoff_base_s": 0.01,
           "timeout_s": 10, **kw}
    return make_backend(cfg)


# -- local model ------------------------------------------------------------------------------------
@pytest.mark.model
def test_local_model_chat_completions_stream_and_usage(hf_backend):
    before = hf_backend.totals.generated_tokens
    with serving(hf_backend, Plan(max_samples=2, max_new_tokens=12, seed=0)) as (srv, client):
        r = client.chat.completions.create(model="m", messages=MSG, max_tokens=12, seed=0)
        a = adaptive_of(r)
        assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
        assert r.choices[0].message.content and r.choices[0].finish_reason in ("stop", "length")
        assert len(a["samples"]) == a["compute"]["samples"] == 2
        # usage counts every sample's tokens, and the prompt once per backend call
        assert r.usage.completion_tokens == sum(s["tokens"] for s in a["samples"]) == a["compute"]["generated_tokens"]
        assert r.usage.prompt_tokens == a["compute"]["prompt_tokens"] > 0
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        assert a["answer"] in a["votes"] or a["answer"] is None
        assert "up to 2 samples" in a["plan"] and a["reason"] and a["stop_reason"] == "max_samples"
        assert a["compute"]["ttft_s"] is not None and a["compute"]["fluidity"] is not None

        # one sample: streamed token by token (Controller.stream), then finish, adaptive object, usage
        chunks = list(client.chat.completions.create(model="m", messages=MSG, max_tokens=12, stream=True,
                                                     stream_options={"include_usage": True}, extra_body=ONE))
        deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert len(deltas) >= 3, deltas
        last = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
        assert last.model_extra["adaptive"]["compute"]["samples"] == 1
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= len(deltas) - 1
        assert "".join(deltas).strip()

        t = client.completions.create(model="m", prompt="The capital of France is", max_tokens=6, extra_body=ONE)
        assert t.object == "text_completion" and t.usage.completion_tokens <= 6
        assert adaptive_of(t)["compute"]["samples"] == 1
    assert hf_backend.totals.generated_tokens - before >= r.usage.completion_tokens + t.usage.completion_tokens
    assert serve_threads() == []


@pytest.mark.model
def test_local_model_requests_share_backend_calls(hf_backend):
    """The HF backend is serialized behind one worker; requests that wait together run as one batch."""
    calls0 = hf_backend.totals.model_calls
    with serving(hf_backend, Plan(max_samples=2, max_new_tokens=8, seed=0), max_batch=8) as (srv, client):
        with ThreadPoolExecutor(6) as pool:
            outs = list(pool.map(lambda i: client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": f"What is {i} + 1?"}], max_tokens=8), range(6)))
    assert all(adaptive_of(o)["compute"]["samples"] == 2 for o in outs)
    assert hf_backend.totals.model_calls - calls0 < 6  # at least two of the six rode in one call


# -- scripted backend: shapes, overrides, errors, auth, limits --------------------------------------
def test_chat_response_shape_and_n_sets_the_sample_budget():
    be = scripted("The answer is 12.", "The answer is 12.", "The answer is 7.")
    with serving(be) as (srv, client):
        r = client.chat.completions.create(model="m", messages=MSG, n=5)
        a = adaptive_of(r)
        assert len(r.choices) == 1 and r.choices[0].message.content == "The answer is 12."
        assert a["compute"]["samples"] == 5 and a["votes"] == {"12": 4.0, "7": 1.0} and a["answer"] == "12"
        assert r.usage.completion_tokens == sum(len(t) + 1 for t in ["The answer is 12."] * 4 + ["The answer is 7."])
        assert r.id.startswith("chatcmpl-") and r.model == "m"
        assert "request sets max_samples=5" in a["reason"]
        # n = 1 (many clients' default) leaves the policy's budget of 3
        assert adaptive_of(client.chat.completions.create(model="m", messages=MSG, n=1))["compute"]["samples"] == 3
        assert set(a) >= {"difficulty", "policy", "plan", "reason", "load", "samples", "stop_reason", "compute"}
        models = client.models.list()
        assert [m.id for m in models.data] == ["m"]


def test_openai_fields_and_adaptive_overrides_map_onto_the_plan():
    be = scripted("The answer is 12.\nmore text")
    beta = Plan(max_samples=8, stopping="beta", wave_size=2, max_new_tokens=32)
    allowed = {"default": FixedPolicy(name="default", plan=Plan(max_samples=3, max_new_tokens=32)),
               "beta": FixedPolicy(name="beta", plan=beta)}
    with serving(be, policies=allowed, max_budget=8) as (srv, client):
        r = client.chat.completions.create(model="m", messages=MSG, max_tokens=20, temperature=0.3, top_p=0.9,
                                           seed=7, stop=["\n"])
        params = be.calls[-1][1]
        assert (params.max_new_tokens, params.temperature, params.top_p, params.seed) == (20, 0.3, 0.9, 7)
        assert params.stop == ("\n",) and r.choices[0].message.content == "The answer is 12."
        r = client.chat.completions.create(model="m", messages=MSG, extra_body={"adaptive": {"policy": "beta"}})
        a = adaptive_of(r)
        assert a["policy"] == "beta" and a["stop_reason"] == "stopping:beta" and a["compute"]["samples"] < 8
        r = client.chat.completions.create(model="m", messages=MSG,
                                           extra_body={"adaptive": {"policy": "beta", "budget": 2}})
        assert adaptive_of(r)["compute"]["samples"] == 2 and "up to 2 samples" in adaptive_of(r)["plan"]
        r = client.chat.completions.create(model="m", messages=MSG,
                                           extra_body={"adaptive": {"max_samples": 4, "wave_size": 2, "stopping": "fixed"}})
        assert adaptive_of(r)["compute"]["samples"] == 4 and be.calls[-1][0][0].n == 2


@pytest.mark.parametrize("body,status,param,code", [
    ({"messages": MSG, "temperature": 5}, 400, "temperature", "invalid_value"),
    ({"messages": MSG, "n": 0}, 400, "n", "invalid_value"),
    ({"messages": MSG, "n": 17}, 400, "n", "invalid_value"),
    ({"messages": MSG, "max_tokens": 5000}, 400, "max_tokens", "invalid_value"),
    ({"messages": MSG, "frobnicate": 1}, 400, "frobnicate", "unknown_parameter"),
    ({"messages": MSG, "tools": [{"type": "function"}]}, 400, "tools", "unsupported_parameter"),
    ({"messages": MSG, "logprobs": True}, 400, "logprobs", "unsupported_parameter"),
    ({"messages": []}, 400, "messages", "invalid_value"),
    ({"messages": [{"role": "user", "content": "  "}]}, 400, "messages", "empty_prompt"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "messages[0].role", "invalid_value"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400, "messages[0].content[0]",
     "unsupported_content"),
    ({"messages": MSG, "adaptive": {"policy": "nope"}}, 400, "adaptive.policy", "invalid_value"),
    ({"messages": MSG, "adaptive": {"budget": 0}}, 400, "adaptive.budget", "invalid_value"),
    ({"messages": MSG, "adaptive": {"samplez": 3}}, 400, "adaptive.samplez", "unknown_parameter"),
    ({"messages": MSG, "adaptive": {"stopping": "nope"}}, 400, "adaptive.stopping", "invalid_value"),
    ({"messages": MSG, "adaptive": {"wave_size": -1}}, 400, "adaptive.wave_size", "invalid_value"),
    ({"messages": MSG, "adaptive": {"max_samples": 99}}, 400, "adaptive.max_samples", "invalid_value"),
    ({"messages": MSG, "stream_options": {"include_usage": True}}, 400, "stream_options", "invalid_value"),
    ({"messages": MSG, "model": "gpt-4"}, 404, "model", "model_not_found"),
])
def test_bad_requests_get_openai_errors(body, status, param, code):
    with serving(scripted()) as (srv, client):
        r = httpx.post(srv.url + "/chat/completions", json={"model": "m", **body}, timeout=30)
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}
        assert (err["param"], err["code"]) == (param, code) and err["message"] and "\n" not in err["message"]
        assert err["type"] == ("invalid_request_error" if status in (400, 404) else err["type"])
        assert r.headers["x-request-id"]


def test_openai_client_raises_typed_errors_and_limits_hold():
    with serving(scripted(), max_body_bytes=2000, max_prompt_tokens=50) as (srv, client):
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="m", messages=MSG, temperature=-1)
        assert e.value.body["param"] == "temperature"
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="other", messages=MSG)
        with pytest.raises(openai.BadRequestError) as e:  # no tokenizer: 200 bytes / 3 > 50
            client.completions.create(model="m", prompt="x" * 200)
        assert e.value.body["code"] == "context_length_exceeded"
        r = httpx.post(srv.url + "/chat/completions", json={"model": "m", "messages": [
            {"role": "user", "content": "y" * 5000}]}, timeout=30)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        r = httpx.post(srv.url + "/chat/completions", content=b"{not json", timeout=30,
                       headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
        assert httpx.get(srv.base + "/v1/nothing", timeout=30).json()["error"]["code"] == "not_found"
        assert httpx.get(srv.url + "/chat/completions", timeout=30).status_code == 405


def test_bearer_key_is_required_when_configured():
    with serving(scripted(), key="s3cret") as (srv, client):
        assert client.chat.completions.create(model="m", messages=MSG).choices[0].message.content
        for bad_key in ("wrong", "s3cre", "s3cret2"):
            with pytest.raises(openai.AuthenticationError) as e:
                openai.OpenAI(base_url=srv.url, api_key=bad_key, max_retries=0).chat.completions.create(
                    model="m", messages=MSG)
            assert e.value.body["code"] == "invalid_api_key"
        r = httpx.get(srv.url + "/models", timeout=30)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert httpx.get(srv.base + "/metrics", timeout=30).status_code == 401
        assert httpx.get(srv.base + "/metrics", headers={"Authorization": "Bearer s3cret"}, timeout=30).status_code == 200
        assert httpx.get(srv.base + "/health", timeout=30).json()["status"] == "ok"  # liveness needs no key


def test_key_is_read_from_the_named_environment_variable(monkeypatch):
    monkeypatch.setenv("MY_SERVE_KEY", "k1")
    ctl = Controller(scripted(), FixedPolicy(name="default", plan=Plan()))
    app = create_app(ctl, ServeSettings(model_name="m", api_key_env="MY_SERVE_KEY"))
    with BackgroundServer(app) as srv:
        assert httpx.get(srv.url + "/models", timeout=30).status_code == 401
        assert httpx.get(srv.url + "/models", headers={"Authorization": "Bearer k1"}, timeout=30).status_code == 200


def test_internal_error_is_a_500_with_a_request_id_and_no_traceback(caplog):
    class Broken(FakeBackend):
        def generate(self, *a, **kw):
            raise RuntimeError("secret internal detail")

    caplog.set_level(logging.ERROR, logger="adaptive.serve")
    with serving(Broken(["x"])) as (srv, client):
        r = httpx.post(srv.url + "/chat/completions", json={"model": "m", "messages": MSG}, timeout=30)
        err = r.json()["error"]
        assert r.status_code == 500 and err["type"] == "server_error" and err["code"] == "internal_error"
        rid = r.headers["x-request-id"]
        assert rid in err["message"] and "secret" not in r.text and "Traceback" not in r.text
        assert httpx.get(srv.base + "/health", timeout=30).status_code == 200  # the worker survived
    assert any(rid in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_queue_limit_gives_429_with_retry_after():
    be = scripted(delay_s=0.6)
    with serving(be, Plan(max_samples=1), max_queue=1, max_batch=1) as (srv, client):
        def call(i):
            return httpx.post(srv.url + "/chat/completions", json={"model": "m", "messages": MSG}, timeout=30)

        with ThreadPoolExecutor(6) as pool:
            rs = list(pool.map(call, range(6)))
    codes = sorted(r.status_code for r in rs)
    assert 200 in codes and 429 in codes, codes
    r429 = next(r for r in rs if r.status_code == 429)
    assert int(r429.headers["retry-after"]) >= 1 and r429.json()["error"]["code"] == "rate_limit_exceeded"


def test_request_time_limit_gives_504_and_the_queued_work_is_dropped():
    be = scripted(delay_s=1.0)
    with serving(be, Plan(max_samples=1), request_timeout_s=0.4, max_batch=1) as (srv, client):
        t0 = time.monotonic()
        with ThreadPoolExecutor(3) as pool:
            rs = list(pool.map(lambda i: httpx.post(srv.url + "/chat/completions",
                                                    json={"model": "m", "messages": MSG}, timeout=30), range(3)))
        assert time.monotonic() - t0 < 3.0
        assert [r.status_code for r in rs] == [504] * 3 and rs[0].json()["error"]["type"] == "timeout_error"
        time.sleep(1.2)
    assert len(be.calls) == 1  # requests still waiting at their deadline never reached the backend


def test_metrics_endpoint_speaks_prometheus_text():
    with serving(scripted()) as (srv, client):
        for _ in range(2):
            client.chat.completions.create(model="m", messages=MSG)
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="m", messages=MSG, n=0)
        r = httpx.get(srv.base + "/metrics", timeout=30)
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'adaptive_requests_total{endpoint="chat",status="200"} 2.0' in text
    assert 'adaptive_requests_total{endpoint="chat",status="400"} 1.0' in text
    assert "adaptive_samples_total 6.0" in text
    for name in ("adaptive_generated_tokens_total", "adaptive_prompt_tokens_total",
                 'adaptive_request_latency_seconds_bucket{le="0.05"}', "adaptive_ttft_seconds_count 2.0",
                 "adaptive_fluidity_index_bucket", "adaptive_samples_per_request_sum 6.0",
                 "adaptive_requests_waiting 0.0", "adaptive_load_pressure", "adaptive_sample_price"):
        assert name in text, name


def test_sse_framing_ends_with_done_and_carries_the_usage_chunk():
    with serving(scripted()) as (srv, client):
        with httpx.stream("POST", srv.url + "/chat/completions", timeout=30, json={
                "model": "m", "messages": MSG, "stream": True, "stream_options": {"include_usage": True}}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            raw = r.read().decode()
    events = [e for e in raw.split("\n\n") if e.strip() and not e.startswith(":")]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    objs = [json.loads(e[6:]) for e in events[:-1]]
    assert objs[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(o["choices"][0]["delta"].get("content") or "" for o in objs if o["choices"]) == "The answer is 12."
    assert objs[-2]["choices"][0]["finish_reason"] == "stop" and "adaptive" in objs[-2]
    assert objs[-1]["choices"] == [] and objs[-1]["usage"]["completion_tokens"] == 3 * 18
    assert all(o["usage"] is None for o in objs[:-1])


# -- the load governor -----------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _governor(clock, **slo):
    return LoadGovernor(ServeSettings(max_queue=3, slo=SLOSettings(**{"metric": "ttft", "ttft_s": 1.0,
                                                                      "window_s": 10.0, **slo})), clock=clock)


def test_governor_latency_price_shrinks_budgets_in_marginal_gain_order_and_recovers():
    from adaptive.result import Difficulty

    clock = Clock()
    gov = _governor(clock)                            # no rate known: the latency ratio sets the price
    plan = Plan(max_samples=8)
    easy, mid, hard = (Difficulty(p, 0, "t") for p in (0.9, 0.5, 0.15))

    def budgets():
        plans, why = gov.limit([plan] * 3, [easy, mid, hard], None, gov.pressure())
        return [p.max_samples for p in plans]

    assert budgets() == [8, 8, 8]                     # idle: full budgets
    seen = []
    for ttft in (0.55, 0.6, 0.65, 0.7, 0.8, 0.9, 0.95, 1.2):
        for _ in range(3):
            gov.admit()
            gov.start()
            gov.planned(8)
            gov.finished(8, ttft, 8)
        seen.append(budgets())
    for prev, cur in zip(seen, seen[1:]):
        assert all(c <= p for c, p in zip(cur, prev))  # rising latency never raises a budget
    # easy prompts give up samples first: somewhere the easy prompt is cut while the hard one is not
    assert any(e < h for e, m, h in seen)
    assert seen[-1] == [1, 1, 1]                      # over the target: one sample each
    p = gov.pressure()
    assert p.latency > 1 and "samples 8 -> 1" in gov.limit([plan], [hard], None, p)[1][0]
    clock.t += 11                                     # the window empties: budgets recover
    assert budgets() == [8, 8, 8]


def test_governor_fits_a_batch_into_what_the_backend_can_do_within_the_target():
    from adaptive.result import Difficulty

    clock = Clock()
    gov = _governor(clock, compute_rate=10.0)         # 10 samples/s x 1 s target x 0.8 headroom = 8 samples
    plan = Plan(max_samples=8)
    easy, mid, hard = (Difficulty(p, 0, "t") for p in (0.9, 0.5, 0.15))
    p = gov.pressure(incoming=24)
    assert p.affordable == pytest.approx(8.0) and p.backlog == pytest.approx(2.4)
    plans, why = gov.limit([plan] * 3, [easy, mid, hard], None, p)
    b = [x.max_samples for x in plans]
    assert sum(b) <= 8 and min(b) >= 1 and b[0] < b[2], b  # the easy prompt gives up samples first
    assert 0 < p.price < 1 and all("samples 8 -> " in w for w in why)
    plans, _ = gov.limit([Plan(max_samples=2)] * 3, [easy, mid, hard], None, gov.pressure(incoming=6))
    assert [x.max_samples for x in plans] == [2, 2, 2]  # what fits is not cut
    # running requests' demand shares the capacity: a newcomer gets one price with them, not the leftovers
    alone = gov.limit([plan], [mid], None, gov.pressure(incoming=8))[0][0].max_samples
    gov.limit([plan] * 3, [easy, mid, hard], None, gov.pressure(incoming=24), keys=["a", "b", "c"])
    shared = gov.limit([plan], [mid], None, gov.pressure(incoming=8), keys=["d"])[0][0].max_samples
    assert alone == 8 and 1 <= shared < alone
    for k in "abcd":
        gov.dropped(started=True, key=k)
    gov.running = 0
    assert gov.limit([plan], [mid], None, gov.pressure(incoming=8))[0][0].max_samples == 8  # demand gone
    # requests still waiting take their share first; the queue limit answers 429 with the time they need
    for _ in range(3):
        gov.admit()
    with pytest.raises(Overloaded) as e:
        gov.admit()
    assert e.value.retry_after_s == 1
    p = gov.pressure(incoming=8)
    assert p.affordable == pytest.approx(8.0 - 3) and p.backlog == pytest.approx(1.1)
    gov.slo = SLOSettings(metric="ttft", ttft_s=1.0, compute_rate=2.0)  # 1.6 samples fit; 3 wait ahead
    p = gov.pressure(incoming=8)
    plans, _ = gov.limit([plan], [hard], None, p)
    assert p.affordable < 1 and plans[0].max_samples == 1 and math.isinf(p.price)
    off = LoadGovernor(ServeSettings(slo=SLOSettings(metric="off")), clock=clock)
    off.admit()
    off.start()
    off.planned(100)
    assert off.limit([plan], [None], None, off.pressure(incoming=8))[0][0].max_samples == 8


def test_slo_mode_trades_samples_for_latency_end_to_end():
    """Each backend call takes 0.15 s (a 6-sample plan in waves of 2: 0.45 s) against a 1 s TTFT target: a
    request alone keeps its 6 samples; a burst that would not fit gets fewer; alone again, 6."""
    be = scripted(delay_s=0.15)
    slo = SLOSettings(metric="ttft", ttft_s=1.0, window_s=2.0)
    with serving(be, Plan(max_samples=6, wave_size=2), slo=slo, max_batch=16) as (srv, client):
        ask = lambda: adaptive_of(client.chat.completions.create(model="m", messages=MSG))  # noqa: E731
        alone = [ask(), ask()]
        assert [a["compute"]["samples"] for a in alone] == [6, 6]
        assert alone[1]["load"]["rate"] > 0 and alone[1]["load"]["affordable"] >= 6
        with ThreadPoolExecutor(8) as pool:
            burst = list(pool.map(lambda i: ask(), range(8)))
        cut = [a for a in burst if a["compute"]["samples"] < 6]
        assert cut and all("samples 6 -> " in a["reason"] for a in cut), [a["reason"] for a in burst]
        assert all(a["load"]["samples_cap"] == a["compute"]["samples"] for a in burst)
        time.sleep(2.2)
        assert ask()["compute"]["samples"] == 6


# -- an upstream OpenAI-compatible server as the backend ----------------------------------------------
def test_upstream_chat_completions_and_live_stream(upstream):
    fake = upstream.fake is not None
    be = openai_backend(upstream.url, upstream.model, timeout_s=120)
    try:
        with serving(be, Plan(max_samples=3, max_new_tokens=16, seed=0)) as (srv, client):
            r = client.chat.completions.create(model="m", messages=MSG)
            a = adaptive_of(r)
            assert len(a["samples"]) == 3 and sum(a["votes"].values()) <= 3
            assert r.usage.completion_tokens == sum(s["tokens"] for s in a["samples"]) > 0
            if fake:
                assert r.choices[0].message.content == "The answer is 12." and a["votes"] == {"12": 3.0}
                assert r.usage.completion_tokens == upstream.fake.completion_tokens_sent
            else:
                assert r.choices[0].message.content and r.usage.prompt_tokens > 0
            t = client.completions.create(model="m", prompt="What is 2 + 2?", extra_body=ONE)
            assert adaptive_of(t)["compute"]["samples"] == 1 and t.usage.completion_tokens <= 16
            if fake:
                assert t.choices[0].text == "The answer is 4."
            chunks = list(client.chat.completions.create(model="m", messages=MSG, stream=True, extra_body=ONE,
                                                         stream_options={"include_usage": True}))
            deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
            last = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
            assert last.model_extra["adaptive"]["compute"]["samples"] == 1
            if fake:
                assert deltas == ["The", " answer", " is", " 12."]  # token by token, as the upstream sent them
                assert chunks[-1].usage.completion_tokens == 5
            else:
                assert len(deltas) >= 2 and chunks[-1].usage.completion_tokens >= len(deltas)
    finally:
        be.close()
    assert serve_threads() == []


@pytest.mark.parametrize("kind", ["500", "drop", "cut", "429"])
def test_upstream_faults_are_retried_into_a_clean_answer(kind):
    with FakeOpenAIServer(faults={"kind": kind, "times": 1}, token_delay_s=0.001) as up:
        be = openai_backend(up.url, up.model)
        try:
            with serving(be, Plan(max_samples=3, max_new_tokens=32)) as (srv, client):
                r = client.chat.completions.create(model="m", messages=MSG)
        finally:
            be.close()
    a = adaptive_of(r)
    assert r.choices[0].message.content == "The answer is 12." and up.fault_count == 1
    # the failed attempt's partial samples never reach the vote: three whole samples, all agreeing
    assert a["votes"] == {"12": 3.0} and [s["finish_reason"] for s in a["samples"]] == ["eos"] * 3
    assert r.usage.completion_tokens == up.completion_tokens_sent


@pytest.mark.parametrize("kind", ["500", "hang", "cut"])
def test_upstream_that_keeps_failing_gives_a_bounded_openai_error(kind):
    with FakeOpenAIServer(faults={"kind": kind, "times": None}, hang_s=3.0) as up:
        be = openai_backend(up.url, up.model, timeout_s=0.3, max_retries=1)
        try:
            with serving(be, Plan(max_samples=2, max_new_tokens=32)) as (srv, client):
                t0 = time.monotonic()
                with pytest.raises(openai.APIStatusError) as e:
                    client.chat.completions.create(model="m", messages=MSG)
                assert time.monotonic() - t0 < 5
                assert e.value.status_code == 502
                err = e.value.body
                assert err["type"] == "upstream_error" and err["code"] == "backend_error"
                assert up.url not in err["message"]
                # streamed: an error before any token is an HTTP error, after some an error event
                with pytest.raises(openai.APIStatusError if kind != "cut" else openai.APIError):
                    list(client.chat.completions.create(model="m", messages=MSG, stream=True, extra_body=ONE))
                assert httpx.get(srv.base + "/health", timeout=30).status_code == 200
        finally:
            be.close()


def test_live_stream_cut_after_tokens_were_sent_ends_in_an_error_event():
    """Text already streamed cannot be taken back: a retried answer would not match it, so the stream ends
    with an error event (and [DONE]) instead of a completion."""
    words = " ".join(f"w{i}" for i in range(40))
    with FakeOpenAIServer(script=lambda *a: words, faults={"kind": "cut", "times": 1}, token_delay_s=0.001) as up:
        be = openai_backend(up.url, up.model)
        try:
            with serving(be, Plan(max_samples=1, max_new_tokens=64)) as (srv, client):
                with httpx.stream("POST", srv.url + "/chat/completions", timeout=30,
                                  json={"model": "m", "messages": MSG, "stream": True}) as r:
                    raw = r.read().decode()
        finally:
            be.close()
    events = [e[6:] for e in raw.split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["error"]["code"] == "backend_error" and "restarted" in last["error"]["message"]
    assert not any('"finish_reason": "stop"' in e for e in events)


def test_client_leaving_a_live_stream_stops_the_generation():
    words = " ".join(f"w{i}" for i in range(400))
    with FakeOpenAIServer(script=lambda *a: words, token_delay_s=0.01) as up:
        be = openai_backend(up.url, up.model)
        try:
            with serving(be, Plan(max_samples=1, max_new_tokens=1000)) as (srv, client):
                stream = client.chat.completions.create(model="m", messages=MSG, stream=True)
                got = [next(iter(stream)) for _ in range(5)]
                stream.close()
                assert len(got) == 5
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and up.active:
                    time.sleep(0.05)
                assert up.active == 0 and up.completed == []  # the upstream stream was closed, not finished
                r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "What is 1 + 1?"}],
                                                   max_tokens=5)
                assert r.choices[0].message.content
        finally:
            be.close()


# -- the command line ----------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serves_an_upstream_and_exits_on_sigint(tmp_path):
    with FakeOpenAIServer() as up:
        port = _free_port()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "ADAPTIVE_API_KEY": "k"}
        proc = subprocess.Popen([sys.executable, "-m", "adaptive", "serve", "--backend", "openai", "--base-url", up.url,
                                 "--model", up.model, "--port", str(port), "--slo", "ttft", "--log-level", "warning"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with contextlib.suppress(Exception):
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.2)
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
            r = client.chat.completions.create(model=up.model, messages=MSG)
            assert r.choices[0].message.content == "The answer is 12."
            proc.send_signal(signal.SIGINT)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_cli_start_errors_are_one_line_before_anything_loads():
    import socket

    def run(*argv):
        p = subprocess.run([sys.executable, "-m", "adaptive", "serve", *argv], capture_output=True, text=True,
                           timeout=60, env={**os.environ, "OMP_NUM_THREADS": "1"})
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1, p.stderr
        return lines[0]

    down = f"http://127.0.0.1:{_free_port()}/v1"
    assert "unreachable" in run("--backend", "openai", "--base-url", down, "--model", "x")
    with socket.socket() as s:  # a taken port is refused before the model loads
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert "cannot listen on 127.0.0.1" in run("--port", str(s.getsockname()[1]))
    assert "slo.ttft_s=-1.0" in run("--slo", "ttft", "--ttft-target-s", "-1")
    assert "allocate_nope" in run("--policy", "allocate_nope")


def test_load_script_is_bounded_and_reports_both_modes(tmp_path):
    """scripts/serve_load.py on the simulated upstream, small: both modes answer every request and write
    their figures and the plot."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run([sys.executable, os.path.join(root, "scripts", "serve_load.py"), "--backend", "fake",
                        "--requests", "12", "--concurrency", "4", "--budget", "4", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    data = json.loads((tmp_path / "serve_load_fake.json").read_text())
    by_mode = {r["mode"]: r["summary"] for r in data["results"]}
    assert set(by_mode) == {"slo", "fixed"}
    for s in by_mode.values():
        assert s["requests"] == 12 and s["errors"] == 0 and 0 <= s["accuracy"] <= 1
        assert s["ttft_p50_s"] is not None and s["fluidity_mean"] is not None
    assert by_mode["fixed"]["mean_samples"] == 4.0 and by_mode["slo"]["mean_samples"] <= 4.0
    assert (tmp_path / "serve_load_fake.png").stat().st_size > 10_000
