"""Drawing a sample bank from a task: K graded samples per prompt, with what replays need.

    bank = draw_bank(backend, spec, examples, k=32, partial="runs/x/bank.partial.jsonl")

One backend call per `batch_size` prompts (n = k each), top-k logprobs on, so every sample keeps its
DeepConf trace confidence (lowest group confidence) next to its answer, correctness and token count.
The call for prompts [i, i + batch_size) uses seed `seed + i`, so a call's seed does not depend on what
was drawn before it (a resumed run uses the same seeds). With `partial`, each finished batch is appended to that JSONL
file (fsynced), and rows already there are not drawn again; the remaining calls keep their seeds.

`split_by_text` halves a task's examples by the parity of the sha256 of the prompt text, so a repeated
question is always on one side and the split does not depend on the task's row order.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Sequence

from ..backends.base import Request, SamplingParams
from ..confidence import TOP_LOGPROBS
from ..graded import GradedPrompt, GradedSample
from .bank import Bank


def text_of(prompt) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def split_by_text(examples: Sequence) -> tuple[list, list]:
    """(train, held_out): an example is in train when the sha256 of its prompt text is even."""
    train, held = [], []
    for ex in examples:
        h = int(hashlib.sha256(text_of(ex.prompt).encode("utf-8")).hexdigest(), 16)
        (train if h % 2 == 0 else held).append(ex)
    return train, held


def graded_samples(completions, grade: Callable, extract: Callable | None, keep_first: bool = False,
                   keep_text: bool = False) -> list[GradedSample]:
    """GradedSamples of one prompt's completions: grade(answer) (answer = extract(text), or the text itself
    without an extractor). keep_first keeps the first sample's logprobs (a sample probe trains on them)."""
    out = []
    for j, c in enumerate(completions):
        answer = extract(c.text) if extract is not None else None
        first = keep_first and j == 0
        out.append(GradedSample(answer, float(grade(answer if extract is not None else c.text)), c.n_tokens,
                                c.finish_reason, c.mean_logprob, c.trace_confidence,
                                text=c.text if keep_text else None, logprobs=list(c.logprobs) if first else None,
                                top_logprobs=[list(t) for t in c.top_logprobs] if first else None))
    return out


def draw_graded(backend, items: Sequence[dict], k: int, params: SamplingParams, grade: Callable, extract=None, *,
                batch_size: int = 4, keep_first: bool = False, keep_text: bool = False, raw: bool = False,
                partial=None, progress: Callable[[int, int], None] | None = None) -> list[GradedPrompt]:
    """K graded samples for each item ({id, prompt, gold?, meta?}): one backend call per `batch_size` items,
    call i seeded params.seed + i * batch_size (None stays None). `grade(x, item)` and `extract(text, item)`.
    With `partial` (a JSONL path) finished batches are appended there and not drawn again on a rerun."""
    done: dict[str, GradedPrompt] = {}
    if partial is not None and Path(partial).is_file():
        for line in Path(partial).read_text().splitlines():
            if line.strip():
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    break  # a torn last line from a kill: drawn again below
                done[str(d["id"])] = GradedPrompt.from_dict(d, str(partial))
    for start in range(0, len(items), batch_size):
        batch = list(items[start:start + batch_size])
        if all(str(it["id"]) in done for it in batch):
            continue
        seed = None if params.seed is None else params.seed + start
        gen = backend.generate([Request(it["prompt"], n=k, raw=raw) for it in batch],
                               dataclasses.replace(params, seed=seed))
        rows = [GradedPrompt(str(it["id"]), it["prompt"], it.get("gold"),
                             graded_samples(comps, lambda x, it=it: grade(x, it),
                                            (lambda t, it=it: extract(t, it)) if extract is not None else None,
                                            keep_first, keep_text), dict(it.get("meta") or {}))
                for it, comps in zip(batch, gen.completions)]
        if partial is not None:
            Path(partial).parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "a") as f:
                for r in rows:
                    f.write(json.dumps(r.to_dict(), default=str) + "\n")
                f.flush()
                os.fsync(f.fileno())
        for r in rows:
            done[r.id] = r
        if progress is not None:
            progress(len(done), len(items))
    return [done[str(it["id"])] for it in items]


def draw_bank(backend, spec, examples: Sequence, k: int, *, max_new_tokens: int = 40, temperature: float = 0.7,
              top_logprobs: int = TOP_LOGPROBS, batch_size: int = 4, seed: int = 1000, partial=None,
              progress: Callable[[int, int], None] | None = None, source: dict | None = None) -> Bank:
    """A task's examples as a bank: K samples each, graded by the task's extractor and grader."""
    by_id = {ex.id: ex for ex in examples}
    items = [{"id": ex.id, "prompt": ex.prompt, "gold": ex.gold, "meta": ex.meta} for ex in examples]
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_logprobs=top_logprobs,
                            seed=seed)
    rows = draw_graded(backend, items, k, params, lambda a, it: spec.grade(a, by_id[it["id"]]),
                       lambda t, it: spec.extract(t, by_id[it["id"]]), batch_size=batch_size, partial=partial,
                       progress=progress)
    plan = {"strategy": "self_consistency", "max_samples": k, "max_new_tokens": max_new_tokens,
            "temperature": temperature}
    return Bank(rows, {"kind": "drawn", "task": spec.name, "plan": plan, "model_id": backend.model_id, "samples": k,
                       "seed": seed, "batch_size": batch_size, **(source or {})})
