"""`adaptive bench --sweep`: what each inference-time factor buys on this model and hardware.

Rows: the baseline load at several batch sizes (samples per request), then one row per setting (precision,
quantization, attention, torch.compile, our shared-prefix decode) against the baseline. Each setting runs
in a fresh process (so its memory is its own): load, warm up, then tokens/s and time to first token for
one request of `samples` samples, peak memory, greedy outputs on fixed prompts (exact match with the
baseline's: a speed-up that changes answers shows here) and greedy accuracy on a small task.
A setting this machine cannot run is skipped with the reason; one that fails mid-run is reported failed.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from dataclasses import replace

from ..errors import InputError
from ..schema import load, load_file
from .config import SweepConfig, SweepSetting


def check_config(cfg: dict, source: str = "<sweep config>") -> SweepConfig:
    """A sweep config mapping (as read from YAML), validated."""
    return load(SweepConfig, cfg, source, internal={"source": source})


def _measure(b, prompt: str, n: int, new: int, repeats: int = 1) -> dict:
    """tokens/s, time to first token and peak memory for one request of n samples (fixed length); the best
    of `repeats` runs, since this machine's noise is larger than several of the differences measured."""
    runs = [_measure_once(b, prompt, n, new) for _ in range(max(1, repeats))]
    return {"tok_s": max(r["tok_s"] for r in runs), "ttft_s": min(r["ttft_s"] for r in runs),
            "peak_mb": max(r["peak_mb"] for r in runs)}


def _measure_once(b, prompt: str, n: int, new: int) -> dict:
    from ..backends.base import Request, SamplingParams
    from .memory import PeakMemory

    p = SamplingParams(max_new_tokens=new, temperature=0.7, seed=0, ignore_eos=True)
    b.prefix_cache = None
    with PeakMemory(b.device.type == "cuda") as m:
        t0 = time.perf_counter()
        g = b.generate([Request(prompt, n=n)], p)
        wall = time.perf_counter() - t0
    first = min(c.token_times[0] for c in g.completions[0])
    return {"tok_s": g.usage.generated_tokens / wall, "ttft_s": first - t0, "peak_mb": m.mb}


def _greedy(b, prompts: list[str], new: int) -> list[list[int]]:
    from ..backends.base import Request, SamplingParams

    g = b.generate([Request(q) for q in prompts], SamplingParams(max_new_tokens=new, temperature=0))
    return [cs[0].token_ids for cs in g.completions]


def _accuracy(b, check) -> dict:
    from ..backends.base import Request, SamplingParams
    from ..tasks import load_task

    spec, examples, _ = load_task(check.task, limit=check.limit, seed=0)
    g = b.generate([Request(ex.prompt) for ex in examples],
                   SamplingParams(max_new_tokens=check.new_tokens, temperature=0))
    correct = sum(spec.grade(spec.extract(cs[0].text, ex), ex) >= 0.5 for cs, ex in zip(g.completions, examples))
    return {"accuracy": correct / len(examples), "n": len(examples)}


def _row_child(cfg: SweepConfig, setting: SweepSetting, batch_sizes: list[int], queue) -> None:
    try:
        queue.put(("ok", _row(cfg, setting, batch_sizes)))
    except InputError as e:
        queue.put(("skipped", str(e)))
    except BaseException as e:  # report, never take the sweep down
        queue.put(("failed", f"{type(e).__name__}: {str(e)[:400]}"))


def _row(cfg: SweepConfig, setting: SweepSetting, batch_sizes: list[int]) -> dict:
    from ..backends.hf import HFBackend
    from ..backends.hf.loading import load_model, resolve_device
    from .memory import release_large_blocks

    device = resolve_device(cfg.device)
    if setting.cuda_only and not device.startswith("cuda"):
        raise InputError(f"{setting.name} is a CUDA setting; this run is on {device}")
    if not device.startswith("cuda"):
        release_large_blocks()
    t0 = time.perf_counter()
    model, tok, model_id = load_model(cfg.model, device=device, dtype=setting.dtype or "auto",
                                      quantization=setting.quantization, attention=setting.attention,
                                      compile=bool(setting.compile))
    load_s = time.perf_counter() - t0
    weights_mb = weight_bytes(model) / 2**20
    shared = setting.shared_prefix if setting.shared_prefix is not None else not setting.compile
    b = HFBackend(model, tok, model_id=model_id, shared_prefix=shared,
                  **({"shared_prefix_min_tokens": setting.shared_prefix_min_tokens}
                     if setting.shared_prefix_min_tokens is not None else {}))
    prompt, n, new, agree = cfg.prompt, cfg.samples, cfg.new_tokens, cfg.agreement
    _measure(b, prompt, 2, 4)  # warm-up: thread pools, kernels, compiled graphs
    out = {"load_s": load_s, "weights_mb": weights_mb, **_measure(b, prompt, n, new, cfg.repeats),
           "greedy": _greedy(b, agree.prompts, agree.new_tokens)}
    if cfg.accuracy:
        out.update(_accuracy(b, cfg.accuracy))
    out["batch"] = {bs: _measure(b, prompt, bs, new, cfg.repeats) for bs in batch_sizes}
    for bs in batch_sizes:  # greedy at batch bs: every sample must still equal the batch-1 answer
        g = _greedy(b, [agree.prompts[0]] * bs, agree.new_tokens)
        out["batch"][bs]["greedy_same"] = all(x == out["greedy"][0] for x in g)
    return out


def _run_row(cfg: SweepConfig, setting: SweepSetting, batch_sizes: list[int], timeout: float = 900):
    from .memory import in_fresh_process

    return in_fresh_process(_row_child, (cfg, setting, batch_sizes), timeout)


