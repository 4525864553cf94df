"""Translate tritonclient, socket and aiohttp errors into the client's exceptions."""
from __future__ import annotations

import asyncio
import socket

from tritonclient.utils import InferenceServerException

from .errors import (
    ClientConfigError,
    ConnectionSetupError,
    DeadlineExceededError,
    DermAssistClientError,
    InvalidImageError,
    RequestTooLargeError,
    ServerError,
    ServerUnavailableError,
)

_UNAVAILABLE = {"StatusCode.UNAVAILABLE", "503"}
_DEADLINE = {"StatusCode.DEADLINE_EXCEEDED", "504"}
_INVALID = {"StatusCode.INVALID_ARGUMENT", "400"}
# A server without an output the SDK names (Triton's words, and the guard's front's): one older than the SDK, not a bad
# image (an SDK upgraded before its servers had been told every picture was rejected; upgrade audit, M3).
_OUTPUT_UNKNOWN = ("unexpected inference output", "has no output")
_TOO_LARGE = {"StatusCode.RESOURCE_EXHAUSTED", "413"}
# The guard's words when it refuses a request that was being answered each time its pipeline failed (too large for
# the memory, or a picture that crashes a step): not the gRPC message limit, and not to be retried.
_TAKES_PIPELINE_DOWN = "each time the pipeline failed"
# Triton's answer while a Python-backend step's process is dead or hung: the request never ran in
# that step, the server is being healed, and inference is idempotent, so it is retried like UNAVAILABLE.
STEP_UNHEALTHY = "is not healthy"
# The client cancels a call itself only by close(), which the transports tell as a closed client before this (its
# deadline ends one DEADLINE_EXCEEDED): a CANCELLED status comes from the server, which drops a call that arrives in
# the instant it starts stopping before any handler sees it. Retried too.
_SERVER_CANCELLED = {"StatusCode.CANCELLED"}
# What a gRPC server that is not DermAssist (or an HTTP proxy answering 404) says of Triton's inference method.
_NOT_SERVED = {"StatusCode.UNIMPLEMENTED"}
# gRPC's words when a stopping server closed the connection under a call (it closes each connection the moment its
# last call ends; a client still reading the answer then loses it to the reset): nothing about the client's set-up.
_SERVER_SHUTDOWN = "Server shutdown"
_TIMEOUTS = (TimeoutError, socket.timeout, asyncio.TimeoutError)
# the guard's HTTP port (dermassist serve) answers any other path with "only /v2/health/live, ... are served here"
_HEALTH_ONLY = ("only /v2/health/live", "are served here")


_CONNECTION_FAILED = ("failed to connect", "Socket closed", "handshake", "Connection reset")
# Connection failures that no retry can mend, with what to change (gRPC's and Python's ssl words alike).
_SETUP_FAILURES = (
    (("WRONG_VERSION_NUMBER",), "the server does not serve TLS on this port: drop --ssl (ssl=False) or use its TLS port"),
    # the CA may be right: the same CERTIFICATE_VERIFY_FAILED for a certificate out of its validity dates, matched
    # first (OpenSSL's and BoringSSL's words, in gRPC's text and Python's ssl alike; they do not say which certificate)
    (("certificate has expired",),
     "a certificate of the server's chain has expired, most often the server's own TLS certificate: its operator must "
     "renew it (changing the CA here does not help); if it is the CA given as root_certificates that expired, get "
     "its renewed certificate from that operator"),
    (("certificate is not yet valid",),
     "a certificate of the server's chain is not valid yet: check this machine's clock (`date -u` must show the "
     "current UTC time; enable NTP), or, if it is right, the server's operator installed a certificate dated later "
     "than now and must replace it or wait until it is valid"),
    (("CERTIFICATE_VERIFY_FAILED",), "the server's TLS certificate is not signed by the CA given (or by a system CA, "
                                     "without root_certificates): pass the CA that signed it as root_certificates "
                                     "(--root-certificates), and use the host name the certificate names"),
    (("Failed to create security handshaker",), "the client's TLS files cannot be used together: check that "
                                                "private_key is the key of certificate_chain and both are PEM"),
    # an HTTP/1 server answers gRPC's HTTP/2 preface with "HTTP/1.1 ..." ('H' is byte 72, read as frame type 79)
    (("Failed parsing HTTP/2", "Trying to connect an http1.x server"),
     "this looks like an HTTP/1 port (DermAssist's health port?), not gRPC: call the gRPC port of `dermassist serve` "
     "(its --grpc-port, 8001 by default), or use protocol http for a bare tritonserver's HTTP port"),
)
CLOSED_CHANNEL = "closed channel"  # tritonclient.grpc after close(): "Cannot invoke RPC on closed channel!"


def tls_hint(ssl: bool, client_certificate: bool, client_certificate_problem: str = "") -> str:
    """What to check when a connection fails: a TLS mismatch looks like any refused connection.
    ``client_certificate_problem``: how the client certificate is out of its dates (``certificate_dates_problem``,
    with the file), which a server requiring mutual TLS refuses with no word the client can read."""
    if not ssl:
        return "; if the server serves TLS, connect with ssl=True (--ssl) and its CA (root_certificates)"
    if not client_certificate:
        return ("; check root_certificates is the CA of the server's certificate, and if the server requires "
                "mutual TLS pass private_key and certificate_chain")
    if client_certificate_problem:
        return (f"; the client certificate {client_certificate_problem}, and a server requiring mutual TLS refuses it: "
                "get it renewed by whoever issued it (or check this machine's clock, `date -u`)")
    return "; check the CA and that the server trusts the client certificate"


