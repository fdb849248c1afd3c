"""Thinking: N reasoning traces under a thinking budget, with early exit, then a majority vote.

Budget forcing (Muennighoff et al. 2025, "s1: Simple test-time scaling"): a trace that reaches
`max_thinking_tokens` has its thought closed for it (end delimiter + answer cue) and its answer forced; a
trace whose model closes the thought (or ends with EOS) before `min_thinking_tokens` gets the end
delimiter replaced by `continuation_cue` ("Wait") and goes on thinking.
Early exit: every `probe_interval` thinking tokens (from `min_thinking_tokens` on) each trace is probed
with a trial answer, and the plan's exit rule (adaptive/exits/: `convergence`, Dynasor-CoT; `confidence`,
DEER) decides from the trace's probes whether it has thought enough.

The loop, over every trace of every query in the batch (`run_thinking_batch`):

    round:   every active trace's next thought chunk: Request(prompt, prefix=<open> + thought so far,
             will_continue=True), stop at the end delimiter, <= probe_interval tokens (the whole remaining
             thinking budget without an exit rule). Traces with the same sampling settings share ONE
             backend call (all N traces of a query do); traces with the same prefix (all N on the first
             chunk) share one request of n samples, so a seeded call still samples each differently
             (the seed follows the rows drawn so far, as in the sampling strategies).
             A chunk ending at the end delimiter: the thought is closed (or reopened with the cue below the
             minimum); at the cap: closed and forced; cut by length: still thinking.
    probes:  every trace still thinking gets a greedy trial answer from prefix = <open> + thought + <close>
             + answer cue, `probe_max_tokens` long, in one call; the trace itself is untouched (the next
             chunk continues the thought, not the probe). The exit rule reads the trace's probes.
    answers: once no trace thinks, every trace's answer in one call: after the model's own end delimiter
             (it answers as it would), or after <close> + answer cue when the thought was closed for it
             (cap, exit rule, EOS, token budget). Answers are at most max_new_tokens long.

On the HF backend a chunk's prompt + prefix extends the previous chunk's sequence, whose K/V the prefix
cache kept (`will_continue`), so each chunk prefills only its new tokens (the previous chunk's last token
and any re-tokenised boundary); probes and answers branch from the same cached trace. Any backend with
the "prefix" capability runs it (the OpenAI backend through assistant-prefix continuation).

Server budget (opt-in, `_server_round`): a backend with the "server_thinking_budget" capability (the OpenAI
backend with server_thinking_budget= set; vLLM's thinking_token_budget) runs a plan with exit_rule "none" as
ONE request of N traces per query: prefix = <open>, the field = the thinking cap less the end delimiter's
tokens and a 2-token margin (SERVER_OVERSHOOT), max_tokens = thinking cap + answer reserve; the server forces its end-of-thinking string when the
budget is spent and the model answers in the same sample. Each sample is split at the end delimiter: its
tokens up to and including it (counted with the backend's tokenizer: servers report no per-sample split) are
thinking, the rest answer. A trace that never closed (EOS) gets the usual forced answer. The server cannot
reopen a thought or insert a cue: min_thinking_tokens, continuation_cue and answer_cue (after a forced end
the server writes its own end string) are refused on this path, as are answer stop strings (they would cut
the thought).

Accounting: every call is charged to its query's ledger with a purpose (thinking / probe / answer), so
ComputeRecord splits generated tokens three ways; a trace counts as one sample (charged with its first
call), whatever the number of chunks. Hard limits: a trace's generated thinking tokens <= max_thinking_tokens;
with `max_total_tokens` every call's worst case fits in what is left, and thinking and probes leave a reserve
for the answers of min(max_new_tokens, max_total_tokens // (2N)) tokens per trace; a probe or an answer
that cannot fit is not started.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Sequence

from .. import timing
from ..backends.base import Backend, CallUsage, Completion, Request, SamplingParams
from ..errors import AdaptiveError, CapabilityError, InputError, PlanError
from ..exits import Probe, make_exit_rule
from ..exits.confidence import mean_token_probability
from ..plan import Plan
from ..result import Result
from .base import Query, finish, sample_record, sampling_params, tokens_left, vote
from .think_format import ThinkFormat, think_format

# Why a trace stopped thinking (its Result.stop_reason when it is the chosen one).
CLOSED, EOS, CAP, BUDGET = "thought_closed", "thought_eos", "max_thinking_tokens", "token_budget"
SERVER = "server_budget"  # the thought reached the server's budget (the server forced the end delimiter)
SERVER_CAP = "server_thinking_budget"  # the backend capability (OpenAIBackend.generate_thinking)
# Thinking tokens a server may let through past its budget before the forced end: measured on vLLM 0.32
# (CPU), whose budget state trails sampling by a step; held back so max_thinking_tokens stays a hard cap.
SERVER_OVERSHOOT = 2


@dataclass
class _Trace:
    thought: str = ""          # the thought so far, after the opener, without the end delimiter
    tokens: int = 0            # generated thinking tokens (cues are prompt text, not generated)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[list[float]] = field(default_factory=list)
    cues: int = 0              # continuation cues inserted (thought closed before the minimum)
    probes: list[Probe] = field(default_factory=list)
    end: str | None = None     # why thinking ended; None while thinking
    forced: bool = False       # closed for the model: its answer follows the answer cue
    counted: bool = False      # charged as a sample
    answer_comp: Completion | None = None
    answer: str | None = None

    def add_chunk(self, c: Completion) -> None:
        self.thought += c.text
        self.tokens += c.n_tokens
        self.token_ids += c.token_ids
        self.logprobs += c.logprobs
        self.top_logprobs += c.top_logprobs


@dataclass
class _Run:
    """One query's traces and settings."""

    query: Query
    plan: Plan
    fmt: ThinkFormat
    rule: object
    traces: list[_Trace]
    reserve: float             # generated tokens held back for the answers
    drawn: int = 0             # sampled rows so far (chunks and answers): the next call's seed follows them
    server: bool = False       # thinking by the server's budget field (_server_round), not in chunks

    @property
    def opener(self) -> str:
        return self.fmt.opener(self.query.raw)

    def active(self) -> list[_Trace]:
        return [t for t in self.traces if t.end is None]

    def room(self) -> float:
        """Generated tokens thinking and probes may still spend (the answers' reserve kept back)."""
        return tokens_left(self.plan, self.query.ledger) - self.reserve

    def chunk_size(self, active: list[_Trace]) -> int:
        plan = self.plan
        c = min(plan.max_thinking_tokens - t.tokens for t in active)
        if plan.exit_rule != "none":
            c = min(c, plan.probe_interval)
        room = self.room()
        return int(c if room == math.inf else min(c, room // len(active)))

    def answer_prefix(self, t: _Trace) -> str:
        return self.opener + t.thought + self.fmt.close + (self.plan.answer_cue if t.forced else "")

    def probe_prefix(self, t: _Trace) -> str:
        return self.opener + t.thought + self.fmt.close + self.plan.answer_cue

    def charge(self, traces: list[_Trace], usages: list[CallUsage], purpose: str) -> None:
        """Charge one backend call's share: this query's requests in it, as one model call. Tokens and
        FLOPs are summed over its requests; forward passes and wall time are the batch's. A trace is
        one sample, counted with its first thinking chunk or answer."""
        first = [t for t in traces if not t.counted and purpose != "probe"]
        for t in first:
            t.counted = True
        u = dataclasses.replace(usages[0], times=dict(usages[0].times), purpose=purpose, samples=len(first),
                                model_calls=1, forward_passes=max(x.forward_passes for x in usages))
        for f in ("prompt_tokens", "cached_prompt_tokens", "generated_tokens", "flops"):
            setattr(u, f, sum(getattr(x, f) for x in usages))
        self.query.ledger.add(u)


def _call(backend: Backend, members: list[tuple["_Run", "_Trace"]], params: SamplingParams, prefix_of,
          purpose: str, will_continue: bool = False) -> list[Completion]:
    """One backend call serving `members` ((query run, trace) pairs): each member's completion, in order.
    Traces of one query with the same prefix (all of them, on the first chunk) share one request of n
    samples, so a seeded call still gives each its own sample (sample j is seeded seed + j). Each query
    is charged its share."""
    slots: dict[tuple[int, str], list[int]] = {}
    for k, (run, t) in enumerate(members):
        slots.setdefault((id(run), prefix_of(run, t)), []).append(k)
    keys = list(slots)
    requests = []
    for key in keys:
        run = members[slots[key][0]][0]
        requests.append(Request(run.query.prompt, n=len(slots[key]), prefix=key[1], raw=run.query.raw,
                                will_continue=will_continue))
    gen = backend.generate(requests, params)
    out: list = [None] * len(members)
    by_run: dict[int, tuple[_Run, list, list]] = {}
    for key, comps, usage in zip(keys, gen.completions, gen.per_request):
        ks = slots[key]
        for k, c in zip(ks, comps):
            out[k] = c
        run = members[ks[0]][0]
        _, ts, us = by_run.setdefault(id(run), (run, [], []))
        ts.extend(members[k][1] for k in ks)
        us.append(usage)
    for run, ts, us in by_run.values():
        run.charge(ts, us, purpose)
    return out


def _start(query: Query, plan: Plan, backend: Backend) -> _Run:
    caps = backend.capabilities()
    if "prefix" not in caps:
        raise CapabilityError(f"strategy 'thinking' continues the assistant's thought in chunks and needs a "
                              f"backend that can continue an assistant prefix; {type(backend).__name__} cannot")
    rule = make_exit_rule(plan)
    if rule.needs_logprobs and "logprobs" not in caps:
        raise CapabilityError(f"exit_rule={plan.exit_rule!r} reads the trial answers' token logprobs; "
                              f"{type(backend).__name__} does not return logprobs")
    n = plan.max_samples
    reserve = 0.0 if plan.max_total_tokens is None else n * min(plan.max_new_tokens, plan.max_total_tokens // (2 * n))
    server = SERVER_CAP in caps and plan.exit_rule == "none"  # exit rules need probes: chunks
    if server:
        _check_server_path(query, plan, backend)
    return _Run(query, plan, think_format(plan, backend), rule, [_Trace() for _ in range(n)], reserve, server=server)


_SERVER_CANNOT = {"min_thinking_tokens": "the server never reopens a closed thought",
                  "continuation_cue": "the server never reopens a closed thought",
                  "answer_cue": "after a spent budget the server writes its own end string (vLLM reasoning_end_str)"}


def _check_server_path(query: Query, plan: Plan, backend: Backend) -> None:
    for name, why in _SERVER_CANNOT.items():
        if getattr(plan, name) != getattr(Plan, name):
            raise PlanError(name, getattr(plan, name), f"cannot be done by the server's thinking budget ({why}); "
                                                       "use a backend without server_thinking_budget")
    if query.stop:
        raise InputError(f"stop={query.stop!r}: the server's thinking budget draws thought and answer in one "
                         "sample, and a stop string would cut the thought; use a backend without server_thinking_budget")
    backend.count_tokens("x")  # the thinking / answer split counts tokens locally: fail now without a tokenizer


def run_thinking_batch(queries: Sequence[Query], plans: Sequence[Plan], backend: Backend) -> list[Result]:
    """Think on many prompts together, each with its own plan and ledger (see the module docstring)."""
    with timing.phase("control"):  # the loop's own work; backend calls time themselves
        runs = [_start(q, p, backend) for q, p in zip(queries, plans)]
        _server_round([r for r in runs if r.server], backend)
        while any(r.active() for r in runs):
            chunked = _think_round(runs, backend)
            _probe_round(chunked, backend)
        _answer_round(runs, backend)
        return [_result(r) for r in runs]


def _think_round(runs: list[_Run], backend: Backend) -> list[tuple[_Run, _Trace]]:
    """One thought chunk for every active trace (one backend call per distinct sampling settings).
    Returns the traces still thinking after a chunk cut by length: the ones to probe."""
    groups: dict[SamplingParams, list[tuple[_Run, _Trace]]] = {}
    for run in runs:
        active = run.active()
        if not active:
            continue
        c = run.chunk_size(active)
        if c < 1:  # the token budget (less the answers' reserve) has no room for another thinking token
            for t in active:
                t.end, t.forced = BUDGET, True
            continue
        params = sampling_params(run.plan, c, drawn=run.drawn, stop=(run.fmt.close,))
        run.drawn += len(active)
        groups.setdefault(params, []).extend((run, t) for t in active)
    to_probe = []
    for params, members in groups.items():
        comps = _call(backend, members, params, lambda r, t: r.opener + t.thought, "thinking", will_continue=True)
        for (run, t), c in zip(members, comps):
            if _after_chunk(run, t, c):
                to_probe.append((run, t))
    return to_probe


def _after_chunk(run: _Run, t: _Trace, c: Completion) -> bool:
    """Apply one chunk to its trace; True when the trace is still thinking mid-thought (probe it)."""
    plan = run.plan
    t.add_chunk(c)
    # The model closed its thought, or ended its output in it (a chunk with no tokens at all ends it too:
    # a backend that makes no progress would otherwise be asked again forever).
    ended = c.finish_reason in ("stop", "eos") or c.n_tokens == 0
    if ended and c.n_tokens and t.tokens < plan.min_thinking_tokens and t.tokens < plan.max_thinking_tokens:
        t.thought += plan.continuation_cue  # s1: suppress the end of thinking, append the cue, go on
        t.cues += 1
        return False
    if ended:
        t.end, t.forced = (CLOSED, False) if c.finish_reason == "stop" else (EOS, True)
        return False
    if t.tokens >= plan.max_thinking_tokens:
        t.end, t.forced = CAP, True
        return False
    return plan.exit_rule != "none" and t.tokens >= plan.min_thinking_tokens


def _probe_round(members: list[tuple[_Run, _Trace]], backend: Backend) -> None:
    """A greedy trial answer from each trace that is still thinking; probes that do not fit are not drawn."""
    groups: dict[SamplingParams, list[tuple[_Run, _Trace]]] = {}
    fit: dict[int, float] = {}
    for run, t in members:
        room = fit.setdefault(id(run), run.room())
        k = run.plan.probe_max_tokens
        if room < k:
            continue
        fit[id(run)] = room - k
        params = SamplingParams(max_new_tokens=k, temperature=0.0, stop=run.query.stop,
                                top_logprobs=1 if run.rule.needs_logprobs else 0)
        groups.setdefault(params, []).append((run, t))
    for params, group in groups.items():
        comps = _call(backend, group, params, lambda r, t: r.probe_prefix(t), "probe")
        for (run, t), c in zip(group, comps):
            lps = c.logprobs[:-1] if c.finish_reason == "eos" else c.logprobs
            t.probes.append(Probe(at=t.tokens, answer=run.query.extract(run.plan.answer_cue + c.text), text=c.text,
                                  logprobs=tuple(lps)))
            if run.rule.should_exit(t.probes):
                t.end, t.forced = f"exit:{run.rule.name}", True


def _answer_round(runs: list[_Run], backend: Backend) -> None:
    """Every trace's answer, in one call per distinct settings; answers that cannot fit are not started."""
    groups: dict[SamplingParams, list[tuple[_Run, _Trace]]] = {}
    for run in runs:
        todo = [t for t in run.traces if t.answer_comp is None]  # the server path answered most already
        left = tokens_left(run.plan, run.query.ledger)
        n = len(todo) if left == math.inf else min(len(todo), int(left))
        if n < 1:
            continue
        size = run.plan.max_new_tokens if left == math.inf else int(min(run.plan.max_new_tokens, left // n))
        params = sampling_params(run.plan, size, drawn=run.drawn, stop=run.query.stop)
        run.drawn += n
        groups.setdefault(params, []).extend((run, t) for t in todo[:n])
    for params, group in groups.items():
        comps = _call(backend, group, params, lambda r, t: r.answer_prefix(t), "answer")
        for (run, t), c in zip(group, comps):
            t.answer_comp = c
            cue = run.plan.answer_cue if t.forced else ""
            t.answer = run.query.extract(cue + c.text)


def _server_round(runs: list[_Run], backend) -> None:
    """Every trace of these runs thinks and answers in one sample under the server's budget (module
    docstring); one backend call per distinct settings. Traces that never closed their thought are left
    forced, without an answer, for _answer_round."""
    groups: dict[tuple, list[tuple[_Run, int]]] = {}
    for run in runs:
        n, plan = len(run.traces), run.plan
        left = tokens_left(plan, run.query.ledger)
        answer = plan.max_new_tokens if left == math.inf else int(run.reserve // n)
        # the thinking cap, end delimiter included; with a token cap, n * (cap + answer) fits in what is left
        cap = plan.max_thinking_tokens if left == math.inf else int(min(plan.max_thinking_tokens, left // n - answer))
        budget = cap - backend.count_tokens(run.fmt.close) - SERVER_OVERSHOOT
        if budget < 0:  # no room for a thought and its end delimiter
            for t in run.traces:
                t.end, t.forced = BUDGET, True
            continue
        params = sampling_params(plan, cap + answer, drawn=run.drawn)
        run.drawn += n
        groups.setdefault((params, budget, run.fmt.close), []).append((run, cap))
    for (params, budget, close), members in groups.items():
        requests = [Request(r.query.prompt, n=len(r.traces), prefix=r.opener, raw=r.query.raw) for r, _ in members]
        gen = backend.generate_thinking(requests, params, budget=budget, close=close)
        for (run, cap), comps, usage in zip(members, gen.completions, gen.per_request):
            for t, c in zip(run.traces, comps):
                _split_sample(run, t, c, backend, budget, cap)
            _charge_split(run, usage)


def _split_sample(run: _Run, t: _Trace, c: Completion, backend, budget: int, cap: int) -> None:
    """One server sample into the trace's thought (end delimiter included) and its answer."""
    close = run.fmt.close
    at = c.text.find(close)
    thought = c.text if at < 0 else c.text[:at]
    # Tokens counted with the backend's tokenizer: a server reports one count per sample at most
    # (vLLM's reasoning_tokens only with a reasoning parser, and per request), not this split.
    # Counted apart: a reasoning parser's thought comes back joined to the delimiter with nothing between.
    k = c.n_tokens if at < 0 else min(backend.count_tokens(thought) + backend.count_tokens(close), c.n_tokens)
    if k > cap or (at < 0 and c.finish_reason == "length"):
        raise AdaptiveError(f"server_thinking_budget: a thought ran {k} tokens, past the budget {budget} (+ its end "
                            "delimiter): the server does not honour the field (vLLM needs --reasoning-config or "
                            "--reasoning-parser)")
    t.thought, t.tokens, t.counted = thought, k, True
    t.token_ids, t.logprobs, t.top_logprobs = c.token_ids[:k], c.logprobs[:k], c.top_logprobs[:k]
    if at < 0:  # the sample ended inside its thought: answered after the forced close, as on the chunked path
        t.end, t.forced = EOS, True
        return
    # The server counts the opener's tokens after the open marker (the "\n" of "<think>\n") as thinking.
    tail = backend.count_tokens(run.opener[len(run.fmt.open):]) if run.opener.startswith(run.fmt.open) else 0
    # A thought closed at the budget was closed by the server (the text cannot tell a model that closed
    # at that very token apart).
    t.end = SERVER if k - backend.count_tokens(close) >= budget - tail else CLOSED
    t.answer_comp = Completion(text=c.text[at + len(close):], token_ids=c.token_ids[k:], finish_reason=c.finish_reason,
                               logprobs=c.logprobs[k:], top_logprobs=c.top_logprobs[k:],
                               token_times=c.token_times[k:], stop_string=c.stop_string)
    t.answer = run.query.extract(t.answer_comp.text)


def _charge_split(run: _Run, usage: CallUsage) -> None:
    """One server call: its thinking tokens and its answer tokens, charged as two purposes of one call
    (prompt, FLOPs, time and the samples go with the thinking part)."""
    thinking = sum(t.tokens for t in run.traces)
    answers = sum(t.answer_comp.n_tokens for t in run.traces if t.answer_comp is not None)
    run.query.ledger.add(dataclasses.replace(usage, times=dict(usage.times), purpose="thinking", model_calls=1,
                                             generated_tokens=thinking, samples=len(run.traces)))
    run.query.ledger.add(CallUsage(purpose="answer", generated_tokens=answers, model_calls=0,
                                   counted_locally=usage.counted_locally))


def _record_completion(run: _Run, t: _Trace) -> Completion:
    """The whole trace as one completion: thought (and the markers and cues around it) + answer."""
    a = t.answer_comp
    text = run.answer_prefix(t) + (a.text if a else "")
    return Completion(text=text, token_ids=t.token_ids + (a.token_ids if a else []),
                      finish_reason=a.finish_reason if a else "length", logprobs=t.logprobs + (a.logprobs if a else []),
                      top_logprobs=t.top_logprobs + (a.top_logprobs if a else []),
                      token_times=list(a.token_times) if a else [], stop_string=a.stop_string if a else None)


def _result(run: _Run) -> Result:
    query, plan = run.query, run.plan
    traces = [t for t in run.traces if t.counted]
    records = [sample_record(_record_completion(run, t), t.answer) for t in traces]
    info = [{"thinking_tokens": t.tokens, "end": t.end, "cues": t.cues, "answered": t.answer_comp is not None,
             "probes": [{"at": p.at, "answer": p.answer, "mean_token_prob": mean_token_probability(p.logprobs)}
                        for p in t.probes]} for t in traces]
    extra = {"thinking": info, "delimiters": [run.fmt.open, run.fmt.close], "delimiter_source": run.fmt.source}
    if run.server:
        extra["thinking_budget_by"] = "server"
    answered = [t for t in traces if t.answer_comp is not None]
    if not answered:
        return finish(query, plan, None, None, records, BUDGET, **extra)
    winner, totals = vote([t.answer for t in answered])
    chosen = next((t for t in answered if t.answer == winner), answered[0])
    return finish(query, plan, chosen.answer_comp, winner, records, chosen.end or BUDGET, totals,
                  text=chosen.answer_comp.text, **extra)


def thinking(query: Query, plan: Plan, backend: Backend, verifier=None) -> Result:
    return run_thinking_batch([query], [plan], backend)[0]
