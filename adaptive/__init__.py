"""adaptive: an adaptive inference-time compute controller.

prompt -> Estimator -> Policy -> Plan -> Strategy(Backend, Verifier) -> Result + ComputeRecord

`import adaptive` stays light (no torch, no transformers): `AdaptiveGenerator` and `Result` are imported
on first use (``from adaptive import AdaptiveGenerator``).
"""
from .errors import AdaptiveError, ConfigError, InputError, PlanError, UnknownNameError
from .plan import Plan

_LAZY = {"AdaptiveGenerator": "adaptive.generator", "Result": "adaptive.result"}

__all__ = ["AdaptiveError", "AdaptiveGenerator", "ConfigError", "InputError", "Plan", "PlanError", "Result",
           "UnknownNameError"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
