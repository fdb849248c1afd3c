"""`adaptive bank`: draw K samples per prompt with the eval runner and save them as a sample bank."""
from __future__ import annotations

from .common import positive_int

HELP = "draw K samples per prompt with the eval runner and save a sample bank"


def run(args) -> int:
    from ..bank.build import build_bank

    bank = build_bank(args.config, args.out, samples=args.samples, policy=args.policy, limit=args.limit,
                      run_dir=args.run_dir, estimator=args.estimator, progress=not args.quiet)
    k = bank.max_samples
    acc1 = sum(p.pass_rate for p in bank.prompts) / len(bank)
    print(f"bank: {len(bank)} prompts x up to {k} samples (policy {bank.source.get('policy')}), "
          f"mean pass rate {acc1:.3f}{', with p_hat' if bank.has_difficulty else ''} -> {args.out}")
    return 0


def add_arguments(p) -> None:
    p.add_argument("--config", required=True, help="eval config: a file, or a shipped one by name (bank_arith)")
    p.add_argument("--out", required=True, help="bank file to write (JSONL)")
    p.add_argument("--samples", type=positive_int, default=None, help="K: run one fixed-K sampling policy")
    p.add_argument("--policy", default=None, help="use this policy of the config as it is (instead of --samples)")
    p.add_argument("--limit", type=positive_int, default=None, help="number of prompts, >= 1 (overrides the config)")
    p.add_argument("--run-dir", default=None, help="eval run directory (default runs/bank_<config name>)")
    p.add_argument("--estimator", default=None, help="estimator file: store p_hat and bin per prompt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
