"""Thinking plans on the embedded model (SmolLM2-135M), with an explicit marker convention: the prompt asks
for <think> ... </think> and then the answer. The model is weak, so these check behaviour and invariants
(an answer at the end, caps, the ledger, the prefix cache), not accuracy."""
from __future__ import annotations

import pytest

from adaptive.answers import extractor_for
from adaptive.controller import Controller
from adaptive.plan import Plan

pytestmark = pytest.mark.model

PROMPT = ("What is 12 + 7? Think it through inside <think> ... </think>, then write the final answer as a "
          "number.")
ENDS = {"thought_closed", "thought_eos", "max_thinking_tokens", "token_budget", "exit:convergence"}


def _run(backend, plan):
    ctl = Controller(backend, policy=None)
    q = ctl.query(PROMPT, extract=extractor_for("number"))
    return ctl.execute([q], [plan])[0], q.ledger.calls


def _check_common(r, calls, plan, spent):
    c = r.compute
    assert r.text.strip() and r.extra["delimiters"] == ["<think>", "</think>"]  # ends with an answer
    assert all(t["answered"] for t in r.extra["thinking"])
    assert all(t["thinking_tokens"] <= plan.max_thinking_tokens and t["end"] in ENDS for t in r.extra["thinking"])
    assert c.thinking_tokens + c.probe_tokens + c.answer_tokens == c.generated_tokens == spent["generated_tokens"]
    assert c.prompt_tokens == spent["prompt_tokens"] and c.model_calls == spent["model_calls"] == len(calls)
    assert c.samples == plan.max_samples == len(r.samples)
    if plan.max_total_tokens is not None:
        assert c.generated_tokens <= plan.max_total_tokens
    assert [u.purpose for u in calls][-1] == "answer"


def test_early_exit_and_fixed_cap_both_end_with_an_answer(hf_backend, totals_delta):
    exit_plan = Plan(strategy="thinking", max_samples=2, max_thinking_tokens=48, exit_rule="convergence",
                     probe_interval=12, probe_max_tokens=8, exit_patience=2, max_new_tokens=12, temperature=0,
                     max_total_tokens=200)
    r, calls = _run(hf_backend, exit_plan)
    _check_common(r, calls, exit_plan, totals_delta())
    for t in r.extra["thinking"]:
        if t["end"] == "exit:convergence":  # the rule's own condition held at the exit
            last = [p["answer"] for p in t["probes"][-2:]]
            assert len(last) == 2 and last[0] is not None and last[0] == last[1]
        assert [p["at"] for p in t["probes"]] == sorted(p["at"] for p in t["probes"])

    cap_plan = Plan(strategy="thinking", max_samples=1, max_thinking_tokens=24, max_new_tokens=12, temperature=0)
    spent = totals_delta()
    r, calls = _run(hf_backend, cap_plan)
    now = totals_delta()
    _check_common(r, calls, cap_plan, {k: now[k] - spent[k] for k in now})
    assert r.compute.probe_tokens == 0 and [u.purpose for u in calls] == ["thinking", "answer"]


def test_each_chunk_prefills_only_its_new_tokens(hf_backend):
    """The prefix cache holds prompt + trace: a later chunk, a probe and the answer compute only what is new
    (the previous chunk's last token, which was never fed, a re-tokenised boundary, the markers and cues).
    First with min = max thinking tokens (a thought the model ends early is reopened with the cue, so every
    trace thinks its 36 tokens in 3 chunks), then with probes every 12 tokens (a threshold of 1 never exits)."""
    from adaptive.backends.hf import HFBackend

    backend = HFBackend(hf_backend.model, hf_backend.tokenizer)  # its own prefix cache, whatever ran before
    assert backend.prefix_cache is not None
    cue = backend.count_tokens(Plan().continuation_cue)
    forced = Plan(strategy="thinking", max_samples=2, max_thinking_tokens=36, min_thinking_tokens=36,
                  max_new_tokens=8, temperature=0.7, seed=3)
    probed = Plan(strategy="thinking", max_samples=2, max_thinking_tokens=36, exit_rule="confidence",
                  exit_threshold=1.0, probe_interval=12, probe_max_tokens=6, max_new_tokens=8, temperature=0.7, seed=4)
    r, calls = _run(backend, forced)
    assert all(t["thinking_tokens"] == 36 for t in r.extra["thinking"])
    r2, calls2 = _run(backend, probed)
    assert any(u.purpose == "probe" for u in calls2)
    later = [u for cs in (calls, calls2) for u in [u for u in cs if u.purpose == "thinking"][1:]]
    assert len(later) >= 2  # chunks that continue an earlier one
    for cs in (calls, calls2):
        for u in [u for u in cs if u.purpose == "thinking"][1:] + [u for u in cs if u.purpose in ("probe", "answer")]:
            computed = u.prompt_tokens - u.cached_prompt_tokens
            assert u.cached_prompt_tokens > 0.85 * u.prompt_tokens, (u.purpose, u.prompt_tokens, u.cached_prompt_tokens)
            # 2 traces: the unfed last token each, a re-tokenised boundary token, a cue where one was put;
            # a probe or answer adds the end delimiter and the answer cue
            limit = 2 * (2 + cue) if u.purpose == "thinking" else 2 * 12
            assert computed <= limit, (u.purpose, computed)
