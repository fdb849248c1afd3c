"""The `adaptive` command line. Every user error prints one line and exits non-zero; no tracebacks
unless ADAPTIVE_DEBUG=1."""
from __future__ import annotations

import argparse
import json
import os
import sys

from .errors import AdaptiveError
from .models import quiet_transformers
from .plan import Plan


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

# `adaptive generate` runs the Python API's default plan (4 samples, majority vote) with shorter samples.
GENERATE_PLAN = Plan(max_samples=4, max_new_tokens=128)


# flag -> Plan field; a flag left out keeps the default below (fields the strategy does not read are left out).
PLAN_FLAGS = {"strategy": "strategy", "samples": "max_samples", "wave": "wave_size", "stopping": "stopping",
              "verifier": "verifier", "aggregation": "aggregation", "refine_steps": "refine_steps",
              "width": "search_width", "beams": "search_beams", "depth": "search_depth", "extractor": "extractor",
              "max_new_tokens": "max_new_tokens", "temperature": "temperature", "seed": "seed"}


def cmd_generate(args) -> int:
    from .backends.base import check_prompt
    from .generator import AdaptiveGenerator

    check_prompt(args.prompt)  # before loading anything: bad input costs nothing
    given = {field: v for flag, field in PLAN_FLAGS.items() if (v := getattr(args, flag)) is not None}
    plan = GENERATE_PLAN.with_strategy(given.pop("strategy", GENERATE_PLAN.strategy), **given).check_names()
    from .backends.factory import make_backend

    gen = AdaptiveGenerator(backend=make_backend(backend_config(args), args.model), policy=plan,
                            time_breakdown=args.timing)
    result = gen.generate(args.prompt)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print(result.text.strip())
        print(f"\nanswer: {result.answer}")
        print(summary_line(result))
        if result.compute.time_breakdown:
            print("time: " + ", ".join(f"{k} {v:.3f}s" for k, v in result.compute.time_breakdown.items() if v))
    return 0


def cmd_eval(args) -> int:
    from .evaluate import load_config, run_eval

    config = load_config(args.config)
    if args.backend or args.base_url or any(getattr(args, k, None) is not None for k in LOAD_FLAGS):
        config.backend = backend_config(args, config.backend)
    out = args.out or f"runs/{args.config.rsplit('/', 1)[-1].removesuffix('.yaml')}"
    only = [p for p in (args.policy or "").split(",") if p] or None
    run_eval(config, out, only=only, limit=args.limit, progress=not args.quiet)
    return 0


def cmd_report(args) -> int:
    from .evaluate import write_report

    write_report(args.run)
    return 0


def cmd_train_estimator(args) -> int:
    from .estimators.train import main_train

    return main_train(args)


