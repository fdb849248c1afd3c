"""Learned verifiers: an outcome reward model (`orm`) and a process reward model (`prm`).

They load their own model (a hub id or a local path) and never use the policy's backend, so their
`needs` is empty: a reward model can rank samples from an API backend that returns text only.
Scores are probabilities in [0, 1], never negative, because strategies use them as vote weights.
"""
from __future__ import annotations

import math
from typing import Sequence

from ..backends.base import Completion, PromptLike
from ..errors import AdaptiveError, ConfigError

PRM_STYLES = ("math_shepherd", "qwen")
AGGREGATES = ("last", "min", "prod")
# The system prompt the Qwen2.5-Math PRMs were trained with; the wrong one shifts their step scores.
QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


# -- shared helpers ---------------------------------------------------------------------------------

def question_text(prompt: PromptLike) -> str:
    """The question a reward model sees: the last user turn (system prompts are the policy's, not the RM's)."""
    if isinstance(prompt, str):
        return prompt
    users = [str(m["content"]) for m in prompt if m.get("role") == "user"]
    if users:
        return users[-1]
    return "\n\n".join(str(m["content"]) for m in prompt)


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r}: must be an integer >= 1")
    return batch_size


def _load(auto_cls, model: str | None, kind: str, device: str, dtype, trust_remote_code: bool):
    """Load (model, tokenizer) on `device` in eval mode; a missing model is a ConfigError, not a traceback."""
    from transformers import AutoTokenizer

    from ..backends.hf.hub import resolve_model
    from ..backends.hf.loading import resolve_device, resolve_dtype

    if not model or not isinstance(model, str):
        raise ConfigError(f"verifier {kind!r} needs a `model` param: a hub id or a local path, got {model!r}")
    dev = resolve_device(device)
    src = resolve_model(model, role=f"verifier {kind!r}: reward model")
    try:
        tok = AutoTokenizer.from_pretrained(src.ref, trust_remote_code=trust_remote_code, **src.kwargs)
        net = auto_cls.from_pretrained(src.ref, dtype=resolve_dtype(dtype, dev), trust_remote_code=trust_remote_code,
                                       **src.kwargs)
    except (OSError, ValueError) as e:
        raise AdaptiveError(f"verifier {kind!r}: could not load reward model {model!r}: {e}") from e
    net.to(dev)
    net.eval()
    n_embed = net.get_input_embeddings().num_embeddings
    if len(tok) > n_embed:
        # Token ids past the embedding matrix would index out of range (or silently alias on some kernels).
        raise ConfigError(
            f"reward model {model!r}: its tokenizer has {len(tok)} tokens but the model's embedding matrix has "
            f"only {n_embed} rows; the tokenizer does not belong to this model")
    return net, tok


def _max_positions(net, tok) -> int | None:
    n = getattr(net.config, "max_position_embeddings", None)
    if isinstance(n, int) and n > 0:
        return n
    n = getattr(tok, "model_max_length", None)
    return n if isinstance(n, int) and 0 < n < 10**8 else None  # tokenizers without a limit report ~1e30


def _check_lengths(id_lists: list[list[int]], limit: int | None, model_name: str) -> None:
    """Reject over-long inputs: truncating would drop the solution's end, which is what gets scored."""
    if limit is None:
        return
    for i, ids in enumerate(id_lists):
        if len(ids) > limit:
            raise AdaptiveError(
                f"reward model {model_name!r}: input {i} (question + solution) is {len(ids)} tokens, over the "
                f"model's {limit} positions")


