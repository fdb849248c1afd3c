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

scikit-learn fits (fit_sklearn); the fitted pipeline is then converted to plain arrays (FittedModel), and
prediction, saving and loading use those arrays with numpy only: scikit-learn is not imported to predict.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..errors import ConfigError, InputError

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


ARRAYS = ("scale_mean", "scale_scale", "pca_mean", "pca_components", "coef", "intercept", "isotonic_x",
          "isotonic_y", "sigmoid_a", "sigmoid_b")


class FittedModel:
    """A fitted model as plain float64 arrays: features -> p_hat with numpy only (no scikit-learn).

    Fitting uses scikit-learn (fit_model); the fitted pipeline is then converted into these arrays
    (from_sklearn), which is all that is kept, saved and loaded. With d features, k PCA components, m = k
    (with PCA) or d (without) and t isotonic points:

        scale_mean, scale_scale  [d]    z = (x - scale_mean) / scale_scale            (StandardScaler)
        pca_mean [d], pca_components [k, d]   z = z @ C.T - pca_mean @ C.T        (PCA, whiten=False)
        coef [m], intercept []          f = z @ coef + intercept                     (the linear model)
      logistic, calibration
        "none"      p = 1 / (1 + exp(-f))                        (LogisticRegression.predict_proba[:, 1])
        "sigmoid"   sigmoid_a [], sigmoid_b []: p = 1 / (1 + exp(a * f + b))   (sklearn's _SigmoidCalibration)
        "isotonic"  isotonic_x, isotonic_y [t]: p = interp(clip(f, x[0], x[-1]), x, y)
                    (IsotonicRegression(out_of_bounds="clip") as CalibratedClassifierCV fits it)
      ridge         p = f
    and p is clipped to [0, 1]. The calibrated forms are CalibratedClassifierCV(ensemble=False): the pipeline
    refit on all the data, its decision function fed to the calibrator fitted on cross-validated decision
    values; for two classes proba[:, 1] is the calibrator's output.
    """

    def __init__(self, kind: str, calibration: str, arrays: dict, C: float | None = None):
        self.kind, self.calibration, self.C = kind, calibration, C  # C: the logistic C actually used
        self.arrays = {name: np.array(arrays[name], dtype=np.float64) for name in arrays}
        a = self.arrays
        if "scale_mean" not in a or a["scale_mean"].ndim != 1:
            raise ConfigError("the model has no scaler mean")
        self.n_features = int(a["scale_mean"].shape[0])
        check_arrays(a, self.array_shapes(self.describe()))
        bad = [name for name in a if not np.all(np.isfinite(a[name]))]
        if bad:
            raise ConfigError(f"array {bad[0]!r} holds NaN or inf")
        if np.any(a["scale_scale"] <= 0):
            raise ConfigError("array 'scale_scale' must be > 0")
        if "isotonic_x" in a and np.any(np.diff(a["isotonic_x"]) <= 0):
            raise ConfigError("array 'isotonic_x' must be strictly increasing")

    # -- what the arrays are ---------------------------------------------------------------------
    def describe(self) -> dict:
        """JSON description of the model: enough to know which arrays of which shapes it has."""
        a = self.arrays
        pca_components = int(a["pca_components"].shape[0]) if "pca_components" in a else None
        isotonic_points = int(a["isotonic_x"].shape[0]) if "isotonic_x" in a else None
        return {"kind": self.kind, "calibration": self.calibration, "n_features": self.n_features,
                "pca_components": pca_components, "isotonic_points": isotonic_points, "C": self.C}

    @staticmethod
    def array_shapes(desc) -> dict[str, tuple]:
        """{array name: shape} a model described by `desc` (see describe) must have. ConfigError when the
        description itself is malformed."""
        if not isinstance(desc, dict):
            raise ConfigError("the model description must be an object")
        kind, cal = desc.get("kind"), desc.get("calibration")
        if kind not in MODELS:
            raise ConfigError(f"model kind {kind!r}: must be one of {', '.join(MODELS)}")
        allowed = ("none", "sigmoid", "isotonic") if kind == "logistic" else ("none",)
        if cal not in allowed:
            raise ConfigError(f"calibration {cal!r} for a {kind} model: must be one of {', '.join(allowed)}")

        def count(key, optional):
            v = desc.get(key)
            if v is None and optional:
                return None
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"model {key}={v!r}: must be an integer >= 1")
            return v

        d = count("n_features", False)
        k = count("pca_components", True)
        t = count("isotonic_points", cal != "isotonic")
        if t is not None and cal != "isotonic":
            raise ConfigError(f"model isotonic_points={t!r} without isotonic calibration")
        if k is not None and k > d:
            raise ConfigError(f"model pca_components={k} exceeds n_features={d}")
        c = desc.get("C")
        if c is not None and (isinstance(c, bool) or not isinstance(c, (int, float))):
            raise ConfigError(f"model C={c!r}: must be a number or null")
        shapes = {"scale_mean": (d,), "scale_scale": (d,)}
        if k is not None:
            shapes.update(pca_mean=(d,), pca_components=(k, d))
        shapes.update(coef=(k if k is not None else d,), intercept=())
        if cal == "isotonic":
            shapes.update(isotonic_x=(t,), isotonic_y=(t,))
        elif cal == "sigmoid":
            shapes.update(sigmoid_a=(), sigmoid_b=())
        return shapes

    @classmethod
    def from_arrays(cls, desc: dict, arrays: dict) -> "FittedModel":
        """The model described by `desc` from its arrays (checked: names, float64, shapes, finite values)."""
        check_arrays(arrays, cls.array_shapes(desc))
        return cls(desc["kind"], desc["calibration"], arrays, desc.get("C"))

    @classmethod
    def from_sklearn(cls, estimator, kind: str, calibration: str, C: float | None = None) -> "FittedModel":
        """Convert a fitted pipeline (or CalibratedClassifierCV(pipeline, ensemble=False)) from fit_model."""
        calibrator = None
        pipe = estimator
        if calibration != "none":
            (pair,) = estimator.calibrated_classifiers_  # ensemble=False: one refit pipeline + its calibrator
            pipe, (calibrator,) = pair.estimator, pair.calibrators
            if list(pair.classes) != [0, 1]:
                raise ValueError(f"calibrated classes {list(pair.classes)}: expected [0, 1]")
        steps = pipe.named_steps
        if set(steps) - {"scale", "pca", "clf"}:
            raise ValueError(f"unexpected pipeline steps {list(steps)}")
        scaler, clf = steps["scale"], steps["clf"]
        if not (scaler.with_mean and scaler.with_std):
            raise ValueError("the scaler must centre and scale")
        arrays = {"scale_mean": scaler.mean_, "scale_scale": scaler.scale_}
        if "pca" in steps:
            pca = steps["pca"]
            if pca.whiten:
                raise ValueError("whitened PCA is not supported")
            arrays.update(pca_mean=pca.mean_, pca_components=pca.components_)
        if kind == "logistic":
            if list(clf.classes_) != [0, 1] or clf.coef_.shape[0] != 1:
                raise ValueError(f"logistic classes {list(clf.classes_)}: expected [0, 1]")
            arrays.update(coef=clf.coef_[0], intercept=np.float64(clf.intercept_[0]))
        else:
            arrays.update(coef=np.ravel(clf.coef_), intercept=np.float64(clf.intercept_))
        if calibration == "isotonic":
            x, y = calibrator.X_thresholds_, calibrator.y_thresholds_
            if not (calibrator.increasing_ is True and calibrator.out_of_bounds == "clip"
                    and x[0] == calibrator.X_min_ and x[-1] == calibrator.X_max_):
                raise ValueError("unexpected isotonic calibrator")
            arrays.update(isotonic_x=x, isotonic_y=y)
        elif calibration == "sigmoid":
            arrays.update(sigmoid_a=np.float64(calibrator.a_), sigmoid_b=np.float64(calibrator.b_))
        return cls(kind, calibration, arrays, C)

    # -- prediction ------------------------------------------------------------------------------
    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The linear model's output f on the scaled (and projected) features, in scikit-learn's order of
        operations."""
        a = self.arrays
        Z = X - a["scale_mean"]
        Z /= a["scale_scale"]
        if "pca_components" in a:
            comp_t = a["pca_components"].T
            Z = Z @ comp_t
            Z -= a["pca_mean"].reshape(1, -1) @ comp_t
        if self.kind == "logistic":
            return (Z @ a["coef"].reshape(-1, 1) + a["intercept"]).reshape(-1)
        return Z @ a["coef"] + a["intercept"]

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise InputError(f"feature matrix has shape {X.shape}; the model expects {self.n_features} features")
        if X.shape[0] == 0:
            return np.zeros(0)
        if not np.all(np.isfinite(X)):
            raise InputError("features contain NaN or inf")
        f = self.decision_function(X)
        a = self.arrays
        if self.kind == "ridge":
            p = f
        elif self.calibration == "none":
            p = _expit(f)
        elif self.calibration == "sigmoid":
            p = _expit(-(a["sigmoid_a"] * f + a["sigmoid_b"]))
        else:
            x = a["isotonic_x"]
            p = np.interp(np.clip(f, x[0], x[-1]), x, a["isotonic_y"])
        return np.clip(p, 0.0, 1.0)

    def __repr__(self) -> str:
        return (f"<FittedModel {self.kind} calibration={self.calibration} n_features={self.n_features}"
                f"{' pca=%d' % self.arrays['pca_components'].shape[0] if 'pca_components' in self.arrays else ''}>")


def _expit(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow."""
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def check_arrays(arrays: dict, shapes: dict) -> None:
    """ConfigError unless `arrays` has exactly the names of `shapes`, each float64 of that shape."""
    names, want = set(arrays), set(shapes)
    if names != want:
        extra, missing = sorted(names - want), sorted(want - names)
        raise ConfigError(f"arrays {'missing ' + ', '.join(missing) if missing else ''}"
                          f"{'; ' if missing and extra else ''}{'unexpected ' + ', '.join(extra) if extra else ''}")
    for name, shape in shapes.items():
        v = arrays[name]
        if not isinstance(v, np.ndarray) or v.dtype != np.float64 or v.shape != tuple(shape):
            got = f"{v.dtype}{list(v.shape)}" if isinstance(v, np.ndarray) else type(v).__name__
            raise ConfigError(f"array {name!r} is {got}, expected float64{list(shape)}")


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
    """Fit with scikit-learn (see the module doc), then keep the fitted model as plain arrays."""
    estimator, kind, calibration, C = fit_sklearn(X, labels, spec, counts)
    return FittedModel.from_sklearn(estimator, kind, calibration, C)


def fit_sklearn(X, labels, spec: ModelSpec, counts=None) -> tuple:
    """(fitted scikit-learn estimator, kind, calibration, C): the pipeline, or CalibratedClassifierCV
    around it, that fit_model converts. C is the logistic C used (None for ridge)."""
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
        return pipe, "ridge", "none", None

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
        return pipe, "logistic", "none", spec.C
    from sklearn.calibration import CalibratedClassifierCV

    cal = CalibratedClassifierCV(pipe, method=method, cv=splits, ensemble=False)
    with warnings.catch_warnings():
        # The weights do reach the classifier through clf__sample_weight; sklearn only sees that
        # Pipeline.fit has no `sample_weight` argument of its own and warns.
        warnings.filterwarnings("ignore", message=".*does not appear to accept sample_weight.*")
        cal.fit(Xe, ye, sample_weight=we, clf__sample_weight=we)
    return cal, "logistic", method, spec.C


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
