"""The task data model: `Example` (one rendered item), `LoadReport` (what loading did) and
`TaskSpec` (a parsed task YAML, which also knows how to extract and grade for its task)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .. import answers


@dataclass
class Example:
    """One evaluation item. `id` is stable across runs (source row id, else a hash of the row), so
    a resumed run can skip what it already did; `choices` are the letters offered (MC only)."""

    id: str
    prompt: str
    gold: Any
    meta: dict = field(default_factory=dict)
    choices: list[str] | None = None


@dataclass
class LoadReport:
    """Counts from one `load_task` call. Skipped rows are never silent: the count and the reasons
    are here (and logged as a warning)."""

    task: str
    rows_read: int = 0
    rows_skipped: int = 0
    skip_reasons: Counter = field(default_factory=Counter)
    rows_filtered: int = 0  # dropped by `where` or a source filter (not errors)
    rows_used: int = 0

    def skip(self, reason: str) -> None:
        self.rows_skipped += 1
        self.skip_reasons[reason] += 1


@dataclass
class TaskSpec:
    """A declarative task: where rows come from (`source`), how a row becomes a prompt
    (`template` over the names in `fields`), how the gold is read (`gold_format`), and which
    extractor/grader (registry names from `adaptive.answers`) score a model output."""

    name: str
    source: Any  # the source config of its kind (adaptive/tasks/sources)
    template: str
    extractor: str
    grader: str
    fields: dict
    gold_format: str = "raw"
    where: dict = field(default_factory=dict)
    description: str = ""
    extractor_kwargs: dict = field(default_factory=dict)
    grader_kwargs: dict = field(default_factory=dict)
    path: str = ""  # the YAML file it came from

    def extract(self, text: str | None, ex: Example, extractor: str | None = None) -> str | None:
        """The canonical answer in a model output (None if unparseable); MC tasks pass the
        example's letters so an option the question does not have is never read. `extractor`
        replaces the task's own (a plan that names one); the task's extractor_kwargs go with
        the task's extractor only."""
        kw = dict(self.extractor_kwargs) if extractor in (None, self.extractor) else {}
        if ex.choices:
            kw["choices"] = ex.choices
        return answers.extract(extractor or self.extractor, text, **kw)

    def grade(self, pred: str | None, ex: Example) -> float:
        """Score an extracted prediction against the example's gold, in [0, 1]."""
        kw = dict(self.grader_kwargs)
        if ex.choices:
            kw.setdefault("choices", ex.choices)
        return answers.grade(self.grader, pred, ex.gold, **kw)

    def score(self, text: str | None, ex: Example) -> float:
        """extract then grade: the full path from raw model output to a score."""
        return self.grade(self.extract(text, ex), ex)
