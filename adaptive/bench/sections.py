"""Benchmarks that print ratios measured in one run (machines are noisy; absolute numbers are not).

Sections: load time (cached vs uncached), tokens/s at batch 1 and 8, our batched N-sample call vs a loop
of N `model.generate` calls, shared prefill vs `num_return_sequences`, mixed-length batches, the second
wave's prefill cost, controller overhead, the decode roofline, stopping rules vs fixed N, and thinking with
early exit vs a fixed thinking cap.
"""
from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

import torch

from ..backends.base import Request, SamplingParams
from .memory import peak_mb

FILLER = ("The history of mathematics spans many civilizations, each adding methods for counting, "
          "measuring and reasoning about quantities and shapes. ")


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _long_prompt(tok, n_tokens: int) -> str:
    text = FILLER * (n_tokens // 20 + 2)
    ids = tok(text, add_special_tokens=False).input_ids[: n_tokens - 12]
    return tok.decode(ids) + "\nSummarize the text above."


def _hf_generate(backend, prompt: str, n: int, new: int, batch_prompts: list[str] | None = None):
    """Plain transformers generate on the same rendered prompt(s), sampling, fixed length."""
    model = backend.model
    texts = batch_prompts or [prompt]
    ids = [backend.render(t) for t in texts]
    width = max(map(len, ids))
    inp = torch.full((len(ids), width), backend.pad_id)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for r, x in enumerate(ids):
        inp[r, width - len(x):] = torch.tensor(x)
        mask[r, width - len(x):] = 1
    with torch.inference_mode():
        out = model.generate(input_ids=inp, attention_mask=mask, do_sample=True, max_new_tokens=new,
                             min_new_tokens=new, num_return_sequences=n, pad_token_id=backend.pad_id,
                             temperature=0.7, top_p=1.0, top_k=0)
    return (out.shape[1] - width) * out.shape[0]


def bench_load(cfg, report):
    from ..backends.hf.loading import embedded_model_dir, load_model
    # Import the model classes first so neither timing pays Python's one-time import cost.
    from transformers.models.llama import modeling_llama  # noqa: F401  (warm-up import)

    if cfg.measure_uncached:
        old = os.environ.get("ADAPTIVE_CACHE")
        with tempfile.TemporaryDirectory() as d:
            os.environ["ADAPTIVE_CACHE"] = d
            try:
                _, t_uncached = _timed(lambda: load_model(None, device="cpu"))
            finally:
                if old is None:
                    os.environ.pop("ADAPTIVE_CACHE")
                else:
                    os.environ["ADAPTIVE_CACHE"] = old
        report["load_uncached_s"] = t_uncached
    embedded_model_dir()
    load_model(None, device="cpu")  # first cached load also pays one-time tokenizer imports
    t_cached = min(_timed(lambda: load_model(None, device="cpu"))[1] for _ in range(3))
    report["load_cached_s"] = t_cached
    if "load_uncached_s" in report:
        report["load_speedup"] = report["load_uncached_s"] / t_cached


def bench_throughput(b, cfg, report):
    p = SamplingParams(max_new_tokens=cfg.new_tokens, temperature=0.7, seed=0, ignore_eos=True)
    for n in (1, 8):
        g, t = _timed(lambda: b.generate([Request("Tell me a story.", n=n)], p))
        report[f"tok_s_batch{n}"] = g.usage.generated_tokens / t


def bench_batched_vs_loop(b, cfg, report):
    n, new = cfg.samples, cfg.new_tokens
    p = SamplingParams(max_new_tokens=new, temperature=0.7, seed=0, ignore_eos=True)
    g, t_ours = _timed(lambda: b.generate([Request("Tell me a story.", n=n)], p))
    tokens = 0
    t0 = time.perf_counter()
    for _ in range(n):
        tokens += _hf_generate(b, "Tell me a story.", 1, new)
    t_loop = time.perf_counter() - t0
    report["batched_vs_loop_speedup"] = (g.usage.generated_tokens / t_ours) / (tokens / t_loop)


def _ours_call(b, prompt: str, n: int, new: int):
    b.prefix_cache = None  # the sampler itself, not a warm prefix cache
    b.generate([Request(prompt, n=n)], SamplingParams(max_new_tokens=new, temperature=0.7, seed=0, ignore_eos=True))


def _hf_call(b, prompt: str, n: int, new: int):
    _hf_generate(b, prompt, n, new)


def bench_shared_prefill(b, cfg, report):
    prompt = _long_prompt(b.tokenizer, cfg.prompt_tokens)
    n, new = cfg.samples, cfg.new_tokens
    p = SamplingParams(max_new_tokens=new, temperature=0.7, seed=0, ignore_eos=True)
    cache, b.prefix_cache = b.prefix_cache, None  # measure the sampler itself, not a warm cache
    try:
        g, t_ours = _timed(lambda: b.generate([Request(prompt, n=n)], p))
    finally:
        b.prefix_cache = cache
    toks, t_hf = _timed(lambda: _hf_generate(b, prompt, n, new))
    report["shared_prefill_prompt_tokens"] = g.prompt_tokens[0]
    report["shared_prefill_tok_s_ratio"] = (g.usage.generated_tokens / t_ours) / (toks / t_hf)
    if cfg.memory:
        dev, args = str(b.device), {"prompt": prompt, "n": n, "new": new}
        warm = {"prompt": "Hi", "n": n, "new": 2}
        mem = {"ours": peak_mb(b.model_id, dev, _ours_call, warm, args),
               "hf_num_return_sequences": peak_mb(b.model_id, dev, _hf_call, warm, args)}
        report["shared_prefill_peak_mem_mb"] = mem
        report["shared_prefill_peak_mem_ratio"] = mem["ours"] / max(mem["hf_num_return_sequences"], 1e-9)


def bench_mixed_batch(b, cfg, report):
    rng = random.Random(0)
    prompts = [f"{FILLER * rng.randint(0, 6)}Question {i}: what is {i} + {i}?" for i in range(cfg.prompts)]
    n, new = cfg.samples, cfg.new_tokens
    p = SamplingParams(max_new_tokens=new, temperature=0.7, seed=0)
    cache, b.prefix_cache = b.prefix_cache, None
    try:
        g, t_ours = _timed(lambda: b.generate([Request(q, n=n) for q in prompts], p))
    finally:
        b.prefix_cache = cache
    ours = g.usage.generated_tokens / t_ours
    # Baselines generate the same number of tokens per sample as ours did (min=max length).
    lengths = [c.n_tokens for cs in g.completions for c in cs]
    mean_len = max(1, round(sum(lengths) / len(lengths)))
    t0 = time.perf_counter()
    toks = sum(_hf_generate(b, q, 1, mean_len) for q in prompts for _ in range(n))
    loop = toks / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    toks = _hf_generate(b, prompts[0], n, mean_len, batch_prompts=prompts)
    padded = toks / (time.perf_counter() - t0)
    report["mixed_batch_vs_loop_speedup"] = ours / loop
    report["mixed_batch_vs_padded_speedup"] = ours / padded
    cb = _continuous_batching(b, prompts, n, mean_len)
    if cb is not None:
        report["mixed_batch_vs_transformers_generate_batch"] = ours / cb


def _continuous_batching(b, prompts, n, new):
    """transformers' own continuous batching (paged attention) on the same rows; tok/s or None."""
    from transformers import GenerationConfig

    if not hasattr(b.model, "generate_batch"):
        return None
    gc = GenerationConfig(max_new_tokens=new, min_new_tokens=new, do_sample=True, temperature=0.7,
                          eos_token_id=list(b.eos_ids), pad_token_id=b.pad_id)
    inputs = [b.render(q) for q in prompts for _ in range(n)]
    b.model.generate_batch(inputs=inputs[:2], generation_config=gc)  # warm-up outside the timing
    out, t = _timed(lambda: b.model.generate_batch(inputs=inputs, generation_config=gc))
    return sum(len(o.generated_tokens) for o in out.values()) / t


def bench_waves(b, cfg, report):
    prompt = _long_prompt(b.tokenizer, cfg.prompt_tokens)
    w, new = cfg.wave, cfg.new_tokens
    p = SamplingParams(max_new_tokens=new, temperature=0.7, seed=0, ignore_eos=True)
    b.prefix_cache.clear()
    first = b.generate([Request(prompt, n=w)], p)
    second = b.generate([Request(prompt, n=w)], p)
    b.prefix_cache.clear()
    one = b.generate([Request(prompt, n=2 * w)], p)
    report["waves_prefill_tokens"] = {
        "first_wave": first.usage.prompt_tokens - first.usage.cached_prompt_tokens,
        "second_wave": second.usage.prompt_tokens - second.usage.cached_prompt_tokens,
        "one_wave_of_2w": one.usage.prompt_tokens - one.usage.cached_prompt_tokens}
    report["waves_extra_prefill_flops_share"] = (first.usage.flops + second.usage.flops - one.usage.flops) / one.usage.flops


def bench_overhead(b, cfg, report):
    from ..generator import AdaptiveGenerator
    from ..plan import Plan

    gen = AdaptiveGenerator(backend=b, plan=Plan(max_samples=cfg.samples, wave_size=2, stopping="beta",
                                                 max_new_tokens=cfg.new_tokens, seed=0))
    prompts = [f"What is {i} + {i + 1}? Answer with a number." for i in range(cfg.prompts)]
    results = [gen.generate(q) for q in prompts]
    wall = sum(r.compute.wall_s for r in results)
    control = sum(r.compute.control_s for r in results)
    report["controller_overhead_share"] = control / wall


def bench_estimator_overhead(b, cfg, report):
    """What a probe estimator adds to requests that then generate. Its prompt pass leaves the prompts'
    K/V and last logits in the prefix cache, so generation runs no prompt forward: the pass is moved, not
    repeated. Paired, interleaved repeats of the same batch (samples per prompt, seeded) without and with
    the estimator; per pair, the added time is the estimator's own time (prompt pass + scoring) minus the
    prefill time it saved generation (plain prefill - prefill served from the cache); share = median added
    / median wall with it. The end-to-end difference of the walls is reported too: on this machine it
    swings by +-10% between identical runs, more than the effect. Without a trained estimator file, a probe
    is fitted on the bench prompts with made-up labels: its cost is the same."""
    import statistics

    from ..estimators import load_estimator
    from ..estimators.probe import ProbeEstimator
    from ..timing import timing

    prompts = [f"What is {i} + {2 * i + 1}? Answer with a number." for i in range(cfg.prompts)]
    path = Path(cfg.estimator) if cfg.estimator else None
    if path is not None and path.exists():
        est, source = load_estimator(path, b), str(path)
    else:
        est = ProbeEstimator(b).fit(prompts, [i % 2 for i in range(len(prompts))])
        source = "probe fitted on the bench prompts with made-up labels (timing only)"
    reqs = [Request(q, n=cfg.samples) for q in prompts]
    params = SamplingParams(max_new_tokens=cfg.new_tokens, temperature=0.7, seed=0)

    def plain():
        b.prefix_cache.clear()
        return b.generate(reqs, params)

    def with_estimator():
        b.prefix_cache.clear()
        t0 = time.perf_counter()
        passes = b.prompt_pass(prompts).passes
        t1 = time.perf_counter()
        est.score(prompts, prompt_passes=passes)
        t2 = time.perf_counter()
        return b.generate(reqs, params), t1 - t0, t2 - t1

    rows = []
    with timing():
        plain()  # warm-up
        for _ in range(cfg.repeats):
            g0, w0 = _timed(plain)
            (g1, t_pass, t_score), w1 = _timed(with_estimator)
            saved = g0.usage.times["prefill"] - g1.usage.times["prefill"]
            rows.append({"wall_plain": w0, "wall_with": w1, "pass": t_pass, "score": t_score, "saved": saved,
                         "added": t_pass + t_score - saved})
    med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
    wall = med("wall_with")
    report["estimator_overhead"] = {
        "estimator": est.kind, "source": source, "repeats": len(rows),
        "wall_without_s": med("wall_plain"), "wall_with_s": wall,
        "share": med("added") / wall,
        "prompt_pass_share": med("pass") / wall, "prefill_saved_share": med("saved") / wall,
        "control_share": med("score") / wall,
        "end_to_end_share": statistics.median(r["wall_with"] - r["wall_plain"] for r in rows) / wall,
        "generation_prompt_tokens_computed": g1.usage.prompt_tokens - g1.usage.cached_prompt_tokens,
        "generation_prompt_tokens": g1.usage.prompt_tokens}


def bench_roofline(b, report):
    weight_bytes = sum(p.numel() * p.element_size() for p in b.model.parameters())
    src = torch.empty(64 * 2**20, dtype=torch.float32)  # 256 MiB, bigger than any cache
    src.fill_(1.0)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - t)
    bandwidth = 2 * src.numel() * 4 / min(times)  # read + write
    limit = bandwidth / 2 / weight_bytes          # batch-1 decode reads every weight once per token
    p = SamplingParams(max_new_tokens=32, temperature=0.7, seed=0, ignore_eos=True)
    g, t = _timed(lambda: b.generate([Request("Tell me a story.")], p))
    measured = g.usage.generated_tokens / t
    report["roofline"] = {"weight_mb": weight_bytes / 2**20, "copy_bandwidth_gb_s": bandwidth / 1e9,
                          "limit_tok_s_batch1": limit, "measured_tok_s_batch1": measured,
                          "fraction_of_limit": measured / limit}


