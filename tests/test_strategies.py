"""Strategies on a scripted FakeBackend: votes, waves, stopping, ledgers, token caps, search, refine."""
from __future__ import annotations

import itertools

import pytest

from adaptive.answers import extractor_for
from adaptive.backends.fake import FakeBackend, _text_of
from adaptive.compute import Ledger
from adaptive.errors import InputError, PlanError
from adaptive.generator import AdaptiveGenerator
from adaptive.plan import Plan
from adaptive.registry import verifiers
from adaptive.strategies import Query, run_strategy, vote
from adaptive.strategies.refine import CRITIQUE
from adaptive.strategies.sampling import run_sampling_batch
from adaptive.verifiers.base import make_verifier

NUMBER = extractor_for("number")

# --- helpers ---------------------------------------------------------------------------------------

class AnswerScore:
    """Test verifier: score = table[extracted answer] (default 0.1); makes no model calls."""

    name = "test_answer_score"
    needs = frozenset()

    def __init__(self, table=None, default=0.1):
        self.table, self.default = dict(table or {}), default

    def score(self, prompt, completions, ledger=None):
        return [self.table.get(NUMBER(c.text), self.default) for c in completions]


if "test_answer_score" not in verifiers:
    verifiers.register("test_answer_score", lambda backend=None, **kw: AnswerScore(**kw))


class ScoredFake(FakeBackend):
    """FakeBackend whose per-token logprob depends on the completion text (prefix match)."""

    def __init__(self, script, lp: dict[str, float], **kw):
        super().__init__(script, **kw)
        self.lp = lp

    def _complete(self, text, params):
        c = super()._complete(text, params)
        for key, v in self.lp.items():
            if c.text.startswith(key):
                c.logprobs = [v] * len(c.logprobs)
                break
        return c


def task(prompt="What is 2+2?", **kw) -> Query:
    return Query(prompt=prompt, extract=NUMBER, ledger=Ledger(), **kw)


def sum_requests(backend, f):
    return sum(f(r) for reqs, _ in backend.calls for r in reqs)


def prompt_tokens_of(backend):
    return sum_requests(backend, lambda r: len(_text_of(r.prompt)) + len(r.prefix))


def assert_ledger_matches_backend(result, backend):
    c, t = result.compute, backend.totals
    assert c.samples == t.samples == sum_requests(backend, lambda r: r.n)
    assert c.generated_tokens == t.generated_tokens
    assert c.prompt_tokens == t.prompt_tokens == prompt_tokens_of(backend)
    assert c.model_calls == t.model_calls == len(backend.calls)
    assert c.forward_passes == t.forward_passes
    assert c.generated_tokens == sum(s.tokens for s in result.samples) or result.plan.strategy in (
        "beam_search", "dvts")


# --- vote ------------------------------------------------------------------------------------------

def test_vote_unit_rules():
    assert vote(["3", "5", "5"]) == ("5", {"3": 1.0, "5": 2.0})
    assert vote([None, None, None, "7"])[0] == "7"
    assert vote([None, None]) == (None, {})
    assert vote([]) == (None, {})
    assert vote(["a", "b"])[0] == "a"
    assert vote(["b", "a"])[0] == "b"
    # weight tie broken by the larger count, then first appearance
    assert vote(["x", "y", "y"], [1.0, 0.5, 0.5])[0] == "y"
    assert vote(["x", "y"], [0.2, 0.9])[0] == "y"


# --- self-consistency: majority vote ---------------------------------------------------------------

def run_sc(script, max_samples, backend_cls=FakeBackend, verifier=None, **plan_kw):
    backend = FakeBackend(script) if backend_cls is FakeBackend else backend_cls(script)
    plan = Plan(strategy="self_consistency", max_samples=max_samples, **plan_kw)
    return run_strategy(task(), plan, backend, verifier), backend


def test_majority_picks_most_frequent_answer():
    r, b = run_sc(["The answer is 3", "The answer is 5", "#### 5", "5 apples", "The answer is 3"], 5)
    assert r.answer == "5"
    assert r.votes == {"3": 2.0, "5": 3.0}
    assert NUMBER(r.text) == "5"
    assert [s.answer for s in r.samples] == ["3", "5", "5", "5", "3"]
    assert r.stop_reason == "max_samples"


