"""`adaptive bank`: K graded samples per prompt, saved as a sample bank (adaptive/graded.py rows).

    adaptive bank --task skills_mixed --split train --samples 32 --out banks/skills.jsonl.gz   # drawn directly
    adaptive bank --config bank_arith --samples 16 --out banks/arith.jsonl                    # via an eval run

`--task`: every prompt of the task (or one half of its split by prompt text) sampled K times in one call
per batch, with top-k logprobs so each sample keeps its DeepConf confidence; resumable (a partial file
beside --out). `--config`: an eval config's first sampling policy run as fixed-K self-consistency
through the eval runner (adaptive/bank/build.py). Either bank trains estimators
(`adaptive train-estimator --logs BANK`) and tunes policies (`adaptive tune --bank BANK`).
"""
from __future__ import annotations

HELP = "draw K graded samples per prompt (a task, or an eval config's policy) and save a sample bank"


def run(args) -> int:
    from ..errors import InputError

    if (args.task is None) == (args.config is None):
        raise InputError("give exactly one of --task (draw from a task) or --config (an eval config's policy)")
    if args.task is not None:
        bank = _from_task(args)
    else:
        from ..bank.build import build_bank

        bank = build_bank(args.config, args.out, samples=args.samples, policy=args.policy, limit=args.limit,
                          run_dir=args.run_dir, estimator=args.estimator, progress=not args.quiet)
    k = bank.max_samples
    acc1 = sum(p.pass_rate for p in bank.prompts) / len(bank)
    print(f"bank: {len(bank)} prompts x up to {k} samples, mean pass rate {acc1:.3f}"
          f"{', with p_hat' if bank.has_difficulty else ''} -> {args.out}")
    return 0


def _from_task(args):
    from pathlib import Path

    from ..backends.hf import HFBackend
    from ..bank.draw import draw_bank, split_by_text
    from ..errors import InputError
    from ..tasks import load_task

    if args.samples is None or args.samples < 1:
        raise InputError("--task needs --samples K (an integer >= 1)")
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit {args.limit}: an integer >= 1")
    spec, examples, _ = load_task(args.task, shuffle=False)
    if args.split != "all":
        train, held = split_by_text(examples)
        examples = train if args.split == "train" else held
    examples = examples[: args.limit] if args.limit else examples
    out = Path(args.out)
    backend = HFBackend.from_pretrained(args.model)
    bank = draw_bank(backend, spec, examples, args.samples, max_new_tokens=args.max_new_tokens,
                     temperature=args.temperature, batch_size=args.batch_size, seed=args.seed,
                     partial=out.with_name(out.name + ".partial.jsonl"),
                     progress=None if args.quiet else lambda d, n: print(f"bank: {d}/{n} prompts", flush=True),
                     source={"split": args.split})
    bank.save(out)
    return bank


def add_arguments(p) -> None:
    p.add_argument("--task", default=None, help="draw from this task (a shipped name or a task file)")
    p.add_argument("--split", default="all", choices=["all", "train", "held_out"],
                   help="--task: all prompts, or one half of the split by prompt text (sha256 parity)")
    p.add_argument("--config", default=None, help="or: an eval config (a file, or a shipped one by name: bank_arith)")
    p.add_argument("--out", required=True, help="bank file to write (JSONL; .jsonl.gz is gzipped)")
    p.add_argument("--samples", type=int, default=None, help="K samples per prompt")
    p.add_argument("--limit", type=int, default=None, help="at most this many prompts")
    p.add_argument("--model", default=None, help="--task: hub id or local path (default: the embedded model)")
    p.add_argument("--max-new-tokens", type=int, default=40, help="--task: tokens per sample (default 40)")
    p.add_argument("--temperature", type=float, default=0.7, help="--task: sampling temperature (default 0.7)")
    p.add_argument("--batch-size", type=int, default=4, help="--task: prompts per backend call (default 4)")
    p.add_argument("--seed", type=int, default=1000, help="--task: seed of the first call (call at i: seed + i)")
    p.add_argument("--policy", default=None, help="--config: use this policy as it is (instead of --samples)")
    p.add_argument("--run-dir", default=None, help="--config: eval run directory (default runs/bank_<config name>)")
    p.add_argument("--estimator", default=None, help="--config: estimator file: store p_hat and bin per prompt")
    p.add_argument("--quiet", action="store_true", help="no progress output")
