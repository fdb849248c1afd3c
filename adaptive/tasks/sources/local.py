"""``kind: jsonl`` / ``kind: csv``: any local file (or one shipped in a package, ``package:``),
mapped onto a task with ``fields``. Blank JSONL lines are ignored; a malformed line is a bad row."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .files import resolve
from . import SourceKind


@dataclass(frozen=True)
class JsonlSource:
    path: str                   # relative to the task file, the cwd, or inside `package`
    kind: Literal["jsonl"] = "jsonl"
    package: str | None = None  # an installed package holding the file (found, never imported)


@dataclass(frozen=True)
class CsvSource:
    path: str
    kind: Literal["csv"] = "csv"
    package: str | None = None
    delimiter: str = ","


def read_jsonl(source: JsonlSource, task_path: Path, report):
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


def read_csv(source: CsvSource, task_path: Path, report):
    path = resolve(source, task_path)
    with open(path, encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f, delimiter=source.delimiter)


JSONL_SOURCE = SourceKind(read_jsonl, JsonlSource)
CSV_SOURCE = SourceKind(read_csv, CsvSource)