def test_no_answer_never_beats_a_real_answer():
    script = ["I am not sure.", "no idea", "The answer is 9", "cannot tell", "hmm"]
    r, _ = run_sc(script, 5)
    assert [s.answer for s in r.samples].count(None) == 4
    assert r.answer == "9"
    assert None not in r.votes
    assert r.text == "The answer is 9"


def test_all_unparseable_gives_none():
    r, _ = run_sc(["nothing", "nope"], 4)
    assert r.answer is None
    assert r.votes == {}
    assert r.compute.samples == 4


@pytest.mark.parametrize("script,expected", [
    (["answer 7", "answer 3", "answer 3", "answer 7"], "7"),
    (["answer 3", "answer 7", "answer 7", "answer 3"], "3"),
    (["x", "answer 4", "answer 8"], "4"),
])
def test_ties_break_by_first_appearance(script, expected):
    results = [run_sc(script, len(script))[0].answer for _ in range(3)]
    assert results == [expected] * 3


# --- waves and stopping rules ----------------------------------------------------------------------

def test_beta_stops_unanimous_after_two_waves():
    r, b = run_sc(["The answer is 4"], 8, wave_size=2, stopping="beta")
    # a=2: P = 1 - 0.5**3 = 0.875 < 0.95; a=4: 1 - 0.5**5 = 0.969 >= 0.95
    assert r.compute.samples == 4
    assert len(b.calls) == 2
    assert all(req.n == 2 for reqs, _ in b.calls for req in reqs)
    assert r.stop_reason.startswith("stopping:")
    assert r.stop_reason == "stopping:beta"
    assert r.answer == "4"


def test_fixed_draws_all_samples_in_waves():
    r, b = run_sc(["The answer is 4"], 8, wave_size=2, stopping="fixed")
    assert r.compute.samples == 8
    assert len(b.calls) == 4
    assert [req.n for reqs, _ in b.calls for req in reqs] == [2, 2, 2, 2]
    assert r.stop_reason == "max_samples"


def test_last_wave_is_trimmed_to_the_cap():
    r, b = run_sc(["The answer is 4"], 7, wave_size=3, stopping="fixed")
    assert [req.n for reqs, _ in b.calls for req in reqs] == [3, 3, 1]
    assert r.compute.samples == 7


def test_waves_use_distinct_seeds():
    _, b = run_sc(["The answer is 4"], 6, wave_size=2, stopping="fixed", seed=10)
    seeds = [p.seed for _, p in b.calls]
    assert len(set(seeds)) == len(seeds) == 3


def test_esc_stops_after_first_unanimous_window():
    r, b = run_sc(["The answer is 4"], 12, wave_size=4, stopping="esc", stopping_params={"window": 4})
    assert r.compute.samples == 4
    assert len(b.calls) == 1
    assert r.stop_reason == "stopping:esc"


def test_esc_continues_past_split_window():
    script = ["answer 1", "answer 2", "answer 1", "answer 1"] + ["answer 1"] * 4 + ["answer 9"] * 4
    r, b = run_sc(script, 12, wave_size=4, stopping="esc", stopping_params={"window": 4})
    assert r.compute.samples == 8
    assert r.stop_reason == "stopping:esc"
    assert r.answer == "1"


def test_esc_no_answer_window_does_not_stop():
    script = ["nothing"] * 4 + ["answer 3"] * 4
    r, _ = run_sc(script, 12, wave_size=4, stopping="esc", stopping_params={"window": 4})
    assert r.compute.samples == 8
    assert r.answer == "3"


def test_entropy_stops_on_unanimity():
    r, _ = run_sc(["answer 6"], 10, wave_size=2, stopping="entropy")
    assert r.stop_reason == "stopping:entropy"
    assert r.compute.samples == 4


def test_dirichlet_stops_on_unanimity():
    r, _ = run_sc(["answer 6"], 10, wave_size=2, stopping="dirichlet")
    assert r.stop_reason == "stopping:dirichlet"
    assert r.compute.samples == 4


# --- the ledger ------------------------------------------------------------------------------------

