"""The run directory's record log: append-only JSONL that survives kill -9.

Each batch's records are written, flushed and fsynced together. A process killed mid-write can leave
at most one partial last line; `open_log` cuts it off, so a resumed run neither loses a complete
record nor duplicates one (keys already present are skipped).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from ..errors import ConfigError

RECORDS = "records.jsonl"
LOCK = ".lock"  # the run directory's lock file: held by the eval writing it (runner.run_eval)


def repair_tail(path: Path) -> int:
    """Truncate a partial last line (no trailing newline). Returns bytes removed."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
        # Walk back to the last newline; everything after it is the torn record.
        pos = size - 1
        chunk = 4096
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            data = f.read(pos - start)
            nl = data.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                f.truncate(keep)
                return size - keep
            pos = start
        f.truncate(0)
        return size


def read_records(path: Path, *, live: bool = False) -> list[dict]:
    """The records of a log. `live`: another process may be appending; a last line without its newline is
    still being written and is left out. A line that is not a record (corrupted by hand or by the disk; a
    torn last line is repaired by repair_tail before a resume) is a ConfigError naming the file and the line."""
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if live and not line.endswith("\n"):
                break
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}: line {n} is not valid JSON ({e.msg}, column {e.colno}); "
                                  "remove or fix that line, or start a new run directory") from None
            if not isinstance(rec, dict) or "id" not in rec or "policy" not in rec:
                raise ConfigError(f"{path}: line {n} is not a record (a JSON object with id and policy); "
                                  "remove or fix that line, or start a new run directory")
            out.append(rec)
    return out


def append_records(path: Path, records: Iterable[dict]) -> None:
    lines = "".join(json.dumps(r, default=str) + "\n" for r in records)
    if not lines:
        return
    with open(path, "a") as f:
        f.write(lines)
        f.flush()
        os.fsync(f.fileno())


def record_key(r: dict) -> tuple[str, str]:
    return (r["id"], r["policy"])
