"""PrefixCache bookkeeping (no model): longest common prefix, at least one token left, LRU by tokens."""
import torch

from adaptive.backends.hf.prefix_cache import PrefixCache, common_prefix


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


def test_full_hit_needs_the_stored_logits():
    c = PrefixCache()
    c.store((1, 2, 3), kv(3))  # no logits: generation must still feed the last token
    assert not c.has_full((1, 2, 3)) and c.lookup_full((1, 2, 3)) is None
    logits = torch.tensor([0.5, 1.5])
    c.store((1, 2, 3), kv(3), logits=logits)
    assert c.has_full((1, 2, 3)) and not c.has_full((1, 2))
    entry, got = c.lookup_full((1, 2, 3))
    assert torch.equal(got, logits) and entry[0][0].shape[1] == 3


def test_full_hit_survives_a_longer_continuation_and_dies_with_its_kv():
    c = PrefixCache(max_tokens=12)
    c.store((1, 2, 3), kv(3), logits=torch.zeros(2))
    c.store((1, 2, 3, 7, 8), kv(5))  # a finished sample's continuation supersedes the prompt entry
    assert len(c) == 1 and c.has_full((1, 2, 3))
    entry, _ = c.lookup_full((1, 2, 3))
    assert entry[0][0].shape[1] == 5  # the longer entry; its first 3 positions are the prompt's
    c.store((4, 4, 4, 4, 4, 4), kv(6))
    c.store((5, 5, 5, 5, 5, 5), kv(6))  # evicts the continuation, and with it the prompt's full hit
    assert not c.has_full((1, 2, 3)) and c.lookup_full((1, 2, 3)) is None


def test_clear_forgets_logits():
    c = PrefixCache()
    c.store((1, 2), kv(2), logits=torch.zeros(2))
    c.clear()
    assert not c.has_full((1, 2)) and len(c) == 0


def test_logits_count_against_the_token_budget():
    # kv(n) holds 2 floats per token; a logits vector of 6 floats is 3 tokens' worth.
    c = PrefixCache(max_tokens=10)
    c.store((1, 2, 3), kv(3), logits=torch.zeros(6))
    assert c._tokens == 3 + 3
    c.store((1, 2, 3), kv(3), logits=torch.zeros(6))  # storing again charges once
    assert c._tokens == 6
    c.store((4, 5, 6), kv(3))  # 6 + 3 = 9 <= 10: fits; the next one does not
    assert c._tokens == 9 and c.has_full((1, 2, 3))
    c.store((7, 8), kv(2))  # 11 > 10: the oldest entry goes, and its logits with it
    assert not c.has_full((1, 2, 3)) and c._tokens == 5
    c.clear()
    assert c._tokens == 0
