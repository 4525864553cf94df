"""Exceptions of the ``loadtest`` package: one root, under DermAssist's, and narrow subclasses."""
from __future__ import annotations

from dermassist.base.errors import DermAssistError


class LoadtestError(DermAssistError):
    """Root of every error raised by the load-test tooling."""


class LoadtestConfigError(LoadtestError):
    """A load-test setting (flag, environment variable or default) is invalid."""


class LocustRunError(LoadtestError):
    """Locust did not run, or wrote no usable CSV report."""


class UnexpectedAcceptance(LoadtestError):
    """A request that must be rejected with INVALID_ARGUMENT was answered otherwise."""


class TargetUnreachable(LoadtestError):
    """The server to load cannot be reached, or does not become ready, before the run starts."""


class CutAtStop(LoadtestError):
    """A call still waiting for its answer when the run ended and Locust's ``--stop-timeout``, at least the per-call
    deadline, ran out: Locust stopped its user, and the call (one of the run's slowest) is counted as a failure
    instead of going missing."""


class StopTimeoutTooShort(LoadtestError):
    """A call Locust stopped because its ``--stop-timeout`` ran out before the call's deadline: the setting cut it,
    not the server (counted as a failure, never as a sign of saturation)."""
