"""Sample banks (bank.py), offline replay of sampling policies on them (simulate.py), and building one
with the eval runner (build.py; the `adaptive bank` command is adaptive/cli/bank.py)."""
from .bank import Bank, as_bank
from .build import build_bank
from .simulate import FixedCurve, NotReplayable, SimResult, Simulator, simulate

__all__ = ["Bank", "FixedCurve", "NotReplayable", "SimResult", "Simulator",
           "as_bank", "build_bank", "simulate"]
