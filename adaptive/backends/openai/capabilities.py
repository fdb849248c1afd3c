"""What an OpenAI-compatible server supports: configured, or learned as calls go.

Every feature starts as configured (True / False) or unknown (None: sent, and remembered once the server
answers). A server that rejects a field (HTTP 400/422 naming it) or ignores it is remembered, and the
client adapts: it drops the field, splits `n` samples into single-sample calls, renders the prompt for
/v1/completions, or raises CapabilityError / InputError naming what cannot be served.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from ...errors import AdaptiveError, CapabilityError, InputError
from ..base import SamplingParams
from .http import Rejected

log = logging.getLogger(__name__)

# Optional request fields a server may refuse; order matters when matching an error text (longest first).
OPTIONAL_FIELDS = ("continue_final_message", "add_generation_prompt", "stream_options", "top_logprobs",
                   "ignore_eos", "logprobs", "top_k", "seed", "n")
# vLLM: "n must be 1 when using greedy sampling, got 2." (the field is not quoted: matched by its wording)
_GREEDY_N = re.compile(r"\bn must be 1\b.*\bgreedy\b", re.I)
_TOO_LONG = re.compile(r"context|too long|maximum.*length|max_model_len", re.I)


def names_field(text: str, name: str) -> bool:
    if name == "n":  # a bare letter: only a quoted mention counts
        return bool(re.search(r"""['"`]n['"`]""", text))
    return bool(re.search(rf"\b{re.escape(name)}\b", text))


@dataclass
class Capabilities:
    """True: supported; False: not (refused or ignored); None: not known yet."""

    n: bool | None = None              # several samples per request
    greedy_n: bool | None = None       # several samples per request at temperature 0 (vLLM refuses)
    prefix: bool | None = None         # continue an assistant message (continue_final_message)
    logprobs: bool | None = None
    top_logprobs: bool | None = None
    stream_options: bool | None = None  # usage in the stream (stream_options.include_usage)
    continuous_usage: bool | None = None  # usage in every chunk (stream_options.continuous_usage_stats, vLLM)
    seed: bool | None = None
    ignore_eos: bool | None = None

    def splits(self, n: int, temperature: float) -> bool:
        """Whether `n` samples must be drawn as n single-sample calls."""
        return n > 1 and (self.n is False or (temperature == 0 and self.greedy_n is False))

    def no_top_logprobs(self, base_url: str) -> CapabilityError:
        return CapabilityError(f"server {base_url} returns no top_logprobs (top-k candidate logprobs), which "
                               "the confidence stopping rule / verifier needs; use a server that supports "
                               "'logprobs' + 'top_logprobs' (e.g. vLLM) or the HF backend")

    def learn(self, e: Rejected, body: dict, params: SamplingParams, url: str, base_url: str) -> str:
        """A 4xx answer to `body`: remember what the server lacks and return the field to adapt on (the caller
        drops it, or splits `n` for "n" and "greedy_n"); raise when nothing can be adapted."""
        if e.status in (400, 413, 422) and _TOO_LONG.search(e.text) \
                and not any(names_field(e.text, f) for f in OPTIONAL_FIELDS if f in body):
            raise InputError(f"{url} rejected the prompt as too long (HTTP {e.status}): {e.text[:300]}") from None
        if "continuous_usage_stats" in (body.get("stream_options") or {}) and "continuous_usage_stats" in e.text:
            self.continuous_usage = False
            return "continuous_usage_stats"
        if e.status == 400 and body.get("n", 1) > 1 and body.get("temperature") == 0 and _GREEDY_N.search(e.text):
            log.info("server %s refuses n > 1 at temperature 0; drawing greedy samples one per call", base_url)
            self.greedy_n = False
            return "greedy_n"
        named = [f for f in OPTIONAL_FIELDS if f in body and names_field(e.text, f)] if e.status in (400, 422) else []
        if not named:
            raise AdaptiveError(f"OpenAI-compatible server {url} rejected the request (HTTP {e.status}): "
                                f"{e.text[:500]}") from None
        f = named[0]
        log.info("server %s does not accept %r; adapting", base_url, f)
        if f in ("continue_final_message", "add_generation_prompt"):
            self.prefix = False
        elif f == "stream_options":
            self.stream_options = False
        elif f == "top_logprobs" or (f == "logprobs" and params.top_logprobs > 0):
            self.top_logprobs = False
            if f == "logprobs":
                self.logprobs = False
            raise self.no_top_logprobs(base_url) from None
        elif f == "logprobs":
            self.logprobs = False
        elif f == "seed":
            self.seed = False
            log.warning("server %s refuses 'seed': samples are not reproducible", base_url)
        elif f == "n":
            self.n = False
        elif f == "top_k":
            raise CapabilityError(f"server {base_url} does not accept 'top_k' (top_k={params.top_k}); "
                                  "use top_k=0 with this server") from None
        elif f == "ignore_eos":
            self.ignore_eos = False
            raise CapabilityError(f"server {base_url} does not support 'ignore_eos'") from None
        return f
