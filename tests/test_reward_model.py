"""ORM/PRM verifiers on tiny randomly initialised Llama models with a word-level tokenizer (no hub access)."""
from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

import adaptive.verifiers.reward_model as rm  # noqa: E402  (registers "orm" and "prm")
from adaptive.backends.base import Completion  # noqa: E402
from adaptive.errors import AdaptiveError, ConfigError  # noqa: E402
from adaptive.verifiers.base import make_verifier  # noqa: E402

WORDS = ["[PAD]", "[UNK]", "ки", "+", "-", "<extra_0>", "what", "is", "two", "plus", "three", "?", "step",
         "one", "add", "them", "so", "five", "the", "answer", "four", ".", "user", "assistant", "system", ":"]
QUESTION = "what is two plus three ?"
SOLUTIONS = [
    "step one : add them .\n\nstep two : so five .\n\nthe answer is five .",
    "step one : add them .\n\nthe answer is four .",
    "the answer is five .",
]
TEMPLATE = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant : {% endif %}")


def _tokenizer(extra_words=(), chat_template=None):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = WORDS + list(extra_words)
    t = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=t, pad_token="[PAD]", unk_token="[UNK]",
                                  additional_special_tokens=["<extra_0>"])
    if chat_template:
        tok.chat_template = chat_template
    return tok


def _config(vocab_size, **kw):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       num_key_value_heads=2, intermediate_size=64, max_position_embeddings=128,
                       pad_token_id=0, **kw)


def _save(path, model_cls, tok, vocab_size=None, **cfg):
    torch.manual_seed(0)
    model = model_cls(_config(vocab_size or len(tok), **cfg))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification, LlamaForTokenClassification

    d = tmp_path_factory.mktemp("rm")
    tok = _tokenizer()
    return {
        "orm": _save(d / "orm", LlamaForSequenceClassification, tok, num_labels=1),
        "orm2": _save(d / "orm2", LlamaForSequenceClassification, _tokenizer(chat_template=TEMPLATE), num_labels=2),
        "shepherd": _save(d / "shepherd", LlamaForCausalLM, tok),
        "qwen": _save(d / "qwen", LlamaForTokenClassification, _tokenizer(chat_template=TEMPLATE), num_labels=2),
        # a tokenizer with more tokens than the model has embedding rows
        "mismatch": _save(d / "mismatch", LlamaForCausalLM, _tokenizer(extra_words=["six", "seven"]),
                          vocab_size=len(tok)),
    }


def _comps(texts=SOLUTIONS):
    return [Completion(text=t, token_ids=[], finish_reason="stop", logprobs=[]) for t in texts]


# -- ORM --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["orm", "orm2"])
def test_orm_scores_are_probabilities_and_deterministic(models, which):
    v = make_verifier("orm", {"model": models[which], "device": "cpu", "batch_size": 2})
    assert v.name == "orm" and v.needs == frozenset()
    a = v.score(QUESTION, _comps())
    b = v.score([{"role": "system", "content": "be brief"}, {"role": "user", "content": QUESTION}], _comps())
    assert len(a) == len(SOLUTIONS)
    assert all(0.0 <= s <= 1.0 for s in a)
    assert a == pytest.approx(b)  # the question is the last user turn; the policy's system prompt is dropped
    assert v.score(QUESTION, _comps()) == pytest.approx(a)


def test_orm_batching_does_not_change_scores(models):
    one = rm.OutcomeRewardModel(models["orm"], device="cpu", batch_size=1).score(QUESTION, _comps())
    many = rm.OutcomeRewardModel(models["orm"], device="cpu", batch_size=8).score(QUESTION, _comps())
    assert one == pytest.approx(many, abs=1e-5)


def test_orm_input_uses_chat_template_when_present(models):
    plain = rm.OutcomeRewardModel(models["orm"], device="cpu")
    templ = rm.OutcomeRewardModel(models["orm2"], device="cpu")
    assert plain.tokenizer.decode(plain.encode(QUESTION, "so five")) == f"{QUESTION} so five"
    assert templ.tokenizer.decode(templ.encode(QUESTION, "so five")).startswith("user : " + QUESTION)


def test_orm_needs_a_model():
    with pytest.raises(ConfigError, match="model"):
        make_verifier("orm", {})


def test_overlong_input_is_an_error(models):
    v = rm.OutcomeRewardModel(models["orm"], device="cpu")
    with pytest.raises(AdaptiveError, match="128 positions"):
        v.score(QUESTION, _comps([" ".join(["five"] * 200)]))


