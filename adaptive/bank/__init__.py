"""Sample banks (bank.py), offline replay of sampling policies on them (simulate.py), and the
`adaptive bank` command that builds one with the eval runner (build.py)."""
from .bank import Bank, BankPrompt, BankSample, as_bank
from .build import add_bank_arguments, main_bank
from .simulate import FixedCurve, NotReplayable, SimResult, Simulator, simulate

__all__ = ["Bank", "BankPrompt", "BankSample", "FixedCurve", "NotReplayable", "SimResult", "Simulator",
           "add_bank_arguments", "as_bank", "main_bank", "simulate"]
