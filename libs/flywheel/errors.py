"""The error hierarchy. Every package raises a subclass of FlywheelError."""

from __future__ import annotations


class FlywheelError(Exception):
    """Base of every error Flywheel raises on purpose."""


class ConfigError(FlywheelError):
    """A setting is missing, malformed or names something unreachable.

    The message is one line and names the setting (its environment variable).
    """

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


class DependencyUnavailable(FlywheelError):
    """A required dependency (broker, Redis, database) did not answer in time."""


class EventDecodeError(FlywheelError):
    """Bytes or JSON could not be decoded into the expected event."""


class UnknownTopicError(FlywheelError):
    """A topic short name that the registry does not declare."""


class StackError(FlywheelError):
    """The local development stack could not be started, queried or stopped."""