# -- PRM --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("style", ["math_shepherd", "qwen"])
def test_prm_step_scores_and_aggregates(models, style):
    path = models["shepherd" if style == "math_shepherd" else "qwen"]
    v = rm.ProcessRewardModel(path, style=style, device="cpu", batch_size=2)
    steps = v.score_steps(QUESTION, _comps())
    assert [len(s) for s in steps] == [3, 2, 1]  # one score per "\n\n"-separated step
    assert all(0.0 <= p <= 1.0 for s in steps for p in s)
    assert v.score_steps(QUESTION, _comps()) == steps  # deterministic
    for how, agg in (("last", lambda s: s[-1]), ("min", min), ("prod", math.prod)):
        v.aggregate = how  # same model, so the step scores above apply
        assert v.score(QUESTION, _comps()) == pytest.approx([agg(s) for s in steps])


def test_prm_batching_and_steps_are_position_exact(models):
    v1 = rm.ProcessRewardModel(models["shepherd"], device="cpu", batch_size=1)
    v8 = rm.ProcessRewardModel(models["shepherd"], device="cpu", batch_size=8)
    a, b = v1.score_steps(QUESTION, _comps()), v8.score_steps(QUESTION, _comps())
    assert [len(s) for s in a] == [len(s) for s in b]
    for x, y in zip(a, b):
        assert x == pytest.approx(y, abs=1e-5)
    # each tag sits right after its step; the text before step k is the same in solutions 0 and 1
    assert a[0][0] == pytest.approx(a[1][0], abs=1e-6)


def test_prm_tags_in_the_text_do_not_add_steps(models):
    v = rm.ProcessRewardModel(models["shepherd"], device="cpu")
    ids, pos = v.encode(QUESTION + " ки", "step one ки\n\nso five")
    assert len(pos) == 2 and all(ids[p] == v.tag_id for p in pos)
    assert sum(t == v.tag_id for t in ids) == 2


def test_prm_qwen_separators_follow_each_step(models):
    v = rm.ProcessRewardModel(models["qwen"], style="qwen", device="cpu")
    ids, pos = v.encode(QUESTION, SOLUTIONS[0])
    assert v.tag_id == v.tokenizer.convert_tokens_to_ids("<extra_0>")
    assert [ids[p] for p in pos] == [v.tag_id] * 3 and pos[-1] == len(ids) - 1
    text = v.tokenizer.decode(ids[:pos[0]])
    assert text.startswith("system :")  # the Qwen PRM system prompt is used
    assert text.endswith(f"user : {QUESTION} assistant : step one : add them .")


def test_prm_solution_without_steps_scores_zero(models):
    v = rm.ProcessRewardModel(models["shepherd"], device="cpu", aggregate="prod")
    assert v.score_steps(QUESTION, _comps(["", "  \n\n  "])) == [[], []]
    assert v.score(QUESTION, _comps(["", "so five"]))[0] == 0.0
    assert v.score(QUESTION, []) == []


def test_prm_by_name(models):
    v = make_verifier("prm", {"model": models["qwen"], "style": "qwen", "aggregate": "last", "device": "cpu"})
    assert v.name == "prm" and v.needs == frozenset()
    s = v.score(QUESTION, _comps())
    assert len(s) == 3 and all(0.0 <= x <= 1.0 for x in s)


# -- configuration errors ---------------------------------------------------------------------------

def test_step_tag_not_a_single_token(models):
    with pytest.raises(ConfigError, match=r"step_tag 'ки ки' is not a single token"):
        rm.ProcessRewardModel(models["shepherd"], step_tag="ки ки", device="cpu")
    with pytest.raises(ConfigError, match="good_token 'plus five'"):
        make_verifier("prm", {"model": models["shepherd"], "good_token": "plus five", "device": "cpu"})
    with pytest.raises(ConfigError, match="not in its tokenizer's vocabulary"):
        rm.ProcessRewardModel(models["shepherd"], step_tag="zebra", device="cpu")


def test_tokenizer_bigger_than_embeddings(models):
    with pytest.raises(ConfigError, match=rf"{len(WORDS) + 2} tokens.*{len(WORDS)} rows"):
        rm.ProcessRewardModel(models["mismatch"], device="cpu")


@pytest.mark.parametrize("params, accepted", [
    ({"style": "mystery"}, "math_shepherd, qwen"),
    ({"aggregate": "mean"}, "last, min, prod"),
])
def test_unknown_style_or_aggregate(models, params, accepted):
    with pytest.raises(ConfigError, match=accepted):
        make_verifier("prm", {"model": models["shepherd"], "device": "cpu", **params})


def test_unknown_param_is_a_config_error(models):
    with pytest.raises(ConfigError, match="bad parameters"):
        make_verifier("prm", {"model": models["shepherd"], "stepp_tag": "ки"})