@pytest.mark.parametrize("wave_size", [0, 1, 3])
def test_ledger_equals_backend_calls(wave_size):
    script = ["The answer is 12", "I think #### 13", "so 12", "blah"]
    r, b = run_sc(script, 7, wave_size=wave_size)
    assert r.compute.samples == 7 == len(r.samples)
    assert r.compute.generated_tokens == sum(len(s) + 1 for s in (script * 2)[:7])  # chars + EOS
    assert_ledger_matches_backend(r, b)


def test_ledger_counts_truncated_samples():
    r, b = run_sc(["x" * 50 + " 5"], 3, max_new_tokens=10)
    assert r.compute.generated_tokens == 30
    assert all(s.finish_reason == "length" and s.tokens == 10 for s in r.samples)
    assert_ledger_matches_backend(r, b)


# --- token budget ----------------------------------------------------------------------------------

def test_max_total_tokens_is_a_hard_cap():
    r, b = run_sc(["The answer is 42, after a long derivation"], 10, wave_size=2, max_new_tokens=20,
                  max_total_tokens=50)
    assert r.compute.generated_tokens <= 50
    assert b.totals.generated_tokens <= 50
    assert r.stop_reason == "token_budget"
    for reqs, params in b.calls:
        assert sum(req.n for req in reqs) * params.max_new_tokens <= 50


def test_max_total_tokens_not_binding():
    r, _ = run_sc(["answer 1"], 4, max_new_tokens=20, max_total_tokens=10_000)
    assert r.stop_reason == "max_samples"
    assert r.compute.samples == 4


@pytest.mark.parametrize("cap", [1, 2, 7, 19, 40, 41])
def test_token_cap_various(cap):
    r, b = run_sc(["The answer is 3"], 6, wave_size=3, max_new_tokens=16, max_total_tokens=cap)
    assert r.compute.generated_tokens <= cap
    assert r.compute.samples >= 1
    assert r.stop_reason in ("token_budget", "max_samples")
    assert_ledger_matches_backend(r, b)


# --- best-of-N -------------------------------------------------------------------------------------

def test_best_of_n_picks_highest_logprob_sample():
    script = ["The answer is 1", "The answer is 2", "The answer is 3", "The answer is 2"]
    b = ScoredFake(script, {"The answer is 1": -2.0, "The answer is 2": -1.0, "The answer is 3": -0.1})
    plan = Plan(strategy="best_of_n", max_samples=4, verifier="logprob")
    r = run_strategy(task(), plan, b, make_verifier("logprob", backend=b))
    assert r.answer == "3"  # highest score though "2" is the majority
    assert r.text == "The answer is 3"
    best = max(r.samples, key=lambda s: s.score)
    assert best.answer == r.answer
    assert all(s.score is not None for s in r.samples)
    assert_ledger_matches_backend(r, b)


def test_best_of_n_prefers_real_answer_over_higher_scored_no_answer():
    b = ScoredFake(["no idea at all", "The answer is 5"], {"no idea": -0.01, "The answer": -3.0})
    plan = Plan(strategy="best_of_n", max_samples=2, verifier="logprob")
    r = run_strategy(task(), plan, b, make_verifier("logprob", backend=b))
    assert r.answer == "5"


def test_best_of_n_needs_verifier():
    b = FakeBackend(["answer 1"])
    with pytest.raises(PlanError) as e:
        run_strategy(task(), Plan(strategy="best_of_n", max_samples=2), b, None)
    assert "verifier" in str(e.value)
    assert b.calls == []
    with pytest.raises(PlanError):  # at construction now: the Plan itself is invalid
        AdaptiveGenerator(backend=b, plan=Plan(strategy="best_of_n", max_samples=2)).generate("What is 1?")
    assert b.calls == []


# --- weighted vote ---------------------------------------------------------------------------------

def test_weighted_vote_overturns_majority():
    script = ["answer 3", "answer 3", "answer 3", "answer 5"]
    plan = Plan(max_samples=4, aggregation="weighted", verifier="test_answer_score")
    r_plain, _ = run_sc(script, 4)
    assert r_plain.answer == "3"
    r = run_strategy(task(), plan, FakeBackend(script), AnswerScore({"5": 1.0, "3": 0.2}))
    assert r.answer == "5"
    assert r.votes["5"] == pytest.approx(1.0)
    assert r.votes["3"] == pytest.approx(0.6)


