"""Heuristic vs probe vs sample probe on one label log, over repeated held-out prompt splits.

OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python scripts/compare_estimators.py --logs runs/bank/arith.jsonl.gz
(a bank from `adaptive bank --task arith_mixed --samples 16 --out runs/bank/arith.jsonl.gz`, or any label log)
Features (the probes' prompt passes included) are computed once; each seed re-splits the prompts, fits on
the training side only and reports AUROC ("one sample is correct"), Spearman (with the pass rate), Brier and
ECE on the held-out side. See adaptive/estimators/compare.py.
"""
import json
import sys
import time
from pathlib import Path

from adaptive.backends.hf.loading import quiet_transformers
from adaptive.cli import ArgumentParser, run_main

# name -> (kind, constructor kwargs); "probe" is the default probe (C by grouped CV on the training prompts),
# the others show what each option adds.
SPECS = {
    "heuristic": ("heuristic", {}),
    "probe": ("probe", {}),
    "probe_hidden_only": ("probe", {"text_features": False}),
    "probe_fixed_C": ("probe", {"C": 0.1, "C_grid": None}),
    "sample_probe": ("sample_probe", {}),
}


def fmt(v, width=7):
    return f"{'n/a':>{width}}" if v is None else f"{v:{width}.3f}"


def main() -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logs", required=True, help="a sample bank, an eval run or a label log")
    ap.add_argument("--seeds", type=int, default=10, help="splits 0..N-1")
    ap.add_argument("--val-frac", type=float, default=0.3)
    ap.add_argument("--model", default=None, help="model id or path (default: the embedded model)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", default=None, help="write per-seed rows and the summary as JSON")
    args = ap.parse_args()
    from adaptive.estimators.train import load_labels

    records = load_labels(args.logs)  # a bad log is an error before anything heavy loads
    import torch

    torch.set_num_threads(1)  # the machine is shared; the work is small
    quiet_transformers()
    from adaptive.backends.hf import HFBackend
    from adaptive.estimators.compare import METRICS, compare, summarize

    backend = HFBackend.from_pretrained(args.model)
    t0 = time.perf_counter()
    rows = compare(records, SPECS, backend, seeds=range(args.seeds), val_frac=args.val_frac,
                   batch_size=args.batch_size)
    summary = summarize(rows, versus=("probe", "heuristic"))
    print(f"{len(records)} prompts from {args.logs}, model {backend.model_id}, {args.seeds} seeds, "
          f"val_frac {args.val_frac} ({rows[0]['n_train']} train / {rows[0]['n_val']} held out), "
          f"{time.perf_counter() - t0:.0f}s\n")
    names = list(SPECS)
    for metric in ("auroc", "spearman"):
        print(f"{metric} per seed (held-out)")
        print("seed " + "".join(f"{n:>18}" for n in names))
        for s in range(args.seeds):
            by = {r["name"]: r for r in rows if r["seed"] == s}
            print(f"{s:>4} " + "".join(fmt(by[n][metric], 18) for n in names))
        print()
    print("mean ± sd over seeds (held-out)")
    print(f"{'estimator':>18} " + "".join(f"{m:>16}" for m in METRICS))
    for n in names:
        cells = "".join(f"{fmt(mu)} ± {fmt(sd, 5)} " for mu, sd in (summary[n][m] for m in METRICS))
        print(f"{n:>18} {cells}")
    w = summary["wins"]
    print(f"\nprobe AUROC > heuristic on {w['wins']}/{w['of']} seeds; mean difference {w['mean_diff']:+.4f} "
          f"(sd {w['sd_diff']:.4f})")
    cv = [r["C"] for r in rows if r["name"] == "probe"]
    print(f"probe chose C = {cv} (grouped CV on each seed's training prompts)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows, "summary": summary}, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
