"""LLM-as-judge: the backend's own model rates a solution; the score is P(Yes) / (P(Yes) + P(No)).

One prompt-only forward pass per candidate (no decoding), so a judge costs a prefill, not a sample.
"""
from __future__ import annotations

from typing import Sequence

from ..backends.base import Completion, PromptLike
from ..errors import CapabilityError, ConfigError

TEMPLATE = ("Question:\n{question}\n\nProposed solution:\n{solution}\n\n"
            "Is the proposed solution correct? Answer with Yes or No only.")


def _question(prompt: PromptLike) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(m["content"]) for m in prompt if m.get("role") == "user")


class Judge:
    name = "judge"
    needs = frozenset({"next_token_logprobs"})

    def __init__(self, backend, template: str = TEMPLATE, yes: str = "Yes", no: str = "No"):
        if backend is None:
            raise ConfigError("the judge verifier needs the backend whose model acts as judge")
        tok = getattr(backend, "tokenizer", None)
        if tok is None:
            raise CapabilityError(f"judge verifier needs a local tokenizer; {type(backend).__name__} has none")
        self.backend, self.template = backend, template
        self.yes_ids = self._ids(tok, yes)
        self.no_ids = self._ids(tok, no)

    @staticmethod
    def _ids(tok, word: str) -> list[int]:
        # The answer may start with or without a space; count both spellings' first tokens.
        ids = {tok(w, add_special_tokens=False).input_ids[0] for w in (word, " " + word)}
        return sorted(ids)

    def score(self, prompt: PromptLike, completions: Sequence[Completion], ledger=None) -> list[float]:
        if not completions:
            return []
        q = _question(prompt)
        prompts = [self.template.format(question=q, solution=c.text or "(empty)") for c in completions]
        batch = self.backend.prompt_pass(prompts)
        if ledger is not None:
            ledger.add(batch.usage)
        out = []
        for p in batch.passes:
            probs = p.next_token_logprobs.exp()
            yes, no = float(probs[self.yes_ids].sum()), float(probs[self.no_ids].sum())
            out.append(yes / (yes + no) if yes + no > 0 else 0.0)
        return out


def make_judge(backend=None, **params) -> Judge:
    return Judge(backend, **params)
