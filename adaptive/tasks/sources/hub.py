"""``kind: hub``: a Hugging Face dataset id read with ``datasets.load_dataset``. Needs the
``datasets`` package and network access; without them this is a clear error, never a fake."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from ...errors import AdaptiveError
from . import SourceKind


def read(source: dict, task_path: Path, report):
    if importlib.util.find_spec("datasets") is None:
        raise AdaptiveError(
            f"{task_path}: source kind 'hub' ({source['path']!r}) needs the Hugging Face "
            "'datasets' package and network access: pip install datasets")
    import datasets

    try:
        ds = datasets.load_dataset(source["path"], source.get("name"), split=source.get("split", "test"),
                                   revision=source.get("revision"))
    except Exception as e:  # offline, unknown id, gated repo ...
        raise AdaptiveError(f"{task_path}: could not load hub dataset {source['path']!r} "
                            f"(needs network access): {type(e).__name__}: {e}") from None
    for row in ds:
        yield dict(row)


SOURCE = SourceKind(read, ("path",), ("name", "split", "revision"))
