"""Verifiers: score candidate solutions. Registered by name; build one with `make_verifier`."""
from . import judge, logprob, reward_model  # noqa: F401  (registration)
from .base import Verifier, make_verifier

__all__ = ["Verifier", "make_verifier"]
