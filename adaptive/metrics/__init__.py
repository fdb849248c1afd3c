"""Pure metric functions: streaming latency (Etalon), analytic FLOPs (Kaplan et al. 2020), statistics."""
from .flops import FlopsSpec, decode_flops, forward_flops, model_flops_spec, prefill_flops
from .latency import (FluidityResult, fluidity_index, inter_token_times, normalized_latency, tbt,
                      tbt_percentiles, tpot, ttft)
from .stats import Interval, mean_ci, percentile, summarize, wilson_interval

__all__ = [
    "FlopsSpec", "FluidityResult", "Interval", "decode_flops", "fluidity_index", "forward_flops",
    "inter_token_times", "mean_ci", "model_flops_spec", "normalized_latency", "percentile",
    "prefill_flops", "summarize", "tbt", "tbt_percentiles", "tpot", "ttft", "wilson_interval",
]
