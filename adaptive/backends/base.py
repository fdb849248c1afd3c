"""The Backend protocol and the plain data it exchanges with strategies.

A backend turns a batch of requests (prompt, optional assistant prefix to continue, n samples) into
completions with token counts, logprobs and per-token timestamps, and returns what each call cost
(it charges nobody: the caller adds the usage to the ledger of the request it served).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, Union, runtime_checkable

from ..confidence import DEFAULT_WINDOW, trace_confidence
from ..errors import InputError

Message = dict  # {"role": ..., "content": ...}
PromptLike = Union[str, Sequence[Message]]
FINISH_REASONS = ("stop", "length", "eos", "abort")  # abort: cut by a confidence floor


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    top_logprobs: int = 0  # how many top-k candidate logprobs to return per token (for confidence)
    # DeepConf online filtering: a trace whose sliding-window mean token confidence falls below
    # `confidence_floor` is cut early (finish_reason "abort"). Needs top_logprobs > 0.
    confidence_window: int = DEFAULT_WINDOW
    confidence_floor: float | None = None
    ignore_eos: bool = False  # keep decoding past EOS (benchmarks that need a fixed length)

    def __post_init__(self):
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise InputError(f"max_new_tokens={self.max_new_tokens!r}: must be an integer >= 1")
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            raise InputError(f"temperature={self.temperature!r}: must be >= 0")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise InputError(f"top_p={self.top_p!r}: must be in (0, 1]")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise InputError(f"top_k={self.top_k!r}: must be an integer >= 0")
        if not isinstance(self.top_logprobs, int) or not 0 <= self.top_logprobs <= 20:
            raise InputError(f"top_logprobs={self.top_logprobs!r}: must be an integer in [0, 20]")
        if self.confidence_floor is not None and self.top_logprobs < 1:
            raise InputError("confidence_floor needs top_logprobs >= 1 (token confidence uses the top-k logprobs)")
        if not isinstance(self.confidence_window, int) or self.confidence_window < 1:
            raise InputError(f"confidence_window={self.confidence_window!r}: must be an integer >= 1")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise InputError(f"stop={self.stop!r}: stop strings must be non-empty strings")


@dataclass(frozen=True)
class Request:
    """One prompt to sample `n` times. `prefix` is assistant text to continue (step search, refinement,
    a thinking trace). `will_continue`: the caller will continue these samples' text in a later call even
    when they are cut by length (a thinking chunk), so a backend with a prefix cache keeps their K/V."""

    prompt: PromptLike
    n: int = 1
    prefix: str = ""
    raw: bool = False  # True: do not apply the chat template
    will_continue: bool = False

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise InputError(f"n={self.n!r}: the number of samples must be an integer >= 1")
        check_prompt(self.prompt)


def check_prompt(prompt: PromptLike) -> None:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InputError("empty prompt: the prompt is empty or only whitespace")
        return
    if not isinstance(prompt, Sequence) or not prompt:
        raise InputError(f"prompt must be a string or a non-empty list of chat messages, got {type(prompt).__name__}")
    for i, m in enumerate(prompt):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise InputError(f"chat message {i} must be a dict with 'role' and 'content'")
    if not any(str(m["content"]).strip() for m in prompt):
        raise InputError("empty prompt: every chat message is empty")


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    finish_reason: str                      # one of FINISH_REASONS
    logprobs: list[float]                   # chosen token's logprob, one per generated token
    top_logprobs: list[list[float]] = field(default_factory=list)  # per token, top-k candidate logprobs
    token_times: list[float] = field(default_factory=list)         # perf_counter() when each token was ready
    stop_string: str | None = None  # which stop string ended it, when finish_reason == "stop"

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def mean_logprob(self) -> float | None:
        """Mean logprob of the sampled tokens (None without logprobs)."""
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else None

    @property
    def trace_confidence(self) -> float | None:
        """DeepConf lowest group confidence (adaptive.confidence) when drawn with top-k logprobs, else None."""
        return trace_confidence(self.top_logprobs) if self.top_logprobs else None


@dataclass
class PromptPass:
    """What the prompt's forward pass produced, kept for estimators (no second forward needed)."""

    n_tokens: int
    mean_hidden: "object"   # tensor [n_layers + 1, hidden] mean over prompt tokens (float32, cpu)
    last_hidden: "object"   # tensor [n_layers + 1, hidden] at the last prompt token
    next_token_logprobs: "object | None" = None  # tensor [vocab] at the last prompt position


