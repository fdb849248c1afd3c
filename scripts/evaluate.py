"""Thin entry point: python scripts/evaluate.py [--config default] [--limit N] [--out DIR]."""
import sys

from adaptive.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
