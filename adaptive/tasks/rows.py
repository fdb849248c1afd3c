"""Row -> `Example`: the field mapping, the gold formats and prompt rendering.

`fields` maps names to row paths (dotted for nested rows, e.g. ``answer.aliases``). The reserved
names are ``gold``, ``id``, ``choices`` (a field holding the list of option texts, or a list of
fields, one per option) and ``meta`` (meta name -> path);
every other name becomes a template variable. With ``choices`` mapped, the template also gets
``{choices}`` (``"A. text"`` lines) and ``{letters}`` (``"A, B, C or D"``).
"""
from __future__ import annotations

import hashlib
import json
import re
import string

from ..answers import gsm8k_gold
from ..answers.boxed import find_boxed
from ..answers.choice import LETTERS
from .spec import Example

RESERVED_FIELDS = ("gold", "id", "choices", "meta")
GOLD_FORMATS = ("raw", "gsm8k", "boxed", "index_to_letter", "index_to_choice", "aliases")
_LEVEL = re.compile(r"^\s*level\s*(\d+)\s*$", re.IGNORECASE)


class BadRow(Exception):
    """A row lacks a mapped field or its gold cannot be read; `reason` is the short category."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(detail)


def template_names(template: str) -> set[str]:
    return {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f}


def get_path(row: dict, path: str, *, required: bool = True):
    """``row["a"]["b"]`` for ``"a.b"``. Missing or empty (None, "") raises BadRow when required."""
    cur = row
    for part in str(path).split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            cur = None
            break
    if required and (cur is None or (isinstance(cur, str) and not cur.strip())):
        keys = sorted(row) if isinstance(row, dict) else []
        raise BadRow(f"missing field {path!r}", f"missing field {path!r} (row keys: {keys})")
    return cur


def row_hash(row: dict) -> str:
    blob = json.dumps(row, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:12]


def _meta_value(key: str, value):
    if key == "level" and isinstance(value, str):  # MATH writes "Level 3"
        m = _LEVEL.match(value)
        if m:
            return int(m.group(1))
    return value


def _letters_phrase(letters: list[str]) -> str:
    return letters[0] if len(letters) == 1 else ", ".join(letters[:-1]) + " or " + letters[-1]


def _gold(fmt: str, raw, options: list[str] | None):
    if fmt == "raw":
        return raw if isinstance(raw, list) else str(raw).strip()
    if fmt == "aliases":
        vals = raw if isinstance(raw, (list, tuple)) else [raw]
        out = list(dict.fromkeys(str(v).strip() for v in vals if str(v).strip()))
        if not out:
            raise BadRow("empty gold", "gold alias list is empty")
        return out
    if fmt == "gsm8k":
        try:
            return gsm8k_gold(str(raw))
        except ValueError as e:
            raise BadRow("unreadable gold", str(e)) from None
    if fmt == "boxed":
        box = find_boxed(str(raw))
        if box is None or not box.strip():
            raise BadRow("unreadable gold", "no \\boxed{} answer in the gold field")
        return box.strip()
    # index_to_letter / index_to_choice: gold is a 0-based index (int or digit string) or a letter
    if isinstance(raw, str) and raw.strip().upper() in LETTERS[: len(options)] and not raw.strip().isdigit():
        idx = LETTERS.index(raw.strip().upper())
    else:
        try:
            idx = int(raw)
        except (TypeError, ValueError):
            raise BadRow("unreadable gold", f"gold {raw!r} is not an option index or letter") from None
    if not 0 <= idx < len(options):
        raise BadRow("unreadable gold", f"gold index {idx} outside {len(options)} options")
    return LETTERS[idx] if fmt == "index_to_letter" else str(options[idx]).strip()


def build_example(spec, row: dict, index: int) -> Example:
    """One row -> Example (raises BadRow naming the missing field)."""
    fields = spec.fields
    values = {k: get_path(row, p) for k, p in fields.items() if k not in RESERVED_FIELDS}
    options = letters = None
    if "choices" in fields:
        spec_choices = fields["choices"]
        if isinstance(spec_choices, (list, tuple)):  # one column per option (CSV style)
            options = [get_path(row, p) for p in spec_choices]
        else:  # one field holding the list of options
            options = get_path(row, spec_choices)
        if not isinstance(options, (list, tuple)) or not 1 < len(options) <= len(LETTERS):
            raise BadRow("bad choices", f"choices {spec_choices!r} must give 2-{len(LETTERS)} options")
        letters = list(LETTERS[: len(options)])
        values["choices"] = "\n".join(f"{l}. {str(o).strip()}" for l, o in zip(letters, options))
        values["letters"] = _letters_phrase(letters)
    gold = _gold(spec.gold_format, get_path(row, fields["gold"]), options)
    meta = {}
    for k, p in (fields.get("meta") or {}).items():
        v = get_path(row, p, required=False)
        if v is not None:  # an absent meta value is left out, not stored as None
            meta[k] = _meta_value(k, v)
    if "id" in fields:
        ex_id = str(get_path(row, fields["id"]))
    else:
        ex_id = row_hash(row)
    prompt = spec.template.format(**{k: (v if isinstance(v, str) else str(v)) for k, v in values.items()})
    # MC tasks score letters; free-text tasks keep choices None so no letter filter is applied.
    mc = spec.gold_format == "index_to_letter" or spec.extractor == "choice"
    return Example(id=ex_id, prompt=prompt, gold=gold, meta=meta, choices=letters if mc else None)
