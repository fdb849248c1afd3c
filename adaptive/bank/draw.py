"""Drawing a sample bank from a task: K graded samples per prompt, with what replays need.

    bank = draw_bank(backend, spec, examples, k=32, partial="runs/x/bank.partial.jsonl")

One backend call per `batch_size` prompts (n = k each), top-k logprobs on, so every sample keeps its
DeepConf trace confidence (lowest group confidence) next to its answer, correctness and token count.
Call i (0-based over the whole example list) uses seed `seed + i * batch_size`: a resumed run draws
exactly what an uninterrupted one would. With `partial`, each finished batch is appended to that JSONL
file (fsynced), and rows already there are not drawn again.

`split_by_text` halves a task's examples by the parity of the sha256 of the prompt text, so a repeated
question is always on one side and the split does not depend on the task's row order.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

from .. import confidence as conf
from ..backends.base import Request, SamplingParams
from .bank import Bank, BankPrompt, BankSample


def text_of(prompt) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def split_by_text(examples: Sequence) -> tuple[list, list]:
    """(train, held_out): an example is in train when the sha256 of its prompt text is even."""
    train, held = [], []
    for ex in examples:
        h = int(hashlib.sha256(text_of(ex.prompt).encode("utf-8")).hexdigest(), 16)
        (train if h % 2 == 0 else held).append(ex)
    return train, held


def graded_samples(spec, ex, completions) -> list[BankSample]:
    out = []
    for c in completions:
        answer = spec.extract(c.text, ex)
        tokens_conf = [conf.token_confidence(t) for t in c.top_logprobs]
        out.append(BankSample(answer=answer, correct=float(spec.grade(answer, ex)), tokens=c.n_tokens,
                              confidence=conf.lowest_group_confidence(tokens_conf) if tokens_conf else None))
    return out


def draw_bank(backend, spec, examples: Sequence, k: int, *, max_new_tokens: int = 40, temperature: float = 0.7,
              top_logprobs: int = 5, batch_size: int = 4, seed: int = 1000, partial=None,
              progress: Callable[[int, int], None] | None = None, source: dict | None = None) -> Bank:
    done: dict[str, BankPrompt] = {}
    if partial is not None and Path(partial).is_file():
        for line in Path(partial).read_text().splitlines():
            if line.strip():
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    break  # a torn last line from a kill: drawn again below
                d["samples"] = [BankSample(**s) for s in d["samples"]]
                done[d["id"]] = BankPrompt(**d)
    for start in range(0, len(examples), batch_size):
        chunk = [ex for ex in examples[start:start + batch_size] if ex.id not in done]
        if not chunk:
            continue
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_logprobs=top_logprobs,
                                seed=seed + start)
        if len(chunk) < len(examples[start:start + batch_size]):  # a torn batch: draw it whole again
            chunk = list(examples[start:start + batch_size])
        gen = backend.generate([Request(ex.prompt, n=k) for ex in chunk], params)
        rows = [BankPrompt(ex.id, ex.prompt, ex.gold, graded_samples(spec, ex, comps), dict(ex.meta))
                for ex, comps in zip(chunk, gen.completions)]
        if partial is not None:
            Path(partial).parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "a") as f:
                for r in rows:
                    f.write(json.dumps(asdict(r), default=str) + "\n")
                f.flush()
                os.fsync(f.fileno())
        for r in rows:
            done[r.id] = r
        if progress is not None:
            progress(len(done), len(examples))
    plan = {"strategy": "self_consistency", "max_samples": k, "max_new_tokens": max_new_tokens,
            "temperature": temperature}
    return Bank([done[ex.id] for ex in examples], {"kind": "drawn", "plan": plan, "model_id": backend.model_id,
                                                    "samples": k, "seed": seed, "batch_size": batch_size,
                                                    **(source or {})})
