"""Verifier protocol: a score per candidate solution (higher is better, non-negative so it can weight votes)."""
from __future__ import annotations

from typing import Protocol, Sequence

from ..backends.base import Completion, PromptLike
from ..errors import ConfigError


class Verifier(Protocol):
    name: str
    needs: frozenset[str]  # backend capabilities it relies on

    def score(self, prompt: PromptLike, completions: Sequence[Completion], ledger=None) -> list[float]:
        """One score per completion; `completion.text` is the whole (possibly partial) solution. A verifier
        that calls a model adds each call's usage to `ledger` (the request's) when one is given."""
        ...


def make_verifier(name: str, params: dict | None = None, backend=None) -> Verifier:
    from ..errors import CapabilityError

    from ..registry import verifiers

    factory = verifiers.get(name)
    try:
        v = factory(backend=backend, **(params or {}))
    except TypeError as e:
        raise ConfigError(f"verifier {name!r}: bad parameters {sorted(params or {})}: {e}") from None
    if backend is not None:
        missing = set(v.needs) - set(backend.capabilities())
        if missing:
            raise CapabilityError(
                f"verifier {name!r} needs {', '.join(sorted(missing))} from the backend, which "
                f"{type(backend).__name__} ({backend.model_id}) does not provide")
    return v