def test_weighted_vote_keeps_majority_when_weights_agree():
    script = ["answer 3", "answer 3", "answer 5"]
    plan = Plan(max_samples=3, aggregation="weighted", verifier="test_answer_score")
    r = run_strategy(task(), plan, FakeBackend(script), AnswerScore({"5": 0.5, "3": 0.5}))
    assert r.answer == "3"


def test_weighted_vote_through_generator():
    script = ["answer 3", "answer 3", "answer 5"]
    g = AdaptiveGenerator(backend=FakeBackend(script),
                          plan=Plan(max_samples=3, aggregation="weighted", verifier="test_answer_score",
                                    verifier_params={"table": {"5": 5.0}}))
    assert g.generate("Pick one").answer == "5"


# --- search ----------------------------------------------------------------------------------------

def stepper(n_steps: int, answer="42", step_len=6):
    """Each call continues `prefix`: steps 'sK....' ended by a blank line, then a final answer."""

    def script(prompt, prefix, i, rng):
        k = prefix.count("\n\n")
        if k < n_steps:
            return f"s{k}{'.' * step_len}{i}\n\nleftover that must be cut"
        return f"Therefore the answer is {answer}."

    return script


def search_plan(strategy, **kw):
    base = dict(strategy=strategy, verifier="logprob", search_width=3, search_beams=2, search_depth=4,
                max_new_tokens=64)
    base.update(kw)
    return Plan(**base)


@pytest.mark.parametrize("strategy", ["beam_search", "dvts"])
@pytest.mark.parametrize("n_steps,depth", [(0, 3), (2, 4), (3, 4), (5, 3), (2, 1)])
def test_search_bounds(strategy, n_steps, depth):
    b = FakeBackend(stepper(n_steps))
    plan = search_plan(strategy, search_depth=depth)
    r = run_strategy(task(), plan, b, make_verifier("logprob", backend=b))
    assert r.extra["depth"] <= depth
    assert r.compute.samples <= depth * plan.search_beams * plan.search_width
    assert len(b.calls) <= depth * plan.search_beams
    for reqs, params in b.calls:
        assert "\n\n" in params.stop
        assert len(reqs) == 1 and reqs[0].n == plan.search_width
        assert reqs[0].prefix.count("\n\n") < depth
    assert r.stop_reason
    assert_ledger_matches_backend(r, b)
    # the answer comes from one of the finished beams
    assert r.answer in {s.answer for s in r.samples}
    assert r.text in {s.text for s in r.samples}
    if n_steps < depth:
        assert r.answer == "42"
        chosen = next(s for s in r.samples if s.text == r.text)
        assert chosen.finish_reason == "eos"
        assert r.text.endswith("Therefore the answer is 42.")
        assert r.extra["depth"] == n_steps + 1
        assert "leftover" not in r.text
    else:
        assert r.stop_reason == "search_depth"


@pytest.mark.parametrize("strategy", ["beam_search", "dvts"])
def test_search_steps_are_joined_with_delimiter(strategy):
    b = FakeBackend(stepper(2, step_len=1))
    r = run_strategy(task(), search_plan(strategy), b, make_verifier("logprob", backend=b))
    parts = r.text.split("\n\n")
    assert len(parts) == 3
    assert parts[0].startswith("s0") and parts[1].startswith("s1")
    # each step call continued the previous steps
    prefixes = {reqs[0].prefix for reqs, _ in b.calls}
    assert "" in prefixes
    assert any(p.count("\n\n") == 2 for p in prefixes)


def test_beam_search_keeps_the_best_scored_beams():
    def script(prompt, prefix, i, rng):
        if not prefix:
            return ["good step\n\n", "bad step\n\n", "meh step\n\n"][i % 3]
        return "The answer is 7" if prefix.startswith("good") else "The answer is 1"

    b = ScoredFake(script, {"good": -0.1, "bad": -5.0, "meh": -4.0, "The answer is 7": -0.1,
                            "The answer is 1": -0.1})
    plan = search_plan("beam_search", search_beams=1, search_width=3, search_depth=3)
    r = run_strategy(task(), plan, b, make_verifier("logprob", backend=b))
    assert r.answer == "7"
    assert r.text.startswith("good step")
    # only the kept beam was expanded at depth 2
    assert [reqs[0].prefix for reqs, _ in b.calls] == ["", "good step\n\n"]


