"""`load_task`: task name or YAML path -> (TaskSpec, examples, LoadReport).

Pipeline: read rows from the source in their stable order -> build examples (a bad row raises a
ConfigError naming the task file, the row index and the field, or with ``on_bad_row="skip"`` is
counted and logged) -> filter by ``where`` (the task file's, then the caller's, on ``meta``) ->
optional seeded shuffle -> ``limit``.
"""
from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path

from ..errors import ConfigError, InputError
from .spec import Example, LoadReport, TaskSpec
from .registry_entries import resolve_task
from .rows import BadRow, build_example
from .sources import read_rows
from .spec_file import parse_task_file

log = logging.getLogger(__name__)
BAD_ROW_MODES = ("error", "skip")


def _matches(value, want) -> bool:
    wants = want if isinstance(want, (list, tuple, set)) else [want]
    return any(value == w or (value is not None and str(value) == str(w)) for w in wants)


def _apply_where(spec: TaskSpec, examples: list[Example], where: dict, report: LoadReport) -> list[Example]:
    if not where:
        return examples
    known = sorted({k for ex in examples for k in ex.meta})
    for key in where:
        if examples and key not in known:
            raise ConfigError(f"task {spec.name!r} ({spec.path}): cannot filter on {key!r}; "
                              f"meta fields are: {', '.join(known) or '(none)'}")
    kept = [ex for ex in examples if all(_matches(ex.meta.get(k), v) for k, v in where.items())]
    report.rows_filtered += len(examples) - len(kept)
    return kept


def load_task(name_or_path: str | Path, *, limit: int | None = None, seed: int = 0, shuffle: bool = False,
              where: dict | None = None, on_bad_row: str = "error") -> tuple[TaskSpec, list[Example], LoadReport]:
    """Load a task by registered name (``adaptive/resources/tasks/<name>.yaml``) or by YAML path.

    ``where`` keeps examples whose ``meta`` matches every key (a list value means any of);
    ``limit`` applies after the optional seeded ``shuffle``, so ``(seed, limit)`` picks a fixed
    subset. ``on_bad_row``: ``"error"`` or ``"skip"`` (counted in the report, logged as a warning).
    """
    if on_bad_row not in BAD_ROW_MODES:
        raise InputError(f"on_bad_row={on_bad_row!r}: must be one of {', '.join(BAD_ROW_MODES)}")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise InputError(f"limit={limit!r}: must be a non-negative integer or None")
    if where is not None and not isinstance(where, dict):
        raise InputError(f"where={where!r}: must be a mapping of meta field -> value")
    path = resolve_task(name_or_path)
    spec = parse_task_file(path)
    report = LoadReport(task=spec.name)
    examples: list[Example] = []
    ids: Counter = Counter()
    for i, row in enumerate(read_rows(spec.source, path, report)):
        report.rows_read += 1
        try:
            if isinstance(row, dict) and "_bad_row" in row:
                raise BadRow("malformed row", row["_bad_row"])
            ex = build_example(spec, row, i)
        except BadRow as e:
            if on_bad_row == "error":
                raise ConfigError(f"{path}: task {spec.name!r}: row {i}: {e.detail} "
                                  "(on_bad_row='skip' skips and counts such rows)") from None
            report.skip(e.reason)
            continue
        ids[ex.id] += 1
        if ids[ex.id] > 1:  # duplicate source rows: keep ids unique but stable
            ex.id = f"{ex.id}#{ids[ex.id]}"
        examples.append(ex)
    if report.rows_skipped:
        reasons = ", ".join(f"{r}: {n}" for r, n in report.skip_reasons.most_common())
        log.warning("task %s: skipped %d of %d rows (%s)", spec.name, report.rows_skipped,
                    report.rows_read, reasons)
    examples = _apply_where(spec, examples, {**spec.where, **(where or {})}, report)
    if shuffle:
        random.Random(seed).shuffle(examples)
    if limit is not None:
        examples = examples[:limit]
    report.rows_used = len(examples)
    return spec, examples, report
