"""Where a completion ends, and why: the one stop / EOS / length / abort decision every backend makes.

A sample ends at the first of these (checked after each generated token, in this order):

* EOS: an end-of-sequence token (unless `ignore_eos`): finish_reason "eos"; the token is generated (and
  paid for) but not part of the text.
* a stop string: the text now contains one of `params.stop`: "stop". The text is cut before the
  earliest-starting stop string it contains (ties: the smaller string), which is the `stop_string`.
* abort (DeepConf online, `params.confidence_floor`): the mean token confidence of the last
  `confidence_window` tokens fell below the floor: "abort".
* the length cap `max_new_tokens`: "length".

A local decode loop asks `after_token` while it generates and `end` once it stopped. A server decides
stops itself: `end` reads its text and finish reason (a server may leave the stop string in the text, as
`transformers serve` does, or strip it and name it, as vLLM and SGLang do; one that strips it without
naming it reports an EOS). A scripted backend that knows the whole text uses `stop_end` to find where
generation would have halted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Sequence

from ..confidence import last_group_confidence, token_confidences
from .base import SamplingParams

TAIL_SLACK_TOKENS = 8  # tokens decoded beyond the longest stop string's length when checking a decode tail


@dataclass(frozen=True)
class Ending:
    text: str                  # the completion's text (a stop string cut off)
    finish_reason: str         # one of base.FINISH_REASONS
    stop_string: str | None = None


class StopCheck:
    """The stop conditions of one call's SamplingParams (and the model's EOS ids, for local decoding)."""

    def __init__(self, params: SamplingParams, eos_ids: Collection[int] = ()):
        self.stops: tuple[str, ...] = tuple(params.stop)
        self.eos_ids = frozenset() if params.ignore_eos else frozenset(eos_ids)
        self.floor, self.window = params.confidence_floor, params.confidence_window
        # How many trailing tokens a decode loop must decode to see a stop string that just completed.
        self.tail_tokens = max(map(len, self.stops)) + TAIL_SLACK_TOKENS if self.stops else 0

    def earliest_stop(self, text: str) -> tuple[int, str] | None:
        """(position, stop string) of the earliest-starting stop string in `text`, or None."""
        hits = [(text.find(s), s) for s in self.stops if s in text]
        return min(hits) if hits else None

    def stop_end(self, text: str) -> int | None:
        """Length of the shortest prefix of `text` that contains a stop string: where token-by-token
        generation of `text` would halt (None: it contains none)."""
        ends = [text.find(s) + len(s) for s in self.stops if s in text]
        return min(ends) if ends else None

    def aborts(self, top_logprobs: Sequence[Sequence[float]]) -> bool:
        """DeepConf online: the last `window` tokens' mean confidence is below the floor."""
        if self.floor is None or len(top_logprobs) < self.window:
            return False
        conf = last_group_confidence(token_confidences(top_logprobs[-self.window:]), self.window)
        return conf is not None and conf < self.floor

    def after_token(self, token_id: int, top_logprobs: Sequence[Sequence[float]], tail_text: str) -> str | None:
        """A decode loop's check after each token: the finish reason if the sample ends here, else None.
        `tail_text` is the decoded text of the last `tail_tokens` tokens ("" when there are no stop strings)."""
        if token_id in self.eos_ids:
            return "eos"
        if self.stops and any(s in tail_text for s in self.stops):
            return "stop"
        if self.aborts(top_logprobs):
            return "abort"
        return None

    def end(self, text: str, reason: str, named_stop: str | None = None) -> Ending:
        """The completion, given all the text generated (EOS excluded) and what ended generation:
        "eos", "length", "abort", or "stop" (`named_stop`: the stop string a server says matched)."""
        hit = self.earliest_stop(text)
        if hit is not None:
            return Ending(text[:hit[0]], "stop", hit[1])
        if reason == "stop":
            if named_stop in self.stops:
                return Ending(text, "stop", named_stop)
            return Ending(text, "eos")  # stopped on an end-of-sequence token (or an unnamed, stripped stop)
        return Ending(text, reason)
