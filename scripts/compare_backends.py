"""Run one eval config on the local HF backend and on `transformers serve` (an OpenAI-compatible server
on 127.0.0.1 with the same embedded model), then print accuracy and token counts side by side.

python scripts/compare_backends.py [--config backend_compare]   # a file, or a shipped eval config by name
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from adaptive.backends.hf.loading import quiet_transformers
from adaptive.cli import ArgumentParser, run_main
from adaptive.testing.transformers_serve import start_transformers_serve


def main() -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="backend_compare", help="eval config: a file, or a shipped one by name")
    ap.add_argument("--out", default="runs/backend_compare")
    args = ap.parse_args()
    quiet_transformers()
    from adaptive.backends.factory import make_backend
    from adaptive.evaluate import load_config, run_eval
    from adaptive.evaluate.report import load_run, summarize
    from adaptive.backends.hf.loading import embedded_model_dir

    config = load_config(args.config)
    rows = {}
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    rows["local hf"] = summarize(load_run(run_eval(config, out / "hf", progress=False, report=False)))
    server = start_transformers_serve(model_dir=str(embedded_model_dir()))
    if isinstance(server, str):
        print(f"server could not start: {server}")
        return 1
    try:
        served = config.with_backend({"kind": "openai", "base_url": server.url, "model": server.model,
                                      "tokenizer": str(embedded_model_dir())}, "transformers serve")
        backend = make_backend(served.backend)  # built here to read its request counters afterwards
        rows["transformers serve"] = summarize(load_run(run_eval(served, out / "server", backend=backend,
                                                                 progress=False, report=False)))
        stats = vars(backend.stats)
    finally:
        server.stop()
    print(f"{'backend':20s} {'acc':>6s} {'samples':>8s} {'prompt tok':>11s} {'gen tok':>8s} {'wall s':>7s}")
    for name, summary in rows.items():
        for pol, s in summary.items():
            print(f"{name:20s} {s['accuracy']:6.3f} {s['mean_samples']:8.2f} {s['mean_prompt_tokens']:11.1f} "
                  f"{s['mean_generated_tokens']:8.1f} {s['mean_wall_s']:7.2f}")
    print(f"server requests: {json.dumps(stats)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
