"""Exceptions of DermAssist: the root every package's own root derives from, and the base's narrow subclasses."""
from __future__ import annotations

INTERRUPTED_EXIT_CODE = 130  # a command stopped by Ctrl-C (SIGINT) exits with the shell's code for it


class DermAssistError(Exception):
    """Root of every error DermAssist raises (``training``, the guard, the bench and the base derive from it)."""


class ConfigError(DermAssistError):
    """A setting (flag, environment variable or default) is invalid."""


class ServerError(DermAssistError):
    """The embedded Triton server could not be found, started or stopped."""


class ServerStartupError(ServerError):
    """The server process exited or did not become ready in time; carries the log tail."""


class RepositoryError(DermAssistError):
    """A model repository file (config or artifact) cannot be read."""


class ImageCorpusError(DermAssistError):
    """The benchmark and load-test image corpus cannot be built (source images missing or unreadable)."""
