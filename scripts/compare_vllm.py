"""The local HF backend vs a real vLLM on the same model, in one run: the same eval config on both
(accuracy, prompt and generated tokens, wall time), then the same N-sample decode work on both
(generated tokens per second and their ratio).

    .venv/bin/python scripts/compare_vllm.py [--config backend_compare] [--limit 6] [--prompts 2 --samples 8 --tokens 48]

vLLM is installed into the user cache on first use (about 3 min) and started once (about 1 min), after the
HF measurements, so nothing else runs while each backend is timed. Both sides compute in float32 on one
thread (vLLM binds its worker to one core on this 2-core machine; --threads sets ours).

Why answers differ at temperature > 0: the two samplers use different random streams. Ours seeds one
torch.Generator per call and draws every sample of the call from it; vLLM seeds each sample's own
generator with seed + i and samples on its own kernels. So the same seed gives different samples, and
accuracy differs by sampling noise; greedy decoding gives the same tokens (tests/test_vllm.py checks it).
Prompt tokens are counted the same way (each prompt once per call); what is served from cache differs:
ours reuses a prompt's K/V across waves whole, vLLM only in full 128-token blocks.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

from adaptive.backends.base import Request, SamplingParams
from adaptive.backends.hf.loading import embedded_model_dir, quiet_transformers

PROMPTS = ["Write a short story about a lighthouse keeper.", "Explain how a bicycle works.",
           "Describe a walk through a forest in autumn.", "Write a letter to a friend about a trip."]


def decode_work(backend, prompts: int, samples: int, tokens: int) -> dict:
    """`prompts` x `samples` samples of exactly `tokens` tokens each (EOS ignored), in one backend call."""
    reqs = [Request(p, n=samples) for p in PROMPTS[:prompts]]
    params = SamplingParams(max_new_tokens=tokens, temperature=1.0, seed=0, ignore_eos=True)
    backend.generate([Request("Hi.")], SamplingParams(max_new_tokens=2))  # warm-up
    t0 = time.perf_counter()
    g = backend.generate(reqs, params)
    wall = time.perf_counter() - t0
    return {"generated_tokens": g.usage.generated_tokens, "wall_s": wall, "tokens_per_s": g.usage.generated_tokens / wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="backend_compare", help="eval config: a file, or a shipped one by name")
    ap.add_argument("--limit", type=int, default=6, help="prompts of the eval (overrides the config)")
    ap.add_argument("--prompts", type=int, default=2, help=f"decode work: prompts (at most {len(PROMPTS)})")
    ap.add_argument("--samples", type=int, default=8, help="decode work: samples per prompt")
    ap.add_argument("--tokens", type=int, default=48, help="decode work: tokens per sample")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the HF backend")
    ap.add_argument("--out", default="runs/compare_vllm")
    args = ap.parse_args()
    quiet_transformers()
    logging.basicConfig(level=logging.WARNING, format="[%(name)s] %(message)s")
    logging.getLogger("adaptive.testing.vllm_server").setLevel(logging.INFO)  # install progress
    import torch

    from adaptive.backends.hf import HFBackend
    from adaptive.backends.openai import OpenAIBackend
    from adaptive.evaluate import load_config, run_eval
    from adaptive.evaluate.report import load_run, summarize
    from adaptive.testing.vllm_server import ensure_vllm_venv, start_vllm

    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    model_dir = str(embedded_model_dir())
    rows, work = {}, {}

    hf = HFBackend.from_pretrained(model_dir, device="cpu", dtype="float32")
    rows["local HF"] = summarize(load_run(run_eval(config, out / "hf", limit=args.limit, backend=hf, progress=False,
                                                   report=False)))
    work["local HF"] = decode_work(hf, args.prompts, args.samples, args.tokens)
    del hf

    venv = ensure_vllm_venv()
    with start_vllm(model_dir, venv=venv, served_model_name="smollm2-135m-instruct",
                    extra_args=["--enable-prompt-tokens-details"]) as server, \
            OpenAIBackend(server.base_url, server.model, tokenizer=model_dir, model_config=model_dir,
                          timeout_s=600) as vllm:
        print(f"vLLM started in {server.startup_s:.0f} s", file=sys.stderr)
        vllm.generate([Request("Hi.")], SamplingParams(max_new_tokens=2, top_logprobs=5))  # its slow first request
        rows["vLLM"] = summarize(load_run(run_eval(config, out / "vllm", limit=args.limit, backend=vllm,
                                                   progress=False, report=False)))
        work["vLLM"] = decode_work(vllm, args.prompts, args.samples, args.tokens)

    print(f"\nsame eval ({config.source}, {args.limit} prompts), per prompt:")
    print(f"{'backend':10s} {'policy':10s} {'acc':>6s} {'samples':>8s} {'prompt tok':>11s} {'gen tok':>8s} "
          f"{'wall s':>7s}")
    for name, summary in rows.items():
        for pol, s in summary.items():
            print(f"{name:10s} {pol:10s} {s['accuracy']:6.3f} {s['mean_samples']:8.2f} {s['mean_prompt_tokens']:11.1f} "
                  f"{s['mean_generated_tokens']:8.1f} {s['mean_wall_s']:7.2f}")
    print(f"\nsame decode work ({args.prompts} prompts x {args.samples} samples x {args.tokens} tokens, one call):")
    print(f"{'backend':10s} {'gen tok':>8s} {'wall s':>7s} {'tok/s':>7s}")
    for name, w in work.items():
        print(f"{name:10s} {w['generated_tokens']:8d} {w['wall_s']:7.2f} {w['tokens_per_s']:7.1f}")
    ratio = work["local HF"]["tokens_per_s"] / work["vLLM"]["tokens_per_s"]
    print(f"HF decode / vLLM throughput: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
