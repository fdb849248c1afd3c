"""Difficulty estimators: prompt -> p_hat (probability one sample is correct) -> difficulty bin.

    heuristic     text features only                       needs "text"
    probe         linear probe on the prompt's hidden states  needs "prompt_pass"  (the main one)
    sample_probe  confidence of one cheap first sample     needs "first_sample"

They are listed by name in `adaptive.registry.estimators`.
See base.py (API), regression.py (labels and calibration), bins.py (bin convention: 0 = hardest),
persistence.py (file format), metrics.py (AUROC, Spearman, Brier, ECE), train.py (logs -> estimator).
"""
from .base import NEEDS, Estimator
from .bins import bin_of, check_edges, quantile_edges, uniform_edges
from .heuristic import HeuristicEstimator
from .probe import ProbeEstimator
from .sample_probe import SampleProbeEstimator


def make_estimator(kind: str, backend=None, **kw) -> Estimator:
    """A new (unfitted) estimator of a registered kind."""
    from ..registry import estimators

    return estimators.get(kind)(backend=backend, **kw)


def load_estimator(path, backend=None) -> Estimator:
    """Load any saved estimator (its kind is read from the metadata); see Estimator.load."""
    return Estimator.load(path, backend=backend)


__all__ = ["NEEDS", "Estimator", "HeuristicEstimator", "ProbeEstimator", "SampleProbeEstimator", "bin_of",
           "check_edges", "load_estimator", "make_estimator", "quantile_edges", "uniform_edges"]
