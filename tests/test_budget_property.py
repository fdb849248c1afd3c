"""Property: whatever the (valid) plan and scripted model output, a Result keeps to its budget and its
ledger equals what the backend actually spent."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptive.answers import extractor_for
from adaptive.backends.fake import FakeBackend, _text_of
from adaptive.compute import Ledger
from adaptive.plan import APPLIES_TO, Plan
from adaptive.strategies import Query, run_strategy
from adaptive.verifiers.base import make_verifier

NUMBER = extractor_for("number")
SAMPLING = ("self_consistency", "best_of_n")
SEARCH = ("beam_search", "dvts")
ALL_STOPPING = ("fixed", "beta", "esc", "entropy", "dirichlet")
THRESHOLD_RULES = ("beta", "entropy", "dirichlet")


class VariedFake(FakeBackend):
    """Logprobs depend (deterministically) on the text, so verifiers have something to choose by."""

    def _complete(self, text, params):
        c = super()._complete(text, params)
        lp = -((sum(map(ord, c.text)) % 7) + 1) / 4.0
        c.logprobs = [lp] * len(c.logprobs)
        return c


# --- generators ------------------------------------------------------------------------------------

_word = st.text(alphabet="abcdefgh xyz.,", min_size=0, max_size=12)
_number = st.one_of(st.integers(-50, 1000).map(str), st.sampled_from(["3.5", "1,200", "7/8", "$12"]))
_piece = st.one_of(
    _word,
    _number,
    _number.map(lambda n: f"The answer is {n}"),
    _number.map(lambda n: f"#### {n}"),
    st.just("\n\n"),
    st.just("VERDICT: CORRECT"),
    st.just("VERDICT: WRONG"),
)
_text = st.lists(_piece, min_size=0, max_size=6).map("".join)
_script = st.lists(_text, min_size=1, max_size=6)


@st.composite
def plans(draw, stoppings=ALL_STOPPING, strategies=SAMPLING + SEARCH + ("refine",)):
    strategy = draw(st.sampled_from(strategies))
    stopping = draw(st.sampled_from(stoppings))
    stopping_params = {"window": draw(st.integers(1, 5))} if stopping == "esc" else {}
    verifier, aggregation = None, "majority"
    if strategy in ("best_of_n",) + SEARCH:
        verifier = "logprob"
        if strategy in SEARCH:
            aggregation = draw(st.sampled_from(["majority", "weighted", "best"]))
    elif strategy == "self_consistency":
        verifier = draw(st.sampled_from([None, "logprob"]))
        if verifier:
            aggregation = draw(st.sampled_from(["majority", "weighted", "best"]))
    fields = dict(
        strategy=strategy,
        max_samples=draw(st.integers(1, 12)),
        wave_size=draw(st.integers(0, 5)),
        stopping=stopping,
        stopping_params=stopping_params,
        aggregation=aggregation,
        verifier=verifier,
        max_new_tokens=draw(st.integers(1, 40)),
        max_total_tokens=draw(st.one_of(st.none(), st.integers(1, 200))),
        search_width=draw(st.integers(1, 4)),
        search_beams=draw(st.integers(1, 4)),
        search_depth=draw(st.integers(1, 4)),
        refine_steps=draw(st.integers(0, 3)),
        seed=draw(st.one_of(st.none(), st.integers(0, 1000))),
        extractor="number",
    )
    # A Plan refuses fields its strategy does not read: keep the drawn ones that apply.
    return Plan(**{k: v for k, v in fields.items() if k not in APPLIES_TO or strategy in APPLIES_TO[k]})


# --- the property ----------------------------------------------------------------------------------

def _check(plan: Plan, texts: list[str], eos: bool, by_prefix: bool):
    def script(prompt, prefix, i, rng):
        return texts[(i + (len(prefix) if by_prefix else 0)) % len(texts)]

    backend = VariedFake(script, eos=eos)
    task = Query(prompt="Solve: what is 6*7?", extract=NUMBER, ledger=Ledger())
    verifier = make_verifier(plan.verifier, plan.verifier_params, backend=backend) if plan.verifier else None
    r = run_strategy(task, plan, backend, verifier)
    c, t = r.compute, backend.totals

    assert isinstance(r.stop_reason, str) and r.stop_reason.strip()

    # the ledger is exactly what the backend spent for this request
    assert c.samples == t.samples == sum(req.n for reqs, _ in backend.calls for req in reqs)
    assert c.generated_tokens == t.generated_tokens
    assert c.prompt_tokens == t.prompt_tokens == sum(
        len(_text_of(req.prompt)) + len(req.prefix) for reqs, _ in backend.calls for req in reqs)
    assert c.model_calls == t.model_calls == len(backend.calls)
    assert c.forward_passes == t.forward_passes
    if r.stop_reason != "token_budget":  # only a budget too small for one step may draw nothing
        assert c.samples >= 1 and len(backend.calls) >= 1

    if plan.max_total_tokens is not None:
        assert c.generated_tokens <= plan.max_total_tokens
        for reqs, params in backend.calls:  # every call's worst case fitted too
            assert sum(req.n for req in reqs) * params.max_new_tokens <= plan.max_total_tokens

    for _, params in backend.calls:
        assert params.max_new_tokens <= plan.max_new_tokens

    if r.answer is not None:
        assert r.answer in {s.answer for s in r.samples}

    if plan.strategy in SAMPLING:
        assert c.samples <= plan.max_samples
        assert len(r.samples) == c.samples
        assert all(req.n <= plan.effective_wave for reqs, _ in backend.calls for req in reqs)
        assert c.generated_tokens == sum(s.tokens for s in r.samples)
        if r.stop_reason == "max_samples":
            assert c.samples == plan.max_samples
    elif plan.strategy in SEARCH:
        assert r.extra["depth"] <= plan.search_depth
        assert c.samples <= plan.search_depth * plan.search_beams * plan.search_width
        assert len(backend.calls) <= plan.search_depth * plan.search_beams
        assert all(reqs[0].n == plan.search_width for reqs, _ in backend.calls)
        assert all(reqs[0].prefix.count(plan.step_delimiter) < plan.search_depth for reqs, _ in backend.calls)
        assert 1 <= len(r.samples) <= plan.search_beams * plan.search_depth
        assert r.text in {s.text for s in r.samples}
    else:  # refine
        assert c.model_calls <= 1 + 2 * plan.refine_steps
        assert c.samples == c.model_calls
        assert len(r.extra["critiques"]) <= plan.refine_steps
    return r


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(plan=plans(stoppings=("fixed", "esc")), texts=_script, eos=st.booleans(), by_prefix=st.booleans())
def test_budget_invariants(plan, texts, eos, by_prefix):
    _check(plan, texts, eos, by_prefix)


@PROPERTY
@given(plan=plans(stoppings=ALL_STOPPING, strategies=SEARCH + ("refine",)), texts=_script, eos=st.booleans(),
       by_prefix=st.booleans())
def test_budget_invariants_search_and_refine_any_stopping(plan, texts, eos, by_prefix):
    _check(plan, texts, eos, by_prefix)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans(stoppings=THRESHOLD_RULES, strategies=SAMPLING), texts=_script, eos=st.booleans(),
       by_prefix=st.booleans())
def test_budget_invariants_threshold_stopping_rules(plan, texts, eos, by_prefix):
    r = _check(plan, texts, eos, by_prefix)
    assert r.stop_reason in ("max_samples", "token_budget", f"stopping:{plan.stopping}")


# --- thinking plans --------------------------------------------------------------------------------

CLOSE = "</think>"
_think_text = st.lists(st.one_of(_piece, st.just(CLOSE)), min_size=0, max_size=6).map("".join)


class RecordingFake(VariedFake):
    """VariedFake that keeps each call's generated tokens, to check the cap call by call."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.spent: list[int] = []

    def generate(self, requests, params, **kw):
        gen = super().generate(requests, params, **kw)
        self.spent.append(gen.usage.generated_tokens)
        return gen


