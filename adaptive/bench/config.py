"""Bench configs (`adaptive bench`; shipped: adaptive/resources/bench/{default,quick}.yaml), read by the one
config loader (adaptive/schema.py). One optional mapping per section; a section that is run needs its
mapping (roofline has none)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from ..backends.config import Attention, Dtype, Quantization, device_name
from ..schema import Invalid, above, at_least, non_empty, option

Count = Annotated[int, at_least(1)]


@dataclass(frozen=True)
class LoadBench:
    measure_uncached: bool = True  # also time a load that converts the GGUF model (tens of seconds)


@dataclass(frozen=True)
class ThroughputBench:
    new_tokens: Count


@dataclass(frozen=True)
class SamplesBench:  # batched_vs_loop
    samples: Count
    new_tokens: Count


@dataclass(frozen=True)
class SharedPrefillBench:
    prompt_tokens: Count
    samples: Count
    new_tokens: Count
    memory: bool = True  # peak memory of each contender, in a fresh process


@dataclass(frozen=True)
class PromptsBench:  # mixed_batch, overhead
    prompts: Count
    samples: Count
    new_tokens: Count


@dataclass(frozen=True)
class WavesBench:
    prompt_tokens: Count
    wave: Count
    new_tokens: Count


@dataclass(frozen=True)
class StoppingBench:
    prompts: Count
    cap: Count
    new_tokens: Count
    esc_window: Count


@dataclass(frozen=True)
class EstimatorOverheadBench:
    prompts: Count
    samples: Count
    new_tokens: Count
    estimator: str | None = None  # a trained estimator file; missing or None: a probe fitted on the bench prompts
    repeats: Count = 5


@dataclass(frozen=True)
class ThinkingBench:  # thinking with early exit vs a fixed thinking cap
    prompts: Count
    max_thinking_tokens: Count
    probe_interval: Count
    patience: Count                          # convergence: equal trial answers in a row
    answer_tokens: Count
    samples: Count = 1                       # traces per prompt
    probe_max_tokens: Count = 8
    temperature: float = option(0.0, check=at_least(0))  # 0: greedy, the exit arm's thought a prefix of the cap's


@dataclass(frozen=True)
class BenchConfig:
    model: str | None = None  # None: the embedded SmolLM2-135M-Instruct
    description: str = ""
    load: LoadBench | None = None
    throughput: ThroughputBench | None = None
    batched_vs_loop: SamplesBench | None = None
    shared_prefill: SharedPrefillBench | None = None
    mixed_batch: PromptsBench | None = None
    waves: WavesBench | None = None
    overhead: PromptsBench | None = None
    estimator_overhead: EstimatorOverheadBench | None = None
    stopping: StoppingBench | None = None
    thinking: ThinkingBench | None = None
    source: str = option("<bench config>", internal=True)


# -- `adaptive bench --sweep` (shipped: adaptive/resources/bench/sweep.yaml) --------------------------

@dataclass(frozen=True)
class SweepSetting:
    """One row: load options against the baseline row (each setting left out keeps the baseline's)."""
    name: str = option(check=non_empty)
    dtype: Dtype | None = None
    quantization: Quantization | None = None
    attention: Attention | None = None
    compile: bool | None = None
    shared_prefix: bool | None = None
    shared_prefix_min_tokens: int | None = option(None, check=at_least(0))
    cuda_only: bool = False                  # skipped (with the reason) on a machine without CUDA
    timeout_s: float | None = option(None, check=above(0))  # None: the config's row_timeout_s


@dataclass(frozen=True)
class AgreementCheck:
    prompts: Annotated[list[str], non_empty]
    new_tokens: Count


@dataclass(frozen=True)
class AccuracyCheck:
    task: str
    limit: Count = 24
    new_tokens: Count = 64


@dataclass(frozen=True)
class SweepConfig:
    prompt: str
    samples: Count                           # samples per request for every setting row
    new_tokens: Count
    batch_sizes: Annotated[list[Count], non_empty]
    agreement: AgreementCheck                # greedy outputs compared token by token with the baseline's
    settings: list[SweepSetting]
    model: str | None = None                 # None: the embedded SmolLM2-135M-Instruct
    device: str = option("auto", check=device_name)
    repeats: Count = 3                       # best of N per measurement
    row_timeout_s: float = option(900.0, check=above(0))
    accuracy: AccuracyCheck | None = None    # greedy accuracy on a small task
    description: str = ""
    source: str = option("<sweep config>", internal=True)

    def __post_init__(self):
        names: set[str] = set()
        for i, s in enumerate(self.settings):
            if s.name in names:
                raise Invalid(f"settings[{i}].name", f"duplicate name {s.name!r}")
            names.add(s.name)
        if "baseline" not in names:
            raise Invalid("settings", "must include a row named 'baseline' (what the others compare to)")
