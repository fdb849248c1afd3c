"""Estimator: predicts p_hat, the probability that ONE sample for a prompt is correct, and its bin.

Damani et al. 2024 ("Learning How Hard to Think: Input-Adaptive Allocation of LM Computation") train a
small model to predict the marginal benefit of compute from the prompt; Snell et al. 2024 bucket prompts
into difficulty bins and pick a strategy per bin. An estimator here does both halves:

    est.fit(prompts, labels)          # labels: empirical pass rates in [0, 1] (see regression.py for how)
    est.score(prompts) -> [Difficulty(p_hat, bin, estimator=kind)]   # [] for []

`needs` says what an estimator consumes beyond the text:
  "text"         only the prompt (heuristic)
  "prompt_pass"  the prompt's forward pass (probe) — pass `prompt_passes` from a generation made with
                 hidden_states=True to spend nothing; otherwise it runs one prompt-only pass per batch
  "first_sample" one cheap sample (sample_probe) — pass `first_samples`, or it draws them and exposes
                 them so the strategy can reuse them as its first samples

Bins: see bins.py — bin 0 is the hardest (lowest p_hat); default 5 equal-width bins over [0, 1].
Persistence: see persistence.py — an .npz of float64 arrays + a JSON sidecar; loading runs no code from them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError, InputError
from ..result import Difficulty
from . import persistence
from .bins import bin_of, check_edges
from .regression import FittedModel, ModelSpec, fit_model

NEEDS = ("text", "prompt_pass", "first_sample")


class Estimator:
    kind: str = "base"
    needs: str = "text"
    uses_model: bool = False  # p_hat depends on the backend's model: its identity is saved and checked

    def __init__(self, backend=None, *, bin_edges=None, model: str = "logistic", C: float = 1.0,
                 alpha: float = 1.0, pca: int | None = None, calibration: str = "auto", cv: int = 3,
                 seed: int = 0, C_grid=None, model_id: str | None = None, config_hash: str | None = None):
        self.backend = backend
        self.bin_edges = check_edges(bin_edges)
        self.spec = ModelSpec(model=model, C=C, alpha=alpha, pca=pca, calibration=calibration, cv=cv, seed=seed,
                              C_grid=C_grid)
        mid, chash = persistence.identity(backend)
        self.model_id = mid if mid is not None else model_id
        self.config_hash = chash if chash is not None else config_hash
        self.model_: FittedModel | None = None
        self.n_train_: int = 0
        self.feature_names_: list[str] | None = None

    # -- to implement ---------------------------------------------------------------------------
    def features(self, prompts: Sequence, prompt_passes=None, first_samples=None, ledger=None) -> np.ndarray:
        """[len(prompts), n_features] float matrix. Any model call it makes is added to `ledger` (if given)."""
        raise NotImplementedError

    def _config(self) -> dict:
        """Constructor kwargs beyond the shared ones (JSON-serialisable), to rebuild on load."""
        return {}

    def _state(self) -> dict:
        """Fitted state beyond the model, as plain JSON values (saved in the sidecar's "state")."""
        return {}

    def _set_state(self, state: dict) -> None:
        """Restore what _state() gave (read back from JSON: lists for tuples); ConfigError when invalid."""

    def _meta(self) -> dict:
        """Extra metadata for the sidecar."""
        return {}

    @classmethod
    def _upgrade_config(cls, config: dict) -> dict:
        """Fill in options that files written before they existed lack (their old behaviour, not today's default)."""
        return config

    # -- shared --------------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self.model_ is not None

    def config(self) -> dict:
        return {"bin_edges": list(self.bin_edges), **self.spec.to_dict(), **self._config()}

    def fit(self, prompts: Sequence, labels: Sequence[float], prompt_passes=None, first_samples=None,
            counts: Sequence[float] | None = None) -> "Estimator":
        """Fit on pass rates `labels` (one per prompt, in [0, 1]); `counts` = samples behind each rate
        (weights; default 1). Returns self."""
        prompts = list(prompts)
        if not prompts:
            raise InputError("fit needs at least one prompt")
        if len(labels) != len(prompts):
            raise InputError(f"{len(prompts)} prompts but {len(labels)} labels")
        return self.fit_features(self.features(prompts, prompt_passes, first_samples), labels, counts)

    def fit_features(self, X, labels: Sequence[float], counts: Sequence[float] | None = None) -> "Estimator":
        """Fit on a precomputed feature matrix (rows from `features`, e.g. built in chunks)."""
        self.model_ = fit_model(X, labels, self.spec, counts)
        self.n_train_ = int(np.asarray(X).shape[0])
        if self.backend is not None:
            mid, chash = persistence.identity(self.backend)
            self.model_id = mid if mid is not None else self.model_id
            self.config_hash = chash if chash is not None else self.config_hash
        return self

    def predict(self, prompts: Sequence, prompt_passes=None, first_samples=None, ledger=None) -> np.ndarray:
        """p_hat per prompt as a float array; model calls made for it are added to `ledger` (if given)."""
        prompts = list(prompts)
        if not prompts:
            return np.zeros(0)
        if self.model_ is None:
            raise InputError(f"{self.kind} estimator is not fitted: call fit() or load() first")
        return self.model_.predict(self.features(prompts, prompt_passes, first_samples, ledger))

    def score(self, prompts: Sequence, prompt_passes=None, first_samples=None, ledger=None) -> list[Difficulty]:
        p = self.predict(prompts, prompt_passes, first_samples, ledger)
        return [Difficulty(p_hat=float(v), bin=bin_of(v, self.bin_edges), estimator=self.kind) for v in p]

    def set_bin_edges(self, edges) -> None:
        self.bin_edges = check_edges(edges)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write PATH (.npz: the model's arrays) and PATH.json (metadata and other state); see persistence.py."""
        if self.model_ is None:
            raise InputError(f"cannot save an unfitted {self.kind} estimator")
        if self.uses_model and self.model_id is None:
            raise InputError(f"{self.kind} estimator depends on the model but does not know its id: construct it "
                             "with backend= (or model_id=) before saving")
        persistence.check_path(path)
        state = {"feature_names": self.feature_names_, **self._state()}
        meta = {"kind": self.kind, "needs": self.needs, "config": self.config(),
                "model_id": self.model_id if self.uses_model else None,
                "config_hash": self.config_hash if self.uses_model else None,
                "bin_edges": list(self.bin_edges), "feature_size": self.model_.n_features,
                "calibration": self.model_.calibration, "C": self.model_.C, "n_train": self.n_train_,
                "layers": None, **self._meta(), "model": self.model_.describe(), "state": state}
        return persistence.write(path, self.model_.arrays, meta)

    @classmethod
    def load(cls, path, backend=None) -> "Estimator":
        """Load a saved estimator. On the base class the kind is read from the file; on a subclass the file
        must be of that kind. ConfigError for a missing/malformed/corrupt file or a model mismatch."""
        meta = persistence.read_meta(path)
        kind = meta["kind"]
        target = cls
        if cls is Estimator or getattr(cls, "kind", None) != kind:
            from ..registry import estimators

            if kind not in estimators:
                raise ConfigError(f"estimator file {path}: unknown estimator kind {kind!r}")
            target = estimators.get(kind)
            if cls is not Estimator and not issubclass(target, cls):
                raise ConfigError(f"estimator file {path} holds a {kind!r} estimator, not {cls.kind!r}")
        persistence.check_identity(meta, backend, path)
        try:
            est = target(backend=backend, **target._upgrade_config(dict(meta["config"])))
        except (TypeError, InputError) as e:
            raise ConfigError(f"estimator metadata {persistence.sidecar_path(path)}: bad config: {e}") from None
        try:
            shapes = FittedModel.array_shapes(meta["model"])
            if meta["model"]["n_features"] != meta["feature_size"]:
                raise ConfigError(f"model n_features={meta['model']['n_features']} but feature_size="
                                  f"{meta['feature_size']}")
            state = _check_state(meta["state"], meta["feature_size"])
            n_train = meta.get("n_train", 0)
            if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 0:
                raise ConfigError(f"n_train={n_train!r}: must be an integer >= 0")
        except ConfigError as e:
            raise ConfigError(f"estimator metadata {persistence.sidecar_path(path)} is malformed: {e}") from None
        arrays = persistence.read_arrays(path, meta, shapes)
        try:
            est.model_ = FittedModel.from_arrays(meta["model"], arrays)
        except ConfigError as e:
            raise ConfigError(f"estimator file {path} is malformed: {e}") from None
        est.n_train_ = n_train
        est.feature_names_ = state.get("feature_names")
        if meta.get("model_id") is not None:
            est.model_id, est.config_hash = meta["model_id"], meta.get("config_hash")
        try:
            est._set_state(state)
        except ConfigError as e:
            raise ConfigError(f"estimator file {path} is inconsistent: {e}") from None
        est.metadata = meta
        return est

    def __repr__(self) -> str:
        status = f"fitted on {self.n_train_}" if self.fitted else "unfitted"
        return f"<{type(self).__name__} kind={self.kind} needs={self.needs} {status}>"


def _check_state(state: dict, n_features: int) -> dict:
    names = state.get("feature_names")
    if names is not None and (not isinstance(names, list) or len(names) != n_features
                              or not all(isinstance(n, str) for n in names)):
        raise ConfigError(f"state.feature_names must be null or {n_features} strings")
    return state


def check_batch(prompts: Sequence, items, what: str) -> list | None:
    """`items` aligned with prompts (or None)."""
    if items is None:
        return None
    items = list(items)
    if len(items) != len(prompts):
        raise InputError(f"{len(prompts)} prompts but {len(items)} {what}")
    return items


def prompt_text(prompt) -> str:
    """The text of a prompt: a string, or chat messages joined by newlines."""
    if isinstance(prompt, str):
        return prompt
    try:
        return "\n".join(str(m["content"]) for m in prompt)
    except (TypeError, KeyError):
        raise InputError(f"prompt must be a string or chat messages, got {type(prompt).__name__}") from None
