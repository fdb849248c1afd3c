"""Turn graded sample logs into a sample bank whose p_hat are cross-fitted (out-of-fold), so the
tuner's held-out split never sees an estimator trained on its own prompts.

python scripts/crossfit_bank.py --logs runs/labels/arith_k16.jsonl --estimator probe --out runs/bank/arith.jsonl
"""
import random
import sys

from adaptive.backends.hf.loading import quiet_transformers
from adaptive.cli import ArgumentParser, run_main


def main() -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logs", required=True)
    ap.add_argument("--estimator", default="probe")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    quiet_transformers()
    from adaptive.bank import Bank
    from adaptive.estimators import make_estimator
    from adaptive.estimators.train import load_labels

    bank = Bank.from_jsonl(args.logs, extractor="number", grader="numeric")
    records = {r["id"]: r for r in load_labels(args.logs)}
    backend = None
    if args.estimator != "heuristic":
        from adaptive.backends.hf import HFBackend

        backend = HFBackend.from_pretrained()
    ids = sorted(p.id for p in bank.prompts)
    random.Random(args.seed).shuffle(ids)
    fold = {pid: i % args.folds for i, pid in enumerate(ids)}
    for k in range(args.folds):
        train = [records[p.id] for p in bank.prompts if fold[p.id] != k]
        est = make_estimator(args.estimator, backend)
        est.fit([r["prompt"] for r in train], [r["pass_rate"] for r in train],
                counts=[r.get("n_samples", 1) for r in train])
        held = [p for p in bank.prompts if fold[p.id] == k]
        for p, d in zip(held, est.score([p.prompt for p in held])):
            p.p_hat, p.bin = float(d.p_hat), int(d.bin)
    bank.source["difficulty"] = f"{args.estimator}, {args.folds}-fold cross-fitted"
    bank.save(args.out)
    print(f"bank of {len(bank.prompts)} prompts with out-of-fold {args.estimator} p_hat -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
