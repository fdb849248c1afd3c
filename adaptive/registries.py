"""The named registries. Components register themselves on import; `load_builtins` imports them all."""
from .registry import Registry

strategies: Registry = Registry("strategy")
stopping_rules: Registry = Registry("stopping rule")
verifiers: Registry = Registry("verifier")
extractors: Registry = Registry("answer extractor")
graders: Registry = Registry("grader")
estimators: Registry = Registry("estimator")
datasets: Registry = Registry("dataset")

BUILTIN_MODULES = ("adaptive.strategies", "adaptive.stopping", "adaptive.verifiers", "adaptive.answers",
                   "adaptive.tasks", "adaptive.estimators")
_loaded = False


def load_builtins() -> None:
    """Import the modules that register built-in components (idempotent)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for mod in BUILTIN_MODULES:
        importlib.import_module(mod)
