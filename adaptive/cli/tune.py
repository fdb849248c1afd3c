"""`adaptive tune`: tune policies on a sample bank; one policy per budget, an index and the frontier."""
from __future__ import annotations

from ..errors import ConfigError

HELP = "tune policies on a sample bank; write one policy per budget and the frontier"


def run(args) -> int:
    from ..bank.bank import Bank
    from ..tune.outputs import run_tune

    bank = (Bank.from_jsonl(args.bank, extractor=args.extractor, grader=args.grader) if args.import_jsonl
            else Bank.load(args.bank))
    estimator = None if args.estimator == "none" else args.estimator
    if estimator is not None and not bank.has_difficulty and not args.oracle_p_hat:
        from ..estimators import make_estimator
        from ..estimators.train import estimators_need_model

        backend = None
        if estimators_need_model(estimator):  # a probe reads the model's prompt pass
            from ..backends.hf import HFBackend

            backend = HFBackend.from_pretrained(args.model)
        estimator = make_estimator(estimator, backend)
    run_tune(bank, parse_budgets(args.budgets), args.out, config=args.config, seeds=args.seeds,
             oracle=args.oracle_p_hat, bank_path=str(args.bank), quiet=args.quiet, estimator=estimator)
    return 0


def parse_budgets(text: str) -> list[float]:
    try:
        vals = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--budgets {text!r}: comma-separated numbers") from None
    if not vals or any(v < 1 for v in vals):
        raise ConfigError(f"--budgets {text!r}: numbers >= 1 (mean samples per prompt)")
    return vals


def add_arguments(p) -> None:
    p.add_argument("--bank", required=True, help="sample bank (adaptive bank output; or plain JSONL with --import)")
    p.add_argument("--budgets", default="1,2,4,8,16", help="mean samples per prompt, comma-separated")
    p.add_argument("--out", required=True, help="policies/<name>.yaml: the index; per-budget files beside it")
    p.add_argument("--config", default=None, help="search space: a file, or a shipped one by name (default: default)")
    p.add_argument("--seeds", type=int, default=None, help="replay orders per prompt (overrides the config)")
    p.add_argument("--import", dest="import_jsonl", action="store_true",
                   help="--bank is plain JSONL (question, gold, outputs/answers): import it with --extractor/--grader")
    p.add_argument("--extractor", default="auto", help="with --import: answer extractor for raw outputs")
    p.add_argument("--grader", default=None, help="with --import: grader for samples without 'correct'")
    p.add_argument("--estimator", default="heuristic",
                   help="bank without p_hat: the estimator cross-fitted on the bank's prompts for the difficulty "
                        "families (heuristic: text only, the default; probe: loads the embedded model; none: skip "
                        "those families); it is saved beside the policies that use it")
    p.add_argument("--model", default=None, help="--estimator probe: hub id or local path (default: the embedded model)")
    p.add_argument("--oracle-p-hat", action="store_true",
                   help="bank without p_hat: use each prompt's pass rate (an oracle upper bound) for binned/allocate")
    p.add_argument("--quiet", action="store_true", help="print only the summary lines")