@st.composite
def thinking_plans(draw):
    rule = draw(st.sampled_from(["none", "convergence", "confidence"]))
    max_think = draw(st.integers(1, 60))
    fields = dict(strategy="thinking", max_samples=draw(st.integers(1, 4)), max_thinking_tokens=max_think,
                  min_thinking_tokens=draw(st.integers(0, max_think)), exit_rule=rule,
                  max_new_tokens=draw(st.integers(1, 20)),
                  max_total_tokens=draw(st.one_of(st.none(), st.integers(1, 300))),
                  seed=draw(st.one_of(st.none(), st.integers(0, 1000))), extractor="number")
    if rule != "none":
        fields.update(probe_interval=draw(st.integers(1, 20)), probe_max_tokens=draw(st.integers(1, 8)))
    if rule == "convergence":
        fields["exit_patience"] = draw(st.integers(1, 3))
    if rule == "confidence":
        fields["exit_threshold"] = draw(st.sampled_from([0.05, 0.2, 0.5, 1.0]))
    return Plan(**fields)


@PROPERTY
@given(plan=thinking_plans(), texts=st.lists(_think_text, min_size=1, max_size=6), eos=st.booleans(),
       by_prefix=st.booleans())
def test_budget_invariants_thinking(plan, texts, eos, by_prefix):
    """Thinking plans: every trace's thinking <= max_thinking_tokens, every call's worst case fits in what is
    left of max_total_tokens (probes and answers included), traces <= max_samples, and the ledger's
    thinking / probe / answer split adds up to what the backend generated."""
    def script(prompt, prefix, i, rng):
        return texts[(i + (len(prefix) if by_prefix else 0)) % len(texts)]

    backend = RecordingFake(script, eos=eos)
    r = run_strategy(Query(prompt="Solve: what is 6*7?", extract=NUMBER, ledger=Ledger()), plan, backend)
    c, t = r.compute, backend.totals
    assert isinstance(r.stop_reason, str) and r.stop_reason.strip()
    assert c.generated_tokens == t.generated_tokens
    assert c.thinking_tokens + c.probe_tokens + c.answer_tokens == c.generated_tokens
    assert c.prompt_tokens == t.prompt_tokens and c.forward_passes == t.forward_passes
    assert c.model_calls == t.model_calls == len(backend.calls)
    assert 1 <= c.samples <= plan.max_samples and len(r.samples) == c.samples
    assert c.generated_tokens == sum(s.tokens for s in r.samples) + c.probe_tokens
    assert all(tr["thinking_tokens"] <= plan.max_thinking_tokens for tr in r.extra["thinking"])
    for tr in r.extra["thinking"]:
        assert all(p["at"] >= plan.min_thinking_tokens for p in tr["probes"])
    spent = 0
    for (reqs, params), used in zip(backend.calls, backend.spent):
        thinking_call = CLOSE in params.stop
        assert params.max_new_tokens <= (plan.max_thinking_tokens if thinking_call else
                                         max(plan.max_new_tokens, plan.probe_max_tokens))
        if plan.max_total_tokens is not None:  # the call's worst case fitted in what was left
            assert spent + sum(q.n for q in reqs) * params.max_new_tokens <= plan.max_total_tokens
        spent += used
    if plan.max_total_tokens is not None:
        assert c.generated_tokens <= plan.max_total_tokens
    if plan.exit_rule == "none":
        assert c.probe_tokens == 0
    if r.answer is not None:
        assert r.answer in {s.answer for s in r.samples}


