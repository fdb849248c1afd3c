"""Prompt KV reuse: later waves, beam expansions and refinement rounds that start with tokens we
already prefilled skip recomputing them.

Entries hold one sequence's keys/values per layer, unpadded, keyed by its token ids. A lookup finds the
longest common token prefix with any entry (tokenization may merge across a prompt/prefix boundary, so
an exact-prefix match would miss). At least one token is left to prefill, since its logits start the
decode - unless the entry is exactly the prompt and kept its last position's logits (a prompt pass for an
estimator stores them): then generation needs no prompt forward at all (`lookup_full`). Bounded by a
token budget, least recently used first out.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values as [heads, length, head_dim]


def common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PrefixCache:
    def __init__(self, max_tokens: int = 32768):
        self.max_tokens = max_tokens
        self._entries: OrderedDict[tuple[int, ...], KV] = OrderedDict()
        self._logits: dict[tuple[int, ...], torch.Tensor] = {}  # next-token logits after the whole key
        self._logit_cost: dict[tuple[int, ...], int] = {}  # each one's size in K/V tokens, charged to the budget
        self._tokens = 0
        self.hits = 0
        self.reused_tokens = 0

    def lookup(self, ids: tuple[int, ...]) -> tuple[KV | None, int]:
        """(kv, L): the first L positions of `kv` are valid for `ids`; L <= len(ids) - 1."""
        best, best_len = None, 0
        for key in self._entries:
            n = min(common_prefix(key, ids), len(ids) - 1)
            if n > best_len:
                best, best_len = key, n
        if best is None:
            return None, 0
        self._entries.move_to_end(best)
        self.hits += 1
        self.reused_tokens += best_len
        return self._entries[best], best_len

    def _holder(self, ids: tuple[int, ...]):
        """The key of an entry holding `ids`' K/V: `ids` itself, or a longer entry that starts with it."""
        if ids in self._entries:
            return ids
        n = len(ids)
        return next((k for k in self._entries if k[:n] == ids), None)

    def has_full(self, ids: tuple[int, ...]) -> bool:
        """Whether `lookup_full(ids)` would hit (checks without touching LRU order or counters)."""
        return ids in self._logits and self._holder(ids) is not None

    def lookup_full(self, ids: tuple[int, ...]) -> tuple[KV, torch.Tensor] | None:
        """(kv, logits) when `ids` was stored with its last position's logits and an entry still holds
        its K/V (the entry may be longer: a finished sample's continuation supersedes its prompt; the
        first len(ids) positions are the prompt's), else None."""
        logits = self._logits.get(ids)
        key = self._holder(ids) if logits is not None else None
        if key is None:
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        self.reused_tokens += len(ids)
        return self._entries[key], logits

    def store(self, ids: tuple[int, ...], kv: KV, logits: torch.Tensor | None = None) -> None:
        if len(ids) > self.max_tokens:
            return
        if ids in self._entries:
            self._entries.move_to_end(ids)
        else:
            # An entry that is a prefix of the new one adds nothing once the new one is stored.
            for key in [k for k in self._entries if len(k) < len(ids) and ids[: len(k)] == k]:
                self._drop(key, keep_logits=True)
            self._entries[ids] = kv
            self._tokens += len(ids)
        if logits is not None:
            self._keep_logits(ids, kv, logits)
        while self._tokens > self.max_tokens and self._entries:
            self._drop(next(iter(self._entries)))

    def _keep_logits(self, ids, kv: KV, logits: torch.Tensor) -> None:
        """Store a key's logits, charged as the number of K/V tokens of the same size (a vocabulary-wide
        vector is a few tokens' worth: 5 for the embedded model, ~20 for a 150k-vocabulary 1.5B model)."""
        per_token = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv) / max(len(ids), 1)
        cost = math.ceil(logits.numel() * logits.element_size() / per_token) if per_token else 0
        self._tokens += cost - self._logit_cost.get(ids, 0)
        self._logits[ids], self._logit_cost[ids] = logits, cost

    def _drop(self, key, keep_logits: bool = False) -> None:
        del self._entries[key]
        if not keep_logits:
            for k in [k for k in self._logits if key[: len(k)] == k and self._holder(k) is None]:
                del self._logits[k]
                self._tokens -= self._logit_cost.pop(k)
        self._tokens -= len(key)

    def clear(self) -> None:
        self._entries.clear()
        self._logits.clear()
        self._logit_cost.clear()
        self._tokens = 0

    def __len__(self) -> int:
        return len(self._entries)
