"""The Hugging Face backend on the embedded model: token accounting, seeds, finish reasons, errors."""
import pytest
import torch

from adaptive.backends.base import Request, SamplingParams
from adaptive.errors import InputError

pytestmark = pytest.mark.model

Q = "What is 2 + 5? Answer with a number."


def test_token_counts_match_tokenizer(hf_backend):
    tok = hf_backend.tokenizer
    gen = hf_backend.generate([Request(Q, n=3)], SamplingParams(max_new_tokens=24, seed=3))
    expected_prompt = tok.apply_chat_template([{"role": "user", "content": Q}], add_generation_prompt=True,
                                              tokenize=False)
    assert gen.prompt_tokens == [len(tok(expected_prompt, add_special_tokens=False).input_ids)]
    assert gen.usage.prompt_tokens == gen.prompt_tokens[0]
    total = 0
    for c in gen.completions[0]:
        assert c.n_tokens == len(c.logprobs) == len(c.token_times) >= 1
        assert c.n_tokens <= 24
        body = c.token_ids[:-1] if c.finish_reason == "eos" else c.token_ids
        assert tok.decode(body, skip_special_tokens=True) == c.text
        if c.finish_reason == "eos":
            assert c.token_ids[-1] in hf_backend.eos_ids
        total += c.n_tokens
        assert c.token_times == sorted(c.token_times)
        assert all(lp <= 0 for lp in c.logprobs)
    assert gen.usage.generated_tokens == total
    assert gen.usage.samples == 3


def test_seed_reproduces_samples(hf_backend):
    p = SamplingParams(max_new_tokens=16, temperature=1.0, seed=11)
    a = hf_backend.generate([Request(Q, n=3)], p).completions[0]
    b = hf_backend.generate([Request(Q, n=3)], p).completions[0]
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    c = hf_backend.generate([Request(Q, n=3)], SamplingParams(max_new_tokens=16, temperature=1.0, seed=12))
    assert [x.token_ids for x in c.completions[0]] != [x.token_ids for x in a]


def test_greedy_batched_matches_plain_generate(hf_backend):
    """Shared prefill, left padding and row dropping must not change greedy outputs."""
    prompts = ["Count: 1, 2, 3,", "The capital of France is", "def add(a, b):\n   "]
    gen = hf_backend.generate([Request(p, n=2, raw=True) for p in prompts],
                              SamplingParams(max_new_tokens=12, temperature=0))
    tok, model = hf_backend.tokenizer, hf_backend.model
    for p, comps in zip(prompts, gen.completions):
        ids = tok(p, return_tensors="pt")
        with torch.inference_mode():
            ref = model.generate(**ids, max_new_tokens=12, do_sample=False, pad_token_id=hf_backend.pad_id)
        ref_new = ref[0, ids.input_ids.shape[1]:].tolist()
        for c in comps:
            assert c.token_ids == ref_new[: len(c.token_ids)]


def test_finish_reasons(hf_backend):
    length = hf_backend.generate([Request("Write a long story about a dragon.")],
                                 SamplingParams(max_new_tokens=3, seed=0)).completions[0][0]
    assert length.finish_reason == "length" and length.n_tokens == 3
    stop = hf_backend.generate([Request("Count: 1, 2, 3,", raw=True)],
                               SamplingParams(max_new_tokens=30, temperature=0, stop=(" 6",))).completions[0][0]
    assert stop.finish_reason == "stop" and " 6" not in stop.text and stop.text.startswith(" 4")
    eos = hf_backend.generate([Request("Say hi.")], SamplingParams(max_new_tokens=64, temperature=0)).completions[0][0]
    assert eos.finish_reason == "eos"


def test_top_logprobs_and_hidden_states_without_extra_forward(hf_backend):
    gen = hf_backend.generate([Request(Q, n=2)], SamplingParams(max_new_tokens=8, temperature=0, top_logprobs=4),
                              hidden_states=True)
    c = gen.completions[0][0]
    assert all(len(t) == 4 and t == sorted(t, reverse=True) for t in c.top_logprobs)
    assert c.logprobs[0] <= c.top_logprobs[0][0] + 1e-5  # the chosen token is at most the best
    pp = gen.prompt_passes[0]
    cfg = hf_backend.model.config
    assert tuple(pp.mean_hidden.shape) == (cfg.num_hidden_layers + 1, cfg.hidden_size)
    longest = max(x.n_tokens for x in gen.completions[0])
    assert gen.usage.forward_passes == longest  # one prefill + (longest - 1) decode steps, nothing more


