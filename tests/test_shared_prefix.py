"""Shared-prefix decode attention: the merged two-part attention equals plain softmax attention over the
concatenated keys (worked on random tensors, GQA, masked prompts, uneven rows per prompt), and the
decode loop built on it gives the same tokens as expanding the prompt cache to every sample."""
import pytest
import torch

from adaptive.backends.base import Request, SamplingParams
from adaptive.backends.hf import HFBackend
from adaptive.backends.hf.shared_prefix import SharedPrefixState, shared_prefix_attention


class _Module:
    def __init__(self, layer_idx=0):
        self.layer_idx = layer_idx


def _reference(q, pk, pv, pmask, owner, sk, sv, scale):
    """Per row: softmax over [its prompt's real keys, its own generated keys], GQA by repeating KV heads."""
    B, H, _, D = q.shape
    G = H // pk.shape[1]
    out = torch.empty(B, 1, H, D, dtype=torch.float64)
    for b in range(B):
        p = int(owner[b])
        keep = pmask[p].bool()
        k = torch.cat([pk[p][:, keep], sk[b]], dim=1).double().repeat_interleave(G, 0)  # [H, L, D]
        v = torch.cat([pv[p][:, keep], sv[b]], dim=1).double().repeat_interleave(G, 0)
        w = torch.softmax((q[b].double() @ k.transpose(-1, -2)) * scale, dim=-1)     # [H, 1, L]
        out[b, 0] = (w @ v)[:, 0]
    return out


@pytest.mark.parametrize("owner", [[0, 0, 0, 1, 1, 2], [0, 2, 2, 2], [1]])
def test_merged_attention_equals_plain_softmax(owner):
    g = torch.Generator().manual_seed(0)
    P, KVH, G, D, W, steps = 3, 2, 3, 8, 7, 4
    H = KVH * G
    pk, pv = torch.randn(P, KVH, W, D, generator=g), torch.randn(P, KVH, W, D, generator=g)
    pmask = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1, 1]])
    owner = torch.tensor(owner)
    B = len(owner)
    state = SharedPrefixState([(pk, pv)], pmask, owner, capacity=2)  # capacity 2: buffers must grow
    sk, sv = torch.zeros(B, KVH, 0, D), torch.zeros(B, KVH, 0, D)
    for _ in range(steps):
        q = torch.randn(B, H, 1, D, generator=g)
        k, v = torch.randn(B, KVH, 1, D, generator=g), torch.randn(B, KVH, 1, D, generator=g)
        sk, sv = torch.cat([sk, k], 2), torch.cat([sv, v], 2)
        out, _ = shared_prefix_attention(_Module(), q, k, v, None, scaling=0.3, shared_prefix=state)
        state.advance()
        torch.testing.assert_close(out.double(), _reference(q, pk, pv, pmask, owner, sk, sv, 0.3),
                                   rtol=1e-5, atol=1e-5)


def test_select_drops_rows_and_keeps_the_rest_exact():
    g = torch.Generator().manual_seed(1)
    pk, pv = torch.randn(2, 1, 5, 4, generator=g), torch.randn(2, 1, 5, 4, generator=g)
    pmask = torch.ones(2, 5, dtype=torch.long)
    owner = torch.tensor([0, 0, 1, 1])
    state = SharedPrefixState([(pk, pv)], pmask, owner)
    sk, sv = torch.zeros(4, 1, 0, 4), torch.zeros(4, 1, 0, 4)
    for step in range(3):
        if step == 2:  # rows 1 and 2 finished
            keep = torch.tensor([0, 3])
            state.select(keep)
            owner, sk, sv = owner[keep], sk[keep], sv[keep]
        B = len(owner)
        q = torch.randn(B, 2, 1, 4, generator=g)
        k, v = torch.randn(B, 1, 1, 4, generator=g), torch.randn(B, 1, 1, 4, generator=g)
        sk, sv = torch.cat([sk, k], 2), torch.cat([sv, v], 2)
        out, _ = shared_prefix_attention(_Module(), q, k, v, None, scaling=0.5, shared_prefix=state)
        state.advance()
        torch.testing.assert_close(out.double(), _reference(q, pk, pv, pmask, owner, sk, sv, 0.5),
                                   rtol=1e-5, atol=1e-5)
    assert state.positions().squeeze(-1).tolist() == [5 + 3, 5 + 3]


