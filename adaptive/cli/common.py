"""What several subcommands share: the backend flags and the `backend:` mapping they build, and the
one-line compute summary of a Result."""
from __future__ import annotations


def summary_line(result) -> str:
    c = result.compute
    parts = [f"samples {c.samples}", f"tokens {c.prompt_tokens} in / {c.generated_tokens} out",
             f"calls {c.model_calls}", f"{c.flops / 1e9:.1f} GFLOP", f"wall {c.wall_s:.2f}s"]
    if c.ttft_s is not None:
        parts.append(f"TTFT {c.ttft_s:.2f}s")
    if c.tpot_s is not None:
        parts.append(f"TPOT {c.tpot_s * 1000:.0f}ms")
    if c.fluidity is not None:
        parts.append(f"fluidity {c.fluidity:.2f}")
    parts.append(f"stop: {result.stop_reason}")
    return " | ".join(parts)


def add_backend_args(p) -> None:
    p.add_argument("--backend", choices=["hf", "openai"], default=None,
                   help="hf: local transformers model (default); openai: an OpenAI-compatible server")
    p.add_argument("--base-url", default=None, help="server URL for --backend openai (e.g. http://127.0.0.1:8000/v1)")
    p.add_argument("--api-key", default=None, help="API key for --backend openai (or $OPENAI_API_KEY)")
    p.add_argument("--dtype", default=None, help="hf: float32, bfloat16, float16 or auto (default)")
    p.add_argument("--quantization", default=None,
                   help="hf: dynamic-int8 (CPU), bnb-8bit / bnb-4bit (CUDA + bitsandbytes), torchao-int8")
    p.add_argument("--attention", default=None, help="hf: sdpa, eager or flash_attention_2")
    p.add_argument("--compile", action="store_true", default=None, help="hf: torch.compile the model")


def backend_config(args, default: dict | None = None) -> dict:
    """The `backend:` mapping: the config's, with what the CLI flags say on top."""
    default = dict(default or {"kind": "hf"})
    kind = args.backend or default.get("kind", "hf")
    cfg = default if default.get("kind", "hf") == kind else {}
    cfg["kind"] = kind
    if kind == "openai":
        cfg.update({k: v for k, v in (("base_url", args.base_url), ("api_key", args.api_key)) if v})
    else:
        if getattr(args, "device", None):
            cfg["device"] = args.device
        cfg.update({k: v for k in LOAD_FLAGS if (v := getattr(args, k, None)) is not None})
    return cfg


LOAD_FLAGS = ("dtype", "quantization", "attention", "compile")