def test_prompt_pass_alone_is_one_forward(hf_backend, totals_delta):
    passes = hf_backend.prompt_pass([Q, "Hello"]).passes
    assert len(passes) == 2 and passes[0].n_tokens > passes[1].n_tokens
    assert totals_delta()["forward_passes"] == 1


@pytest.mark.parametrize("bad, msg", [
    (lambda b: b.generate([Request("   ")], SamplingParams()), "empty prompt"),
    (lambda b: b.generate([Request("word " * 9000)], SamplingParams(max_new_tokens=8)), "context window"),
    (lambda b: b.generate([Request(Q, n=0)], SamplingParams()), "n=0"),
    (lambda b: b.generate([Request(Q)], SamplingParams(temperature=-1)), "temperature"),
])
def test_bad_input_is_a_clear_error(hf_backend, bad, msg):
    with pytest.raises(InputError, match=msg):
        bad(hf_backend)


def test_unknown_device_is_a_clear_error():
    from adaptive.backends.hf.loading import resolve_device

    with pytest.raises(InputError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda")


def test_prefix_reuse_changes_nothing_but_cost(hf_backend):
    """Later waves and continuations reuse the prompt's KV; greedy outputs equal the uncached path."""
    from adaptive.backends.hf import HFBackend

    plain = HFBackend(hf_backend.model, hf_backend.tokenizer, prefix_cache_tokens=0)
    prompt = "List three facts about the moon, one sentence each."
    p = SamplingParams(max_new_tokens=16, temperature=0, stop=(".",))
    first = hf_backend.generate([Request(prompt, n=2)], p)
    again = hf_backend.generate([Request(prompt, n=2)], p)
    # The first wave kept the prompt's last logits: the second runs no prompt forward at all.
    assert again.usage.cached_prompt_tokens == again.usage.prompt_tokens
    assert again.usage.forward_passes == max(c.n_tokens for c in again.completions[0]) - 1
    assert again.usage.flops < first.usage.flops
    ref = plain.generate([Request(prompt, n=2)], p)
    assert [c.token_ids for c in again.completions[0]] == [c.token_ids for c in ref.completions[0]]
    step = first.completions[0][0]
    assert step.finish_reason == "stop"
    cont = hf_backend.generate([Request(prompt, prefix=step.text + ".")], p)
    ref_cont = plain.generate([Request(prompt, prefix=step.text + ".")], p)
    assert cont.usage.cached_prompt_tokens > first.prompt_tokens[0]  # the generated step was reused too
    assert cont.completions[0][0].token_ids == ref_cont.completions[0][0].token_ids


def test_generation_after_a_prompt_pass_runs_no_prompt_forward(hf_backend, totals_delta):
    """An estimator's prompt pass leaves K/V and last logits in the cache: generation starts decoding
    from them (0 prompt tokens computed, 0 prefill FLOPs) and samples exactly what a cold run samples."""
    from adaptive.backends.hf import HFBackend

    plain = HFBackend(hf_backend.model, hf_backend.tokenizer, prefix_cache_tokens=0)
    prompts = ["Name a colour.", "What is 3 + 4? Answer with a number, then explain why in one line."]
    hf_backend.prefix_cache.clear()
    hf_backend.prompt_pass(prompts)
    p = SamplingParams(max_new_tokens=12, temperature=0.8, seed=5)
    before = totals_delta()
    gen = hf_backend.generate([Request(q, n=2) for q in prompts], p)
    assert gen.usage.cached_prompt_tokens == gen.usage.prompt_tokens == sum(gen.prompt_tokens)
    longest = max(c.n_tokens for cs in gen.completions for c in cs)
    assert totals_delta()["forward_passes"] - before["forward_passes"] == longest - 1
    ref = plain.generate([Request(q, n=2) for q in prompts], p)
    assert gen.usage.flops < ref.usage.flops
    for got, want in zip(gen.completions, ref.completions):
        assert [c.token_ids for c in got] == [c.token_ids for c in want]
    # A prompt the pass did not see sends the batch down the normal path (one forward for it all).
    mixed = hf_backend.generate([Request(prompts[0]), Request("Say hi.")], SamplingParams(max_new_tokens=4, seed=1))
    assert mixed.per_request[0].cached_prompt_tokens == gen.prompt_tokens[0] - 1
    assert mixed.usage.forward_passes == max(c.n_tokens for cs in mixed.completions for c in cs)
