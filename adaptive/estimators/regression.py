"""The learned part every estimator shares: features -> p_hat.

Labels are empirical pass rates r_i in [0, 1] of prompt i over k_i samples (k_i = 1 when unknown).

- model="logistic" (default): a classifier of "one sample is correct". Each prompt is expanded into its
  per-sample outcomes without materialising them: a row (x_i, 1) with weight k_i * r_i and a row (x_i, 0)
  with weight k_i * (1 - r_i) (zero-weight rows dropped). The weighted log-loss of these rows equals the
  log-loss of the k_i Bernoulli outcomes, so this is exactly logistic regression on the expanded samples.
  Pipeline: StandardScaler -> optional PCA(n_components) -> LogisticRegression(C). When there is enough
  data the pipeline is wrapped in CalibratedClassifierCV (ensemble=False, folds grouped BY PROMPT so the
  two rows of a prompt never straddle a fold): calibration="auto" picks isotonic from 200 prompts on,
  sigmoid (Platt) from 30, none below; "isotonic" / "sigmoid" / "none" force it (forced calibration still
  falls back to none when a fold would see a single class).
- C_grid (logistic only): when set, C is chosen from the grid by grouped K-fold over the TRAINING prompts
  (spec.cv folds, held-out weighted log-loss of the uncalibrated pipeline; ties go to the earlier entry)
  before the final fit; the choice is kept as FittedModel.C. Falls back to `C` when folds cannot be made.
- model="ridge": a regressor on the rate itself (StandardScaler -> optional PCA -> Ridge(alpha), weights
  k_i), predictions clipped to [0, 1]. No calibration step.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..errors import InputError

MODELS = ("logistic", "ridge")
CALIBRATIONS = ("auto", "isotonic", "sigmoid", "none")
AUTO_ISOTONIC_MIN = 200  # prompts
AUTO_SIGMOID_MIN = 30


@dataclass(frozen=True)
class ModelSpec:
    model: str = "logistic"
    C: float = 1.0            # inverse L2 strength (logistic)
    alpha: float = 1.0        # L2 strength (ridge)
    pca: int | None = None    # PCA components after scaling; None = no PCA
    calibration: str = "auto"
    cv: int = 3
    seed: int = 0
    C_grid: tuple | None = None  # candidate C values chosen by CV on the training prompts; None = use C

    def __post_init__(self):
        if self.model not in MODELS:
            raise InputError(f"model={self.model!r}: must be one of {', '.join(MODELS)}")
        if self.calibration not in CALIBRATIONS:
            raise InputError(f"calibration={self.calibration!r}: must be one of {', '.join(CALIBRATIONS)}")
        if not isinstance(self.C, (int, float)) or not self.C > 0:
            raise InputError(f"C={self.C!r}: must be > 0")
        if not isinstance(self.alpha, (int, float)) or self.alpha < 0:
            raise InputError(f"alpha={self.alpha!r}: must be >= 0")
        if self.pca is not None and (isinstance(self.pca, bool) or not isinstance(self.pca, int) or self.pca < 1):
            raise InputError(f"pca={self.pca!r}: must be None or an integer >= 1")
        if isinstance(self.cv, bool) or not isinstance(self.cv, int) or self.cv < 2:
            raise InputError(f"cv={self.cv!r}: must be an integer >= 2")
        if self.C_grid is not None:
            grid = tuple(self.C_grid) if isinstance(self.C_grid, (list, tuple)) else ()
            if not grid or any(isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 0 for c in grid):
                raise InputError(f"C_grid={self.C_grid!r}: must be a non-empty list of numbers > 0")
            if self.model != "logistic":
                raise InputError("C_grid applies to model='logistic' only")
            object.__setattr__(self, "C_grid", tuple(float(c) for c in grid))  # JSON lists come back as tuples

    def to_dict(self) -> dict:
        d = asdict(self)
        d["C_grid"] = list(self.C_grid) if self.C_grid is not None else None
        return d


class FittedModel:
    """A fitted scikit-learn estimator plus how to read p_hat from it."""

    def __init__(self, kind: str, estimator, calibration: str, n_features: int, C: float | None = None):
        self.kind, self.estimator, self.calibration, self.n_features = kind, estimator, calibration, n_features
        self.C = C  # the logistic C actually used (chosen by CV when the spec has a C_grid)

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise InputError(f"feature matrix has shape {X.shape}; the model expects {self.n_features} features")
        if X.shape[0] == 0:
            return np.zeros(0)
        if self.kind == "logistic":
            p = self.estimator.predict_proba(X)[:, 1]
        else:
            p = self.estimator.predict(X)
        return np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)


def check_labels(labels, n: int, counts=None) -> tuple[np.ndarray, np.ndarray]:
    try:
        r = np.asarray([float(v) for v in labels], dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("labels must be pass rates (numbers in [0, 1])") from None
    if r.shape[0] != n:
        raise InputError(f"{n} prompts but {r.shape[0]} labels")
    bad = np.where(~np.isfinite(r) | (r < 0) | (r > 1))[0]
    if bad.size:
        raise InputError(f"labels[{bad[0]}]={r[bad[0]]!r}: pass rates must be in [0, 1]")
    if counts is None:
        k = np.ones(n)
    else:
        k = np.asarray([float(c) for c in counts], dtype=np.float64)
        if k.shape[0] != n or np.any(~np.isfinite(k)) or np.any(k <= 0):
            raise InputError("counts must hold one positive sample count per prompt")
    return r, k


def _pipeline(spec: ModelSpec, n_rows: int, n_features: int):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [("scale", StandardScaler())]
    if spec.pca is not None:
        steps.append(("pca", PCA(n_components=max(1, min(spec.pca, n_rows - 1, n_features)),
                                 random_state=spec.seed)))
    if spec.model == "logistic":
        steps.append(("clf", LogisticRegression(C=spec.C, max_iter=2000)))
    else:
        steps.append(("clf", Ridge(alpha=spec.alpha)))
    return Pipeline(steps)


def fit_model(X, labels, spec: ModelSpec, counts=None) -> FittedModel:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise InputError("fit needs at least one prompt")
    if not np.all(np.isfinite(X)):
        raise InputError("features contain NaN or inf")
    n, d = X.shape
    r, k = check_labels(labels, n, counts)
    if spec.model == "ridge":
        pipe = _pipeline(spec, n, d)
        pipe.fit(X, r, clf__sample_weight=k)
        return FittedModel("ridge", pipe, "none", d)

    w1, w0 = k * r, k * (1 - r)
    if w1.sum() <= 0 or w0.sum() <= 0:
        raise InputError("labels are all 0 or all 1: a classifier needs both correct and incorrect samples")
    keep1, keep0 = w1 > 0, w0 > 0
    Xe = np.vstack([X[keep1], X[keep0]])
    ye = np.r_[np.ones(keep1.sum(), dtype=int), np.zeros(keep0.sum(), dtype=int)]
    we = np.r_[w1[keep1], w0[keep0]]
    groups = np.r_[np.where(keep1)[0], np.where(keep0)[0]]
    if spec.C_grid is not None:
        spec = replace(spec, C=choose_C(Xe, ye, we, groups, spec))
    method = spec.calibration
    if method == "auto":
        method = "isotonic" if n >= AUTO_ISOTONIC_MIN else "sigmoid" if n >= AUTO_SIGMOID_MIN else "none"
    splits = _grouped_splits(ye, groups, min(spec.cv, n), spec.seed) if method != "none" else None
    if splits is None:
        method = "none"
    pipe = _pipeline(spec, len(ye), d)
    if method == "none":
        pipe.fit(Xe, ye, clf__sample_weight=we)
        return FittedModel("logistic", pipe, "none", d, spec.C)
    from sklearn.calibration import CalibratedClassifierCV

    cal = CalibratedClassifierCV(pipe, method=method, cv=splits, ensemble=False)
    with warnings.catch_warnings():
        # The weights do reach the classifier through clf__sample_weight; sklearn only sees that
        # Pipeline.fit has no `sample_weight` argument of its own and warns.
        warnings.filterwarnings("ignore", message=".*does not appear to accept sample_weight.*")
        cal.fit(Xe, ye, sample_weight=we, clf__sample_weight=we)
    return FittedModel("logistic", cal, method, d, spec.C)


def choose_C(Xe, ye, we, groups, spec: ModelSpec) -> float:
    """The C of spec.C_grid with the lowest held-out weighted log-loss over folds of prompts."""
    splits = _grouped_splits(ye, groups, min(spec.cv, np.unique(groups).size), spec.seed)
    if splits is None:
        return spec.C
    losses = []
    for C in spec.C_grid:
        loss = 0.0
        for tr, te in splits:
            pipe = _pipeline(replace(spec, C=C), len(tr), Xe.shape[1])
            pipe.fit(Xe[tr], ye[tr], clf__sample_weight=we[tr])
            p = np.clip(pipe.predict_proba(Xe[te])[:, 1], 1e-12, 1 - 1e-12)
            loss -= float(np.sum(we[te] * np.where(ye[te] == 1, np.log(p), np.log(1 - p))))
        losses.append(loss)
    return spec.C_grid[int(np.argmin(losses))]


def _grouped_splits(y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int):
    """Folds over prompts (groups); None when some fold's training part would have one class."""
    if n_splits < 2:
        return None
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(uniq)
    fold_of = {g: i % n_splits for i, g in enumerate(perm)}
    f = np.array([fold_of[g] for g in groups])
    splits = []
    for i in range(n_splits):
        tr, te = np.where(f != i)[0], np.where(f == i)[0]
        if te.size == 0 or np.unique(y[tr]).size < 2:
            return None
        splits.append((tr, te))
    return splits
