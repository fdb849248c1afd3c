"""`convergence`: exit once the trial answers have converged — the last `patience` probes extracted the
same real answer.

Dynasor-CoT (Fu et al. 2025, "Efficiently Serving LLM Reasoning Programs with Certaindex", arXiv
2412.20993): probe the reasoning model every k thinking tokens by appending an answer cue and decoding
a short trial answer, and stop thinking once consecutive probes give the same answer (the answer has
stabilised; later tokens rarely change it). Liu & Wang (2025, "Answer Convergence as a Signal for Early
Stopping in Reasoning") report the same signal. DEER (Yang et al. 2025) probes the same way but decides
by the trial answer's confidence: see confidence.py.

Definition used here: with probes p_1..p_m of one trace (oldest first), exit after probe m iff
m >= patience and answer(p_{m-patience+1}) = ... = answer(p_m) != None. A probe with no extractable
answer breaks the run. patience = 1 exits at the first probe that yields an answer.
"""
from __future__ import annotations

from typing import Sequence

from .base import Probe


class ConvergenceExit:
    name = "convergence"
    needs_logprobs = False

    def __init__(self, patience: int = 2):
        self.patience = patience

    @classmethod
    def from_plan(cls, plan) -> "ConvergenceExit":
        return cls(plan.exit_patience)

    def should_exit(self, probes: Sequence[Probe]) -> bool:
        last = [p.answer for p in probes[-self.patience:]]
        return len(last) == self.patience and last[0] is not None and all(a == last[0] for a in last)