# --- thinking with the server's own budget (OpenAIBackend server_thinking_budget, fake server) ------------

@pytest.fixture(scope="module")
def budget_server():
    """One fake OpenAI server honouring thinking_token_budget; each example sets its script in `texts`."""
    from adaptive.backends.openai import OpenAIBackend
    from adaptive.testing.fake_openai import FakeOpenAIServer, WordTokenizer

    texts: list = [""]

    def script(prompt, prefix, i, seed):
        return texts[0][i % len(texts[0])] if texts[0] else ""

    with FakeOpenAIServer(script, thinking_budget=True) as srv, \
            OpenAIBackend(srv.url, "fake-model", backoff_base_s=0.01, timeout_s=10, max_retries=0,
                          server_thinking_budget="thinking_token_budget", tokenizer=WordTokenizer()) as b:
        yield srv, b, texts


_server_word = st.sampled_from([" step", " 7", " 12", " so", " </think>", " The answer is 7."])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(traces=st.integers(1, 4), max_think=st.integers(4, 40), answer=st.integers(1, 12),
       total=st.one_of(st.none(), st.integers(1, 200)), seed=st.one_of(st.none(), st.integers(0, 99)),
       texts=st.lists(st.lists(_server_word, max_size=50).map("".join), min_size=1, max_size=4))
def test_budget_invariants_thinking_with_the_servers_budget(budget_server, traces, max_think, answer, total, seed,
                                                            texts):
    """The server-budget path keeps every cap the chunked path keeps: traces <= max_samples, each trace's
    thinking <= max_thinking_tokens, each request's worst case (n * max_tokens) inside what is left of
    max_total_tokens, and the thinking / answer split adds up to what the server generated."""
    srv, backend, holder = budget_server
    holder[0] = texts
    start_done, start_sent = len(srv.completed), srv.completion_tokens_sent
    plan = Plan(strategy="thinking", max_samples=traces, max_thinking_tokens=max_think, max_new_tokens=answer,
                max_total_tokens=total, seed=seed, extractor="number")
    r = run_strategy(Query(prompt="Solve: what is 6*7?", extract=NUMBER, ledger=Ledger()), plan, backend)
    c = r.compute
    assert c.generated_tokens == srv.completion_tokens_sent - start_sent
    assert c.thinking_tokens + c.answer_tokens == c.generated_tokens and c.probe_tokens == 0
    assert 1 <= c.samples <= traces and len(r.extra["thinking"]) <= traces
    assert all(tr["thinking_tokens"] <= max_think for tr in r.extra["thinking"])
    spent = 0
    for body, used in zip(srv.completed[start_done:], srv.completed_tokens[start_done:]):
        if total is not None:
            assert spent + body.get("n", 1) * body["max_tokens"] <= total
        spent += used
    if total is not None:
        assert c.generated_tokens <= total
