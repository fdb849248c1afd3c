"""Build a backend from a config mapping (`backend:` in YAML, `--backend` on the CLI)."""
from __future__ import annotations

from ..errors import ConfigError, NotImplementedFeature

KINDS = ("hf", "openai")


def make_backend(cfg: dict | None, model: str | None = None):
    cfg = dict(cfg or {})
    kind = cfg.pop("kind", "hf")
    if kind == "hf":
        from .hf import HFBackend

        extra = {k: cfg[k] for k in ("max_batch_rows",) if k in cfg}
        return HFBackend.from_pretrained(model, device=cfg.get("device", "auto"), dtype=cfg.get("dtype", "auto"),
                                         **extra)
    if kind == "openai":
        raise NotImplementedFeature("the OpenAI-compatible server backend is not implemented yet; use kind: hf")
    raise ConfigError(f"backend kind {kind!r} unknown; known: {', '.join(KINDS)}")
