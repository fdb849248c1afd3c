"""Does the offline simulator predict a real run? Replay each policy of an eval run on a sample bank
restricted to the run's prompts and print simulated vs real accuracy and samples side by side.

python scripts/sim_vs_real.py --run runs/default --bank runs/bank/arith_probe.jsonl
"""
import sys

from adaptive.cli import ArgumentParser, run_main
from adaptive.metrics.stats import wilson_interval


def main() -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--bank", required=True)
    ap.add_argument("--seeds", type=int, default=200)
    args = ap.parse_args()
    from adaptive.bank import Bank
    from adaptive.bank.simulate import Simulator
    from adaptive.evaluate.report import load_run
    from adaptive.plan import Plan

    records = load_run(args.run)
    bank = Bank.load(args.bank)
    by_id = {p.id: p for p in bank.prompts}
    print(f"{'policy':16s} {'n':>3s} {'real acc [95% CI]':>22s} {'sim acc':>8s} {'real samples':>12s} "
          f"{'sim samples':>11s}  inside CI")
    for policy in sorted({r["policy"] for r in records}):
        rs = [r for r in records if r["policy"] == policy and r["id"] in by_id]
        if not rs:
            continue
        sub = Bank([by_id[r["id"]] for r in rs], dict(bank.source))
        sim = Simulator(sub, seeds=args.seeds).run_plan(Plan.from_dict(rs[0]["plan"]))
        k = sum(r["correct"] >= 0.5 for r in rs)
        lo, hi = wilson_interval(k, len(rs))
        real_samples = sum(r["compute"]["samples"] for r in rs) / len(rs)
        print(f"{policy:16s} {len(rs):3d} {k / len(rs):8.3f} [{lo:.2f}, {hi:.2f}]    {sim.accuracy:8.3f} "
              f"{real_samples:12.2f} {sim.mean_samples:11.2f}  {'yes' if lo <= sim.accuracy <= hi else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
