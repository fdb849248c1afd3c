"""Optimised paths must not change results: greedy outputs are identical with and without batch
compaction and prefix reuse; sampled tokens follow the model's (filtered) distribution exactly."""
import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from adaptive.backends.base import Request, SamplingParams
from adaptive.backends.hf import HFBackend
from adaptive.backends.hf.sampler import filter_logits

pytestmark = pytest.mark.model


def test_greedy_identical_with_and_without_compaction(hf_backend):
    prompts = ["Say hi.", "Write a long poem about the sea and the wind.", "What is 2 + 2?"]
    p = SamplingParams(max_new_tokens=64, temperature=0)
    reqs = [Request(q, n=2) for q in prompts]
    always = HFBackend(hf_backend.model, hf_backend.tokenizer, compact_fraction=0.01, prefix_cache_tokens=0)
    never = HFBackend(hf_backend.model, hf_backend.tokenizer, compact_fraction=1.01, prefix_cache_tokens=0)
    a, b = always.generate(reqs, p), never.generate(reqs, p)
    assert [[c.token_ids for c in cs] for cs in a.completions] == [[c.token_ids for c in cs] for cs in b.completions]
    lengths = {c.n_tokens for cs in a.completions for c in cs}
    assert len(lengths) > 1  # rows really finished at different steps, so compaction happened
    assert a.usage.generated_tokens == b.usage.generated_tokens


def _first_token_probs(backend, prompt, temperature, top_k=0, top_p=1.0):
    ids = torch.tensor([backend.render(prompt, raw=True)])
    with torch.inference_mode():
        logits = backend.model(input_ids=ids).logits[0, -1].float()
    probs = torch.softmax(filter_logits(logits[None], temperature, top_k, top_p)[0], dim=-1).double().numpy()
    return probs / probs.sum()


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 0, 1.0), (0.7, 5, 1.0), (1.0, 0, 0.8)])
def test_sampled_first_token_matches_model_distribution(hf_backend, temperature, top_k, top_p):
    prompt = "My favourite colour is"
    probs = _first_token_probs(hf_backend, prompt, temperature, top_k, top_p)
    n = 400
    gen = hf_backend.generate([Request(prompt, n=n, raw=True)],
                              SamplingParams(max_new_tokens=1, temperature=temperature, top_k=top_k, top_p=top_p,
                                             seed=123))
    drawn = np.array([c.token_ids[0] for c in gen.completions[0]])
    assert probs[drawn].min() > 0  # never a token the filter removed
    big = np.flatnonzero(probs * n >= 5)  # chi-square cells with enough expected counts; the rest pooled
    observed = [np.sum(drawn == t) for t in big] + [np.sum(~np.isin(drawn, big))]
    expected = [probs[t] * n for t in big] + [n * (1 - probs[big].sum())]
    if expected[-1] < 1e-9:
        observed, expected = observed[:-1], expected[:-1]
    expected = np.array(expected, dtype=np.float64)
    stat, pvalue = chisquare(np.array(observed, dtype=np.float64), expected * sum(observed) / expected.sum())
    assert pvalue > 1e-3, (stat, pvalue)
