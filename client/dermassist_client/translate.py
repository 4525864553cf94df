"""Translate tritonclient, socket and aiohttp errors into the client's exceptions."""
from __future__ import annotations

import asyncio
import socket

from tritonclient.utils import InferenceServerException

from .errors import (
    DeadlineExceededError,
    DermAssistClientError,
    InvalidImageError,
    ServerError,
    ServerUnavailableError,
)

_UNAVAILABLE = {"StatusCode.UNAVAILABLE", "503"}
_DEADLINE = {"StatusCode.DEADLINE_EXCEEDED", "504"}
_INVALID = {"StatusCode.INVALID_ARGUMENT", "400"}
_TIMEOUTS = (TimeoutError, socket.timeout, asyncio.TimeoutError)


def translate(error: BaseException, what: str, url: str, inference: bool = False) -> DermAssistClientError:
    """The client exception for ``error`` raised while doing ``what`` against ``url``."""
    if isinstance(error, InferenceServerException):
        status = str(error.status() or "")
        message = error.message() or str(error)
        if status in _UNAVAILABLE:
            return ServerUnavailableError(f"{what}: server at {url} is unavailable ({message}); is it running and ready?")
        if status in _DEADLINE:
            return DeadlineExceededError(f"{what}: no answer from {url} within the deadline ({message}); raise timeout")
        if inference and status in _INVALID:
            return InvalidImageError(f"{what}: the server rejected the image: {message}", server_message=message)
        return ServerError(f"{what}: server at {url} answered {status or 'an error'}: {message}")
    if isinstance(error, _TIMEOUTS) or type(error).__name__ in ("Timeout", "ServerTimeoutError"):
        return DeadlineExceededError(f"{what}: no answer from {url} within the deadline; raise timeout")
    if isinstance(error, OSError) or type(error).__name__ in ("ClientConnectionError", "ServerDisconnectedError"):
        return ServerUnavailableError(f"{what}: cannot connect to {url} ({error}); is the server running?")
    return ServerError(f"{what}: unexpected {type(error).__name__} talking to {url}: {error}")
