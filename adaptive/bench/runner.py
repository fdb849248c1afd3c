"""The bench runner: which sections run, one backend shared by them, the report file and the printed table
with each floor the issues set. The measurements themselves are in sections.py."""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from ..errors import ConfigError, InputError
from ..schema import load, load_file
from .config import BenchConfig
from .sections import (bench_batched_vs_loop, bench_estimator_overhead, bench_load, bench_mixed_batch,
                       bench_overhead, bench_roofline, bench_shared_prefill, bench_stopping, bench_thinking,
                       bench_throughput, bench_waves)


SECTIONS = ("load", "throughput", "batched_vs_loop", "shared_prefill", "mixed_batch", "waves", "overhead",
            "roofline", "estimator_overhead", "stopping", "thinking")


def check_sections(config: BenchConfig, only: list[str] | None = None) -> list[str]:
    """The sections to run (all, or `only`), each with its mapping in the config; else an error before any runs."""
    names = list(only) if only else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise InputError(f"unknown bench section {unknown[0]!r}; known: {', '.join(SECTIONS)}")
    missing = [n for n in names if n != "roofline" and getattr(config, n) is None]
    if missing:
        raise ConfigError(f"{config.source}: key {missing[0]!r}: required to run that section "
                          f"(sections without one: {', '.join(missing)})")
    return names


def run(config: BenchConfig | dict, out_dir: str = "runs/bench", only: list[str] | None = None) -> dict:
    from ..backends.hf import HFBackend

    if not isinstance(config, BenchConfig):
        config = load(BenchConfig, config, "<bench config>")
    names = check_sections(config, only)
    torch.manual_seed(0)
    report: dict = {"machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
                                "threads": torch.get_num_threads()}}
    b = None

    def backend():
        nonlocal b
        b = b or HFBackend.from_pretrained(config.model, device="auto")
        return b

    sections = {
        "load": lambda: bench_load(config.load, report),
        "throughput": lambda: bench_throughput(backend(), config.throughput, report),
        "batched_vs_loop": lambda: bench_batched_vs_loop(backend(), config.batched_vs_loop, report),
        "shared_prefill": lambda: bench_shared_prefill(backend(), config.shared_prefill, report),
        "mixed_batch": lambda: bench_mixed_batch(backend(), config.mixed_batch, report),
        "waves": lambda: bench_waves(backend(), config.waves, report),
        "overhead": lambda: bench_overhead(backend(), config.overhead, report),
        "roofline": lambda: bench_roofline(backend(), report),
        "estimator_overhead": lambda: bench_estimator_overhead(backend(), config.estimator_overhead, report),
        "stopping": lambda: bench_stopping(backend(), config.stopping, report),
        "thinking": lambda: bench_thinking(backend(), config.thinking, report),
    }
    for name in names:
        t = time.perf_counter()
        sections[name]()
        print(f"[bench] {name} done in {time.perf_counter() - t:.1f}s", flush=True)
    report["device"] = str(backend().device)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    path = Path(out_dir) / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"\nwritten: {path}")
    return report


# Floors from the issues: cached load, shared prefill, mixed batches, control and estimator overhead.
FLOORS = {"load_cached_s": ("<=", 1.0), "shared_prefill_tok_s_ratio": (">=", 1.5),
          "mixed_batch_vs_loop_speedup": (">=", 3.0), "controller_overhead_share": ("<=", 0.02),
          "estimator_overhead.share": ("<=", 0.02)}


def print_table(r: dict, prefix: str = "") -> None:
    """One line per measurement (nested sections flattened), with the floor each must meet."""
    for k, v in r.items():
        if k == "machine":
            continue
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            print_table(v, name + ".")
            continue
        floor = FLOORS.get(name) or FLOORS.get(k)
        mark = ""
        if floor and isinstance(v, (int, float)):
            ok = v <= floor[1] if floor[0] == "<=" else v >= floor[1]
            mark = f"   floor {floor[0]} {floor[1]}: {'met' if ok else 'NOT met'}"
        val = f"{v:.3f}" if isinstance(v, float) else str(v)
        print(f"{name:48s} {val}{mark}")


def main(args) -> int:
    only = [x.strip() for x in args.only.split(",") if x.strip()] if args.only else None
    if getattr(args, "sweep", False):
        from .sweep import main as sweep_main

        if only:
            raise InputError("--only picks bench sections; --sweep runs the settings of its config")
        return sweep_main(args.config or "sweep", args.model, args.out)
    config = load_file(BenchConfig, args.config or ("quick" if args.quick else "default"), "bench")
    if args.model:
        config = replace(config, model=args.model)
    check_sections(config, only)  # before anything runs
    run(config, args.out, only)
    return 0
