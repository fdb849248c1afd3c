"""Inference-time settings a user can pick when loading a model: precision, quantization, attention
implementation and torch.compile. Each is checked against the hardware and installed packages up front,
with an error that says what is missing, rather than failing (or silently doing nothing) mid-run."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from ...errors import InputError

QUANTIZATIONS = {
    "dynamic-int8": "int8 weights, activations quantized per call (torch dynamic quantization; CPU)",
    "bnb-8bit": "bitsandbytes LLM.int8 (CUDA; needs bitsandbytes)",
    "bnb-4bit": "bitsandbytes NF4 4-bit (CUDA; needs bitsandbytes)",
    "torchao-int8": "torchao int8 weight-only (needs torchao)",
}
ATTENTIONS = ("sdpa", "eager", "flash_attention_2")


@dataclass(frozen=True)
class ModelOptions:
    quantization: str | None = None
    attention: str | None = None    # None: transformers' default (sdpa where supported)
    compile: bool = False

    def __post_init__(self):
        if self.quantization is not None and self.quantization not in QUANTIZATIONS:
            raise InputError(f"quantization={self.quantization!r}: expected one of {', '.join(QUANTIZATIONS)} or none")
        if self.attention is not None and self.attention not in ATTENTIONS:
            raise InputError(f"attention={self.attention!r}: expected one of {', '.join(ATTENTIONS)}")
        if not isinstance(self.compile, bool):
            raise InputError(f"compile={self.compile!r}: true or false")


def _need_package(module: str, what: str, pip: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise InputError(f"{what} needs the {module} package, which is not installed: pip install {pip}")


def check_supported(opts: ModelOptions, device: str | None, dtype) -> None:
    """Raise InputError for a setting this machine cannot run. `device` None means a device_map."""
    import torch

    cuda = device is None or device.startswith("cuda")
    if dtype in (torch.float16, torch.bfloat16):
        _probe_dtype(dtype, device or "cuda")
    q = opts.quantization
    if q == "dynamic-int8":
        if cuda:
            raise InputError("quantization='dynamic-int8' runs on CPU only; on CUDA use bnb-8bit, bnb-4bit or "
                             "torchao-int8")
        if dtype is not torch.float32:
            raise InputError("quantization='dynamic-int8' quantizes float32 weights; use dtype float32")
    elif q in ("bnb-8bit", "bnb-4bit"):
        if not cuda:
            raise InputError(f"quantization={q!r} needs a CUDA device (bitsandbytes kernels); on CPU use dynamic-int8")
        _need_package("bitsandbytes", f"quantization={q!r}", "bitsandbytes")
    elif q == "torchao-int8":
        _need_package("torchao", "quantization='torchao-int8'", "torchao")
    if opts.attention == "flash_attention_2":
        if not cuda:
            raise InputError("attention='flash_attention_2' needs a CUDA device")
        _need_package("flash_attn", "attention='flash_attention_2'", "flash-attn")
    if opts.compile and not cuda:
        import shutil

        if shutil.which("cc") is None and shutil.which("gcc") is None:
            raise InputError("compile=True on CPU needs a C compiler (torch inductor builds kernels); none found")


def _probe_dtype(dtype, device: str) -> None:
    """A matmul and a softmax in `dtype` on `device`: some CPUs/builds lack half-precision kernels."""
    import torch

    try:
        x = torch.ones((4, 8), dtype=dtype, device=device)
        torch.softmax(x @ x.T, dim=-1).sum().item()
    except (RuntimeError, TypeError) as e:
        raise InputError(f"dtype {str(dtype).removeprefix('torch.')} is not supported on {device}: {e}") from None


def from_pretrained_kwargs(opts: ModelOptions, dtype) -> dict:
    """Extra arguments for AutoModelForCausalLM.from_pretrained."""
    kw = {}
    if opts.attention is not None:
        kw["attn_implementation"] = opts.attention
    if opts.quantization in ("bnb-8bit", "bnb-4bit"):
        from transformers import BitsAndBytesConfig

        kw["quantization_config"] = (BitsAndBytesConfig(load_in_8bit=True) if opts.quantization == "bnb-8bit" else
                                     BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                        bnb_4bit_compute_dtype=dtype))
    elif opts.quantization == "torchao-int8":
        from transformers import TorchAoConfig

        kw["quantization_config"] = TorchAoConfig("int8_weight_only")
    return kw


def apply_after_load(model, opts: ModelOptions):
    """Post-load transforms: dynamic int8 on CPU and torch.compile (with a warm-up so a failure shows now)."""
    import torch

    if opts.quantization == "dynamic-int8":
        from torch.ao.quantization import quantize_dynamic

        quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    if opts.compile:
        model.forward = torch.compile(model.forward, dynamic=True)
        try:
            with torch.inference_mode():
                ids = torch.ones((1, 4), dtype=torch.long, device=next(model.parameters()).device)
                model(input_ids=ids)
        except Exception as e:  # inductor raises many types; name the setting and the cause
            raise InputError(f"compile=True failed on this machine: {type(e).__name__}: {str(e)[:300]}") from None
    return model
