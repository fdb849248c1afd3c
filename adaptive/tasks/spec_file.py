"""Reading a task YAML into a `TaskSpec` through the one config loader (adaptive/schema.py): a typo'd key
never silently falls back to a default; the error names the file, the key and the accepted keys."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..registry import extractors, graders
from ..schema import Invalid, load, option, read_yaml, registered
from .rows import GOLD_FORMATS, RESERVED_FIELDS, template_names
from .sources import TaskSource
from .spec import TaskSpec


@dataclass(frozen=True)
class TaskFile:
    """A task file's keys (see TaskSpec for what each means)."""
    source: TaskSource
    template: str
    extractor: str = option(check=registered(extractors, also=("auto",)))
    grader: str = option(check=registered(graders))
    fields: dict[str, Any]
    name: str | None = None  # None: the file's stem
    description: str = ""
    gold_format: Literal[GOLD_FORMATS] = "raw"  # type: ignore[valid-type]
    where: dict[str, Any] = option(default_factory=dict)
    extractor_kwargs: dict[str, Any] = option(default_factory=dict)
    grader_kwargs: dict[str, Any] = option(default_factory=dict)

    def __post_init__(self):
        fields = self.fields
        if "gold" not in fields:
            raise Invalid("fields", f"must map 'gold' to a row field (got keys {sorted(map(str, fields))})")
        if "meta" in fields and not isinstance(fields["meta"], dict):
            raise Invalid("fields.meta", "must be a mapping of meta name -> row field")
        if self.gold_format.startswith("index_to") and "choices" not in fields:
            raise Invalid("gold_format", f"{self.gold_format!r} needs fields.choices")
        try:  # every {name} in the template must be something a row can provide
            used = template_names(self.template)
        except (ValueError, IndexError) as e:
            raise Invalid("template", f"not a valid format string: {e}") from None
        available = {k for k in fields if k not in RESERVED_FIELDS} | {"choices", "letters"}
        missing = sorted(used - available)
        if missing:
            raise Invalid("template", f"uses {missing} but fields only provide {sorted(available)}")
        if ({"choices", "letters"} & used) and "choices" not in fields:
            raise Invalid("template", "uses {choices}/{letters} but fields has no 'choices'")


def parse_task(raw: Any, path: str | Path) -> TaskSpec:
    """A task mapping (as read from YAML) as a TaskSpec."""
    f = load(TaskFile, raw, str(path))
    return TaskSpec(name=f.name or Path(path).stem, source=f.source, template=f.template, extractor=f.extractor,
                    grader=f.grader, fields=dict(f.fields), gold_format=f.gold_format, where=dict(f.where),
                    description=f.description, extractor_kwargs=dict(f.extractor_kwargs),
                    grader_kwargs=dict(f.grader_kwargs), path=str(path))


def parse_task_file(path: str | Path) -> TaskSpec:
    return parse_task(read_yaml(path), path)


__all__ = ["TaskFile", "parse_task", "parse_task_file"]