def _pad_right(id_lists: list[list[int]], pad_id: int, device):
    import torch

    width = max(len(x) for x in id_lists)
    ids = torch.full((len(id_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(id_lists), width), dtype=torch.long)
    for r, x in enumerate(id_lists):
        ids[r, :len(x)] = torch.tensor(x, dtype=torch.long)
        mask[r, :len(x)] = 1
    return ids.to(device), mask.to(device)


def _device(net):
    return next(net.parameters()).device


# -- ORM --------------------------------------------------------------------------------------------

class OutcomeRewardModel:
    """Scores a whole solution with a sequence-classification reward model."""

    needs: frozenset[str] = frozenset()

    def __init__(self, model: str, device: str = "auto", dtype="auto", batch_size: int = 8,
                 trust_remote_code: bool = False):
        from transformers import AutoModelForSequenceClassification

        self.name = "orm"
        self.model_name = model
        self.batch_size = _check_batch_size(batch_size)
        self.model, self.tokenizer = _load(AutoModelForSequenceClassification, model, "orm", device, dtype,
                                           trust_remote_code)
        self.num_labels = int(self.model.config.num_labels)
        if self.num_labels not in (1, 2):
            raise ConfigError(
                f"reward model {model!r} has {self.num_labels} output labels; an ORM needs 1 (a reward logit) "
                "or 2 (bad/good)")
        cfg = self.model.config
        if cfg.pad_token_id is None and self.tokenizer.pad_token_id is not None:
            cfg.pad_token_id = self.tokenizer.pad_token_id  # the head finds each row's last token by it
        self.pad_id = cfg.pad_token_id
        self.has_chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.max_positions = _max_positions(self.model, self.tokenizer)

    def encode(self, prompt: PromptLike, solution: str) -> list[int]:
        q = question_text(prompt)
        if self.has_chat_template:
            msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": solution}]
            text = self.tokenizer.apply_chat_template(msgs, tokenize=False)
            return self.tokenizer(text, add_special_tokens=False).input_ids
        return self.tokenizer(f"{q}\n\n{solution}").input_ids

    def score(self, prompt: PromptLike, completions: Sequence[Completion], ledger=None) -> list[float]:
        import torch

        if not completions:
            return []
        ids = [self.encode(prompt, c.text) for c in completions]
        _check_lengths(ids, self.max_positions, self.model_name)
        # Without a pad token the head cannot tell padding from text, so rows go one at a time.
        bs = self.batch_size if self.pad_id is not None else 1
        out: list[float] = []
        dev = _device(self.model)
        with torch.inference_mode():
            for s in range(0, len(ids), bs):
                chunk = ids[s:s + bs]
                x, mask = _pad_right(chunk, self.pad_id if self.pad_id is not None else 0, dev)
                logits = self.model(input_ids=x, attention_mask=mask).logits.float()
                if self.num_labels == 1:
                    p = torch.sigmoid(logits[:, 0])
                else:
                    p = torch.softmax(logits, dim=-1)[:, -1]
                out.extend(float(v) for v in p.cpu())
        return out


# -- PRM --------------------------------------------------------------------------------------------

def _single_token(tok, text: str, what: str, model: str) -> int:
    """The one token id `text` stands for. Scoring reads logits at these ids, so two pieces are an error.

    Leading whitespace-only pieces (SentencePiece's bare '▁') are ignored: they are an artefact of
    tokenizing the string on its own, not part of the token the model was trained on.
    """
    if not isinstance(text, str) or not text:
        raise ConfigError(f"PRM {what}={text!r}: must be a non-empty string")
    ids = tok.encode(text, add_special_tokens=False)
    if len(ids) > 1:
        ids = [i for i in ids if tok.decode([i]).strip()]
    unk = getattr(tok, "unk_token_id", None)
    if len(ids) == 1 and unk is not None and ids[0] == unk and text != tok.unk_token:
        raise ConfigError(f"PRM {model!r}: {what} {text!r} is not in its tokenizer's vocabulary (it maps to the "
                          f"unknown token {tok.unk_token!r})")
    if len(ids) != 1:
        pieces = tok.convert_ids_to_tokens(tok.encode(text, add_special_tokens=False))
        raise ConfigError(
            f"PRM {model!r}: {what} {text!r} is not a single token in its tokenizer (it splits into {pieces}); "
            f"pass a {what} that this model's tokenizer has as one token")
    return ids[0]


def split_steps(text: str, delimiter: str) -> list[str]:
    """Steps of a solution: pieces between delimiters, stripped, empty ones dropped."""
    return [s.strip() for s in text.split(delimiter) if s.strip()]


def aggregate_steps(scores: Sequence[float], how: str) -> float:
    """One solution score from its step scores; no steps means nothing was verified, so 0."""
    if not scores:
        return 0.0
    if how == "last":
        return float(scores[-1])
    if how == "min":
        return float(min(scores))
    if how == "prod":
        return float(math.prod(scores))
    raise ConfigError(f"aggregate={how!r}: expected one of {', '.join(AGGREGATES)}")


class ProcessRewardModel:
    """Scores each step of a solution and aggregates the step scores.

    math_shepherd: a causal LM; each step ends with a tag token, and at the tag position
    P(good) = softmax over the logits of (good_token, bad_token)[0].
    qwen: a 2-label token classifier; each step ends with a separator token, score = P(label 1) there.
    """

    needs: frozenset[str] = frozenset()

    def __init__(self, model: str, style: str = "math_shepherd", aggregate: str = "min",
                 step_tag: str | None = None, good_token: str = "+", bad_token: str = "-",
                 step_delimiter: str = "\n\n", system: str | None = None, device: str = "auto",
                 dtype="auto", batch_size: int = 8, trust_remote_code: bool = False):
        from transformers import AutoModelForCausalLM, AutoModelForTokenClassification

        if style not in PRM_STYLES:
            raise ConfigError(f"PRM style={style!r}: expected one of {', '.join(PRM_STYLES)}")
        if aggregate not in AGGREGATES:
            raise ConfigError(f"PRM aggregate={aggregate!r}: expected one of {', '.join(AGGREGATES)}")
        if not isinstance(step_delimiter, str) or not step_delimiter:
            raise ConfigError(f"PRM step_delimiter={step_delimiter!r}: must be a non-empty string")
        self.name = "prm"
        self.style, self.aggregate, self.step_delimiter = style, aggregate, step_delimiter
        self.model_name = model
        self.batch_size = _check_batch_size(batch_size)
        self.step_tag = step_tag if step_tag is not None else ("ки" if style == "math_shepherd" else "<extra_0>")
        self.system = system if system is not None else (QWEN_PRM_SYSTEM if style == "qwen" else None)
        auto_cls = AutoModelForCausalLM if style == "math_shepherd" else AutoModelForTokenClassification
        self.model, self.tokenizer = _load(auto_cls, model, "prm", device, dtype, trust_remote_code)
        tok = self.tokenizer
        self.tag_id = _single_token(tok, self.step_tag, "step_tag", model)
        if style == "math_shepherd":
            self.good_id = _single_token(tok, good_token, "good_token", model)
            self.bad_id = _single_token(tok, bad_token, "bad_token", model)
            if self.good_id == self.bad_id:
                raise ConfigError(f"PRM {model!r}: good_token {good_token!r} and bad_token {bad_token!r} "
                                  "are the same token")
        else:
            n = int(self.model.config.num_labels)
            if n != 2:
                raise ConfigError(f"PRM {model!r} (style 'qwen') has {n} labels per token; it needs 2")
        self.pad_id = next((i for i in (tok.pad_token_id, tok.eos_token_id) if i is not None), 0)
        self.has_chat_template = bool(getattr(tok, "chat_template", None))
        self.max_positions = _max_positions(self.model, tok)

    # -- input building --
    def _prefix_text(self, question: str) -> str:
        if self.style == "qwen" and self.has_chat_template:
            msgs = ([{"role": "system", "content": self.system}] if self.system else []) + [
                {"role": "user", "content": question}, {"role": "assistant", "content": "\x00"}]
            text = self.tokenizer.apply_chat_template(msgs, tokenize=False)
            if "\x00" in text:
                return text[:text.index("\x00")]  # everything the template puts before the assistant text
            return self.tokenizer.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
        return f"{question} " if self.style == "math_shepherd" else f"{question}\n\n"

    def encode(self, prompt: PromptLike, solution: str) -> tuple[list[int], list[int]]:
        """Token ids and the positions of the step tags (one per step).

        The tag string is removed from the question and steps first, so a literal tag in the text cannot
        add a spurious step. The full string is tokenized once, as at training time; if a tag merged with
        its neighbours there, the ids are rebuilt piece by piece with the tag id inserted directly.
        """
        tag, tok = self.step_tag, self.tokenizer
        q = question_text(prompt).replace(tag, "")
        steps = [s.replace(tag, "").strip() for s in split_steps(solution, self.step_delimiter)]
        steps = [s for s in steps if s]
        prefix = self._prefix_text(q)
        if not steps:
            return tok(prefix, add_special_tokens=False).input_ids, []
        if self.style == "math_shepherd":
            body = "\n".join(f"{s} {tag}" for s in steps)
        else:
            body = "".join(f"{s}{tag}" for s in steps)
        ids = tok(prefix + body, add_special_tokens=False).input_ids
        pos = [i for i, t in enumerate(ids) if t == self.tag_id]
        if len(pos) == len(steps):
            return ids, pos
        ids = list(tok(prefix, add_special_tokens=False).input_ids)
        pos = []
        for k, s in enumerate(steps):
            sep = "\n" if (k and self.style == "math_shepherd") else ""
            ids += tok(sep + s, add_special_tokens=False).input_ids
            pos.append(len(ids))
            ids.append(self.tag_id)
        return ids, pos

    # -- scoring --
    def score_steps(self, prompt: PromptLike, completions: Sequence[Completion]) -> list[list[float]]:
        """Per completion, one P(step is correct) per step, in order."""
        import torch

        enc = [self.encode(prompt, c.text) for c in completions]
        _check_lengths([e[0] for e in enc], self.max_positions, self.model_name)
        out: list[list[float]] = [[] for _ in enc]
        todo = [i for i, (_, pos) in enumerate(enc) if pos]  # nothing to run for step-less solutions
        dev = _device(self.model)
        with torch.inference_mode():
            for s in range(0, len(todo), self.batch_size):
                rows = todo[s:s + self.batch_size]
                x, mask = _pad_right([enc[i][0] for i in rows], self.pad_id, dev)
                logits = self.model(input_ids=x, attention_mask=mask).logits
                for r, i in enumerate(rows):
                    at = logits[r, enc[i][1]].float()  # [n_steps, vocab or 2]
                    if self.style == "math_shepherd":
                        p = torch.softmax(at[:, [self.good_id, self.bad_id]], dim=-1)[:, 0]
                    else:
                        p = torch.softmax(at, dim=-1)[:, 1]
                    out[i] = [float(v) for v in p.cpu()]
        return out

    def score(self, prompt: PromptLike, completions: Sequence[Completion], ledger=None) -> list[float]:
        return [aggregate_steps(s, self.aggregate) for s in self.score_steps(prompt, completions)]


# -- registration -----------------------------------------------------------------------------------

def make_orm(backend=None, model: str | None = None, device: str = "auto", dtype="auto", batch_size: int = 8,
             trust_remote_code: bool = False) -> OutcomeRewardModel:
    """ORM verifier; `backend` is accepted for the factory protocol and unused."""
    return OutcomeRewardModel(model, device=device, dtype=dtype, batch_size=batch_size,
                              trust_remote_code=trust_remote_code)


def make_prm(backend=None, model: str | None = None, style: str = "math_shepherd", aggregate: str = "min",
             step_tag: str | None = None, good_token: str = "+", bad_token: str = "-",
             step_delimiter: str = "\n\n", system: str | None = None, device: str = "auto", dtype="auto",
             batch_size: int = 8, trust_remote_code: bool = False) -> ProcessRewardModel:
    """PRM verifier; `backend` is accepted for the factory protocol and unused."""
    return ProcessRewardModel(model, style=style, aggregate=aggregate, step_tag=step_tag, good_token=good_token,
                              bad_token=bad_token, step_delimiter=step_delimiter, system=system, device=device,
                              dtype=dtype, batch_size=batch_size, trust_remote_code=trust_remote_code)
