"""Probe estimator: a linear probe on the model's own hidden states of the prompt (Damani et al. 2024).

Features = for each pooling in `pooling` ("mean" over prompt tokens and/or "last" token) and each layer in
`layers`, that layer's hidden vector; then prompt statistics: log1p(n_tokens), the entropy and the max
probability of the next-token distribution at the end of the prompt (0, 0 when the pass has none); then,
with `text_features` (default on), the heuristic's surface features of the prompt text (heuristic.py), so
the probe sees everything the text baseline sees. Files saved before that option existed load without them.

`layers` entries: a float in [0, 1] is a relative depth over the transformer blocks (0.5 -> the middle
block's output, round(0.5 * n_layers)); an int is an index into the hidden-state stack (0 = embeddings,
n_layers = last block; negatives count from the end). Default (0.5, 0.75): middle layers carry the most
linearly decodable "will I get this right" signal. They are resolved on the first fit and saved.

Pipeline: StandardScaler -> optional PCA -> LogisticRegression (or Ridge) + calibration; see regression.py.
The features are wide (layers x poolings x hidden) and training sets small, so the regularisation matters
and depends on the task: by default (C_grid="auto") the logistic C is chosen from DEFAULT_C_GRID by grouped
CV on the training prompts (on the 500-prompt skills mix it picks 0.001-0.01 and gains +0.018 AUROC over a
fixed C=0.1). Pass C_grid=None to fit the given C as is.

Cost contract: with `prompt_passes` (PromptPass per prompt, e.g. `Generation.prompt_passes` from
generate(..., hidden_states=True)) it makes ZERO backend calls. Without them it calls
`backend.prompt_pass(prompts)` exactly once for the batch (only for the prompts whose pass is missing).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import CapabilityError, ConfigError, InputError
from .base import Estimator, check_batch, prompt_text
from .heuristic import FEATURE_NAMES as TEXT_NAMES
from .heuristic import text_features as surface_features

POOLINGS = ("mean", "last")
DEFAULT_C_GRID = (0.001, 0.01, 0.1, 1.0)
STAT_NAMES = ("log_n_tokens", "next_token_entropy", "next_token_max_prob")


def _np(t) -> np.ndarray:
    if t is None:
        return None
    if hasattr(t, "detach"):
        t = t.detach()
        if hasattr(t, "float"):
            t = t.float()
        t = t.cpu().numpy()
    return np.asarray(t, dtype=np.float64)


def next_token_stats(logprobs) -> tuple[float, float]:
    """(entropy in nats, max probability) of a next-token logprob vector; (0, 0) when absent."""
    lp = _np(logprobs)
    if lp is None or lp.size == 0:
        return 0.0, 0.0
    lp = lp.reshape(-1)
    finite = np.isfinite(lp)
    if not finite.any():
        return 0.0, 0.0
    lp = lp[finite]
    lp = lp - np.logaddexp.reduce(lp)  # renormalise (guards against truncated vocabularies)
    p = np.exp(lp)
    return float(-(p * lp).sum()), float(p.max())


def resolve_layers(layers: Sequence, n_states: int) -> list[int]:
    """Indices into a hidden-state stack of `n_states` = n_layers + 1 entries."""
    n_layers = n_states - 1
    out = []
    for spec in layers:
        if isinstance(spec, bool):
            raise InputError(f"layers entry {spec!r}: must be a float depth in [0, 1] or an int index")
        if isinstance(spec, float):
            if not 0.0 <= spec <= 1.0:
                raise InputError(f"layers entry {spec!r}: a relative depth must be in [0, 1]")
            idx = int(round(spec * n_layers))
        elif isinstance(spec, (int, np.integer)):
            idx = int(spec) + (n_states if spec < 0 else 0)
            if not 0 <= idx < n_states:
                raise InputError(f"layers entry {spec!r}: out of range for {n_states} hidden states")
        else:
            raise InputError(f"layers entry {spec!r}: must be a float depth in [0, 1] or an int index")
        if idx not in out:
            out.append(idx)
    return out


class ProbeEstimator(Estimator):
    kind = "probe"
    needs = "prompt_pass"
    uses_model = True

    def __init__(self, backend=None, *, layers: Sequence = (0.5, 0.75), pooling: Sequence[str] = ("mean", "last"),
                 token_stats: bool = True, text_features: bool = True, raw: bool = False, C: float = 0.1,
                 C_grid="auto", **kw):
        if isinstance(C_grid, str) and C_grid == "auto":
            C_grid = DEFAULT_C_GRID if kw.get("model", "logistic") == "logistic" else None
        super().__init__(backend, C=C, C_grid=C_grid, **kw)
        if isinstance(layers, (int, float)):
            layers = (layers,)
        self.layers = tuple(layers)
        if not self.layers:
            raise InputError("layers must name at least one layer")
        if isinstance(pooling, str):
            pooling = (pooling,)
        self.pooling = tuple(pooling)
        if not self.pooling or any(p not in POOLINGS for p in self.pooling):
            raise InputError(f"pooling={list(self.pooling)}: each must be one of {', '.join(POOLINGS)}")
        self.token_stats = bool(token_stats)
        self.text_features = bool(text_features)
        self.raw = bool(raw)
        self.layer_indices_: list[int] | None = None
        self.hidden_shape_: tuple[int, int] | None = None
        self.backend_calls = 0  # prompt_pass calls this estimator made (for accounting and tests)

    # -- prompt passes ---------------------------------------------------------------------------
    def passes_for(self, prompts: Sequence, prompt_passes=None, ledger=None) -> list:
        """The prompt pass of every prompt: the given ones, plus ONE backend call for any that are missing
        (its usage added to `ledger` when one is given)."""
        given = check_batch(prompts, prompt_passes, "prompt passes")
        passes = given if given is not None else [None] * len(prompts)
        missing = [i for i, p in enumerate(passes) if p is None]
        if missing:
            if self.backend is None:
                raise InputError("the probe needs prompt passes: pass prompt_passes= or construct it with backend=")
            if "hidden_states" not in _caps(self.backend):
                raise CapabilityError(f"backend {getattr(self.backend, 'model_id', '?')!r} gives no hidden states; "
                                      "the probe needs them")
            todo = [prompts[i] for i in missing]
            batch = self.backend.prompt_pass(todo, raw=True) if self.raw else self.backend.prompt_pass(todo)
            self.backend_calls += 1
            if ledger is not None:
                ledger.add(batch.usage)
            got = list(batch.passes)
            if len(got) != len(todo):
                raise InputError(f"backend returned {len(got)} prompt passes for {len(todo)} prompts")
            passes = list(passes)
            for i, p in zip(missing, got):
                passes[i] = p
        return passes

    def features(self, prompts: Sequence, prompt_passes=None, first_samples=None, ledger=None) -> np.ndarray:
        passes = self.passes_for(prompts, prompt_passes, ledger)
        rows = [self._row(p, i) for i, p in enumerate(passes)]
        if not rows:
            return np.zeros((0, 0))
        X = np.vstack(rows)
        if self.text_features:
            X = np.hstack([X, np.asarray([surface_features(prompt_text(p)) for p in prompts], dtype=np.float64)])
        return X

    def _row(self, pp, i: int) -> np.ndarray:
        if pp is None or getattr(pp, "mean_hidden", None) is None or getattr(pp, "last_hidden", None) is None:
            raise InputError(f"prompt pass {i} has no hidden states")
        pools = {"mean": _np(pp.mean_hidden), "last": _np(pp.last_hidden)}
        shape = pools["mean"].shape
        if len(shape) != 2 or pools["last"].shape != shape:
            raise InputError(f"prompt pass {i}: hidden states must be [n_layers + 1, hidden], got {shape}")
        if self.layer_indices_ is None:
            self.layer_indices_ = resolve_layers(self.layers, shape[0])
            self.hidden_shape_ = (int(shape[0]), int(shape[1]))
            self.feature_names_ = [f"{pool}_L{l}_{h}" for pool in self.pooling for l in self.layer_indices_
                                   for h in range(shape[1])] + (list(STAT_NAMES) if self.token_stats else []) \
                + ([f"text_{n}" for n in TEXT_NAMES] if self.text_features else [])
        elif tuple(shape) != self.hidden_shape_:
            raise InputError(f"prompt pass {i} has hidden states of shape {tuple(shape)}, but the probe was trained "
                             f"on {self.hidden_shape_} (a different model?)")
        parts = [pools[pool][self.layer_indices_].reshape(-1) for pool in self.pooling]
        if self.token_stats:
            ent, pmax = next_token_stats(getattr(pp, "next_token_logprobs", None))
            parts.append(np.array([np.log1p(float(pp.n_tokens)), ent, pmax]))
        row = np.concatenate(parts)
        if not np.all(np.isfinite(row)):
            raise InputError(f"prompt pass {i} has non-finite hidden states")
        return row

    # -- persistence hooks -----------------------------------------------------------------------
    def _config(self) -> dict:
        return {"layers": list(self.layers), "pooling": list(self.pooling), "token_stats": self.token_stats,
                "text_features": self.text_features, "raw": self.raw}

    @classmethod
    def _upgrade_config(cls, config: dict) -> dict:
        return {"text_features": False, **config}

    def expected_features(self) -> int | None:
        """Feature count this configuration gives once the hidden-state shape is known."""
        if self.hidden_shape_ is None or self.layer_indices_ is None:
            return None
        return (len(self.pooling) * len(self.layer_indices_) * self.hidden_shape_[1]
                + len(STAT_NAMES) * self.token_stats + len(TEXT_NAMES) * self.text_features)

    def _state(self) -> dict:
        return {"layer_indices": self.layer_indices_,
                "hidden_shape": list(self.hidden_shape_) if self.hidden_shape_ is not None else None}

    def _set_state(self, state: dict) -> None:
        layers, hs = state.get("layer_indices"), state.get("hidden_shape")

        def ints(v, n=None):
            return (isinstance(v, list) and (n is None or len(v) == n) and len(v) > 0
                    and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v))

        if (layers is None) != (hs is None) or (layers is not None and not (ints(layers) and ints(hs, 2))):
            raise ConfigError(f"layer_indices={layers!r}, hidden_shape={hs!r}: expected lists of non-negative "
                              "integers (hidden_shape: [n_layers + 1, hidden]), or both null")
        if layers is not None and max(layers) >= hs[0]:
            raise ConfigError(f"layer_indices={layers!r} out of range for {hs[0]} hidden states")
        self.layer_indices_ = list(layers) if layers is not None else None
        self.hidden_shape_ = tuple(hs) if hs is not None else None
        want = self.expected_features()
        if want is not None and self.model_ is not None and want != self.model_.n_features:
            raise ConfigError(f"the probe's config gives {want} features but its model expects "
                              f"{self.model_.n_features}")

    def _meta(self) -> dict:
        return {"layers": self.layer_indices_, "hidden_shape": list(self.hidden_shape_ or ())}


def _caps(backend) -> set:
    try:
        return set(backend.capabilities())
    except Exception:  # noqa: BLE001 - a backend without capabilities(): assume it can try
        return {"hidden_states"}
