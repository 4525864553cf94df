"""DermAssist thin client SDK: analyze skin-lesion images with the ``dermassist`` Triton ensemble."""
from .aio import AsyncDermAssistClient
from .classes import CLASSES, LesionClass
from .client import DermAssistClient
from .config import ClientConfig
from .errors import (
    ClientConfigError,
    ConnectionSetupError,
    DeadlineExceededError,
    DermAssistClientError,
    InvalidImageError,
    PartialBatchError,
    RequestTooLargeError,
    ResultError,
    ServerError,
    ServerUnavailableError,
)
from .result import BBox, LesionResult

__all__ = [
    "AsyncDermAssistClient", "BBox", "CLASSES", "ClientConfig", "ClientConfigError", "ConnectionSetupError",
    "DeadlineExceededError", "DermAssistClient", "DermAssistClientError", "InvalidImageError", "LesionClass",
    "LesionResult", "PartialBatchError", "RequestTooLargeError", "ResultError", "ServerError", "ServerUnavailableError",
]