def weight_bytes(model) -> int:
    """Bytes of the model's weights as stored (quantized packs included; tied tensors counted once)."""
    import torch

    seen, total = set(), 0

    def add(t):
        nonlocal total
        if isinstance(t, torch.Tensor):
            if t.is_quantized:
                n = t.numel() * t.element_size()
            else:
                n = t.untyped_storage().nbytes()
            key = (t.untyped_storage().data_ptr() if not t.is_quantized else id(t), n)
            if key not in seen:
                seen.add(key)
                total += n
        elif isinstance(t, (tuple, list)):
            for x in t:
                add(x)

    for v in model.state_dict().values():
        add(v)
    return total


def agreement(a: list[list[int]], b: list[list[int]]) -> float:
    """Share of prompts whose greedy token ids are identical."""
    if not a or len(a) != len(b):
        raise ValueError("agreement needs two equally long, non-empty lists of outputs")
    return sum(x == y for x, y in zip(a, b)) / len(a)


def run_sweep(cfg: SweepConfig | dict, out_dir: str = "runs/bench") -> dict:
    if not isinstance(cfg, SweepConfig):
        cfg = check_config(cfg)
    settings = cfg.settings
    report: dict = {"device": cfg.device, "rows": []}
    results = {}
    for s in sorted(settings, key=lambda s: s.name != "baseline"):  # baseline first: the others compare to it
        t = time.perf_counter()
        status, value = _run_row(cfg, s, cfg.batch_sizes if s.name == "baseline" else [],
                                 timeout=s.timeout_s or cfg.row_timeout_s)
        print(f"[sweep] {s.name}: {status} in {time.perf_counter() - t:.0f}s"
              + ("" if status == "ok" else f" ({value})"), flush=True)
        results[s.name] = (status, value)
    base = results["baseline"][1] if results["baseline"][0] == "ok" else None
    if base is None:
        raise RuntimeError(f"the baseline row did not run: {results['baseline'][1]}")
    for bs, m in base["batch"].items():
        report["rows"].append({"factor": "batch size", "setting": f"{bs} samples", **_fmt(m, base),
                               "greedy_agreement": 1.0 if m["greedy_same"] else 0.0})
    for s in settings:
        status, v = results[s.name]
        row = {"factor": _factor(s), "setting": s.name}
        if status != "ok":
            row["status"] = f"{status}: {v}"
        else:
            row.update(_fmt(v, base), load_s=v["load_s"], weights_mb=v["weights_mb"],
                       greedy_agreement=agreement(v["greedy"], base["greedy"]),
                       accuracy=v.get("accuracy"), accuracy_n=v.get("n"))
        report["rows"].append(row)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(out_dir) / f"sweep-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    print(format_sweep(report["rows"]))
    png = plot_sweep(report["rows"], Path(out_dir) / f"sweep-{stamp}.png")
    print(f"\nwritten: {path}\nplot: {png}")
    return report


def _factor(s: SweepSetting) -> str:
    for key, name in (("dtype", "precision"), ("quantization", "quantization"), ("attention", "attention"),
                      ("compile", "compile"), ("shared_prefix", "decode attention"),
                      ("shared_prefix_min_tokens", "decode attention")):
        if getattr(s, key) is not None:
            return name
    return "baseline"


def _fmt(m: dict, base: dict) -> dict:
    return {"tok_s": m["tok_s"], "speedup": m["tok_s"] / base["tok_s"], "ttft_s": m["ttft_s"], "peak_mb": m["peak_mb"]}


def format_sweep(rows: list[dict]) -> str:
    def f(v, fmt):
        return "-" if v is None else fmt.format(v)

    header = ["factor", "setting", "tok/s", "vs base", "TTFT s", "peak MB", "weights MB", "greedy =", "accuracy"]
    lines = []
    for r in rows:
        if "status" in r:
            lines.append([r["factor"], r["setting"], r["status"][:70], "", "", "", "", "", ""])
            continue
        lines.append([r["factor"], r["setting"], f(r["tok_s"], "{:.1f}"), f(r["speedup"], "{:.2f}x"),
                      f(r["ttft_s"], "{:.2f}"), f(r["peak_mb"], "{:.0f}"), f(r.get("weights_mb"), "{:.0f}"),
                      f(r.get("greedy_agreement"), "{:.0%}"),
                      f(r.get("accuracy"), "{:.3f}") + (f" (n={r['accuracy_n']})" if r.get("accuracy_n") else "")])
    widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(header)]
    fmt = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [fmt(x) for x in lines])


def plot_sweep(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if "status" not in r]
    labels = [r["setting"] for r in ok]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    a1.barh(labels, [r["tok_s"] for r in ok], color=["tab:blue" if r["factor"] == "batch size" else "tab:orange"
                                                      for r in ok])
    a1.set_xlabel("generated tokens/s")
    a1.invert_yaxis()
    acc = [r for r in ok if r.get("accuracy") is not None]
    a2.barh([r["setting"] for r in acc], [r["accuracy"] for r in acc], color="tab:green")
    a2.set_xlabel("greedy accuracy on the sweep task")
    a2.invert_yaxis()
    fig.suptitle("Inference-time factors: speed and answer quality")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(config_path: str, model: str | None, out: str) -> int:
    """`config_path`: a file, or the name of a shipped bench config (`sweep`)."""
    cfg = load_file(SweepConfig, config_path, "bench")
    if model:
        cfg = replace(cfg, model=model)
    run_sweep(cfg, out)
    return 0