def cmd_bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="adaptive", description="Adaptive inference-time compute controller.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    from .plan import AGGREGATIONS
    from .registry import extractors, stopping_rules, strategies, verifiers

    d = GENERATE_PLAN
    g = sub.add_parser("generate", help="answer one prompt and print the answer with its compute summary")
    g.add_argument("prompt")
    g.add_argument("--model", default=None, help="hub id or local path (default: the embedded SmolLM2-135M)")
    g.add_argument("--device", default="auto", help="hf: auto (CUDA if available, else CPU), cpu, cuda, cuda:N, mps")
    add_backend_args(g)
    g.add_argument("--strategy", default=None,
                   help=f"how compute is spent: {', '.join(strategies.names())} (default {d.strategy})")
    g.add_argument("--samples", type=int, default=None,
                   help=f"sampling strategies: sample cap (default {d.max_samples})")
    g.add_argument("--wave", type=int, default=None, help="sampling strategies: samples per wave (0 = all at once)")
    g.add_argument("--stopping", default=None,
                   help=f"sampling strategies: stopping rule between waves: {', '.join(stopping_rules.names())} "
                        "(default fixed)")
    g.add_argument("--verifier", default=None,
                   help=f"scores samples: {', '.join(verifiers.names())}; needed by best_of_n, beam_search, dvts "
                        "and weighted/best aggregation")
    g.add_argument("--aggregation", default=None,
                   help=f"how samples become one answer: {', '.join(AGGREGATIONS)} (default majority)")
    g.add_argument("--refine-steps", type=int, default=None, help="refine: critique-and-revise rounds")
    g.add_argument("--width", type=int, default=None, help=f"search: candidates per beam (default {d.search_width})")
    g.add_argument("--beams", type=int, default=None, help=f"search: beams kept (default {d.search_beams})")
    g.add_argument("--depth", type=int, default=None, help=f"search: max steps (default {d.search_depth})")
    g.add_argument("--extractor", default=None,
                   help=f"how the answer is read from the text: auto, {', '.join(extractors.names())} (default auto)")
    g.add_argument("--max-new-tokens", type=int, default=None, help=f"per sample (default {d.max_new_tokens})")
    g.add_argument("--temperature", type=float, default=None,
                   help=f"sampling temperature, >= 0; 0 = greedy (default {d.temperature})")
    g.add_argument("--seed", type=int, default=None, help="integer >= 0 for reproducible samples (default: none)")
    g.add_argument("--json", action="store_true", help="print the full Result as JSON")
    g.add_argument("--timing", action="store_true", help="time breakdown: tokenize, prefill, decode, control, ...")
    g.set_defaults(func=cmd_generate)

    e = sub.add_parser("eval", help="evaluate policies on a task; writes records, a report and plots (resumable)")
    e.add_argument("--config", default="default",
                   help="YAML run config: a file, or a shipped config by name (default, gsm8k, ...)")
    e.add_argument("--policy", default=None, help="comma-separated policy names from the config (default: all)")
    e.add_argument("--limit", type=int, default=None, help="number of prompts (overrides the config)")
    e.add_argument("--out", default=None, help="run directory (default runs/<config name>); reused = resume")
    e.add_argument("--quiet", action="store_true", help="no progress bar or table")
    add_backend_args(e)
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("report", help="print the table and (re)write plots and report.md for a run directory")
    r.add_argument("run", help="a run directory (runs/<id>)")
    r.set_defaults(func=cmd_report)

    t = sub.add_parser("train-estimator", help="train a difficulty estimator from graded sample logs")
    from .estimators.train import add_train_arguments

    add_train_arguments(t)
    t.set_defaults(func=cmd_train_estimator)

    k = sub.add_parser("bank", help="draw K samples per prompt with the eval runner and save a sample bank")
    from .bank import add_bank_arguments, main_bank

    add_bank_arguments(k)
    k.set_defaults(func=main_bank)

    u = sub.add_parser("tune", help="tune policies on a sample bank; write one policy per budget and the frontier")
    from .tune import add_tune_arguments, main_tune

    add_tune_arguments(u)
    u.set_defaults(func=main_tune)

    b = sub.add_parser("bench", help="measure load time, tokens/s and batching ratios on this machine")
    b.add_argument("--config", default=None,
                   help="YAML bench config: a file, or a shipped one by name (default, quick, sweep)")
    b.add_argument("--model", default=None)
    b.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    b.add_argument("--out", default="runs/bench")
    b.add_argument("--only", default=None, help="comma-separated sections (load, throughput, ..., stopping)")
    b.add_argument("--sweep", action="store_true",
                   help="inference-time factors instead: batch size, precision, quantization, attention, compile "
                        "(the shipped `sweep` config unless --config)")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        quiet_transformers()
        return args.func(args)
    except AdaptiveError as e:
        print(f"adaptive: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("adaptive: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an internal bug: still one line, with a way to see the traceback
        if os.environ.get("ADAPTIVE_DEBUG"):
            raise
        print(f"adaptive: internal error: {type(e).__name__}: {e} (set ADAPTIVE_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