@pytest.mark.parametrize("strategy", ["beam_search", "dvts"])
def test_search_needs_verifier(strategy):
    b = FakeBackend(stepper(1))
    with pytest.raises(PlanError) as e:
        run_strategy(task(), Plan(strategy=strategy), b, None)
    assert "verifier" in str(e.value)
    assert b.calls == []


@pytest.mark.parametrize("strategy", ["beam_search", "dvts"])
@pytest.mark.parametrize("cap", [1, 10, 37, 100])
def test_search_token_cap(strategy, cap):
    b = FakeBackend(stepper(3, step_len=10))
    plan = search_plan(strategy, max_total_tokens=cap, max_new_tokens=30)
    r = run_strategy(task(), plan, b, make_verifier("logprob", backend=b))
    assert r.compute.generated_tokens <= cap
    assert b.totals.generated_tokens <= cap
    assert_ledger_matches_backend(r, b)


def test_dvts_expands_each_subtree():
    b = FakeBackend(stepper(1))
    plan = search_plan("dvts", search_beams=3, search_width=2, search_depth=3)
    r = run_strategy(task(), plan, b, make_verifier("logprob", backend=b))
    first = b.calls[:3]
    assert [reqs[0].prefix for reqs, _ in first] == ["", "", ""]  # one call per subtree root
    assert len(r.samples) <= plan.search_beams
    assert r.compute.samples <= 3 * 3 * 2


# --- refine ----------------------------------------------------------------------------------------

def refine_script(critique, revise):
    """critique/revise: callables (round index) -> text; the draft is 'The answer is 5'."""
    crit_n, rev_n = itertools.count(), itertools.count()

    def script(prompt, prefix, i, rng):
        if prompt.endswith(CRITIQUE):
            return critique(next(crit_n))
        if "Here is feedback on your answer" in prompt:
            return revise(next(rev_n))
        return "The answer is 5"

    return script


def run_refine(script, steps, **kw):
    b = FakeBackend(script)
    r = run_strategy(task(), Plan(strategy="refine", refine_steps=steps, **kw), b, None)
    return r, b


def test_refine_stops_when_critique_says_correct():
    r, b = run_refine(refine_script(lambda k: "All good. VERDICT: CORRECT", lambda k: "The answer is 6"), 3)
    assert r.stop_reason == "critique_correct"
    assert len(r.extra["critiques"]) == 1
    assert len(b.calls) == 2
    assert r.answer == "5"
    assert_ledger_matches_backend_refine(r, b)


def test_refine_stops_when_answer_unchanged():
    r, b = run_refine(refine_script(lambda k: "Wrong. VERDICT: WRONG", lambda k: "Still, the answer is 5"), 3)
    assert r.stop_reason == "answer_unchanged"
    assert len(b.calls) == 3
    assert r.answer == "5"
    assert r.text == "Still, the answer is 5"
    assert len(r.samples) == 2


def test_refine_runs_all_rounds():
    r, b = run_refine(refine_script(lambda k: "VERDICT: WRONG", lambda k: f"The answer is {10 + k}"), 3)
    assert r.stop_reason == "refine_steps"
    assert len(b.calls) == 1 + 2 * 3
    assert r.answer == "12"
    assert [s.answer for s in r.samples] == ["5", "10", "11", "12"]


@pytest.mark.parametrize("steps", [0, 1, 2, 4])
def test_refine_call_bound(steps):
    r, b = run_refine(refine_script(lambda k: "VERDICT: WRONG", lambda k: f"The answer is {k}"), steps)
    assert len(b.calls) <= 1 + 2 * steps
    assert r.compute.model_calls == len(b.calls)
    if steps == 0:
        assert len(b.calls) == 1 and r.stop_reason == "refine_steps"