def test_outside_the_decode_loop_is_a_clear_error():
    q = torch.zeros(1, 2, 3, 4)
    with pytest.raises(RuntimeError, match="decode loop"):
        shared_prefix_attention(_Module(), q, q[:, :1], q[:, :1], None)


@pytest.mark.model
def test_shared_prefix_decode_matches_expanded_cache(hf_backend):
    m, t = hf_backend.model, hf_backend.tokenizer
    shared = HFBackend(m, t, shared_prefix=True, compact_fraction=0.01, shared_prefix_min_tokens=0)
    expanded = HFBackend(m, t, shared_prefix=False, compact_fraction=0.01)
    assert shared.shared_prefix and not expanded.shared_prefix
    reqs = [Request("Say hi.", n=3), Request("Write a long poem about the sea and the wind.", n=2),
            Request("What is 2 + 2?", n=1)]
    for params in (SamplingParams(max_new_tokens=48, temperature=0, top_logprobs=2),
                   SamplingParams(max_new_tokens=32, temperature=0.9, seed=7)):
        for _ in range(2):  # the second round starts from the prefix cache the first one filled
            a, b = shared.generate(reqs, params), expanded.generate(reqs, params)
            assert a.usage.cached_prompt_tokens == b.usage.cached_prompt_tokens
            for ca, cb in zip(a.completions, b.completions):
                for x, y in zip(ca, cb):
                    assert x.token_ids == y.token_ids and x.finish_reason == y.finish_reason
                    assert max(abs(u - v) for u, v in zip(x.logprobs, y.logprobs)) < 1e-3
    assert a.usage.cached_prompt_tokens > 0
    # A continuation over a stored finished row reuses its prompt + generated K/V from either path.
    done = next(c for c in a.completions[0] if c.finish_reason == "eos")
    p = SamplingParams(max_new_tokens=8, temperature=0)
    ca = shared.generate([Request("Say hi.", prefix=done.text)], p)
    cb = expanded.generate([Request("Say hi.", prefix=done.text)], p)
    assert ca.completions[0][0].token_ids == cb.completions[0][0].token_ids


@pytest.mark.model
def test_kernel_is_used_only_where_it_pays(hf_backend, monkeypatch):
    import adaptive.backends.hf.backend as hf

    used = []
    real = hf._SharedKV
    monkeypatch.setattr(hf, "_SharedKV", lambda *a: used.append(1) or real(*a))
    b = HFBackend(hf_backend.model, hf_backend.tokenizer, prefix_cache_tokens=0, shared_prefix_min_tokens=64)
    p = SamplingParams(max_new_tokens=2, seed=0)
    b.generate([Request("Hi", n=4)], p)                 # short prompt: the copied cache is as cheap
    b.generate([Request("word " * 80, n=1)], p)         # one sample: nothing to share
    assert used == []
    b.generate([Request("word " * 80, n=4)], p)
    assert used == [1]


class _Model:
    def __init__(self, config):
        self.config = config

    def modules(self):
        return []


def test_which_models_use_the_shared_prefix_kernel():
    from transformers import Gemma2Config, MistralConfig, Qwen2Config

    from adaptive.backends.hf.backend import _plain_kv, _shared_prefix_ok

    assert _shared_prefix_ok(_Model(Qwen2Config()))  # a window size, but every layer is full attention
    sliding = Qwen2Config(use_sliding_window=True, sliding_window=64, max_window_layers=0)
    assert not _plain_kv(_Model(sliding))
    assert not _plain_kv(_Model(MistralConfig(sliding_window=4096)))
    assert not _shared_prefix_ok(_Model(Gemma2Config()))  # logit softcapping and sliding layers
