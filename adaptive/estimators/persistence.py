"""Saving and loading estimators: an .npz of float64 arrays plus a JSON sidecar that is checked first.

Layout for `save("probe.npz")` (the name must end in .npz):
  probe.npz        numpy .npz archive (a zip of .npy arrays, written with np.savez) holding ONLY the fitted
                   model's numbers: scale_mean, scale_scale, [pca_mean, pca_components], coef, intercept,
                   [isotonic_x, isotonic_y | sigmoid_a, sigmoid_b] (see regression.FittedModel); float64.
  probe.npz.json   metadata: format + version, estimator kind and constructor config, model id, a hash of the
                   model config, bin edges, feature size, calibration, C, resolved layers, the model's
                   description ("model": kind, calibration, n_features, pca_components, isotonic_points, C)
                   and the name, dtype and shape of every array ("arrays"), the estimator's other fitted
                   state as plain JSON ("state": feature names, the probe's layer indices and hidden shape),
                   library versions, created time, and the payload's sha256.

Why loading runs no code from the files: the sidecar is parsed with json; the payload is opened only
after the sidecar is valid, the model id / config hash match the backend and the payload's sha256
matches, and then only as a zip of .npy arrays: every member's header is read (numpy parses it as a
Python literal) and its name, dtype (float64 or int64; never object) and shape are checked against the
metadata before np.load(..., allow_pickle=False) reads the data. A pickle or joblib file, an object
array or an array of the wrong shape is refused with a ConfigError; nothing is unpickled, ever. Files of
the old joblib format (format_version 1) are refused with a message to retrain, without opening them.
The checksum still guards against corruption and mix-ups (a file edited by hand is refused unless its
sidecar is edited to match).

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
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError

FORMAT = "adaptive-estimator"
FORMAT_VERSION = 2  # 1: joblib pickle payload (no longer loaded)
SUFFIX = ".npz"
DTYPES = ("float64", "int64")  # the only array dtypes a payload may hold
RETRAIN = ("retrain it with `adaptive train-estimator --logs <graded.jsonl> --estimator <kind> --out <name>.npz` "
           "(or train_estimator(..., out_path='<name>.npz'))")
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
    for name in ("torch", "transformers"):
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


def check_path(path) -> Path:
    """The payload path for saving: InputError unless it ends in .npz (the sidecar is PATH.json)."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise InputError(f"estimator file {path}: the name must end in {SUFFIX} (arrays; the metadata goes to "
                         f"{path.with_suffix(SUFFIX).name}.json)")
    return path


