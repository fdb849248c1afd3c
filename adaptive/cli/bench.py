"""`adaptive bench`: ratios measured in one run on this machine (`--sweep`: inference-time factors)."""
from __future__ import annotations

HELP = "measure load time, tokens/s and batching ratios on this machine"


def run(args) -> int:
    from ..bench import main as bench_main

    return bench_main(args)


def add_arguments(p) -> None:
    p.add_argument("--config", default=None,
                   help="YAML bench config: a file, or a shipped one by name (default, quick, sweep)")
    p.add_argument("--model", default=None, help="hub id or local path (default: the config's; the embedded model)")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    p.add_argument("--out", default="runs/bench", help="folder for the JSON report (and the sweep's PNG)")
    p.add_argument("--only", default=None,
                   help="comma-separated sections to run (default all): load, throughput, batched_vs_loop, "
                        "shared_prefill, mixed_batch, waves, overhead, roofline, estimator_overhead, stopping, "
                        "thinking")
    p.add_argument("--sweep", action="store_true",
                   help="inference-time factors instead: batch size, precision, quantization, attention, compile "
                        "(the shipped `sweep` config unless --config)")
