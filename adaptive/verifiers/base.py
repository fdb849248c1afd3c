"""Verifier protocol: a score per candidate solution (higher is better, non-negative so it can weight votes)."""
from __future__ import annotations

from typing import Protocol, Sequence

from ..backends.base import Completion, PromptLike
from ..errors import ConfigError
from ..registries import verifiers


class Verifier(Protocol):
    name: str
    needs: frozenset[str]  # backend capabilities it relies on

    def score(self, prompt: PromptLike, completions: Sequence[Completion]) -> list[float]:
        """One score per completion; `completion.text` is the whole (possibly partial) solution."""
        ...


def make_verifier(name: str, params: dict | None = None, backend=None) -> Verifier:
    from ..errors import CapabilityError
    from ..registries import load_builtins

    load_builtins()
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
