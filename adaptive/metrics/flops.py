"""Analytic forward-pass FLOP estimates, so compute can be compared across models and strategies
without hardware counters.

Per token, Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", arXiv:2001.08361,
Table 1) give C_forward ≈ 2·N + 2·n_layer·n_ctx·d_attn, where N is the non-embedding parameter
count (one multiply-add per weight), n_ctx the number of positions the token attends to, and d_attn
the attention width (heads × head_dim). Embedding lookups and the LM head are left out of N, as in
Kaplan, so the numbers are a model-size-comparable lower bound rather than an exact count.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Iterable

from ..errors import InputError


@dataclass(frozen=True)
class FlopsSpec:
    """The three model constants the Kaplan estimate needs."""

    n_params_non_embedding: int
    n_layers: int
    d_attn: int


def _check_model(n_params_non_embedding, n_layers, d_attn) -> None:
    for name, v in (("n_params_non_embedding", n_params_non_embedding), ("n_layers", n_layers),
                    ("d_attn", d_attn)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
            raise InputError(f"{name} must be a non-negative finite number, got {v!r}")


def _count(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
        raise InputError(f"{name} must be a non-negative integer, got {v!r}")
    return int(v)


def forward_flops(n_params_non_embedding: float, n_layers: int, d_attn: int,
                  context_lengths: Iterable[int]) -> float:
    """Sum over tokens of 2·N + 2·n_layer·n_ctx·d_attn (Kaplan et al. 2020, Table 1).

    context_lengths holds, for each token processed, how many positions it attends to (itself
    included). This is the general form; prefill_flops/decode_flops are closed forms of it.
    """
    _check_model(n_params_non_embedding, n_layers, d_attn)
    total = 0.0
    for i, c in enumerate(context_lengths):
        _count(f"context_lengths[{i}]", c)
        total += 2.0 * n_params_non_embedding + 2.0 * n_layers * c * d_attn
    return total


def _positions_flops(n, layers, d_attn, first: int, count: int) -> float:
    """Closed form of sum_{t=first+1}^{first+count} (2N + 2·L·t·d_attn).

    sum of t over that range = count·first + count(count+1)/2, an integer, so no rounding drift.
    """
    sum_t = count * first + count * (count + 1) // 2
    return 2.0 * n * count + 2.0 * layers * d_attn * sum_t


def prefill_flops(n_params_non_embedding: float, n_layers: int, d_attn: int, prompt_len: int,
                  past_len: int = 0) -> float:
    """FLOPs to process prompt_len tokens in one pass after past_len cached positions.

    The token at absolute position t (1-based, t = past_len+1 .. past_len+prompt_len) attends to
    t positions under a causal mask, so this equals forward_flops over those context lengths.
    """
    _check_model(n_params_non_embedding, n_layers, d_attn)
    prompt_len, past_len = _count("prompt_len", prompt_len), _count("past_len", past_len)
    return _positions_flops(n_params_non_embedding, n_layers, d_attn, past_len, prompt_len)


def decode_flops(n_params_non_embedding: float, n_layers: int, d_attn: int, start_ctx: int,
                 n_tokens: int) -> float:
    """FLOPs for n_tokens single-token forwards with a KV cache that starts with start_ctx positions.

    Step i (1-based) feeds one token that attends to start_ctx + i positions, so the total is the
    same sum as prefill_flops(…, prompt_len=n_tokens, past_len=start_ctx): with a KV cache, the
    FLOPs do not depend on whether tokens go one at a time or together; only the wall time does.
    """
    _check_model(n_params_non_embedding, n_layers, d_attn)
    start_ctx, n_tokens = _count("start_ctx", start_ctx), _count("n_tokens", n_tokens)
    return _positions_flops(n_params_non_embedding, n_layers, d_attn, start_ctx, n_tokens)


def _attr(config, name: str, required: bool = True):
    v = getattr(config, name, None)
    if v is None:
        if required:
            raise InputError(f"model config has no {name!r}; cannot estimate FLOPs")
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
        raise InputError(f"model config {name}={v!r} must be a positive integer")
    return int(v)


def model_flops_spec(config) -> FlopsSpec:
    """Estimate (N, n_layer, d_attn) of a Llama-style decoder from a Hugging Face config-like object.

    Duck-typed: reads hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
    vocab_size, and optionally head_dim and num_key_value_heads (GQA; defaults to the head count).
    A multimodal config that nests its decoder in .text_config is read from there. Per layer:
      attention  q, o: hidden × (heads·head_dim); k, v: hidden × (kv_heads·head_dim)
      gated MLP  gate, up, down: 3·hidden·intermediate
      2 RMSNorm weights of size hidden
    plus the final norm (hidden). Biases are counted only when the config sets attention_bias /
    mlp_bias (Llama's defaults are none). The token embedding and LM head (vocab × hidden) are
    excluded from N as in Kaplan et al. 2020, so the LM head's 2·vocab·hidden FLOPs per token are
    not counted. With tied embeddings (e.g. SmolLM2) both share one vocab×hidden matrix, so a model
    card's total is N + vocab·hidden; an untied model adds a second vocab·hidden.
    d_attn = heads·head_dim, the width of the QK and AV products.
    """
    if getattr(config, "hidden_size", None) is None and getattr(config, "text_config", None) is not None:
        config = config.text_config
    hidden = _attr(config, "hidden_size")
    layers = _attr(config, "num_hidden_layers")
    heads = _attr(config, "num_attention_heads")
    inter = _attr(config, "intermediate_size")
    _attr(config, "vocab_size")  # validated so a truncated config fails loudly; not part of N
    kv_heads = _attr(config, "num_key_value_heads", required=False) or heads
    head_dim = _attr(config, "head_dim", required=False)
    if head_dim is None:
        if hidden % heads:
            raise InputError(f"hidden_size={hidden} is not divisible by num_attention_heads={heads} "
                             "and the config has no head_dim")
        head_dim = hidden // heads
    if heads % kv_heads:
        raise InputError(f"num_attention_heads={heads} is not a multiple of num_key_value_heads={kv_heads}")
    q_dim, kv_dim = heads * head_dim, kv_heads * head_dim
    attn = 2 * hidden * q_dim + 2 * hidden * kv_dim
    if getattr(config, "attention_bias", False) is True:
        attn += q_dim + 2 * kv_dim + hidden
    mlp = 3 * hidden * inter
    if getattr(config, "mlp_bias", False) is True:
        mlp += 2 * inter + hidden
    per_layer = attn + mlp + 2 * hidden
    n = layers * per_layer + hidden
    return FlopsSpec(n_params_non_embedding=n, n_layers=layers, d_attn=q_dim)
