"""OpenAIBackend figures: throughput at concurrency 1 vs 8 against a local `transformers serve` on the
embedded model, and fault-injection counters against the fake server (adaptive/testing/fake_openai.py).

    .venv/bin/python scripts/serve_bench.py [--requests 8] [--max-new-tokens 32] [--skip-real]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from adaptive.backends.base import Request, SamplingParams
from adaptive.backends.openai import OpenAIBackend
from adaptive.cli import ArgumentParser, run_main
from adaptive.testing.fake_openai import FakeOpenAIServer
from adaptive.testing.transformers_serve import start_transformers_serve


def throughput(url: str, model: str, concurrency: int, n_requests: int, max_new: int) -> dict:
    b = OpenAIBackend(url, model, max_in_flight=concurrency, timeout_s=120)
    try:
        b.generate([Request("Say hi.")], SamplingParams(max_new_tokens=2))  # warm-up (model load, first call)
        reqs = [Request(f"Write a short sentence about the number {i}.") for i in range(n_requests)]
        t0 = time.perf_counter()
        g = b.generate(reqs, SamplingParams(max_new_tokens=max_new, temperature=0.7, seed=0))
        wall = time.perf_counter() - t0
        toks = g.usage.generated_tokens
        return {"concurrency": concurrency, "requests": n_requests, "generated_tokens": toks, "wall_s": round(wall, 3),
                "tokens_per_s": round(toks / wall, 2), "max_in_flight_seen": b.stats.max_in_flight_seen}
    finally:
        b.close()


def faults(n_requests: int = 20) -> list[dict]:
    rows = []
    for kind in ("drop", "hang", "500", "429", "cut"):
        with FakeOpenAIServer(faults={"kind": kind, "times": 2}, hang_s=1.0, token_delay_s=0.002) as srv:
            b = OpenAIBackend(srv.url, "fake-model", timeout_s=0.3 if kind == "hang" else 5, max_retries=4,
                              backoff_base_s=0.01)
            reqs = [Request(f"What is {i} + 100?", n=2) for i in range(n_requests)]
            t0 = time.perf_counter()
            g = b.generate(reqs, SamplingParams())
            wall = time.perf_counter() - t0
            got = sum(1 for i, cs in enumerate(g.completions) for c in cs if c.text == f"The answer is {i + 100}.")
            want = sum(r.n for r in reqs)
            rows.append({"fault": kind, **{k: getattr(b.stats, k) for k in ("requests", "attempted", "retried",
                                                                              "failed", "discarded_samples")},
                         "samples_expected": want, "samples_returned_correct": got, "records_lost": want - got,
                         "server_complete_responses": len(srv.completed), "wall_s": round(wall, 3)})
            b.close()
    return rows


def main() -> None:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--skip-real", action="store_true")
    args = ap.parse_args()
    out: dict = {"faults": faults()}
    for row in out["faults"]:
        print(json.dumps(row))
    if not args.skip_real:
        srv = start_transformers_serve(startup_s=90)
        if isinstance(srv, str):
            print("real server skipped:", srv)
        else:
            try:
                one = throughput(srv.url, srv.model, 1, args.requests, args.max_new_tokens)
                eight = throughput(srv.url, srv.model, 8, args.requests, args.max_new_tokens)
            finally:
                srv.stop()
            out.update(c1=one, c8=eight, ratio_c8_over_c1=round(eight["tokens_per_s"] / one["tokens_per_s"], 3))
            print(json.dumps(one))
            print(json.dumps(eight))
            print(f"throughput ratio concurrency 8 / 1: {out['ratio_c8_over_c1']:.2f}x")
    dest = Path("runs") / "bench" / "serve_bench.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    print("wrote", dest)


if __name__ == "__main__":
    sys.exit(run_main(main))
