"""``kind: jsonl`` / ``kind: csv``: any local file (or one shipped in a package, ``package:``),
mapped onto a task with ``fields``. Blank JSONL lines are ignored; a malformed line is a bad row."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from .files import resolve
from . import SourceKind


def read_jsonl(source: dict, task_path: Path, report):
    path = resolve(source, task_path)
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                row = {"_bad_row": f"line {n} is not valid JSON: {e.msg}"}
            if not isinstance(row, dict):
                row = {"_bad_row": f"line {n} is not a JSON object"}
            yield row


def read_csv(source: dict, task_path: Path, report):
    path = resolve(source, task_path)
    with open(path, encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f, delimiter=source.get("delimiter", ","))


JSONL_SOURCE = SourceKind(read_jsonl, ("path",), ("package",))
CSV_SOURCE = SourceKind(read_csv, ("path",), ("package", "delimiter"))