def write(path, arrays: dict, meta: dict) -> Path:
    """Write the arrays (.npz, no pickle) then the sidecar (last, so a sidecar always describes a complete
    payload). The sidecar records every array's dtype and shape."""
    path = check_path(path)
    arrays = {str(k): np.asarray(v) for k, v in arrays.items()}
    for name, v in arrays.items():
        if not name.isidentifier() or v.dtype.name not in DTYPES:
            raise InputError(f"estimator array {name!r} ({v.dtype}): names must be identifiers and dtypes one of "
                             f"{', '.join(DTYPES)}")
    path.parent.mkdir(parents=True, exist_ok=True)

    def put_arrays(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)

    _atomic_write(path, put_arrays)
    meta = dict(meta, format=FORMAT, format_version=FORMAT_VERSION, payload=path.name,
                payload_sha256=_sha256(path), versions=library_versions(),
                arrays={name: {"dtype": v.dtype.name, "shape": list(v.shape)} for name, v in arrays.items()},
                created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    text = json.dumps(meta, indent=2, sort_keys=True)

    def put(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text + "\n")

    _atomic_write(sidecar_path(path), put)
    return path


def _old_format(path) -> ConfigError:
    return ConfigError(f"estimator file {path} is in the old joblib (pickle) format, which is no longer loaded "
                       f"because unpickling runs code from the file; estimators are now saved as .npz arrays "
                       f"plus a JSON sidecar: {RETRAIN}")


def read_meta(path) -> dict:
    side = sidecar_path(path)
    if not Path(path).is_file():
        raise ConfigError(f"estimator file {path} does not exist")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if Path(path).suffix == ".joblib":
            raise _old_format(path) from None
        raise ConfigError(f"estimator metadata {side} is missing (it is written next to {path} by save())") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"estimator metadata {side} is malformed: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ConfigError(f"estimator metadata {side} is not an adaptive estimator file")
    for key in ("kind", "config", "payload_sha256", "bin_edges", "feature_size"):  # in every version
        if key not in meta:
            raise ConfigError(f"estimator metadata {side} is malformed: missing {key!r}")
    if meta.get("format_version") == 1:
        raise _old_format(path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"estimator metadata {side}: format_version {meta.get('format_version')!r} is not "
                          f"supported (expected {FORMAT_VERSION})")
    for key in ("model", "arrays", "state"):
        if key not in meta:
            raise ConfigError(f"estimator metadata {side} is malformed: missing {key!r}")
    for key in ("config", "model", "arrays", "state"):
        if not isinstance(meta[key], dict):
            raise ConfigError(f"estimator metadata {side} is malformed: {key!r} must be an object")
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


def read_arrays(path, meta: dict, shapes: dict) -> dict:
    """The payload's arrays, after checking its sha256 against the metadata and that it holds exactly the
    arrays `shapes` names ({name: shape}), each float64 of that shape, as the sidecar's "arrays" also says.
    Nothing in the file is unpickled: a pickle, an object array or a wrong shape is a ConfigError."""
    path = Path(path)
    try:
        actual = _sha256(path)
    except OSError as e:
        raise ConfigError(f"estimator file {path} cannot be read: {e}") from None
    if actual != meta["payload_sha256"]:
        raise ConfigError(f"estimator file {path} is corrupt or was modified: sha256 {actual[:16]}... does not "
                          f"match its metadata ({str(meta['payload_sha256'])[:16]}...)")
    want = {name: ("float64", list(shape)) for name, shape in shapes.items()}
    listed = meta["arrays"]
    if set(listed) != set(want) or any(not isinstance(listed[n], dict) or
                                       (listed[n].get("dtype"), listed[n].get("shape")) != want[n] for n in want):
        raise ConfigError(f"estimator metadata {sidecar_path(path)} is malformed: its 'arrays' do not match the "
                          "model it describes")
    found = _npz_headers(path)
    if set(found) != set(want):
        extra, missing = sorted(set(found) - set(want)), sorted(set(want) - set(found))
        raise ConfigError(f"estimator file {path} does not match its metadata: "
                          + "; ".join(([f"missing arrays {', '.join(missing)}"] if missing else [])
                                      + ([f"unexpected arrays {', '.join(extra)}"] if extra else [])))
    for name, (dtype, shape) in want.items():
        if found[name] != (dtype, shape):
            raise ConfigError(f"estimator file {path}: array {name!r} is {found[name][0]}{found[name][1]}, its "
                              f"metadata says {dtype}{shape}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in want}
    except Exception as e:  # noqa: BLE001 - any failure to read the arrays means a bad file
        raise ConfigError(f"estimator file {path} cannot be loaded: {type(e).__name__}: {e}") from None
    for name, (dtype, shape) in want.items():  # what np.load gave, not only what the headers said
        if arrays[name].dtype.name != dtype or list(arrays[name].shape) != shape:
            raise ConfigError(f"estimator file {path}: array {name!r} does not match its header")
    return arrays


def _npz_headers(path: Path) -> dict[str, tuple[str, list]]:
    """{array name: (dtype name, shape)} from the .npy headers inside an .npz, reading no array data.
    ConfigError for anything that is not a zip of plain float64/int64 .npy arrays."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        what = "a pickle (e.g. a joblib file)" if magic[:1] == b"\x80" else "not an .npz archive"
        raise ConfigError(f"estimator file {path} cannot be loaded: it is {what}; estimator payloads are .npz "
                          "arrays and are never unpickled")
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                name = member[:-4] if member.endswith(".npy") else None
                if not name or not name.isidentifier() or name in out:
                    raise ConfigError(f"estimator file {path}: unexpected member {member!r} in the archive")
                with zf.open(member) as fp:
                    version = np.lib.format.read_magic(fp)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
                    else:
                        raise ValueError(f".npy format version {version}")
                if dtype.hasobject or dtype.name not in DTYPES or not dtype.isnative:
                    raise ConfigError(f"estimator file {path}: array {name!r} has dtype {dtype}; only "
                                      f"{' and '.join(DTYPES)} arrays are loaded (never object arrays)")
                out[name] = (dtype.name, [int(v) for v in shape])
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - a broken zip or .npy header means a bad file
        raise ConfigError(f"estimator file {path} cannot be loaded: {type(e).__name__}: {e}") from None
    return out
