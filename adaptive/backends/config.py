"""The backend section: one type, `BackendConfig`, for `backend:` in eval configs, the CLI's backend flags
and the Python API (`make_backend(BackendConfig | dict, model)`). `kind` picks the backend:

    backend: {kind: hf, model: Qwen/Qwen2.5-0.5B-Instruct, device: auto, dtype: bfloat16}
    backend: {kind: openai, base_url: http://127.0.0.1:8000/v1, model: served-name, max_in_flight: 16}

A mapping without `kind` is `hf`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..schema import above, at_least, option
from .hf.load_options import ATTENTIONS, QUANTIZATIONS

DTYPES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
Dtype = Literal[DTYPES]  # type: ignore[valid-type]
Quantization = Literal[tuple(QUANTIZATIONS)]  # type: ignore[valid-type]
Attention = Literal[ATTENTIONS]  # type: ignore[valid-type]
# Per-request thinking-budget fields a server may honour (OpenAIBackendConfig.server_thinking_budget):
# vLLM's SamplingParams.thinking_token_budget (needs the server started with --reasoning-parser and/or
# --reasoning-config; it forces the end-of-thinking string once the budget is spent).
SERVER_THINKING_BUDGET_FIELDS = ("thinking_token_budget",)
ServerThinkingBudget = Literal[SERVER_THINKING_BUDGET_FIELDS]  # type: ignore[valid-type]


def device_name(v: str) -> str | None:
    """auto, cpu, cuda, cuda:N or mps (whether this machine has it is checked when the model loads)."""
    base, _, index = v.partition(":")
    if v == "auto" or (base in ("cpu", "cuda", "mps") and (not index or (base == "cuda" and index.isdigit()))):
        return None
    return f"unknown device {v!r}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


@dataclass(frozen=True)
class HFBackendConfig:
    """A local transformers model (adaptive.backends.hf)."""
    kind: Literal["hf"] = "hf"
    model: str | None = None                 # hub id or local path; None: the embedded SmolLM2-135M
    device: str = option("auto", check=device_name)
    dtype: Dtype = "auto"
    quantization: Quantization | None = None
    attention: Attention | None = None
    compile: bool = False
    max_batch_rows: int = option(64, check=at_least(1))
    shared_prefix: bool | None = None        # None: on, unless compiled
    shared_prefix_min_tokens: int = option(192, check=at_least(0))


@dataclass(frozen=True)
class OpenAIBackendConfig:
    """An OpenAI-compatible server (adaptive.backends.openai): vLLM, SGLang, `transformers serve`, ..."""
    kind: Literal["openai"] = "openai"
    base_url: str | None = None              # None: $OPENAI_BASE_URL
    model: str | None = None                 # the served model name
    api_key: str | None = None               # None: $OPENAI_API_KEY
    endpoint: Literal["chat", "completions"] = "chat"
    max_in_flight: int = option(8, check=at_least(1))
    timeout_s: float = option(60.0, check=above(0))              # wall clock per attempt
    connect_timeout_s: float = option(5.0, check=above(0))
    read_timeout_s: float | None = option(None, check=above(0))  # between bytes; None: timeout_s
    max_retries: int = option(4, check=at_least(0))
    backoff_base_s: float = option(0.25, check=at_least(0))
    tokenizer: str | None = None             # local tokenizer (path or hub id) for token ids and counts
    supports_n: bool | None = None           # None: detected as calls go
    supports_prefix: bool | None = None
    supports_logprobs: bool | None = None
    supports_ignore_eos: bool | None = None
    context_window: int | None = option(None, check=at_least(1))
    model_config: str | None = None          # local config.json folder, for FLOPs estimates
    model_id: str | None = None              # what records call the model (default: the model)
    headers: dict[str, str] = option(default_factory=dict)
    # Opt-in: thinking plans with exit_rule "none" send their thinking cap in this request field (one request
    # of n traces per query) instead of continuing the thought in chunks. None: off.
    server_thinking_budget: ServerThinkingBudget | None = None


BackendConfig = HFBackendConfig | OpenAIBackendConfig
BACKEND_KINDS: dict[str, type] = {"hf": HFBackendConfig, "openai": OpenAIBackendConfig}

__all__ = ["BACKEND_KINDS", "SERVER_THINKING_BUDGET_FIELDS", "BackendConfig", "HFBackendConfig", "OpenAIBackendConfig", "device_name"]
