"""Prompt KV reuse: later waves, beam expansions and refinement rounds that start with tokens we
already prefilled skip recomputing them.

Entries hold one sequence's keys/values per layer, unpadded, keyed by its token ids. A lookup finds the
longest common token prefix with any entry (tokenization may merge across a prompt/prefix boundary, so
an exact-prefix match would miss). At least one token is always left to prefill, since its logits start
the decode. Bounded by a token budget, least recently used first out.
"""
from __future__ import annotations

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

    def store(self, ids: tuple[int, ...], kv: KV) -> None:
        if len(ids) > self.max_tokens:
            return
        if ids in self._entries:
            self._entries.move_to_end(ids)
            return
        # An entry that is a prefix of the new one adds nothing once the new one is stored.
        for key in [k for k in self._entries if len(k) < len(ids) and ids[: len(k)] == k]:
            self._drop(key)
        self._entries[ids] = kv
        self._tokens += len(ids)
        while self._tokens > self.max_tokens:
            self._drop(next(iter(self._entries)))

    def _drop(self, key) -> None:
        del self._entries[key]
        self._tokens -= len(key)

    def clear(self) -> None:
        self._entries.clear()
        self._tokens = 0

    def __len__(self) -> int:
        return len(self._entries)
