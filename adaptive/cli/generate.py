"""`adaptive generate PROMPT`: answer one prompt and print the answer with its compute summary."""
from __future__ import annotations

import json

from ..plan import AGGREGATIONS, THINKING_FIELDS, Plan
from .common import add_backend_args, backend_config, summary_line

HELP = "answer one prompt and print the answer with its compute summary"

# `adaptive generate` runs the Python API's default plan (4 samples, majority vote) with shorter samples.
GENERATE_PLAN = Plan(max_samples=4, max_new_tokens=128)


# flag -> Plan field; a flag left out keeps the default below (fields the strategy does not read are left out).
PLAN_FLAGS = {"strategy": "strategy", "samples": "max_samples", "wave": "wave_size", "stopping": "stopping",
              "verifier": "verifier", "aggregation": "aggregation", "refine_steps": "refine_steps",
              "width": "search_width", "beams": "search_beams", "depth": "search_depth", "extractor": "extractor",
              "max_new_tokens": "max_new_tokens", "temperature": "temperature", "seed": "seed",
              **{f: f for f in THINKING_FIELDS}}

TEXT_FLAGS = ("think_open", "think_close", "continuation_cue", "answer_cue")


def run(args) -> int:
    from ..backends.base import check_prompt
    from ..backends.factory import make_backend
    from ..generator import AdaptiveGenerator

    check_prompt(args.prompt)  # before loading anything: bad input costs nothing
    given = {field: v for flag, field in PLAN_FLAGS.items() if (v := getattr(args, flag)) is not None}
    for field in TEXT_FLAGS:  # a shell argument cannot hold a newline easily: \n in these values is one
        if field in given:
            given[field] = given[field].replace("\\n", "\n")
    if args.policy is not None:
        from ..errors import InputError
        from ..policies import load_policy

        if given:
            raise InputError(f"--policy {args.policy} picks the plan; drop the plan flags "
                             f"({', '.join('--' + f.replace('_', '-') for f in PLAN_FLAGS if getattr(args, f) is not None)})")
        policy = load_policy(args.policy)  # before loading the model: a bad file costs nothing
    else:
        policy = GENERATE_PLAN.with_strategy(given.pop("strategy", GENERATE_PLAN.strategy), **given).check_names()

    gen = AdaptiveGenerator(backend=make_backend(backend_config(args)), policy=policy,
                            time_breakdown=args.timing)
    budget = int(args.budget) if args.budget is not None and float(args.budget).is_integer() else args.budget
    result = gen.generate(args.prompt, budget=budget)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print(result.text.strip())
        print(f"\nanswer: {result.answer}")
        if result.decision.get("reason"):
            print(f"decision: {result.decision['reason']} -> {result.decision['plan']}")
        print(summary_line(result))
        if result.compute.time_breakdown:
            print("time: " + ", ".join(f"{k} {v:.3f}s" for k, v in result.compute.time_breakdown.items() if v))
    return 0


def add_arguments(p) -> None:
    from ..registry import exit_rules, extractors, stopping_rules, strategies, verifiers

    d = GENERATE_PLAN
    p.add_argument("prompt", help="the prompt to answer")
    add_backend_args(p)
    p.add_argument("--policy", default=None,
                   help="a policy file, or a shipped one by name (binned_default, allocate_default, ...): it scores "
                        "the prompt's difficulty and picks the plan; instead of the plan flags below")
    p.add_argument("--budget", type=float, default=None,
                   help="with --policy: the sample budget (a per-prompt ceiling; an index policy's budget)")
    p.add_argument("--strategy", default=None,
                   help=f"how compute is spent: {', '.join(strategies.names())} (default {d.strategy})")
    p.add_argument("--samples", type=int, default=None,
                   help=f"sampling strategies: sample cap (default {d.max_samples})")
    p.add_argument("--wave", type=int, default=None, help="sampling strategies: samples per wave (0 = all at once)")
    p.add_argument("--stopping", default=None,
                   help=f"sampling strategies: stopping rule between waves: {', '.join(stopping_rules.names())} "
                        "(default fixed)")
    p.add_argument("--verifier", default=None,
                   help=f"scores samples: {', '.join(verifiers.names())}; needed by best_of_n, beam_search, dvts "
                        "and weighted/best aggregation")
    p.add_argument("--aggregation", default=None,
                   help=f"how samples become one answer: {', '.join(AGGREGATIONS)} (default majority)")
    p.add_argument("--refine-steps", type=int, default=None, help="refine: critique-and-revise rounds")
    p.add_argument("--width", type=int, default=None, help=f"search: candidates per beam (default {d.search_width})")
    p.add_argument("--beams", type=int, default=None, help=f"search: beams kept (default {d.search_beams})")
    p.add_argument("--depth", type=int, default=None, help=f"search: max steps (default {d.search_depth})")
    p.add_argument("--extractor", default=None,
                   help=f"how the answer is read from the text: auto, {', '.join(extractors.names())} (default auto)")
    p.add_argument("--max-new-tokens", type=int, default=None, help=f"per sample (default {d.max_new_tokens})")
    p.add_argument("--temperature", type=float, default=None,
                   help=f"sampling temperature, >= 0; 0 = greedy (default {d.temperature})")
    p.add_argument("--seed", type=int, default=None, help="integer >= 0 for reproducible samples (default: none)")
    g = p.add_argument_group("thinking (--strategy thinking: N reasoning traces, each under a thinking budget, "
                             "then a majority vote; --samples sets N)")
    g.add_argument("--max-thinking-tokens", type=int, default=None,
                   help=f"hard cap on each trace's thinking tokens; at the cap the thought is closed and the answer "
                        f"forced (s1 budget forcing) (default {d.max_thinking_tokens})")
    g.add_argument("--min-thinking-tokens", type=int, default=None,
                   help="a thought the model closes earlier is reopened with the continuation cue (default 0)")
    g.add_argument("--think-open", default=None,
                   help="thinking start delimiter (with --think-close); default: from the chat template's reasoning "
                        "format where detected, else <think>")
    g.add_argument("--think-close", default=None, help="thinking end delimiter (default: with --think-open's rule, "
                                                       "</think>)")
    g.add_argument("--continuation-cue", default=None,
                   help=f"replaces the end delimiter when the model stops before the minimum (default "
                        f"{d.continuation_cue!r}; \\n in the value is a newline)")
    g.add_argument("--answer-cue", default=None,
                   help=f"appended after a thought closed for the model, and before every trial answer (default "
                        f"{d.answer_cue!r})")
    g.add_argument("--exit-rule", default=None,
                   help=f"early exit: {', '.join(exit_rules.names())}; convergence = the same trial answer "
                        f"--exit-patience probes in a row, confidence = the trial answer's mean token probability "
                        f">= --exit-threshold (default none)")
    g.add_argument("--probe-interval", type=int, default=None,
                   help=f"with an exit rule: thinking tokens between trial answers (default {d.probe_interval})")
    g.add_argument("--probe-max-tokens", type=int, default=None,
                   help=f"with an exit rule: tokens of one greedy trial answer (default {d.probe_max_tokens})")
    g.add_argument("--exit-patience", type=int, default=None,
                   help=f"convergence: equal trial answers in a row to exit (default {d.exit_patience})")
    g.add_argument("--exit-threshold", type=float, default=None,
                   help=f"confidence: mean token probability in (0, 1] to exit (default {d.exit_threshold})")
    p.add_argument("--json", action="store_true", help="print the full Result as JSON")
    p.add_argument("--timing", action="store_true", help="time breakdown: tokenize, prefill, decode, control, ...")
