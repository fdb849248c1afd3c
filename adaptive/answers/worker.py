"""Entry point of the bounded-call worker subprocess (see ``bounded``). A separate module so that
``python -m`` does not run a module the package ``__init__`` has already imported."""
import sys

from .bounded import serve

if __name__ == "__main__":
    serve(sys.argv[1] if len(sys.argv) > 1 else "")