@pytest.mark.parametrize("cap", [1, 2, 16, 17, 30, 60])
def test_refine_token_cap(cap):
    r, b = run_refine(refine_script(lambda k: "Nope. VERDICT: WRONG", lambda k: f"The answer is {k}"), 3,
                      max_new_tokens=20, max_total_tokens=cap)
    assert r.compute.generated_tokens <= cap
    assert len(b.calls) <= 7
    assert_ledger_matches_backend_refine(r, b)


def assert_ledger_matches_backend_refine(r, b):
    assert r.compute.generated_tokens == b.totals.generated_tokens
    assert r.compute.prompt_tokens == b.totals.prompt_tokens == prompt_tokens_of(b)
    assert r.compute.model_calls == b.totals.model_calls == len(b.calls)
    assert r.compute.samples == b.totals.samples


# --- batch -----------------------------------------------------------------------------------------

def test_run_sampling_batch_three_tasks():
    scripts = {
        "Q1?": ["The answer is 1"],
        "Q2?": ["answer 2", "answer 3", "answer 2", "hmm"],
        "Q3?": ["a very long answer that says #### 30 at the end"],
    }

    def script(prompt, prefix, i, rng):
        s = scripts[prompt]
        return s[i % len(s)]

    b = FakeBackend(script)
    tasks = [task(q) for q in scripts]
    plans = [Plan(max_samples=4, wave_size=2, stopping="esc", stopping_params={"window": 2}),
             Plan(max_samples=6, wave_size=3),
             Plan(max_samples=3, wave_size=1, max_new_tokens=60)]
    results = run_sampling_batch(tasks, plans, b)
    assert len(results) == 3
    assert [r.answer for r in results] == ["1", "2", "30"]
    assert [r.compute.samples for r in results] == [2, 6, 3]
    assert results[0].stop_reason == "stopping:esc"
    ledgers = {id(t.ledger) for t in tasks}
    assert len(ledgers) == 3
    for q, r in zip(scripts, results):
        assert r.compute.samples == sum(req.n for reqs, _ in b.calls for req in reqs if req.prompt == q)
        assert r.compute.prompt_tokens == sum(len(q) for reqs, _ in b.calls for req in reqs if req.prompt == q)
        assert r.compute.model_calls == sum(1 for reqs, _ in b.calls if any(req.prompt == q for req in reqs))
        assert r.compute.generated_tokens == sum(s.tokens for s in r.samples)
    for f in ("samples", "generated_tokens", "prompt_tokens"):
        assert sum(getattr(r.compute, f) for r in results) == getattr(b.totals, f), f
    # prompts with the same sampling settings shared a call
    assert any(len(reqs) > 1 for reqs, _ in b.calls)


# --- AdaptiveGenerator -----------------------------------------------------------------------------

def test_generator_single_and_list():
    b = FakeBackend(["The answer is 8"])
    g = AdaptiveGenerator(backend=b, plan=Plan(max_samples=2))
    one = g.generate("What is 4+4?")
    assert not isinstance(one, list) and one.answer == "8"
    many = g.generate(["What is 4+4?", "And 2*4?", "And 16/2?"])
    assert isinstance(many, list) and len(many) == 3
    assert all(r.answer == "8" for r in many)
    assert all(r.compute.samples == 2 for r in many)
    assert g.generate([]) == []


def test_generator_chat_messages_prompt():
    g = AdaptiveGenerator(backend=FakeBackend(["answer 3"]), plan=Plan(max_samples=1))
    r = g.generate([{"role": "user", "content": "1+2?"}])
    assert not isinstance(r, list) and r.answer == "3"


@pytest.mark.parametrize("budget", [1, 3, 5])
def test_generator_budget_sets_sample_cap(budget):
    b = FakeBackend(["The answer is 8"])
    g = AdaptiveGenerator(backend=b, plan=Plan(max_samples=2, stopping="fixed"))
    r = g.generate("What is 4+4?", budget=budget)
    assert r.plan.max_samples == budget
    assert r.compute.samples == budget == b.totals.samples
    assert g.plan.max_samples == 2  # the generator's plan is unchanged


@pytest.mark.parametrize("budget", [0, -1, True, 2.5, "3"])
def test_generator_bad_budget(budget):
    b = FakeBackend(["answer 1"])
    with pytest.raises(PlanError):
        AdaptiveGenerator(backend=b).generate("Q?", budget=budget)
    assert b.calls == []


