"""Strategies: plain functions `(task, plan, backend, verifier) -> Result`, registered by name."""
from . import refine, sampling, search  # noqa: F401  (registration)
from .base import Task, vote

__all__ = ["Task", "vote"]
