"""Build a backend from a config mapping (`backend:` in YAML, `--backend` on the CLI)."""
from __future__ import annotations

import os

from ..errors import ConfigError

OPENAI_KEYS = ("base_url", "api_key", "model", "endpoint", "max_in_flight", "timeout_s", "max_retries",
               "backoff_base_s", "tokenizer", "supports_n", "context_window", "supports_prefix", "supports_logprobs",
               "supports_ignore_eos", "model_config", "model_id", "connect_timeout_s", "headers")


def make_backend(cfg: dict | None, model: str | None = None):
    from ..registry import backends

    cfg = dict(cfg or {})
    kind = cfg.pop("kind", "hf")
    if kind not in backends:
        raise ConfigError(f"backend kind {kind!r} unknown; known: {', '.join(backends.names())}")
    return backends.get(kind)(cfg, model)


def make_hf_backend(cfg: dict, model: str | None = None):
    from .hf import HFBackend

    extra = {k: cfg[k] for k in ("max_batch_rows", "quantization", "attention", "compile", "shared_prefix",
                              "shared_prefix_min_tokens") if k in cfg}
    return HFBackend.from_pretrained(model, device=cfg.get("device", "auto"), dtype=cfg.get("dtype", "auto"), **extra)


def make_openai_backend(cfg: dict, model: str | None = None):
    """`kind: openai` keys: base_url (required; or $OPENAI_BASE_URL), model (or --model), api_key (or
    $OPENAI_API_KEY), endpoint, max_in_flight, timeout_s, max_retries, backoff_base_s, tokenizer, supports_n,
    context_window, supports_prefix, supports_logprobs, supports_ignore_eos, model_config, model_id, headers."""
    from .openai import OpenAIBackend

    unknown = sorted(set(cfg) - set(OPENAI_KEYS))
    if unknown:
        raise ConfigError(f"backend kind 'openai': unknown key(s) {', '.join(unknown)}; known: {', '.join(OPENAI_KEYS)}")
    kw = dict(cfg)
    kw["base_url"] = kw.get("base_url") or os.environ.get("OPENAI_BASE_URL")
    if not kw["base_url"]:
        raise ConfigError("backend kind 'openai' needs base_url (e.g. http://127.0.0.1:8000/v1), or $OPENAI_BASE_URL")
    kw["model"] = kw.get("model") or model
    if not kw["model"]:
        raise ConfigError("backend kind 'openai' needs model: the model name the server serves (or --model)")
    if kw.get("api_key") is None and os.environ.get("OPENAI_API_KEY"):
        kw["api_key"] = os.environ["OPENAI_API_KEY"]
    return OpenAIBackend(**kw)
