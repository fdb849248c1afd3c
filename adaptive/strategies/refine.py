"""Self-refinement (Madaan et al. 2023, "Self-Refine"): answer -> the model critiques it -> revises.

Up to `plan.refine_steps` rounds. A round ends the loop early when the critique says the answer is
correct, or when the revision's extracted answer equals the previous one (nothing left to gain).
"""
from __future__ import annotations

import re

from ..backends.base import Backend
from ..plan import Plan
from ..result import Result
from ..verifiers.base import Verifier
from .base import Query, call, finish, fit_wave, sample_record, sampling_params, tokens_left

CRITIQUE = ("Check the answer above step by step for mistakes. If it is correct, reply with exactly "
            "'VERDICT: CORRECT'. Otherwise explain the mistake and end with 'VERDICT: WRONG'.")
REVISE = "Here is feedback on your answer:\n{critique}\n\nWrite an improved, complete answer to the question."
_CORRECT = re.compile(r"VERDICT:\s*CORRECT", re.I)


def _as_messages(prompt) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def refine(query: Query, plan: Plan, backend: Backend, verifier: Verifier | None = None) -> Result:
    drawn = 0  # calls so far, one sample each: each call's seed follows them

    def one(prompt):
        nonlocal drawn
        n, max_new = fit_wave(plan, query.ledger, 1)
        out = call(backend, query, n, sampling_params(plan, max_new, drawn=drawn, stop=query.stop),
                   prompt=prompt).completions[0][0]
        drawn += n
        return out

    draft = one(query.prompt)
    answer = query.extract(draft.text)
    records = [sample_record(draft, answer)]
    critiques: list[str] = []
    stop_reason = "refine_steps"
    for r in range(plan.refine_steps):
        if tokens_left(plan, query.ledger) < 2:  # a critique and a revision need at least a token each
            stop_reason = "token_budget"
            break
        history = _as_messages(query.prompt) + [{"role": "assistant", "content": draft.text}]
        critique = one(history + [{"role": "user", "content": CRITIQUE}])
        critiques.append(critique.text)
        if _CORRECT.search(critique.text):
            stop_reason = "critique_correct"
            break
        if tokens_left(plan, query.ledger) < 1:
            stop_reason = "token_budget"
            break
        revision = one(history + [{"role": "user", "content": REVISE.format(critique=critique.text)}])
        new_answer = query.extract(revision.text)
        records.append(sample_record(revision, new_answer))
        unchanged = new_answer == answer
        draft, answer = revision, new_answer
        if unchanged:
            stop_reason = "answer_unchanged"
            break
    return finish(query, plan, draft, answer, records, stop_reason, critiques=critiques)