def bench_stopping(b, cfg, report):
    """Samples drawn by `beta` and `esc` vs fixed N: both rules replay the same ordered 16 samples per
    prompt that SC@16 used, exactly as the online strategy would consume them wave by wave."""
    from ..answers import extractor_for
    from ..stopping import SampleView, make_rule
    from ..strategies.base import vote

    extract = extractor_for("number")
    rng = random.Random(1)
    prompts = [f"What is {rng.randint(1, 9)} + {rng.randint(1, 9)}? Answer with a number."
               for _ in range(cfg.prompts)]
    cap = cfg.cap
    p = SamplingParams(max_new_tokens=cfg.new_tokens, temperature=0.7, seed=0)
    g = b.generate([Request(q, n=cap) for q in prompts], p)
    rules = {"beta": (make_rule("beta", {}), 1), "esc": (make_rule("esc", {"window": cfg.esc_window}),
                                                          cfg.esc_window)}
    out = {}
    for name, (rule, wave) in rules.items():
        used, agree = [], 0
        for comps in g.completions:
            answers = [extract(c.text) for c in comps]
            full, _ = vote(answers)
            k = cap
            for k in range(wave, cap + 1, wave):
                if rule.should_stop([SampleView(a) for a in answers[:k]]):
                    break
            used.append(k)
            agree += vote(answers[:k])[0] == full
        out[name] = {"mean_samples": sum(used) / len(used), "sample_ratio_vs_fixed": cap / (sum(used) / len(used)),
                     "agreement_with_sc_full": agree / len(prompts)}
    report["stopping_vs_fixed"] = {"cap": cap, **out}


