"""Exceptions of the ``dermassist`` package: one root, narrow subclasses."""
from __future__ import annotations


class DermAssistError(Exception):
    """Root of every error raised by the ``dermassist`` tooling."""


class ConfigError(DermAssistError):
    """A setting (flag, environment variable or default) is invalid."""


class ServerError(DermAssistError):
    """The embedded Triton server could not be found, started or stopped."""


class ServerStartupError(ServerError):
    """The server process exited or did not become ready in time; carries the log tail."""


class ExportError(DermAssistError):
    """A model could not be exported, or the exported copy disagrees with the eager model."""


class ModelArchitectureError(ExportError):
    """A model handed to export/import is not the architecture the contract expects."""


class RepositoryError(DermAssistError):
    """A model repository file (config or artifact) cannot be read."""
