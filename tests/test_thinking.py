"""Thinking plans on a scripted reasoning model: Plan rules, exit rules on worked vectors, budget forcing
(cap, continuation cue), probe-based early exit at the right token, batching, the ledger's
thinking / answer / probe split, delimiters from a chat template, policies and the simulator."""
from __future__ import annotations

import math

import pytest

from adaptive.answers import extractor_for
from adaptive.backends.fake import FakeBackend
from adaptive.compute import Ledger
from adaptive.controller import Controller
from adaptive.errors import CapabilityError, PlanError
from adaptive.exits import Probe
from adaptive.exits.confidence import ConfidenceExit, mean_token_probability
from adaptive.exits.convergence import ConvergenceExit
from adaptive.plan import Plan
from adaptive.strategies import Query, run_strategy
from adaptive.strategies.think_format import think_format

NUMBER = extractor_for("number")
OPEN, CLOSE, CUE, ANSWER_CUE = "<think>\n", "</think>", "\nWait,", "\nFinal answer:"


class Reasoner:
    """A scripted reasoning model (one character = one token).

    The thought is `segments`: the model writes segment 0 then the end delimiter; given the continuation
    cue it writes segment 1 and the delimiter, and so on (`closes=False`: the last segment never closes).
    A prefix ending in "</think>" + answer cue gets `probe(n)`, n = thinking characters generated so far
    (a probe or a forced answer: both answer from the thought so far); after the model's own delimiter
    it answers `answer`."""

    def __init__(self, segments, probe=lambda n: " 4", answer=" The answer is 4.", closes=True):
        self.segments, self.probe, self.answer, self.closes = list(segments), probe, answer, closes

    @staticmethod
    def generated(body: str) -> int:
        cues = body.count(CUE)  # each cue replaced a delimiter the model wrote
        return len(body) - cues * len(CUE) + cues * len(CLOSE)

    def __call__(self, prompt, prefix, i, rng):
        if prefix.endswith(CLOSE + ANSWER_CUE):
            return self.probe(self.generated(prefix[len(OPEN):-len(CLOSE + ANSWER_CUE)]))
        if prefix.endswith(CLOSE):
            return self.answer
        parts = prefix[len(OPEN):].split(CUE)
        k, done = len(parts) - 1, len(parts[-1])
        seg = self.segments[min(k, len(self.segments) - 1)]
        last = k >= len(self.segments) - 1
        return seg[done:] + ("" if last and not self.closes else CLOSE)


