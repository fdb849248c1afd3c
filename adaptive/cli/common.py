"""What several subcommands share: the backend flags and the `backend:` mapping they make (read as a
BackendConfig, adaptive/backends/config.py), count flags, and the one-line compute summary of a Result."""
from __future__ import annotations

import argparse

from ..backends.config import BACKEND_KINDS, BackendConfig
from ..errors import InputError
from ..schema import Invalid, config_keys, load


def summary_line(result) -> str:
    c = result.compute
    out = f"{c.generated_tokens} out"
    if c.thinking_tokens or c.answer_tokens or c.probe_tokens:
        out += f" (thinking {c.thinking_tokens}, answers {c.answer_tokens}, probes {c.probe_tokens})"
    parts = [f"samples {c.samples}", f"tokens {c.prompt_tokens} in / {out}",
             f"calls {c.model_calls}", f"{c.flops / 1e9:.1f} GFLOP", f"wall {c.wall_s:.2f}s"]
    if c.ttft_s is not None:
        parts.append(f"TTFT {c.ttft_s:.2f}s")
    if c.tpot_s is not None:
        parts.append(f"TPOT {c.tpot_s * 1000:.0f}ms")
    if c.fluidity is not None:
        parts.append(f"fluidity {c.fluidity:.2f}")
    parts.append(f"stop: {result.stop_reason}")
    return " | ".join(parts)


def positive_int(text: str) -> int:
    """argparse type for counts (--limit, --samples, ...): an integer >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


# argparse dest -> backend key; a flag applies to the kinds whose config has its key
BACKEND_FLAGS = {"model": "model", "device": "device", "dtype": "dtype", "quantization": "quantization",
                 "attention": "attention", "compile": "compile", "base_url": "base_url", "api_key": "api_key",
                 "timeout": "timeout_s", "connect_timeout": "connect_timeout_s", "read_timeout": "read_timeout_s",
                 "max_retries": "max_retries", "max_in_flight": "max_in_flight"}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def add_backend_args(p) -> None:
    p.add_argument("--backend", choices=["hf", "openai"], default=None,
                   help="hf: local transformers model (default); openai: an OpenAI-compatible server")
    p.add_argument("--model", default=None,
                   help="hf: hub id or local path (default: the embedded SmolLM2-135M); openai: the served model name")
    p.add_argument("--device", default=None, help="hf: auto (CUDA if available, else CPU; default), cpu, cuda, "
                                                  "cuda:N, mps")
    p.add_argument("--dtype", default=None, help="hf: float32, bfloat16, float16 or auto (default)")
    p.add_argument("--quantization", default=None,
                   help="hf: dynamic-int8 (CPU), bnb-8bit / bnb-4bit (CUDA + bitsandbytes), torchao-int8")
    p.add_argument("--attention", default=None, help="hf: sdpa, eager or flash_attention_2")
    p.add_argument("--compile", action="store_true", default=None, help="hf: torch.compile the model")
    p.add_argument("--base-url", default=None,
                   help="openai: server URL, e.g. http://127.0.0.1:8000/v1 (default $OPENAI_BASE_URL)")
    p.add_argument("--api-key", default=None, help="openai: API key (default $OPENAI_API_KEY)")
    p.add_argument("--timeout", type=float, default=None,
                   help="openai: seconds one request attempt may take, wall clock (default 60)")
    p.add_argument("--connect-timeout", type=float, default=None, help="openai: seconds to connect (default 5)")
    p.add_argument("--read-timeout", type=float, default=None,
                   help="openai: seconds without data before an attempt fails (default: --timeout)")
    p.add_argument("--max-retries", type=int, default=None,
                   help="openai: retries of a failed attempt, with exponential backoff (default 4)")
    p.add_argument("--max-in-flight", type=int, default=None, help="openai: concurrent requests (default 8)")


def backend_mapping(args, base: dict | None = None) -> dict | None:
    """The `backend:` mapping the backend flags make on top of `base` (a config's, as written): the same kind
    keeps its keys, another kind starts afresh. None when no backend flag was given. A flag that does not
    apply to the kind is an error."""
    given = {dest: v for dest in BACKEND_FLAGS if (v := getattr(args, dest, None)) is not None}
    if getattr(args, "backend", None) is None and not given:
        return None
    base = dict(base or {})
    kind = args.backend or base.get("kind", "hf")
    out = base if base.get("kind", "hf") == kind else {"kind": kind}
    accepted = config_keys(BACKEND_KINDS[kind]) if kind in BACKEND_KINDS else {}
    for dest, v in given.items():
        if BACKEND_FLAGS[dest] not in accepted:
            raise InputError(f"{_flag(dest)} does not apply to --backend {kind}")
        out[BACKEND_FLAGS[dest]] = v
    return out


def backend_config(args, base: dict | None = None) -> BackendConfig:
    """The BackendConfig of `base` with the flags on top; a bad flag value is an error naming the flag."""
    mapping = backend_mapping(args, base)
    mapping = dict(base or {}) if mapping is None else mapping
    try:
        return load(BackendConfig, mapping, "backend")
    except Invalid as e:
        flag = next((_flag(d) for d, k in BACKEND_FLAGS.items() if k == e.key and getattr(args, d, None) is not None),
                    None)
        raise InputError(f"{flag}: {e.reason}" if flag else str(e)) from None