def bench_thinking(b, cfg, report):
    """Thinking with early exit vs a fixed thinking cap on small sums (the prompt asks for <think> ... </think>
    then the answer; the embedded model was not trained with markers, so it rarely closes its thought and the
    fixed arm usually thinks to the cap). Both arms run the same prompts in one batch each, greedy by default
    (temperature 0: the exit arm's thought is then a prefix of the fixed arm's, so a different answer is what
    exiting early changed), with the prefix cache cleared before each. Reported per prompt: thinking, probe,
    answer and total generated tokens, wall time, accuracy, and how often the two arms' answers agree."""
    from ..answers import extractor_for
    from ..controller import Controller
    from ..plan import Plan

    extract = extractor_for("number")
    rng = random.Random(2)
    pairs = [(rng.randint(2, 40), rng.randint(2, 40)) for _ in range(cfg.prompts)]
    prompts = [f"What is {x} + {y}? Think it through inside <think> ... </think>, then write the final answer "
               "as a number." for x, y in pairs]
    base = dict(strategy="thinking", max_samples=cfg.samples, max_thinking_tokens=cfg.max_thinking_tokens,
                max_new_tokens=cfg.answer_tokens, temperature=cfg.temperature, seed=0)
    arms = {"fixed_cap": Plan(**base),
            "early_exit": Plan(**base, exit_rule="convergence", probe_interval=cfg.probe_interval,
                               probe_max_tokens=cfg.probe_max_tokens, exit_patience=cfg.patience)}
    ctl = Controller(b, policy=None)
    out, answers = {}, {}
    for name, plan in arms.items():
        if b.prefix_cache is not None:
            b.prefix_cache.clear()
        qs = [ctl.query(p, extract=extract) for p in prompts]
        rs, wall = _timed(lambda: ctl.execute(qs, [plan] * len(qs)))
        n = len(rs)
        answers[name] = [r.answer for r in rs]
        traces = [t for r in rs for t in r.extra["thinking"]]
        out[name] = {"plan": plan.summary(),
                     **{f"mean_{k}": sum(getattr(r.compute, k) for r in rs) / n
                        for k in ("thinking_tokens", "probe_tokens", "answer_tokens", "generated_tokens")},
                     "wall_s_per_prompt": wall / n,
                     "accuracy": sum(r.answer == str(x + y) for r, (x, y) in zip(rs, pairs)) / n,
                     "trace_ends": {e: sum(t["end"] == e for t in traces) for e in sorted({t["end"] for t in traces})}}
    agree = sum(a == c for a, c in zip(answers["fixed_cap"], answers["early_exit"])) / len(prompts)
    out["generated_tokens_ratio_exit_vs_cap"] = (out["early_exit"]["mean_generated_tokens"]
                                                 / max(out["fixed_cap"]["mean_generated_tokens"], 1e-9))
    out["thinking_tokens_ratio_exit_vs_cap"] = (out["early_exit"]["mean_thinking_tokens"]
                                                / max(out["fixed_cap"]["mean_thinking_tokens"], 1e-9))
    out["answer_agreement"] = agree
    report["thinking_exit_vs_cap"] = {"prompts": len(prompts), **out}
