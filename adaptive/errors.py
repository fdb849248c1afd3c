"""Error types. Every error the user can trigger derives from AdaptiveError so the CLI can print
a one-line message instead of a traceback."""


class AdaptiveError(Exception):
    """Base class for errors caused by input, configuration or environment."""


class InputError(AdaptiveError, ValueError):
    """A prompt or request argument is unusable (empty, too long, bad sampling value)."""


class PlanError(InputError):
    """A field of a Plan (or of the SamplingParams a backend receives) has an invalid value: one error
    type for both. The message names the owner, the field and the value: `Plan.max_samples=0: ...`."""

    def __init__(self, field: str, value, reason: str, owner: str = "Plan"):
        self.field, self.value, self.reason, self.owner = field, value, reason, owner
        super().__init__(f"{owner}.{field}={value!r}: {reason}")


class UnknownNameError(AdaptiveError, KeyError):
    """A registry lookup failed; the message lists the known names."""

    def __str__(self):  # KeyError would quote the message otherwise
        return self.args[0]


class ConfigError(AdaptiveError, ValueError):
    """A YAML/JSON file (policy, config, estimator) is malformed or mismatched."""


class CapabilityError(AdaptiveError, RuntimeError):
    """A backend lacks what a component needs (e.g. logprobs from a server)."""


class BusyError(AdaptiveError, RuntimeError):
    """Another process holds a resource this one needs exclusively (a run directory)."""


class NotImplementedFeature(AdaptiveError, NotImplementedError):
    """A feature that is named but not built yet."""
