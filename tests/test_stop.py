"""The one stop / EOS / length / abort decision (adaptive/backends/stop.py) that every backend uses."""
from adaptive.backends.base import Request, SamplingParams
from adaptive.backends.fake import FakeBackend
from adaptive.backends.stop import Ending, StopCheck


def test_earliest_stop_string_wins_and_is_cut():
    check = StopCheck(SamplingParams(stop=("\n\n", "b", "ab")))
    assert check.earliest_stop("xxab\n\n") == (2, "ab")
    assert check.stop_end("xxab\n\n") == 4  # token by token, "ab" and "b" complete at the same character
    assert check.end("xxab\n\nyy", "stop") == Ending("xx", "stop", "ab")
    assert check.end("no stop here", "length") == Ending("no stop here", "length")


def test_server_finish_reasons():
    check = StopCheck(SamplingParams(stop=(" 6",)))
    assert check.end(" 4, 5,", "stop", named_stop=" 6") == Ending(" 4, 5,", "stop", " 6")   # vLLM: stripped, named
    assert check.end(" 4, 5, 6", "stop") == Ending(" 4, 5,", "stop", " 6")                  # transformers serve: kept
    assert check.end(" 4, 5.", "stop") == Ending(" 4, 5.", "eos")                            # EOS (or unnamed stop)
    assert check.end(" 4, 5.", "stop", named_stop="?") == Ending(" 4, 5.", "eos")
    assert check.end(" 4, 5", "abort") == Ending(" 4, 5", "abort")


def test_decode_loop_precedence_eos_then_stop_then_abort():
    tops = [[-3.0, -3.0]] * 4  # token confidence 3
    check = StopCheck(SamplingParams(stop=("!",), top_logprobs=2, confidence_floor=5.0, confidence_window=4), {7})
    assert check.after_token(7, tops, "hi!") == "eos"
    assert check.after_token(1, tops, "hi!") == "stop"
    assert check.after_token(1, tops, "hi") == "abort"
    assert check.after_token(1, tops[:3], "hi") is None  # fewer tokens than the window: not judged yet
    assert StopCheck(SamplingParams(ignore_eos=True), {7}).after_token(7, [], "") is None
    assert check.tail_tokens == 1 + 8


def test_fake_backend_ends_samples_like_a_real_one():
    fake = FakeBackend(["abcdef"])
    gen = fake.generate([Request("q")], SamplingParams(stop=("cdef", "d"), max_new_tokens=10))
    c = gen.completions[0][0]  # "d" completes first (at 4 characters); "cdef" never does
    assert (c.text, c.finish_reason, c.stop_string, c.n_tokens) == ("abc", "stop", "d", 4)
    c = fake.generate([Request("q")], SamplingParams(max_new_tokens=4)).completions[0][0]
    assert (c.text, c.finish_reason, c.n_tokens) == ("abcd", "length", 4)
    c = fake.generate([Request("q")], SamplingParams(max_new_tokens=10)).completions[0][0]
    assert (c.text, c.finish_reason, c.n_tokens) == ("abcdef", "eos", 7)
    p = SamplingParams(max_new_tokens=10, top_logprobs=2, confidence_floor=5.0, confidence_window=3)
    c = fake.generate([Request("q")], p).completions[0][0]  # confidence 1.0 < 5 after 3 tokens
    assert (c.text, c.finish_reason, c.n_tokens, len(c.top_logprobs)) == ("abc", "abort", 3, 3)
