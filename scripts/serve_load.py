"""Bounded load test of `adaptive serve`: the SLO-aware budget vs a fixed budget, on one prompt stream.

Mixed easy and hard prompts from the skills_mixed task are sent with the official openai client over
loopback, closed-loop, in three phases of concurrency (low, high, low: load rises, then falls), once
against a server with `--slo ttft` and once with the SLO off (every request gets the fixed budget). Per
mode: p50/p99 end-to-end latency, TTFT p50/p90/p99, mean fluidity-index, accuracy, mean samples, share of
requests within the TTFT target; and a PNG of each request's sample budget and latency over time.

    .venv/bin/python scripts/serve_load.py                      # the embedded model (a few minutes on 2 CPUs)
    .venv/bin/python scripts/serve_load.py --backend fake       # a simulated upstream (seconds)

--backend fake is an OpenAI-compatible upstream (adaptive/testing/fake_openai.py) whose sample for a prompt
is right with its skill's pass rate (from the task's description: ~0 to ~0.45) and whose decode slows
down when more requests stream than it has slots; with it the server has a difficulty estimator (the
heuristic one, fitted on simulated pass rates of other prompts of the task), so easy prompts give up
samples first. The embedded model runs without an estimator: every prompt has the same success curve.
Every request is bounded (request and upstream timeouts); the run stops by itself.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# skills_mixed per-skill pass rates of one sample, for the simulated upstream (the task file says ~0 to ~0.45)
SIM_PASS = {"sums": 0.45, "chain": 0.3, "equations": 0.25, "gcd": 0.2, "lcm": 0.15, "bits": 0.1, "letters": 0.1,
            "aiw": 0.05, "legs": 0.02, "sequence": 0.02}


def percentile(xs, q):
    from adaptive.metrics.stats import percentile as pct

    return pct(xs, q) if xs else None


def load_prompts(n: int, offset: int = 0):
    from adaptive.tasks import load_task

    spec, examples, _ = load_task("skills_mixed", limit=n + offset)
    return spec, examples[offset:offset + n]


# -- the simulated upstream ------------------------------------------------------------------------
def simulated_upstream(examples, step_s: float, slots: int, seed: int):
    from adaptive.testing.fake_openai import FakeOpenAIServer

    by_text = {ex.prompt.strip(): ex for ex in examples}

    def script(prompt, prefix, i, req_seed):
        ex = by_text.get(prompt.strip())
        if ex is None:
            return "I am not sure. The answer is 0."
        rng = random.Random(f"{ex.id}:{req_seed}:{i}:{seed}")
        right = rng.random() < SIM_PASS.get(ex.meta.get("difficulty"), 0.1)
        answer = str(ex.gold) if right else str(int(ex.gold) + rng.choice([-3, -2, -1, 1, 2, 5])
                                                if str(ex.gold).lstrip("-").isdigit() else "0")
        work = " ".join(f"step{j}" for j in range(rng.randint(12, 24)))
        return f"Let me work it out: {work}. The answer is {answer}."

    class SharedDecoder(FakeOpenAIServer):
        """Each token takes step_s while at most `slots` requests stream, proportionally longer beyond."""

        @property
        def token_delay_s(self):
            return step_s * max(1.0, self.active / slots)

        @token_delay_s.setter
        def token_delay_s(self, v):
            pass

    return SharedDecoder(script=script)


def fit_estimator(n_train: int, offset: int):
    """A heuristic estimator fitted on the simulated pass rates of prompts the load test does not send."""
    from adaptive.estimators import HeuristicEstimator

    _, train = load_prompts(n_train, offset)
    labels = [SIM_PASS.get(ex.meta.get("difficulty"), 0.1) for ex in train]
    return HeuristicEstimator().fit([ex.prompt for ex in train], labels)


# -- one mode ----------------------------------------------------------------------------------------
def run_mode(mode: str, backend, estimator, examples, spec, args) -> dict:
    import openai

    from adaptive.controller import Controller
    from adaptive.plan import Plan
    from adaptive.policies import FixedPolicy
    from adaptive.serve import ServeSettings, SLOSettings, create_app
    from adaptive.serve.server import BackgroundServer

    slo = SLOSettings(metric="ttft" if mode == "slo" else "off", ttft_s=args.ttft_target_s, tbt_s=args.tbt_target_s,
                      window_s=args.window_s)
    plan = Plan(max_samples=args.budget, max_new_tokens=args.max_new_tokens, temperature=0.7, seed=args.seed)
    ctl = Controller(backend, FixedPolicy(name=f"sc{args.budget}", plan=plan), estimator, targets=slo.targets)
    settings = ServeSettings(model_name="m", default_policy=f"sc{args.budget}", max_budget=args.budget,
                             max_batch=16, workers=8, max_queue=256, request_timeout_s=args.request_timeout_s, slo=slo)
    app = create_app(ctl, settings, extractor="number", api_key="")
    phases = _phases(len(examples), args.concurrency)
    rows: list[dict] = []
    with BackgroundServer(app) as srv:
        client = openai.OpenAI(base_url=srv.url, api_key="none", max_retries=0, timeout=args.request_timeout_s + 5)
        t_start = time.monotonic()
        i = 0
        for conc, count in phases:
            batch = [(i + k, examples[i + k]) for k in range(count)]
            i += count

            def one(item, conc=conc):
                idx, ex = item
                t0 = time.monotonic()
                try:
                    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": ex.prompt}])
                except openai.APIError as e:
                    return {"i": idx, "error": str(e)[:200], "sent": t0 - t_start, "concurrency": conc}
                a = r.model_extra["adaptive"]
                pred = spec.extract(r.choices[0].message.content, ex)
                c = a["compute"]
                return {"i": idx, "skill": ex.meta.get("difficulty"), "sent": t0 - t_start,
                        "done": time.monotonic() - t_start, "latency": time.monotonic() - t0, "ttft": c["ttft_s"],
                        "fluidity": c["fluidity"], "samples": c["samples"], "cap": a["load"]["samples_cap"],
                        "pressure": a["load"]["pressure"], "correct": spec.grade(a["answer"] or pred, ex),
                        "tokens": r.usage.completion_tokens, "concurrency": conc,
                        "p_hat": (a["difficulty"] or {}).get("p_hat")}

            with ThreadPoolExecutor(conc) as pool:
                rows += list(pool.map(one, batch))
        wall = time.monotonic() - t_start
        client.close()
    return {"mode": mode, "rows": rows, "wall_s": wall, "summary": summarize(rows, args.ttft_target_s, wall)}


def _phases(n: int, conc: int) -> list[tuple[int, int]]:
    """Low, high, low concurrency over a quarter, a half and a quarter of the requests."""
    low = max(1, conc // 4)
    q = n // 4
    return [(low, q), (conc, n - 2 * q), (low, q)]


def summarize(rows, target, wall) -> dict:
    ok = [r for r in rows if "error" not in r]
    lat = [r["latency"] for r in ok]
    ttft = [r["ttft"] for r in ok if r["ttft"] is not None]
    high = [r for r in ok if r["concurrency"] == max(x["concurrency"] for x in ok)] if ok else []
    return {"requests": len(rows), "errors": len(rows) - len(ok), "wall_s": round(wall, 1),
            "latency_p50_s": _r(percentile(lat, 50)), "latency_p99_s": _r(percentile(lat, 99)),
            "ttft_p50_s": _r(percentile(ttft, 50)), "ttft_p90_s": _r(percentile(ttft, 90)),
            "ttft_p99_s": _r(percentile(ttft, 99)),
            "ttft_within_target": _r(sum(t <= target for t in ttft) / len(ttft)) if ttft else None,
            "fluidity_mean": _r(statistics.fmean(r["fluidity"] for r in ok if r["fluidity"] is not None)) if ok else None,
            "accuracy": _r(statistics.fmean(r["correct"] for r in ok)) if ok else None,
            "mean_samples": _r(statistics.fmean(r["samples"] for r in ok)) if ok else None,
            "high_load_ttft_p90_s": _r(percentile([r["ttft"] for r in high], 90)),
            "high_load_mean_samples": _r(statistics.fmean(r["samples"] for r in high)) if high else None,
            "completion_tokens": sum(r["tokens"] for r in ok)}


def _r(x):
    return None if x is None else round(float(x), 3)


def plot(results: list[dict], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    colors = {"slo": "tab:blue", "fixed": "tab:orange"}
    for res in results:
        rows = sorted((r for r in res["rows"] if "error" not in r), key=lambda r: r["done"])
        label = "SLO-aware (ttft)" if res["mode"] == "slo" else "fixed budget"
        c = colors[res["mode"]]
        by_sent = sorted(rows, key=lambda r: r["sent"])
        caps = [r["cap"] for r in by_sent]
        k = 6  # rolling mean over this many requests
        rolling = [statistics.fmean(caps[max(0, i - k + 1):i + 1]) for i in range(len(caps))]
        axes[0].plot([r["sent"] for r in by_sent], caps, ".", ms=4, color=c, alpha=0.5)
        axes[0].plot([r["sent"] for r in by_sent], rolling, "-", color=c, label=f"{label} (mean of last {k})")
        axes[1].plot([r["done"] for r in rows], [r["ttft"] for r in rows], "o", ms=3, color=c, label=f"{label}: TTFT")
        axes[1].plot([r["done"] for r in rows], [r["latency"] for r in rows], "x", ms=3, color=c, alpha=0.5,
                     label=f"{label}: latency")
    axes[1].axhline(target, color="k", ls="--", lw=1, label=f"TTFT target {target:g} s")
    axes[0].set_ylabel("sample budget per request")
    axes[1].set_ylabel("seconds")
    axes[1].set_xlabel("seconds since the start of the mode's run (low, high, low concurrency)")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=7, ncol=2)
    axes[0].set_title("adaptive serve: per-request budget and latency over time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["embedded", "fake"], default="embedded")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8, help="the high phase's concurrency (low: a quarter)")
    ap.add_argument("--budget", type=int, default=6, help="the fixed budget: samples per request")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--ttft-target-s", type=float, default=None,
                    help="default: 6 s on the embedded model, 1.5 s on the fake")
    ap.add_argument("--tbt-target-s", type=float, default=0.5)
    ap.add_argument("--window-s", type=float, default=None, help="SLO window (default: a third of the TTFT target x 4)")
    ap.add_argument("--request-timeout-s", type=float, default=180.0)
    ap.add_argument("--step-s", type=float, default=0.004, help="fake: seconds per token while under capacity")
    ap.add_argument("--slots", type=int, default=3, help="fake: requests decoded at full speed at once")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default="slo,fixed")
    ap.add_argument("--out", default="runs/serve_load")
    args = ap.parse_args(argv)
    args.ttft_target_s = args.ttft_target_s or (6.0 if args.backend == "embedded" else 1.5)
    args.window_s = args.window_s or max(4.0, 4 * args.ttft_target_s / 3)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec, examples = load_prompts(args.requests)
    results = []
    for mode in args.modes.split(","):
        if args.backend == "embedded":
            from adaptive.backends.hf import HFBackend

            backend = HFBackend.from_pretrained(None, device="cpu")
            estimator, upstream = None, None
        else:
            from adaptive.backends.openai import OpenAIBackend

            upstream = simulated_upstream(examples, args.step_s, args.slots, args.seed).__enter__()
            backend = OpenAIBackend(upstream.url, upstream.model, max_in_flight=64, timeout_s=60, max_retries=1)
            estimator = fit_estimator(200, offset=args.requests)
        try:
            print(f"[{mode}] {args.requests} requests, concurrency {_phases(args.requests, args.concurrency)}",
                  flush=True)
            res = run_mode(mode, backend, estimator, examples, spec, args)
        finally:
            close = getattr(backend, "close", None)
            if close:
                close()
            if upstream is not None:
                upstream.__exit__(None, None, None)
        print(f"[{mode}] " + json.dumps(res["summary"]), flush=True)
        results.append(res)
    png = out / f"serve_load_{args.backend}.png"
    plot(results, args.ttft_target_s, png)
    dest = out / f"serve_load_{args.backend}.json"
    dest.write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    print(f"{'mode':<6} " + " ".join(f"{k:>12}" for k in ("lat_p50", "lat_p99", "ttft_p50", "ttft_p99",
                                                         "in_target", "fluidity", "accuracy", "samples")))
    for res in results:
        s = res["summary"]
        print(f"{res['mode']:<6} " + " ".join(f"{str(s[k]):>12}" for k in (
            "latency_p50_s", "latency_p99_s", "ttft_p50_s", "ttft_p99_s", "ttft_within_target", "fluidity_mean",
            "accuracy", "mean_samples")))
    print(f"wrote {dest} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
