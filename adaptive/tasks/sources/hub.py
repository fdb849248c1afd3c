"""``kind: hub``: a Hugging Face dataset id read with ``datasets.load_dataset``. Needs the
``datasets`` package and network access; without them this is a clear error, never a fake."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ...errors import AdaptiveError
from . import SourceKind


@dataclass(frozen=True)
class HubSource:
    path: str                   # the dataset id, e.g. openai/gsm8k
    kind: Literal["hub"] = "hub"
    name: str | None = None     # the dataset's config name
    split: str = "test"
    revision: str | None = None


def read(source: HubSource, task_path: Path, report):
    if importlib.util.find_spec("datasets") is None:
        raise AdaptiveError(
            f"{task_path}: source kind 'hub' ({source.path!r}) needs the Hugging Face "
            "'datasets' package and network access: pip install datasets")
    import datasets

    try:
        ds = datasets.load_dataset(source.path, source.name, split=source.split, revision=source.revision)
    except Exception as e:  # offline, unknown id, gated repo ...
        raise AdaptiveError(f"{task_path}: could not load hub dataset {source.path!r} "
                            f"(needs network access): {type(e).__name__}: {e}") from None
    for row in ds:
        yield dict(row)


SOURCE = SourceKind(read, HubSource)
