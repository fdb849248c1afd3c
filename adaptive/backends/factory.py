"""Build a backend from its config (`backend:` in YAML, the CLI's backend flags, or the Python API)."""
from __future__ import annotations

import os

from ..errors import ConfigError
from ..schema import load
from .config import BackendConfig, HFBackendConfig, OpenAIBackendConfig


def make_backend(cfg: BackendConfig | dict | None = None, model: str | None = None):
    """The backend `cfg` describes (a BackendConfig, or a mapping read as one); `model` (e.g. --model), when
    given, replaces the config's model: a hub id or path for hf, the served model name for openai."""
    from dataclasses import replace

    from ..registry import backends

    if cfg is None or isinstance(cfg, dict):
        cfg = load(BackendConfig, dict(cfg or {}), "backend config")
    if model is not None:
        cfg = replace(cfg, model=model)
    return backends.get(cfg.kind)(cfg)


def make_hf_backend(cfg: HFBackendConfig):
    from .hf import HFBackend

    extra = {} if cfg.shared_prefix is None else {"shared_prefix": cfg.shared_prefix}
    return HFBackend.from_pretrained(cfg.model, device=cfg.device, dtype=cfg.dtype, quantization=cfg.quantization,
                                     attention=cfg.attention, compile=cfg.compile, max_batch_rows=cfg.max_batch_rows,
                                     shared_prefix_min_tokens=cfg.shared_prefix_min_tokens, **extra)


def make_openai_backend(cfg: OpenAIBackendConfig):
    """base_url falls back to $OPENAI_BASE_URL and api_key to $OPENAI_API_KEY (the OpenAI client's variables)."""
    from .openai import OpenAIBackend

    base_url = cfg.base_url or os.environ.get("OPENAI_BASE_URL")
    if not base_url:
        raise ConfigError("backend kind 'openai' needs base_url (e.g. http://127.0.0.1:8000/v1), or $OPENAI_BASE_URL")
    if not cfg.model:
        raise ConfigError("backend kind 'openai' needs model: the model name the server serves (or --model)")
    api_key = cfg.api_key if cfg.api_key is not None else os.environ.get("OPENAI_API_KEY")
    return OpenAIBackend(base_url, cfg.model, api_key=api_key, endpoint=cfg.endpoint, max_in_flight=cfg.max_in_flight,
                         timeout_s=cfg.timeout_s, connect_timeout_s=cfg.connect_timeout_s,
                         read_timeout_s=cfg.read_timeout_s, max_retries=cfg.max_retries,
                         backoff_base_s=cfg.backoff_base_s, tokenizer=cfg.tokenizer, supports_n=cfg.supports_n,
                         supports_prefix=cfg.supports_prefix, supports_logprobs=cfg.supports_logprobs,
                         supports_ignore_eos=cfg.supports_ignore_eos, context_window=cfg.context_window,
                         model_config=cfg.model_config, model_id=cfg.model_id, headers=dict(cfg.headers),
                         server_thinking_budget=cfg.server_thinking_budget)
