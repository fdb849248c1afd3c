"""The local Hugging Face backend: our own batched decode loop (backend.py), its token sampler
(sampler.py), prompt-K/V reuse across waves (prefix_cache.py), cascade attention over one copy of a
prompt's K/V (shared_prefix.py), and model loading: the embedded SmolLM2, hub ids, local paths
(loading.py) with quantization / attention / compile options (load_options.py).

`HFBackend` is imported on first use, so `adaptive.backends.hf.loading` costs no torch import.
"""
from __future__ import annotations


def __getattr__(name: str):
    if name == "HFBackend":
        from .backend import HFBackend

        return HFBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["HFBackend"]