def test_generator_aliases_and_unknown_kwarg():
    b = FakeBackend(["answer 1"])
    g = AdaptiveGenerator(backend=b)
    assert g.generate("Q?", samples=3).compute.samples == 3
    with pytest.raises(PlanError) as e:
        g.generate("Q?", max_smaples=3)
    assert "max_smaples" in str(e.value)
    with pytest.raises(PlanError):
        g.generate("Q?", temperature=-1.0)
    assert len(b.calls) == 1


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t", ["fine?", "  "], [{"role": "user", "content": " "}]])
def test_empty_prompt_raises_before_any_call(prompt):
    b = FakeBackend(["answer 1"])
    g = AdaptiveGenerator(backend=b, plan=Plan(max_samples=3))
    with pytest.raises(InputError):
        g.generate(prompt)
    assert b.calls == []
    assert b.totals.samples == 0


def test_generator_dict_plan_and_unknown_field():
    g = AdaptiveGenerator(backend=FakeBackend(["answer 1"]), plan={"max_samples": 2})
    assert g.plan.max_samples == 2
    with pytest.raises(PlanError):
        AdaptiveGenerator(backend=FakeBackend(["answer 1"]), plan={"max_sample": 2})


# --- stop strings ----------------------------------------------------------------------------------

def test_fake_backend_stop_string_and_eos_accounting():
    from adaptive.backends.base import SamplingParams

    b = FakeBackend(["x"])
    c = b._complete("ab\n\ncd", SamplingParams(stop=("\n\n",)))
    assert (c.text, c.finish_reason, c.n_tokens) == ("ab", "stop", 4)  # stop string is paid for
    c = b._complete("abc", SamplingParams())
    assert (c.text, c.finish_reason, c.n_tokens) == ("abc", "eos", 4)  # so is the EOS token
    c = b._complete("abcdef", SamplingParams(max_new_tokens=3))
    assert (c.text, c.finish_reason, c.n_tokens) == ("abc", "length", 3)


def test_fake_backend_stops_at_earliest_stop_string():
    from adaptive.backends.base import SamplingParams

    c = FakeBackend(["x"])._complete("aZb\n\nc", SamplingParams(stop=("\n\n", "Z")))
    assert (c.text, c.finish_reason, c.n_tokens) == ("a", "stop", 2)


@pytest.mark.parametrize("strategy", ["beam_search", "dvts"])
def test_search_task_stop_string_ends_the_beam(strategy):
    def script(prompt, prefix, i, rng):
        k = prefix.count("\n\n")
        return "step one\n\n" if k == 0 else ("The answer is 5</s>junk" if k == 1 else "The answer is 9")

    b = FakeBackend(script)
    g = AdaptiveGenerator(backend=b, plan=search_plan(strategy, search_width=1, search_beams=1), stop=["</s>"])
    r = g.generate("Q?")
    assert r.answer == "5"
    assert r.text == "step one\n\nThe answer is 5"
    assert len(b.calls) == 2


def test_generator_applies_a_policy_file_per_prompt(tmp_path):
    """A binned policy gives each prompt the plan of its difficulty bin; the cap is respected."""
    import yaml

    from adaptive.result import Difficulty

    pol = tmp_path / "binned.yaml"
    pol.write_text(yaml.safe_dump({
        "schema": 1, "kind": "binned", "estimator": None, "base_plan": {"max_new_tokens": 32},
        "bins": [{"max_p": 0.5, "plan": {"max_samples": 6}}, {"max_p": 1.0, "plan": {"max_samples": 1}}]}))
    b = FakeBackend(["The answer is 4."])
    gen = AdaptiveGenerator(backend=b, policy=str(pol))
    hard, easy = gen.generate(["hard one", "easy one"],
                              difficulties=[Difficulty(0.1, 0), Difficulty(0.9, 4)])
    assert hard.compute.samples == 6 and easy.compute.samples == 1
    assert hard.difficulty.p_hat == 0.1 and easy.plan.max_samples == 1
    # Per-call Plan overrides replace the policy with one fixed plan for the call.
    assert gen.generate("x", samples=2).compute.samples == 2
