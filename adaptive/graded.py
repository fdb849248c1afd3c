"""Graded samples: the one record of "a prompt with its samples and whether each was right".

A sample bank row, an eval record's prompt part and an estimator's training log are the same thing:

    GradedPrompt {id, prompt, gold, meta, p_hat, bin, samples: [GradedSample, ...]}
    GradedSample {answer, correct, tokens, finish_reason, mean_logprob, confidence, score, kept,
                  text?, logprobs?, top_logprobs?}        # ? = only when recorded

`confidence` is the DeepConf trace confidence (lowest group confidence of the token confidences, see
adaptive/confidence.py) when the sample was drawn with top-k logprobs, else None; `mean_logprob` is the
mean chosen-token logprob. An eval record is a GradedPrompt plus the run's own fields (policy, answer,
correct, plan, compute, ...); `adaptive bank` writes GradedPrompts; `adaptive train-estimator` and the
tuner read them (plain JSONL from elsewhere is mapped onto them by Bank.from_jsonl).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import ConfigError
from .result import Difficulty

OPTIONAL = ("text", "logprobs", "top_logprobs")  # written only when recorded


@dataclass
class GradedSample:
    answer: str | None
    correct: float
    tokens: int = 0
    finish_reason: str | None = None
    mean_logprob: float | None = None
    confidence: float | None = None   # DeepConf lowest group confidence of the trace
    score: float | None = None        # a verifier's score, when one ran
    kept: bool = True                 # False when a confidence filter dropped it from the vote
    text: str | None = None
    logprobs: list[float] | None = None
    top_logprobs: list[list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in OPTIONAL:
            if d[k] is None:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "sample") -> "GradedSample":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}")
        if "correct" not in d:
            raise ConfigError(f"{where}: missing 'correct'")
        c = d["correct"]
        if isinstance(c, bool):
            c = float(c)
        if not isinstance(c, (int, float)) or not 0 <= c <= 1:
            raise ConfigError(f"{where}: 'correct' must be a number in [0, 1] (or true/false), got {c!r}")
        return cls(**{**d, "correct": float(c), "answer": None if d.get("answer") is None else str(d["answer"]),
                      "tokens": int(d.get("tokens") or 0)})


@dataclass
class GradedPrompt:
    id: str
    prompt: Any
    gold: Any
    samples: list[GradedSample]
    meta: dict = field(default_factory=dict)
    p_hat: float | None = None
    bin: int | None = None

    @property
    def difficulty(self) -> Difficulty | None:
        return None if self.p_hat is None else Difficulty(float(self.p_hat), int(self.bin or 0), "bank")

    @property
    def pass_rate(self) -> float:
        return sum(s.correct for s in self.samples) / len(self.samples) if self.samples else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "prompt": self.prompt, "gold": self.gold, "meta": self.meta, "p_hat": self.p_hat,
                "bin": self.bin, "samples": [s.to_dict() for s in self.samples]}

    @classmethod
    def from_dict(cls, d: dict, where: str = "record") -> "GradedPrompt":
        """From a bank row or an eval record (whose other keys are the run's own and are ignored)."""
        for key in ("id", "prompt", "samples"):
            if key not in d:
                raise ConfigError(f"{where}: missing {key!r}")
        if not isinstance(d["samples"], list):
            raise ConfigError(f"{where}: 'samples' must be a list")
        samples = [GradedSample.from_dict(s, f"{where}: samples[{j}]") if isinstance(s, dict) else
                   _bad(f"{where}: samples[{j}] must be an object") for j, s in enumerate(d["samples"])]
        return cls(str(d["id"]), d["prompt"], d.get("gold"), samples, dict(d.get("meta") or {}),
                   None if d.get("p_hat") is None else float(d["p_hat"]),
                   None if d.get("bin") is None else int(d["bin"]))


def _bad(msg: str):
    raise ConfigError(msg)


__all__ = ["GradedPrompt", "GradedSample"]
