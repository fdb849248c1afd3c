"""adaptive: an adaptive inference-time compute controller.

prompt -> Estimator -> Policy -> Plan -> Strategy(Backend, Verifier) -> Result + ComputeRecord
"""
from .errors import AdaptiveError, ConfigError, InputError, PlanError, UnknownNameError
from .plan import Plan

__all__ = ["AdaptiveError", "ConfigError", "InputError", "Plan", "PlanError", "UnknownNameError"]
__version__ = "0.1.0"
