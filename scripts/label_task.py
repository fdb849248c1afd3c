"""Sample K completions per prompt of a task and grade them: the logs that estimators train on.

python scripts/label_task.py --task arith_mixed --limit 150 --k 16 --out runs/labels/arith_k16.jsonl
Each line: id, prompt, gold, meta, samples [{answer, correct, tokens, ...}], pass_rate, majority_correct.
"""
import json
import sys
import time
from pathlib import Path

from adaptive.backends.base import SamplingParams
from adaptive.backends.hf.loading import quiet_transformers
from adaptive.cli import ArgumentParser, run_main
from adaptive.cli.common import positive_int
from adaptive.errors import InputError


def main() -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="arith_mixed")
    ap.add_argument("--limit", type=positive_int, default=150, help="prompts (default 150)")
    ap.add_argument("--k", type=positive_int, default=16, help="samples per prompt (default 16)")
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--batch-size", type=positive_int, default=4, help="prompts per backend call")
    ap.add_argument("--model", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                    help="keep examples whose meta KEY equals VALUE (e.g. difficulty=easy); repeatable")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    quiet_transformers()
    from adaptive.backends.hf import HFBackend
    from adaptive.estimators.train import build_labels
    from adaptive.tasks import load_task

    bad = [w for w in args.where if "=" not in w]
    if bad:
        raise InputError(f"--where {bad[0]!r}: expected KEY=VALUE")
    where = dict(w.split("=", 1) for w in args.where) or None
    spec, examples, _ = load_task(args.task, limit=args.limit, shuffle=False, where=where)
    backend = HFBackend.from_pretrained(args.model)
    by_id = {ex.id: ex for ex in examples}
    rows = [{"id": ex.id, "prompt": ex.prompt} for ex in examples]
    t0 = time.perf_counter()
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0.7, top_logprobs=5, seed=args.seed)
    records = build_labels(backend, rows, args.k, lambda ans, e: spec.grade(ans, by_id[e["id"]]) >= 0.5,
                           params=params, extract=lambda text, e: spec.extract(text, by_id[e["id"]]),
                           batch_size=args.batch_size)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        for r in records:
            ex = by_id[r["id"]]
            f.write(json.dumps({**r, "gold": ex.gold, "meta": ex.meta, "model_id": backend.model_id}) + "\n")
    dt = time.perf_counter() - t0
    print(f"{len(records)} prompts x {args.k} samples in {dt:.0f}s "
          f"({backend.totals.generated_tokens / dt:.1f} generated tok/s) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
