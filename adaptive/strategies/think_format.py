"""Thinking delimiters: which markers open and close a thought, and whether the chat template opens it.

Reasoning models write their thought between markers before the answer: Qwen3, QwQ and the DeepSeek-R1
distills use `<think> ... </think>` (the markers are in the chat template and the tokenizer's added
vocabulary). Some templates end the generation prompt with the opening marker (DeepSeek-R1 distills:
`<|Assistant|><think>\n`), so the model starts inside the thought and the strategy must not open it again.

Resolution, in order: the plan's `think_open`/`think_close` when given; else a known pair found in the
chat template or the tokenizer's added tokens ("chat template"); else the conventional `<think>` /
`</think>` ("default": a model that was not trained with markers is asked for them in its prompt, as the
embedded model is in the tests and bench). Markers that are special tokens the decoder strips from text
(gpt-oss's Harmony channels, `<|channel|>analysis<|message|> ... <|end|>`) are not supported: the
decode loop finds stop strings in decoded text, and those tokens never appear there.
"""
from __future__ import annotations

from dataclasses import dataclass

KNOWN = (("<think>", "</think>"),)  # pairs looked for in chat templates / added vocabularies
DEFAULT = ("<think>", "</think>")


@dataclass(frozen=True)
class ThinkFormat:
    open: str
    close: str
    source: str                 # "plan", "chat template" or "default"
    opened_by_template: bool    # the chat template's generation prompt already ends with `open`

    def opener(self, raw: bool) -> str:
        """Text the assistant prefix starts with: the open marker, unless the template already wrote it
        (a raw prompt gets no template)."""
        return "" if self.opened_by_template and not raw else self.open + "\n"


def _template_text(tok) -> str:
    t = getattr(tok, "chat_template", None)
    if isinstance(t, dict):
        return "\n".join(str(v) for v in t.values())
    return t if isinstance(t, str) else ""


def _added_tokens(tok) -> set[str]:
    try:
        return set(tok.get_added_vocab())
    except Exception:  # a tokenizer without an added vocabulary
        return set()


def _generation_prompt(tok) -> str:
    try:
        return tok.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True,
                                       tokenize=False)
    except Exception:  # no template, or one that needs more than a user turn
        return ""


def think_format(plan, backend) -> ThinkFormat:
    """The delimiters a thinking plan uses on this backend (see the module docstring)."""
    tok = getattr(backend, "tokenizer", None)
    template = _template_text(tok) if tok is not None else ""
    if plan.think_open is not None:
        pair, source = (plan.think_open, plan.think_close), "plan"
    else:
        vocab = _added_tokens(tok) if tok is not None else set()
        found = next((p for p in KNOWN if (p[0] in template and p[1] in template) or set(p) <= vocab), None)
        pair, source = (found, "chat template") if found else (DEFAULT, "default")
    opened = bool(template) and _generation_prompt(tok).rstrip().endswith(pair[0])
    return ThinkFormat(pair[0], pair[1], source, opened)
