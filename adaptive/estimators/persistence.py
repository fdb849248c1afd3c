"""Saving and loading estimators: a joblib payload plus a JSON sidecar that is checked first.

Layout for `save("probe.joblib")`:
  probe.joblib       joblib pickle of {"kind", "state"} (the fitted scikit-learn pipeline and arrays)
  probe.joblib.json  metadata: format + version, estimator kind and constructor config, model id, a hash of
                     the model config, resolved layers, feature size, bin edges, library versions, created
                     time, and the payload's sha256.

Loading reads and validates the JSON sidecar only, checks model id / config hash against the backend,
then checks the payload's sha256, and only then unpickles. So a file for another model, or a truncated or
altered payload, is refused with a ConfigError before any pickle code runs. (Unpickling still executes
code from the payload: load only estimators you or your team produced; the checksum guards against
corruption and mix-ups, not against a hostile author who rewrites both files.)

The config hash is sha256 over the model config's JSON with keys that vary by load rather than by
model removed (transformers_version, _name_or_path, dtype/torch_dtype, attention implementation,
_commit_hash), first 16 hex digits. A backend may also expose a string attribute `config_hash`.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from ..errors import ConfigError

FORMAT = "adaptive-estimator"
FORMAT_VERSION = 1
VOLATILE_CONFIG_KEYS = ("transformers_version", "_name_or_path", "dtype", "torch_dtype", "_attn_implementation",
                        "_attn_implementation_autoset", "_attn_implementation_internal", "_commit_hash")


def sidecar_path(path) -> Path:
    return Path(str(path) + ".json")


def config_hash(backend) -> str | None:
    """16-hex-digit hash identifying the backend's model architecture/weights config, or None."""
    own = getattr(backend, "config_hash", None)
    if isinstance(own, str) and own:
        return own
    cfg = getattr(getattr(backend, "model", None), "config", None)
    if cfg is None:
        return None
    if hasattr(cfg, "to_dict"):
        d = {k: v for k, v in cfg.to_dict().items() if k not in VOLATILE_CONFIG_KEYS}
        text = json.dumps(d, sort_keys=True, default=str)
    elif hasattr(cfg, "to_json_string"):
        text = cfg.to_json_string()
    else:
        return None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def identity(backend) -> tuple[str | None, str | None]:
    if backend is None:
        return None, None
    mid = getattr(backend, "model_id", None)
    return (str(mid) if mid is not None else None), config_hash(backend)


def library_versions() -> dict:
    import numpy
    import sklearn

    out = {"python": platform.python_version(), "numpy": numpy.__version__, "sklearn": sklearn.__version__}
    for name in ("torch", "transformers", "joblib"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - optional for the record only
            out[name] = None
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write(path, payload: dict, meta: dict) -> Path:
    """Write payload (joblib) then the sidecar (last, so a sidecar always describes a complete payload)."""
    import joblib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda tmp: joblib.dump(payload, tmp))
    meta = dict(meta, format=FORMAT, format_version=FORMAT_VERSION, payload=path.name,
                payload_sha256=_sha256(path), versions=library_versions(),
                created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    text = json.dumps(meta, indent=2, sort_keys=True)

    def put(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text + "\n")

    _atomic_write(sidecar_path(path), put)
    return path


def read_meta(path) -> dict:
    side = sidecar_path(path)
    if not Path(path).is_file():
        raise ConfigError(f"estimator file {path} does not exist")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"estimator metadata {side} is missing (it is written next to {path} by save())") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"estimator metadata {side} is malformed: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ConfigError(f"estimator metadata {side} is not an adaptive estimator file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"estimator metadata {side}: format_version {meta.get('format_version')!r} is not "
                          f"supported (expected {FORMAT_VERSION})")
    for key in ("kind", "config", "payload_sha256", "bin_edges", "feature_size"):
        if key not in meta:
            raise ConfigError(f"estimator metadata {side} is malformed: missing {key!r}")
    if not isinstance(meta["config"], dict):
        raise ConfigError(f"estimator metadata {side} is malformed: 'config' must be an object")
    return meta


def check_identity(meta: dict, backend, path) -> None:
    """ConfigError when the file was trained for another model than the backend's."""
    if backend is None or meta.get("model_id") is None:
        return
    mid, chash = identity(backend)
    if mid != meta["model_id"]:
        raise ConfigError(f"estimator {path} was trained for model {meta['model_id']!r}, but the backend's model "
                          f"is {mid!r}")
    want = meta.get("config_hash")
    if want is not None and chash is not None and want != chash:
        raise ConfigError(f"estimator {path} was trained on a model config with hash {want}, but the backend's "
                          f"model {mid!r} has config hash {chash}")


def read_payload(path, meta: dict) -> dict:
    import joblib

    path = Path(path)
    try:
        actual = _sha256(path)
    except OSError as e:
        raise ConfigError(f"estimator file {path} cannot be read: {e}") from None
    if actual != meta["payload_sha256"]:
        raise ConfigError(f"estimator file {path} is corrupt or was modified: sha256 {actual[:16]}... does not "
                          f"match its metadata ({str(meta['payload_sha256'])[:16]}...)")
    try:
        payload = joblib.load(path)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ConfigError(f"estimator file {path} cannot be loaded: {type(e).__name__}: {e}") from None
    if not isinstance(payload, dict) or payload.get("kind") != meta["kind"] or "state" not in payload:
        raise ConfigError(f"estimator file {path} is malformed: payload does not match its metadata")
    return payload
