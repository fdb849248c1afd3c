"""PrefixCache bookkeeping (no model): longest common prefix, at least one token left, LRU by tokens."""
import torch

from adaptive.backends.prefix_cache import PrefixCache, common_prefix


def kv(n):
    return [(torch.arange(n).float()[None, :, None], torch.arange(n).float()[None, :, None])]


def test_common_prefix():
    assert common_prefix((1, 2, 3), (1, 2, 4)) == 2
    assert common_prefix((), (1,)) == 0
    assert common_prefix((5, 6), (5, 6)) == 2


def test_lookup_leaves_one_token_to_prefill():
    c = PrefixCache()
    c.store((1, 2, 3, 4), kv(4))
    entry, n = c.lookup((1, 2, 3, 4))
    assert n == 3 and entry is not None  # the last token is recomputed: its logits start decoding
    assert c.lookup((1, 2, 9))[1] == 2
    assert c.lookup((7, 8)) == (None, 0)


def test_longest_match_wins_and_prefix_entries_are_replaced():
    c = PrefixCache()
    c.store((1, 2), kv(2))
    c.store((1, 2, 3, 4, 5), kv(5))
    assert len(c) == 1  # (1, 2) is a prefix of the new entry and adds nothing
    c.store((1, 9, 9), kv(3))
    assert c.lookup((1, 2, 3, 4, 6))[1] == 4


def test_token_budget_evicts_least_recently_used():
    c = PrefixCache(max_tokens=10)
    c.store((1, 1, 1, 1), kv(4))
    c.store((2, 2, 2, 2), kv(4))
    c.lookup((1, 1, 1, 1, 5))  # touch the first entry
    c.store((3, 3, 3, 3), kv(4))
    assert c.lookup((2, 2, 2, 2, 2))[1] == 0 and c.lookup((1, 1, 1, 1, 1))[1] == 4
    c.store(tuple(range(50)), kv(50))  # larger than the whole budget: not stored
    assert c.lookup(tuple(range(51)))[1] == 0
