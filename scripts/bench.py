"""Thin entry point: python scripts/bench.py [--config default] [--quick]."""
import sys

from adaptive.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
