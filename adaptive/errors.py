"""Error types. Every error the user can trigger derives from AdaptiveError so the CLI can print
a one-line message instead of a traceback."""


class AdaptiveError(Exception):
    """Base class for errors caused by input, configuration or environment."""


class PlanError(AdaptiveError, ValueError):
    """A Plan field has an invalid value. The message names the field and the value."""

    def __init__(self, field: str, value, reason: str):
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"Plan.{field}={value!r}: {reason}")


class InputError(AdaptiveError, ValueError):
    """A prompt or request argument is unusable (empty, too long, bad sampling value)."""


class UnknownNameError(AdaptiveError, KeyError):
    """A registry lookup failed; the message lists the known names."""

    def __str__(self):  # KeyError would quote the message otherwise
        return self.args[0]


class ConfigError(AdaptiveError, ValueError):
    """A YAML/JSON file (policy, config, estimator) is malformed or mismatched."""


class CapabilityError(AdaptiveError, RuntimeError):
    """A backend lacks what a component needs (e.g. logprobs from a server)."""


class NotImplementedFeature(AdaptiveError, NotImplementedError):
    """A feature that is named but not built yet."""
