"""Where a model name points, decided once before any transformers call: every model load goes through
`resolve_model` (the HF backend, reward-model verifiers, the OpenAI backend's tokenizer and config).

- An existing local path is used as is.
- A name that can only be a path (starts with `/`, `.` or `~`, has a backslash or more than one `/`, or
  is not a valid hub id) and does not exist: one-line error "model path X does not exist".
- A hub id (`name` or `org/name`) in the local Hugging Face cache: loaded from the cache, offline
  (`local_files_only`), with no network round trips. To pick up a newer revision, download it
  (`hf download ID`).
- A hub id not in the cache: with HF_HUB_OFFLINE set, an error at once; otherwise one request to the hub
  (`PROBE_TIMEOUT_S`, no retries) says whether the hub is reachable and has the model; only then does
  transformers download it. A missing model or an unreachable hub is a one-line error in seconds, where
  transformers alone retries for about a minute and then blames the connection.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError

HUB_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$")
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class ModelSource:
    name: str                 # as given
    ref: str                  # what from_pretrained gets: a local path or a hub id
    where: str                # "local", "cache" (hub id, in the local HF cache) or "hub" (to download)
    kwargs: dict = field(default_factory=dict)  # extra from_pretrained arguments (local_files_only)


def looks_like_path(name: str) -> bool:
    return (name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1
            or not HUB_ID.match(name))


def resolve_model(name, role: str = "model") -> ModelSource:
    """Resolve `name` (a local path or a hub id) or raise InputError with one line saying why not."""
    name = os.fspath(name) if hasattr(name, "__fspath__") else name
    if not isinstance(name, str) or not name:
        raise InputError(f"{role} {name!r}: expected a hub id (org/name) or a local path")
    path = Path(name).expanduser()
    if path.exists():
        return ModelSource(name, str(path), "local")
    if looks_like_path(name):
        raise InputError(f"{role} path {name} does not exist")
    if in_hf_cache(name):
        return ModelSource(name, name, "cache", {"local_files_only": True})
    from huggingface_hub import constants

    not_local = (f"{role} {name!r} is not a local path (no such file or directory) and not in the local "
                 f"Hugging Face cache ({constants.HF_HUB_CACHE})")
    if constants.is_offline_mode():
        raise InputError(f"{not_local}, and HF_HUB_OFFLINE is set: download it first or pass a local path")
    status, problem = probe_hub(name)
    if status == 200:
        return ModelSource(name, name, "hub")
    if status in (401, 403, 404):
        raise InputError(f"{not_local}, and the hub ({constants.ENDPOINT}) has no model {name!r} "
                         f"(HTTP {status}; if it is private or gated, log in with `hf auth login`)")
    raise InputError(f"{not_local}, and the hub ({constants.ENDPOINT}) is unreachable ({problem}): "
                     f"connect to it, or download the model elsewhere and pass its local path")


def in_hf_cache(repo_id: str) -> bool:
    """A snapshot of the repo's default revision with a config.json is in the local HF cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # huggingface_hub's id validation: not a hub id after all
        return False


def cached_revision(repo_id: str) -> str | None:
    """The commit of the cached snapshot of `repo_id` (what a cache load reads), or None."""
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:
        return None
    return Path(hit).parent.name if isinstance(hit, str) else None


def probe_hub(repo_id: str, timeout_s: float | None = None) -> tuple[int | None, str]:
    """One GET of the hub's model API, no retries: (HTTP status, '') or (None, what went wrong).

    The request runs in a thread that is abandoned at the deadline, so a stalled DNS lookup (which the
    HTTP client's timeout does not bound) cannot hold the caller either."""
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, get_session

    timeout_s = PROBE_TIMEOUT_S if timeout_s is None else timeout_s
    url = f"{constants.ENDPOINT.rstrip('/')}/api/models/{repo_id}"
    result: list = []

    def ask():
        try:
            r = get_session().get(url, headers=build_hf_headers(), timeout=timeout_s, follow_redirects=True)
            result.append((r.status_code, ""))
        except Exception as e:  # any failure to get an answer means "unreachable"; say which
            result.append((None, f"{type(e).__name__}: {e}"[:200]))

    t = threading.Thread(target=ask, daemon=True, name="hub-probe")
    t.start()
    t.join(timeout_s + 0.5)
    if not result:
        return None, f"no answer within {timeout_s:g} s"
    status, problem = result[0]
    if status is not None and status != 200 and status not in (401, 403, 404):
        return None, f"HTTP {status}"
    return status, problem