PURPOSES = ("thinking", "answer", "probe")  # what a call's generated tokens were for (the thinking strategy)


@dataclass
class CallUsage:
    """What one backend call spent. Summed by strategies into a ComputeRecord.

    `purpose` is set by the strategy that charges the call when its tokens serve one of PURPOSES
    (thinking chunks, final answers after a thought, trial-answer probes); the ledger sums generated
    tokens per purpose. None: not split (every other strategy)."""

    prompt_tokens: int = 0      # prompt tokens of the call's requests (each prompt counted once per call)
    cached_prompt_tokens: int = 0  # of those, tokens whose KV was reused instead of recomputed
    generated_tokens: int = 0   # tokens generated over all samples
    samples: int = 0
    forward_passes: int = 0     # model forward invocations (prefill + decode steps)
    flops: float = 0.0
    wall_s: float = 0.0
    started: float = 0.0        # perf_counter() at call start
    model_calls: int = 1
    counted_locally: bool = False  # tokens counted with a local tokenizer (server omitted usage)
    # Split of wall_s by part (see timing.py), filled only while timing is enabled.
    times: dict[str, float] = field(default_factory=dict)
    purpose: str | None = None  # one of PURPOSES, or None; not summed by add()

    SUMMED = ("prompt_tokens", "cached_prompt_tokens", "generated_tokens", "samples", "forward_passes", "flops",
              "wall_s", "model_calls")

    def add(self, other: "CallUsage") -> "CallUsage":
        """Accumulate another call's usage into this one (running totals)."""
        for f in self.SUMMED:
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.counted_locally = self.counted_locally or other.counted_locally
        for k, v in other.times.items():
            self.times[k] = self.times.get(k, 0.0) + v
        return self


@dataclass
class Generation:
    """Result of one backend call: per request, its completions; plus its prompt passes and usage."""

    completions: list[list[Completion]]
    prompt_passes: list[PromptPass | None]
    prompt_tokens: list[int]
    usage: CallUsage
    # The call's usage split by request (tokens, samples, FLOPs exact; wall time and forward passes are
    # those of the batch the request rode in), so a batched call can be charged to each request's ledger.
    per_request: list[CallUsage] = field(default_factory=list)


@dataclass
class PromptPassBatch:
    """Result of `Backend.prompt_pass`: one PromptPass per prompt, and what the pass cost."""

    passes: list[PromptPass]
    usage: CallUsage


@runtime_checkable
class Backend(Protocol):
    model_id: str
    context_window: int

    def generate(self, requests: Sequence[Request], params: SamplingParams, *, hidden_states: bool = False) -> Generation:
        """Sample each request's `n` completions, batched. Raises InputError for unusable requests."""
        ...

    def prompt_pass(self, prompts: Sequence[PromptLike], raw: bool = False) -> PromptPassBatch:
        """Run only the prompt forward pass (for estimators used without generation)."""
        ...

    def count_tokens(self, text: str) -> int:
        ...

    def capabilities(self) -> set[str]:
        """Subset of {'logprobs', 'top_logprobs', 'hidden_states', 'timestamps', 'prefix'}."""
        ...

    def settings(self) -> dict:
        """What decides the outputs besides prompts and plans (kind, model, precision, server...), JSON-able,
        no secrets. Eval runs fingerprint it: a run resumes only with the same settings."""
        ...