def closed_error(what: str) -> ClientConfigError:
    """The error of a call on a client whose connection was closed."""
    return ClientConfigError(f"{what}: this client was closed (close(), or the end of its with block); create a new "
                             "client to call the server again")


def _setup_failure(message: str) -> str:
    """What to change when ``message`` is a connection failure no retry can mend, else ''."""
    for markers, advice in _SETUP_FAILURES:
        if any(marker in message for marker in markers):
            return advice
    return ""


def translate(error: BaseException, what: str, url: str, inference: bool = False, hint: str = "") -> DermAssistClientError:
    """The client exception for ``error`` raised while doing ``what`` against ``url`` (``hint``: added
    when the connection itself failed, e.g. from ``tls_hint``)."""
    text = (error.message() or str(error)) if isinstance(error, InferenceServerException) else str(error)
    setup = _setup_failure(text)
    if setup:
        return ConnectionSetupError(f"{what}: cannot connect to {url}: {setup} ({text})")
    if isinstance(error, ValueError) and CLOSED_CHANNEL in str(error):
        return closed_error(what)
    if isinstance(error, InferenceServerException):
        status = str(error.status() or "")
        message = error.message() or str(error)
        if status in _UNAVAILABLE and _SERVER_SHUTDOWN in message:
            return ServerUnavailableError(f"{what}: the server at {url} closed the connection as it stopped, before "
                                          f"the answer was read ({message}); retried like unavailability, on a new "
                                          "connection (another replica, or this server once it is back)")
        if status in _UNAVAILABLE:
            extra = hint if any(m in message for m in _CONNECTION_FAILED) else ""
            return ServerUnavailableError(f"{what}: server at {url} is unavailable ({message}); "
                                          f"is it running and ready{extra}?")
        if status in _SERVER_CANCELLED:
            return ServerUnavailableError(f"{what}: the server at {url} dropped the call unanswered ({message}), as a "
                                          "server does in the instant it starts stopping; retried like unavailability")
        if STEP_UNHEALTHY in message:
            return ServerUnavailableError(f"{what}: a pipeline step at {url} failed ({message}); retried while it heals")
        if status in _DEADLINE:
            return DeadlineExceededError(f"{what}: no answer from {url} within the deadline ({message}); raise timeout")
        if inference and status in _NOT_SERVED:
            return ConnectionSetupError(f"{what}: {url} answers gRPC but serves no DermAssist inference there ({message}); "
                                        "check --url: DermAssist's gRPC port (8001 by default), not another service's")
        if inference and status in _TOO_LARGE and _TAKES_PIPELINE_DOWN in message:
            return RequestTooLargeError(f"{what}: the server refused it: {message}", server_message=message)
        if inference and status in _TOO_LARGE:
            return RequestTooLargeError(
                f"{what}: the request is larger than the gRPC message limit ({message}); send fewer images per call "
                "(max_batch_size) or smaller files; the limits are the client's max_message_bytes and the server's "
                "--max-request-mib", server_message=message)
        if inference and status in _INVALID and any(words in message for words in _OUTPUT_UNKNOWN):
            return ServerError(f"{what}: the server at {url} lacks an output this SDK asks for ({message}): it predates "
                               "the SDK's contract (the triage outputs, REFER and ASSESSABLE among them); upgrade the "
                               "server, or use the SDK of its version")
        if inference and status in _INVALID:
            return InvalidImageError(f"{what}: the server rejected the image: {message}", server_message=message)
        if all(words in message for words in _HEALTH_ONLY):  # a wrong port, as a gRPC call on an HTTP/1 port is
            return ConnectionSetupError(f"{what}: {url} is DermAssist's health port, which serves no inference ({message}); "
                               "call its gRPC port (8001 by default) with protocol grpc")
        return ServerError(f"{what}: server at {url} answered {status or 'an error'}: {message}")
    if isinstance(error, _TIMEOUTS) or type(error).__name__ in ("Timeout", "ServerTimeoutError"):
        return DeadlineExceededError(f"{what}: no answer from {url} within the deadline; raise timeout")
    if isinstance(error, OSError) or type(error).__name__ in ("ClientConnectionError", "ServerDisconnectedError"):
        return ServerUnavailableError(f"{what}: cannot connect to {url} ({error}); is the server running?")
    if isinstance(error, RuntimeError) and "Event loop is closed" in str(error):
        return ClientConfigError(f"{what}: this asyncio client's connection belongs to an event loop that has closed; "
                                 "create the client inside the loop that uses it (one per asyncio.run, with async with)")
    if type(error).__name__ == "HTTPParseError":  # a wrong port: no retry mends it
        return ConnectionSetupError(f"{what}: {url} did not answer in HTTP ({error}); if it is a gRPC port (8001 by default), "
                           "use protocol grpc")
    return ServerError(f"{what}: unexpected {type(error).__name__} talking to {url}: {error}")