class Recording(FakeBackend):
    """FakeBackend that keeps each call's completions (to check what was generated for each purpose)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.gens = []

    def generate(self, requests, params, **kw):
        gen = super().generate(requests, params, **kw)
        self.gens.append((list(requests), params, gen))
        return gen


def purpose_of(params) -> str:
    if CLOSE in params.stop:
        return "thinking"
    return "probe" if params.temperature == 0 else "answer"


def think(backend, prompt="What is 2+2?", **fields):
    plan = Plan(strategy="thinking", **{"max_new_tokens": 20, **fields})
    q = Query(prompt=prompt, extract=NUMBER, ledger=Ledger())
    return run_strategy(q, plan, backend), plan


# --- Plan ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,kw,says", [
    ("min_thinking_tokens", 65, {"max_thinking_tokens": 64}, "<= max_thinking_tokens=64"),
    ("max_thinking_tokens", 0, {}, ">= 1"),
    ("min_thinking_tokens", -1, {}, ">= 0"),
    ("probe_interval", 0, {"exit_rule": "convergence"}, ">= 1"),
    ("exit_patience", 0, {"exit_rule": "convergence"}, ">= 1"),
    ("exit_threshold", 0.0, {"exit_rule": "confidence"}, "> 0"),
    ("exit_threshold", 1.5, {"exit_rule": "confidence"}, "<= 1"),
    ("probe_max_tokens", 0, {"exit_rule": "confidence"}, ">= 1"),
    ("think_open", "<t>", {}, "both"),
    ("think_close", "<t>", {"think_open": "<t>"}, "differ"),
    ("think_open", " ", {"think_close": "</t>"}, "non-empty"),
    ("continuation_cue", "", {}, "non-empty"),
    ("exit_patience", 3, {"exit_rule": "confidence"}, "exit_rule='confidence'"),
    ("exit_threshold", 0.5, {"exit_rule": "convergence"}, "exit_rule='convergence'"),
    ("probe_interval", 32, {}, "exit_rule='none'"),
])
def test_plan_thinking_fields_are_validated(field, value, kw, says):
    with pytest.raises(PlanError) as e:
        Plan(strategy="thinking", **{field: value, **kw})
    assert e.value.field == field and repr(value) in str(e.value) and says in str(e.value)


def test_thinking_fields_apply_only_to_the_thinking_strategy():
    for field, value in (("max_thinking_tokens", 64), ("exit_rule", "convergence"), ("answer_cue", "A:")):
        with pytest.raises(PlanError, match="does not apply to strategy='self_consistency'") as e:
            Plan(**{field: value})
        assert e.value.field == field
    p = Plan(strategy="thinking", max_samples=3, max_thinking_tokens=64, exit_rule="confidence", exit_threshold=1.0)
    assert p.with_strategy("self_consistency").max_thinking_tokens == Plan().max_thinking_tokens
    assert p.with_strategy("self_consistency").max_samples == 3  # a sample cap means N traces here
    with pytest.raises(PlanError, match="does not apply"):
        Plan(strategy="thinking", stopping="beta")  # traces are not drawn in waves
    assert "exit by confidence" in p.summary() and "3 traces of <= 64 thinking tokens" in p.summary()


def test_unknown_exit_rule_is_caught_by_check_names():
    p = Plan(strategy="thinking", exit_rule="stable")
    with pytest.raises(PlanError, match="unknown name; known: confidence, convergence, none") as e:
        p.check_names()
    assert e.value.field == "exit_rule"


# --- exit rules on worked vectors ------------------------------------------------------------------

def probes(*answers, lp=()):
    return [Probe(at=10 * (i + 1), answer=a, logprobs=tuple(lp)) for i, a in enumerate(answers)]


def test_convergence_exits_after_patience_equal_answers():
    rule = ConvergenceExit(patience=2)
    seq = ["3", "5", "5"]
    assert [rule.should_exit(probes(*seq[:k])) for k in (1, 2, 3)] == [False, False, True]
    assert not rule.should_exit(probes("5", None, "5"))     # no answer breaks the run
    assert not rule.should_exit(probes(None, None))         # None never converges
    assert ConvergenceExit(3).should_exit(probes("1", "7", "7", "7"))
    assert not ConvergenceExit(3).should_exit(probes("7", "7", "1", "7"))
    assert ConvergenceExit(1).should_exit(probes("9"))


def test_confidence_is_the_mean_token_probability():
    lps = [math.log(0.9), math.log(0.8)]                    # mean probability (0.9 + 0.8) / 2 = 0.85
    assert mean_token_probability(lps) == pytest.approx(0.85)
    assert mean_token_probability([]) is None
    assert ConfidenceExit(0.85).should_exit(probes("4", lp=lps))
    assert not ConfidenceExit(0.86).should_exit(probes("4", lp=lps))
    assert not ConfidenceExit(0.1).should_exit(probes(None, lp=lps))  # nothing to answer with
    assert not ConfidenceExit(0.1).should_exit(probes("4"))           # no logprobs: cannot judge


# --- the strategy: exit, cap, cue --------------------------------------------------------------------

def test_convergence_exits_at_the_right_token():
    """Probes every 10 tokens answer 3, 5, 5: with patience 2 the trace exits after the third probe, at
    30 thinking tokens, and its forced answer is the trial answer there."""
    answers = {10: " 3", 20: " 5", 30: " 5", 40: " 7"}
    b = Recording(Reasoner(["x" * 200], probe=lambda n: answers.get(n, " 9"), closes=False))
    r, plan = think(b, max_samples=2, max_thinking_tokens=100, exit_rule="convergence", probe_interval=10,
                    exit_patience=2)
    assert r.answer == "5" and r.stop_reason == "exit:convergence"
    for t in r.extra["thinking"]:
        assert t["thinking_tokens"] == 30 and t["end"] == "exit:convergence"
        assert [p["answer"] for p in t["probes"]] == ["3", "5", "5"] and [p["at"] for p in t["probes"]] == [10, 20, 30]
    kinds = [purpose_of(p) for _, p, _ in b.gens]
    assert kinds == ["thinking", "probe"] * 3 + ["answer"]
    assert all(sum(q.n for q in reqs) == 2 for reqs, _, _ in b.gens)  # both traces ride in every call
    assert [len(reqs) for reqs, _, _ in b.gens][:2] == [1, 1]  # same prefix: one request of n=2
    reqs, params, _ = b.gens[-1]
    assert reqs[0].prefix == OPEN + "x" * 30 + CLOSE + ANSWER_CUE and params.max_new_tokens == 20
    c = r.compute
    assert (c.thinking_tokens, c.probe_tokens, c.answer_tokens) == (2 * 30, 2 * 3 * 3, 2 * 3)  # " 5" + EOS
    assert c.samples == 2 and c.model_calls == 7 and len(r.samples) == 2


def test_forced_answer_at_the_thinking_cap():
    """A model that never closes its thought: at max_thinking_tokens the thought is closed and the answer
    forced after the answer cue; without an exit rule the thought is one chunk."""
    b = Recording(Reasoner(["y" * 500], probe=lambda n: f" {n}", closes=False))
    r, _ = think(b, max_thinking_tokens=25)
    assert r.stop_reason == "max_thinking_tokens" and r.answer == "25"
    assert [p.max_new_tokens for _, p, _ in b.gens] == [25, 20]
    assert b.gens[-1][0][0].prefix == OPEN + "y" * 25 + CLOSE + ANSWER_CUE
    assert r.compute.thinking_tokens == 25
    # with probes that never agree: chunks of 10, 10, then the 5 left; no probe at the cap
    b = Recording(Reasoner(["y" * 500], probe=lambda n: f" {n}", closes=False))
    r, _ = think(b, max_thinking_tokens=25, exit_rule="convergence", probe_interval=10)
    assert [(purpose_of(p), p.max_new_tokens) for _, p, _ in b.gens] == [
        ("thinking", 10), ("probe", 16), ("thinking", 10), ("probe", 16), ("thinking", 5), ("answer", 20)]
    assert r.extra["thinking"][0]["thinking_tokens"] == 25 and r.stop_reason == "max_thinking_tokens"


def test_continuation_cue_when_the_model_stops_before_the_minimum():
    """The model closes after 'abcdefgh' (8 + 8 delimiter tokens = 16 < 20): the delimiter is replaced by
    the cue and it thinks on; it closes again at 16 + 26 = 42 >= 20 tokens and answers after its own
    delimiter (no answer cue)."""
    b = Recording(Reasoner(["abcdefgh", "ijklmnopqrstuvwxyz"]))
    r, _ = think(b, max_thinking_tokens=64, min_thinking_tokens=20)
    assert r.stop_reason == "thought_closed" and r.answer == "4"
    t = r.extra["thinking"][0]
    assert (t["thinking_tokens"], t["cues"]) == (42, 1)
    prefixes = [reqs[0].prefix for reqs, _, _ in b.gens]
    assert prefixes == [OPEN, OPEN + "abcdefgh" + CUE, OPEN + "abcdefgh" + CUE + "ijklmnopqrstuvwxyz" + CLOSE]
    assert [p.max_new_tokens for _, p, _ in b.gens] == [64, 48, 20]
    assert r.samples[0].text == prefixes[-1] + " The answer is 4."
    # without a minimum the first close ends the thought
    r, _ = think(FakeBackend(Reasoner(["abcdefgh", "ijkl"])), max_thinking_tokens=64)
    assert r.extra["thinking"][0]["thinking_tokens"] == 16 and r.extra["thinking"][0]["cues"] == 0


def test_no_probes_before_the_minimum_and_eos_counts_as_an_end():
    b = Recording(Reasoner(["z" * 300], probe=lambda n: " 1", closes=False))
    r, _ = think(b, max_thinking_tokens=80, min_thinking_tokens=25, exit_rule="convergence", probe_interval=10,
                 exit_patience=2)
    t = r.extra["thinking"][0]
    assert [p["at"] for p in t["probes"]] == [30, 40] and t["thinking_tokens"] == 40  # first probe at >= 25
    # the model ends its whole output inside the thought (EOS, no delimiter): forced answer after the cue
    b = Recording(lambda prompt, prefix, i, rng: " 6" if prefix.endswith(ANSWER_CUE) else "short thought")
    r, _ = think(b, max_thinking_tokens=64)
    assert r.stop_reason == "thought_eos" and r.answer == "6" and b.gens[-1][0][0].prefix.endswith(CLOSE + ANSWER_CUE)


def test_confidence_exit_reads_the_trial_answers_token_probabilities():
    conf = FakeBackend(Reasoner(["w" * 300], closes=False), logprob=math.log(0.95))
    r, _ = think(conf, max_thinking_tokens=100, exit_rule="confidence", probe_interval=10, exit_threshold=0.9)
    assert r.stop_reason == "exit:confidence" and r.extra["thinking"][0]["thinking_tokens"] == 10
    assert r.extra["thinking"][0]["probes"][0]["mean_token_prob"] == pytest.approx(0.95)
    unsure = FakeBackend(Reasoner(["w" * 300], closes=False), logprob=math.log(0.5))
    r, _ = think(unsure, max_thinking_tokens=30, exit_rule="confidence", probe_interval=10, exit_threshold=0.9)
    assert r.stop_reason == "max_thinking_tokens" and len(r.extra["thinking"][0]["probes"]) == 2


# --- the ledger ------------------------------------------------------------------------------------

def test_ledger_split_equals_what_the_backend_generated_per_purpose():
    answers = {10: " 3", 20: " 8", 30: " 8"}
    b = Recording(Reasoner(["ab" * 100], probe=lambda n: answers.get(n, " 1"), closes=False))
    r, _ = think(b, max_samples=3, max_thinking_tokens=50, exit_rule="convergence", probe_interval=10,
                 min_thinking_tokens=5)
    per = {"thinking": 0, "probe": 0, "answer": 0}
    for _, params, gen in b.gens:
        per[purpose_of(params)] += sum(c.n_tokens for comps in gen.completions for c in comps)
    c = r.compute
    assert (c.thinking_tokens, c.probe_tokens, c.answer_tokens) == (per["thinking"], per["probe"], per["answer"])
    assert c.thinking_tokens + c.probe_tokens + c.answer_tokens == c.generated_tokens == b.totals.generated_tokens
    assert c.prompt_tokens == b.totals.prompt_tokens and c.model_calls == len(b.calls) == b.totals.model_calls
    assert c.forward_passes == b.totals.forward_passes
    assert c.samples == 3 and sum(s.tokens for s in r.samples) == c.thinking_tokens + c.answer_tokens


def test_other_strategies_split_nothing():
    r = run_strategy(Query("q", extract=NUMBER), Plan(max_samples=2), FakeBackend(["4"]))
    assert (r.compute.thinking_tokens, r.compute.answer_tokens, r.compute.probe_tokens) == (0, 0, 0)


# --- caps and batching -----------------------------------------------------------------------------

def test_total_cap_leaves_room_for_every_answer():
    """max_total_tokens=100, N=2, answers <= 20: 2 * min(20, 100 // 4) = 40 held back, so thinking and
    probes spend <= 60 and each answer still fits."""
    b = Recording(Reasoner(["q" * 500], probe=lambda n: f" {n}", closes=False))
    r, _ = think(b, max_samples=2, max_thinking_tokens=200, exit_rule="convergence", probe_interval=16,
                 max_total_tokens=100)
    c = r.compute
    assert c.generated_tokens <= 100 and c.thinking_tokens + c.probe_tokens <= 60
    assert all(t["answered"] for t in r.extra["thinking"]) and r.stop_reason == "token_budget"
    spent = 0
    for reqs, params, gen in b.gens:  # every call's worst case fitted in what was left
        assert spent + len(reqs) * params.max_new_tokens <= 100
        spent += gen.usage.generated_tokens


def test_two_queries_share_each_rounds_call():
    b = Recording(Reasoner(["k" * 100], closes=False))
    ctl = Controller(b, policy=None)
    qs = [ctl.query(p, extract=NUMBER) for p in ("one?", "two?")]
    plan = Plan(strategy="thinking", max_samples=2, max_thinking_tokens=20, exit_rule="convergence",
                probe_interval=10, max_new_tokens=8)
    results = ctl.execute(qs, [plan, plan])
    # think 10, probe, think 10 (the cap), answer: each call carries both queries' 2 traces (the scripted
    # model writes the same thought for both traces: one request of n=2 per query)
    assert [(purpose_of(p), len(reqs), sum(q.n for q in reqs)) for reqs, p, _ in b.gens] == [
        ("thinking", 2, 4), ("probe", 2, 4), ("thinking", 2, 4), ("answer", 2, 4)]
    assert {q.prompt for q in b.gens[0][0]} == {"one?", "two?"}
    for r in results:
        assert r.compute.model_calls == 4 and r.compute.samples == 2 and r.answer == "4"
    assert sum(r.compute.generated_tokens for r in results) == b.totals.generated_tokens


def test_backend_without_prefix_continuation_is_refused():
    class NoPrefix(FakeBackend):
        def capabilities(self):
            return {"logprobs"}

    with pytest.raises(CapabilityError, match="continue an assistant prefix"):
        think(NoPrefix(["x"]))


# --- delimiters ------------------------------------------------------------------------------------

class _Tok:
    def __init__(self, template, gen_prompt, added=()):
        self.chat_template, self._gen, self._added = template, gen_prompt, added

    def apply_chat_template(self, msgs, add_generation_prompt, tokenize):
        return self._gen

    def get_added_vocab(self):
        return {t: i for i, t in enumerate(self._added)}


def test_delimiters_from_the_chat_template():
    fake = FakeBackend(["x"])
    plan = Plan(strategy="thinking")
    assert think_format(plan, fake).source == "default"
    fake.tokenizer = _Tok("{{ '<think>' }}...{{ '</think>' }}", "<|user|>x<|assistant|><think>\n")
    fmt = think_format(plan, fake)
    assert (fmt.open, fmt.close, fmt.source, fmt.opened_by_template) == ("<think>", "</think>", "chat template", True)
    assert fmt.opener(raw=False) == "" and fmt.opener(raw=True) == "<think>\n"
    fake.tokenizer = _Tok("plain", "<|assistant|>", added=("<think>", "</think>"))
    assert think_format(plan, fake).source == "chat template" and not think_format(plan, fake).opened_by_template
    own = think_format(Plan(strategy="thinking", think_open="<reason>", think_close="</reason>"), fake)
    assert (own.open, own.close, own.source) == ("<reason>", "</reason>", "plan")


def test_a_template_that_opens_the_thought_is_not_opened_twice():
    b = Recording(Reasoner(["x" * 100], closes=False))
    b.tokenizer = _Tok("<think></think>", "<|assistant|><think>\n")
    r, _ = think(b, max_thinking_tokens=10)
    assert b.gens[0][0][0].prefix == "" and b.gens[-1][0][0].prefix == "x" * 10 + CLOSE + ANSWER_CUE


# --- composition: policies, the simulator ----------------------------------------------------------

def test_binned_policy_sets_thinking_budget_per_difficulty():
    from adaptive.policies import parse_policy
    from adaptive.result import Difficulty

    pol = parse_policy({"schema": 1, "kind": "binned", "estimator": None,
                        "base_plan": {"strategy": "thinking", "max_new_tokens": 8, "max_samples": 2},
                        "bins": [{"max_p": 0.5, "plan": {"max_thinking_tokens": 60, "exit_rule": "convergence",
                                                         "probe_interval": 20}},
                                 {"max_p": 1.0, "plan": {"max_thinking_tokens": 12}}]}, "mem")
    b = FakeBackend(Reasoner(["t" * 300], probe=lambda n: f" {n}", closes=False))
    ctl = Controller(b, policy=pol)
    qs = [ctl.query(p, extract=NUMBER) for p in ("hard", "easy")]
    hard, easy = ctl.run(qs, difficulties=[Difficulty(0.2, 0), Difficulty(0.9, 4)]).results
    assert [t["thinking_tokens"] for t in hard.extra["thinking"]] == [60, 60]
    assert [t["thinking_tokens"] for t in easy.extra["thinking"]] == [12, 12]
    assert hard.compute.thinking_tokens == 120 and easy.compute.thinking_tokens == 24
    assert "max_p" not in hard.decision["plan"] and "60 thinking tokens" in hard.decision["plan"]
    assert pol.plans(["x"], [Difficulty(0.2, 0)], budget=1)[0].max_samples == 1  # budget caps the traces


def test_simulator_refuses_thinking_plans_saying_why():
    from adaptive.bank import Bank, NotReplayable, Simulator
    from adaptive.graded import GradedPrompt, GradedSample

    bank = Bank([GradedPrompt("1", "question", "g", [GradedSample("g", 1.0, 10)], {}, None, None)])
    with pytest.raises(NotReplayable, match="trial answers probed along each thinking trace"):
        Simulator(bank, seeds=1).run_plan(Plan(strategy="thinking", max_samples=4))


def test_thinking_through_an_openai_server_by_prefix_continuation():
    """The same loop on the OpenAI backend (assistant-prefix continuation via continue_final_message)
    against the fake server ("tokens" are whitespace-led words): probes every 4 words, exit at 8."""
    from adaptive.backends.openai import OpenAIBackend
    from adaptive.testing.fake_openai import FakeOpenAIServer

    def script(prompt, prefix, i, seed):
        if prefix.endswith(ANSWER_CUE):
            return " 7"
        return " The answer is 7." if prefix.endswith(CLOSE) else " step" * 50

    with FakeOpenAIServer(script) as srv, OpenAIBackend(srv.url, "fake-model", backoff_base_s=0.01,
                                                        timeout_s=5) as b:
        r, _ = think(b, max_samples=2, max_thinking_tokens=20, exit_rule="convergence", probe_interval=4, seed=5)
        assert r.answer == "7" and r.stop_reason == "exit:convergence"
        # the first chunk is one request of n=2 (samples seeded 5 and 6); the next follows the 2 rows drawn (the
        # scripted traces are alike, so it is one request of n=2 again); the answers follow those 4
        chunks = [(q.get("n"), q.get("seed")) for q in srv.requests if q.get("stop") == [CLOSE]]
        assert chunks == [(2, 5), (2, 7)] and (srv.requests[-1].get("n"), srv.requests[-1].get("seed")) == (2, 9)
        assert [t["thinking_tokens"] for t in r.extra["thinking"]] == [8, 8]
        assert all(body.get("continue_final_message") for body in srv.requests)
        assert srv.requests[0]["messages"][-1] == {"role": "assistant", "content": OPEN}
        c = r.compute
        assert c.thinking_tokens + c.probe_tokens + c.answer_tokens == c.generated_tokens == srv.completion_tokens_sent


# --- the server's own thinking budget (OpenAIBackend server_thinking_budget) ----------------------------

def _server_script(prompt, prefix, i, seed):
    """Sample i thinks 5 + 10 i words, then closes and answers (the fake forces the end at the budget)."""
    if prefix.endswith(CLOSE):
        return " The answer is 7."
    return " step" * (5 + 10 * i) + " </think> The answer is 7."


def _server_backend(srv, **kw):
    from adaptive.backends.openai import OpenAIBackend
    from adaptive.testing.fake_openai import WordTokenizer

    kw = {"server_thinking_budget": "thinking_token_budget", "tokenizer": WordTokenizer(), **kw}
    return OpenAIBackend(srv.url, "fake-model", backoff_base_s=0.01, timeout_s=5, max_retries=0, **kw)


@pytest.mark.parametrize("reasoning_field", [None, "reasoning", "reasoning_content"])
def test_server_thinking_budget_one_request_split_and_forced_end(reasoning_field):
    from adaptive.testing.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer(_server_script, thinking_budget=True, reasoning_field=reasoning_field) as srv, \
            _server_backend(srv) as b:
        r, _ = think(b, max_samples=2, max_thinking_tokens=12, max_new_tokens=8, seed=1)
        # one request per query: n = traces, budget = cap less the delimiter and the overshoot margin,
        # max_tokens = thinking cap + answer reserve
        assert len(srv.requests) == 1
        body = srv.requests[0]
        assert (body["n"], body["thinking_token_budget"], body["max_tokens"], body["seed"]) == (2, 12 - 1 - 2, 20, 1)
        assert body["messages"][-1] == {"role": "assistant", "content": OPEN} and "stop" not in body
        # trace 0 closed its thought itself (5 words + delimiter); trace 1 was cut at the budget (9 + delimiter)
        info = r.extra["thinking"]
        assert [(t["thinking_tokens"], t["end"], t["answered"]) for t in info] == [(6, "thought_closed", True),
                                                                                    (10, "server_budget", True)]
        assert r.extra["thinking_budget_by"] == "server" and r.answer == "7"
        c = r.compute
        assert (c.thinking_tokens, c.answer_tokens, c.probe_tokens) == (16, 10, 0)
        assert c.generated_tokens == srv.completion_tokens_sent == 26 and c.model_calls == 1 and c.samples == 2
        assert all(s.text.startswith(OPEN) and CLOSE in s.text for s in r.samples)


def test_server_thinking_budget_keeps_the_total_cap_and_answers_an_unclosed_thought():
    from adaptive.testing.fake_openai import FakeOpenAIServer

    def script(prompt, prefix, i, seed):  # the thought ends (EOS) without closing
        return " 7" if prefix.endswith(ANSWER_CUE) else " step" * 3

    with FakeOpenAIServer(script, thinking_budget=True) as srv, _server_backend(srv) as b:
        r, plan = think(b, max_samples=2, max_thinking_tokens=40, max_new_tokens=8, max_total_tokens=60)
        first = srv.requests[0]
        # reserve per trace min(8, 60 // 4) = 8; cap min(40, 60 // 2 - 8) = 22: 2 * (22 + 8) fits in 60
        assert (first["n"], first["max_tokens"], first["thinking_token_budget"]) == (2, 30, 22 - 1 - 2)
        # the unclosed traces get the usual forced answer (prefix continuation with the answer cue)
        assert [t["end"] for t in r.extra["thinking"]] == ["thought_eos", "thought_eos"] and r.answer == "7"
        assert srv.requests[1]["messages"][-1]["content"].endswith(CLOSE + ANSWER_CUE)
        assert r.compute.generated_tokens <= 60 and r.compute.samples == 2
        assert r.compute.thinking_tokens + r.compute.answer_tokens == r.compute.generated_tokens


def test_server_thinking_budget_with_no_room_sends_nothing_for_thinking():
    from adaptive.testing.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer(lambda *a: " 7", thinking_budget=True) as srv, _server_backend(srv) as b:
        r, _ = think(b, max_samples=2, max_thinking_tokens=40, max_new_tokens=8, max_total_tokens=8)
        assert not any("thinking_token_budget" in q for q in srv.requests)
        assert all(t["end"] == "token_budget" for t in r.extra["thinking"]) and r.compute.generated_tokens <= 8


@pytest.mark.parametrize("fields, says", [
    ({"min_thinking_tokens": 4}, "Plan.min_thinking_tokens=4: cannot be done by the server's thinking budget"),
    ({"continuation_cue": "\nHmm,"}, "Plan.continuation_cue='\\\\nHmm,': cannot be done by the server"),
    ({"answer_cue": "\nSo:"}, "Plan.answer_cue='\\\\nSo:': cannot be done by the server"),
])
def test_server_thinking_budget_refuses_what_the_server_cannot_do(fields, says):
    from adaptive.testing.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer(_server_script, thinking_budget=True) as srv, _server_backend(srv) as b:
        with pytest.raises(PlanError, match=says.replace("(", r"\(")):
            think(b, max_samples=2, max_thinking_tokens=12, **fields)
        assert srv.requests == []


def test_server_thinking_budget_errors_stop_strings_tokenizer_and_a_server_that_ignores_it():
    from adaptive.backends.openai import OpenAIBackend
    from adaptive.errors import AdaptiveError, InputError
    from adaptive.testing.fake_openai import FakeOpenAIServer

    with pytest.raises(InputError, match="server_thinking_budget='budget_tokens': must be None or one of "
                                         "thinking_token_budget"):
        OpenAIBackend("http://127.0.0.1:9/v1", "m", server_thinking_budget="budget_tokens")
    with FakeOpenAIServer(_server_script, thinking_budget=True) as srv, _server_backend(srv) as b:
        q = Query(prompt="What is 3+4?", extract=NUMBER, ledger=Ledger(), stop=("\n\n",))
        with pytest.raises(InputError, match=r"stop=\('\\n\\n',\): .* a stop string would cut the thought"):
            run_strategy(q, Plan(strategy="thinking", max_samples=2), b)
    with FakeOpenAIServer(_server_script, thinking_budget=True) as srv, _server_backend(srv, tokenizer=None) as b:
        with pytest.raises(CapabilityError, match="needs a local tokenizer"):
            think(b, max_samples=2)
    # a server that ignores the field: the thought runs past the cap, and that is an error, not a result
    long = lambda prompt, prefix, i, seed: " step" * 40 + " </think> 7"  # noqa: E731
    with FakeOpenAIServer(long) as srv, _server_backend(srv) as b:
        with pytest.raises(AdaptiveError, match="does not honour the field"):
            think(b, max_samples=1, max_thinking_tokens=12, max_new_tokens=40)
    # one that refuses it: its message, no fallback to chunks
    with FakeOpenAIServer(_server_script, refuse_thinking_budget=True) as srv, _server_backend(srv) as b:
        with pytest.raises(AdaptiveError, match="HTTP 400.*thinking_token_budget is set but reasoning_config"):
            think(b, max_samples=1)
        assert len(srv.requests) == 1


def test_server_thinking_budget_leaves_exit_rules_on_the_chunked_path():
    from adaptive.testing.fake_openai import FakeOpenAIServer

    def script(prompt, prefix, i, seed):
        if prefix.endswith(ANSWER_CUE):
            return " 7"
        return " The answer is 7." if prefix.endswith(CLOSE) else " step" * 50

    with FakeOpenAIServer(script, thinking_budget=True) as srv, _server_backend(srv) as b:
        r, _ = think(b, max_samples=2, max_thinking_tokens=20, exit_rule="convergence", probe_interval=4)
        assert r.stop_reason == "exit:convergence" and "thinking_budget_by" not in r.extra
        assert not any("thinking_token_budget" in q for q in srv.requests)
