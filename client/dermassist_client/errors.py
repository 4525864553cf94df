"""Exceptions of the DermAssist client: one root, narrow subclasses."""
from __future__ import annotations

import re

_SERVER_PREFIX = re.compile(r"^.*?IMAGE row \d+: ", re.DOTALL)
_INDEX_PREFIX = re.compile(r"^image \d+: ")


class DermAssistClientError(Exception):
    """Root of every error the DermAssist client raises."""


class ClientConfigError(DermAssistClientError):
    """A client setting is invalid (URL, protocol, timeout, retries, TLS files); ``setting`` names the ClientConfig
    field, so a command line can name its own flag for it."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class InvalidImageError(DermAssistClientError):
    """The image was rejected, locally (not an image file) or by the server (its message is kept)."""

    def __init__(self, message: str, server_message: str | None = None) -> None:
        super().__init__(message)
        self.server_message = server_message

    @property
    def reason(self) -> str:
        """Why the image was refused, for a person: the server's own words without the step and batch row they came
        from (``in ensemble 'dermassist', prepare: IMAGE row 0: ``), or this error's message when refused here."""
        if self.server_message:
            return _SERVER_PREFIX.sub("", self.server_message)
        return _INDEX_PREFIX.sub("", str(self))


class RequestTooLargeError(InvalidImageError):
    """The request was over a gRPC message limit (the client's ``max_message_bytes`` or the server's
    ``--max-request-mib``): send fewer images per call, or smaller files."""


class PartialBatchError(InvalidImageError):
    """Some images of a batch were refused and the others answered: ``results`` holds, in input order, each image's
    ``LesionResult`` or the ``InvalidImageError`` that names why it was refused."""

    def __init__(self, message: str, results: list) -> None:
        super().__init__(message)
        self.results = results


class ServerUnavailableError(DermAssistClientError):
    """The server could not be reached (or was not ready) after every retry."""


class ConnectionSetupError(ServerUnavailableError):
    """The connection cannot work as set up (a TLS mismatch, or a port that does not speak the protocol): retrying
    cannot help, so it is raised at once; the message says what to change."""


class DeadlineExceededError(DermAssistClientError):
    """The call did not finish within its deadline."""


class ServerError(DermAssistClientError):
    """The server answered with an error that is neither a bad image nor unavailability."""


class ResultError(DermAssistClientError):
    """A result cannot give what was asked (e.g. no original size known, or no crop requested)."""
