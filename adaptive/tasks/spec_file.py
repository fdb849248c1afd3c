"""Reading a task YAML into a `TaskSpec`, rejecting unknown keys so a typo never silently falls
back to a default (the error names the file, the key and the accepted keys)."""
from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import ConfigError
from ..registry import extractors, graders
from .spec import TaskSpec
from .rows import GOLD_FORMATS, RESERVED_FIELDS, template_names
from .sources import check_source

TOP_KEYS = {
    "name": False, "description": False, "source": True, "template": True, "extractor": True,
    "grader": True, "fields": True, "gold_format": False, "where": False,
    "extractor_kwargs": False, "grader_kwargs": False,
}  # key -> required


def _need_type(path, key, value, typ, what):
    if not isinstance(value, typ):
        raise ConfigError(f"{path}: {key!r} must be {what}, got {type(value).__name__} {value!r}")


def parse_task_file(path: str | Path) -> TaskSpec:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"task file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a task file must be a mapping, got {type(raw).__name__}")
    accepted = ", ".join(sorted(TOP_KEYS))
    for key in raw:
        if key not in TOP_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r}; accepted keys: {accepted}")
    for key, required in TOP_KEYS.items():
        if required and key not in raw:
            raise ConfigError(f"{path}: missing required key {key!r}")

    name = raw.get("name", path.stem)
    _need_type(path, "name", name, str, "a string")
    _need_type(path, "template", raw["template"], str, "a string")
    _need_type(path, "fields", raw["fields"], dict, "a mapping")
    _need_type(path, "source", raw["source"], dict, "a mapping")
    for key in ("where", "extractor_kwargs", "grader_kwargs"):
        _need_type(path, key, raw.get(key) or {}, dict, "a mapping")

    fields = raw["fields"]
    if "gold" not in fields:
        raise ConfigError(f"{path}: fields must map 'gold' to a row field (got keys {sorted(fields)})")
    if "meta" in fields:
        _need_type(path, "fields.meta", fields["meta"], dict, "a mapping of meta name -> row field")

    gold_format = raw.get("gold_format", "raw")
    if gold_format not in GOLD_FORMATS:
        raise ConfigError(f"{path}: gold_format {gold_format!r} is not one of {', '.join(GOLD_FORMATS)}")
    if gold_format.startswith("index_to") and "choices" not in fields:
        raise ConfigError(f"{path}: gold_format {gold_format!r} needs fields.choices")

    for key, reg in (("extractor", extractors), ("grader", graders)):
        if raw[key] not in reg and not (key == "extractor" and raw[key] == "auto"):
            raise ConfigError(f"{path}: unknown {key} {raw[key]!r}; known: {', '.join(reg.names())}")

    # Every {name} in the template must be something a row can provide.
    try:
        used = template_names(raw["template"])
    except (ValueError, IndexError) as e:
        raise ConfigError(f"{path}: template is not a valid format string: {e}") from None
    available = {k for k in fields if k not in RESERVED_FIELDS} | {"choices", "letters"}
    missing = sorted(used - available)
    if missing:
        raise ConfigError(f"{path}: template uses {missing} but fields only provide "
                          f"{sorted(available)}")
    if ({"choices", "letters"} & used) and "choices" not in fields:
        raise ConfigError(f"{path}: template uses {{choices}}/{{letters}} but fields has no 'choices'")

    source = dict(raw["source"])
    check_source(source, path)
    return TaskSpec(
        name=name, source=source, template=raw["template"], extractor=raw["extractor"],
        grader=raw["grader"], fields=dict(fields), gold_format=gold_format,
        where=dict(raw.get("where") or {}), description=str(raw.get("description", "")),
        extractor_kwargs=dict(raw.get("extractor_kwargs") or {}),
        grader_kwargs=dict(raw.get("grader_kwargs") or {}), path=str(path),
    )


__all__ = ["TOP_KEYS", "parse_task_file"]
