"""Thin entry point: python scripts/evaluate.py [--config configs/eval/default.yaml] [--limit N] [--out DIR]."""
import sys

from adaptive.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
