"""Blocking transports over tritonclient's gRPC and HTTP clients; errors come out translated."""
from __future__ import annotations

import concurrent.futures
import queue
import signal
import threading
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .classes import (
    BUILD_PARAMETER,
    CORE_OUTPUTS,
    IMAGE_OUTPUTS,
    INPUT_DATATYPE,
    INPUT_IMAGE,
    RELEASE_PARAMETER,
    TRIAGE_OUTPUTS,
)
from .config import ClientConfig, certificate_dates_problem
from .errors import DeadlineExceededError, DermAssistClientError
from .translate import closed_error, tls_hint, translate


@dataclass(frozen=True)
class RawAnswer:
    """Output arrays of one inference request, the model that answered and the request's id."""

    outputs: dict[str, np.ndarray]
    model_name: str
    model_version: str
    request_id: str = ""
    release: str | None = None  # the server's RELEASE_PARAMETER and BUILD_PARAMETER (None: a server that sends none)
    build: str | None = None


def grpc_identity(response: Any) -> dict[str, str | None]:
    """``release`` and ``build`` of a gRPC ModelInferResponse's parameters (None where the server sent none)."""
    parameters = response.parameters
    return {key: parameters[name].string_param if name in parameters else None
            for key, name in (("release", RELEASE_PARAMETER), ("build", BUILD_PARAMETER))}


def http_identity(response: Mapping[str, Any]) -> dict[str, str | None]:
    """``release`` and ``build`` of a KServe HTTP answer's parameters (None where the server sent none)."""
    parameters = response.get("parameters") or {}
    return {key: None if parameters.get(name) is None else str(parameters[name])
            for key, name in (("release", RELEASE_PARAMETER), ("build", BUILD_PARAMETER))}


#: The most calls one HTTP client makes at once (each on its own thread and connection pool; more wait their turn).
HTTP_WORKERS = 4
#: The header each inference request repeats its id in: DermAssist's audit line of a call that ended before its
#: request was read (a deadline passed first) still names it.
REQUEST_ID_HEADER = "x-request-id"


def new_request_id() -> str:
    """A fresh id for one request (the server's audit trail records it; never put patient data in one)."""
    return uuid.uuid4().hex


def output_names(with_crop: bool) -> tuple[str, ...]:
    """Names of the outputs to request: the answer and the triage, plus the crop and its CAM when asked for."""
    return CORE_OUTPUTS + TRIAGE_OUTPUTS + (IMAGE_OUTPUTS if with_crop else ())


def image_batch(images: Sequence[bytes]) -> np.ndarray:
    """The [N, 1] BYTES array for the ``IMAGE`` input."""
    batch = np.empty((len(images), 1), dtype=np.object_)
    for row, data in enumerate(images):
        batch[row, 0] = data
    return batch


def left_of(end: float) -> float:
    """Seconds left until ``end`` (a time.monotonic()), at least a millisecond: a call given none fails at its deadline
    at once."""
    return max(end - time.monotonic(), 0.001)


def grpc_channel_args(config: ClientConfig) -> list[tuple[str, Any]]:
    """gRPC channel options: message limits, keepalive and reconnect backoff."""
    return [
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.keepalive_time_ms", int(config.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 2),
        ("grpc.initial_reconnect_backoff_ms", int(config.backoff_initial_s * 1000)),
        ("grpc.min_reconnect_backoff_ms", int(config.backoff_initial_s * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(config.backoff_max_s * 1000)),
    ]


def grpc_tls_kwargs(config: ClientConfig) -> dict[str, Any]:
    """TLS arguments tritonclient's gRPC clients take (file paths; they read the PEM files)."""
    if not config.ssl:
        return {}
    return {
        "ssl": True,
        "root_certificates": _str(config.root_certificates),
        "private_key": _str(config.private_key),
        "certificate_chain": _str(config.certificate_chain),
    }


def connection_hint(config: ClientConfig) -> str:
    """The TLS hint added to a failed connection's message (the client certificate's dates looked at now)."""
    problem = "" if config.certificate_chain is None else certificate_dates_problem(config.certificate_chain)
    return tls_hint(config.ssl, config.certificate_chain is not None,
                    f"{config.certificate_chain} {problem}" if problem else "")


def _str(path: Any) -> str | None:
    return None if path is None else str(path)


class _Transport:
    """What both transports share: errors of any call become the SDK's exceptions."""

    config: ClientConfig
    closed = False

    def _call(self, what: str, fn: Callable[[], Any], inference: bool = False) -> Any:
        if self.closed:
            raise closed_error(what)
        try:
            return fn()
        except DermAssistClientError:
            raise  # already the client's own words
        except Exception as e:
            raise call_error(e, what, self.config, self.closed, inference) from e


def call_error(error: Exception, what: str, config: ClientConfig, closed: bool,
               inference: bool = False) -> DermAssistClientError:
    """The client's error for ``error`` of a call doing ``what``: the closed client's when the transport was closed
    under it (close() is no server's doing, and is not retried), else ``translate``'s."""
    if closed:
        return closed_error(what)
    return translate(error, what, config.url, inference, connection_hint(config))


class GrpcTransport(_Transport):
    """One gRPC channel to the server (tritonclient.grpc)."""

    def __init__(self, config: ClientConfig) -> None:
        import tritonclient.grpc as grpcclient

        self._mod = grpcclient
        self.config = config
        self._client = grpcclient.InferenceServerClient(
            config.url, channel_args=grpc_channel_args(config), **grpc_tls_kwargs(config)
        )

    def infer(self, images: Sequence[bytes], with_crop: bool, timeout_s: float, request_id: str = "") -> RawAnswer:
        """Send one request of len(images) rows."""
        batch = image_batch(images)
        inp = self._mod.InferInput(INPUT_IMAGE, list(batch.shape), INPUT_DATATYPE)
        inp.set_data_from_numpy(batch)
        outs = [self._mod.InferRequestedOutput(n) for n in output_names(with_crop)]
        result = self._call(
            f"analyzing {len(images)} image(s) (request {request_id})",
            lambda: self._client.infer(
                self.config.model_name, [inp], model_version=self.config.model_version,
                outputs=outs, client_timeout=timeout_s, request_id=request_id, headers={REQUEST_ID_HEADER: request_id},
            ),
            inference=True,
        )
        response = result.get_response()
        return RawAnswer(
            {n: result.as_numpy(n) for n in output_names(with_crop)}, response.model_name, response.model_version,
            response.id or request_id, **grpc_identity(response),
        )

    def live(self, timeout_s: float) -> bool:
        """Whether the server reports itself live."""
        return self._call("health check", lambda: self._client.is_server_live(client_timeout=timeout_s))

    def ready(self, timeout_s: float) -> bool:
        """Whether the server and the ensemble are ready."""
        end = time.monotonic() + timeout_s  # both checks within it: each with the whole of it took up to twice as long
        return self._call(
            "readiness check",
            lambda: self._client.is_server_ready(client_timeout=timeout_s)
            and self._client.is_model_ready(self.config.model_name, self.config.model_version,
                                            client_timeout=left_of(end)),
        )

    def metadata(self, timeout_s: float, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The model's metadata as a dict (``headers``: extra request metadata)."""
        return self._call(
            "reading model metadata",
            lambda: self._client.get_model_metadata(
                self.config.model_name, self.config.model_version, headers=headers, as_json=True,
                client_timeout=timeout_s,
            ),
        )

    def close(self) -> None:
        """Close the channel."""
        self.closed = True
        self._client.close()


#: How often a caller waiting for a worker's result looks at its signals: a Ctrl-C that the kernel handed to a worker
#: thread is seen by the waiting main thread within it (a lock wait is interrupted only by a signal to its own thread).
WAKE_S = 0.25


def awaited(future: concurrent.futures.Future, timeout_s: float | None) -> Any:
    """``future.result(timeout_s)``, waited for in slices of WAKE_S so that a pending signal is acted on meanwhile; a
    ``concurrent.futures.TimeoutError`` only when the future is not done by then (the call's own socket timeout is
    the same class since Python 3.11, and is raised as the call's)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        left = WAKE_S if deadline is None else min(WAKE_S, deadline - time.monotonic())
        done, _ = concurrent.futures.wait([future], timeout=max(left, 0.0))
        if done:
            return future.result()
        if deadline is not None and time.monotonic() >= deadline:
            raise concurrent.futures.TimeoutError(f"not done within {timeout_s:g} s")


class _Workers:
    """A fixed set of daemon threads running submitted calls in turn: a process whose worker waits on a dead server's
    socket exits at once (ThreadPoolExecutor's threads are joined at exit: Ctrl-C on a hung HTTP call had waited for
    the socket's timeout, review 15)."""

    def __init__(self, count: int, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[concurrent.futures.Future, Callable[[], Any]] | None] = queue.SimpleQueue()
        self._stopped = False
        self._count = count
        for i in range(count):
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True).start()

    def _work(self) -> None:
        # Ctrl-C and SIGTERM go to the threads that act on them, never here; not where this worker runs on the main OS
        # thread (gevent's monkey-patched threads), whose mask every later subprocess would inherit
        if hasattr(signal, "pthread_sigmask") and threading.get_native_id() != threading.main_thread().native_id:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        while (item := self._queue.get()) is not None:
            future, fn = item
            del item  # nothing of a done call is held while waiting: an unclosed client can be collected
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as e:  # noqa: BLE001 - handed to the caller, who raises it
                    future.set_exception(e)
            del future, fn

    def submit(self, fn: Callable[[], Any]) -> concurrent.futures.Future:
        """Run ``fn`` on the next free worker; its future."""
        if self._stopped:
            raise RuntimeError("cannot schedule new calls after shutdown")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((future, fn))
        if self._stopped:  # shut down meanwhile: no worker may be left to take it
            future.cancel()
        return future

    def shutdown(self) -> None:
        """Cancel the calls waiting for a worker and let every worker end after its current call."""
        self._stopped = True
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in range(self._count):
            self._queue.put(None)


class HttpTransport(_Transport):
    """HTTP connection pools to the server (tritonclient.http), each owned by one of HTTP_WORKERS threads that make
    every call.

    tritonclient's HTTP client is not thread-safe: its geventhttpclient pool belongs to the thread that made it, and
    one client shared by threads failed "Cannot switch to a different thread" every other call, or hung past its
    timeout (the demo page's worker threads lost a third of their analyses; concurrency audit 1). A client for each
    calling thread instead kept, for every thread that had ended, its gevent loop's files open (4 per thread: a DICOM
    node over HTTP, a thread per association, reached 250 in 60 associations). So the calls of every thread are made
    by this transport's own long-lived threads, at most HTTP_WORKERS at once. HTTP has no per-call deadline in
    tritonclient: every socket operation times out after the config's ``timeout_s``; the retry loop still stops at
    the call's deadline.
    """

    def __init__(self, config: ClientConfig) -> None:
        import tritonclient.http as httpclient

        self._mod = httpclient
        self.config = config
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: list[Any] = []  # each worker's, for close()
        self._workers = _Workers(HTTP_WORKERS, "dermassist-http")
        # a client dropped without close() ends its threads when collected (they hold nothing of it between calls)
        weakref.finalize(self, self._workers.shutdown)
        try:  # made now: a wrong address or TLS option fails here, not at a call
            self._workers.submit(self._worker_client).result()
        except BaseException:
            self._workers.shutdown()
            raise

    def _worker_client(self) -> Any:
        """The tritonclient HTTP client of the worker thread running the call (made at its first): only ever called
        on a worker (a health check that read it in the calling thread made a client there, run on a worker)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._mod.InferenceServerClient(
                self.config.url, connection_timeout=self.config.timeout_s, network_timeout=self.config.timeout_s,
                ssl=self.config.ssl, ssl_options=http_ssl_options(self.config) or None,
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _call(self, what: str, fn: Callable[[], Any], inference: bool = False, timeout_s: float | None = None) -> Any:
        """``fn()`` on a worker: DeadlineExceededError when no worker was free within ``timeout_s`` (a call that has
        begun runs on: each of its socket waits is bounded by the config's ``timeout_s``)."""
        def on_a_worker() -> Any:
            future = self._workers.submit(fn)
            try:
                return awaited(future, timeout_s)
            except concurrent.futures.TimeoutError:
                if future.done() and not future.cancelled():
                    return future.result()  # done as the deadline passed (or its socket's own timeout, raised as such)
                if not future.cancel():
                    return awaited(future, None)
            raise DeadlineExceededError(
                f"{what}: no answer within the deadline: this client's {HTTP_WORKERS} HTTP connections were busy with "
                "its other calls all the while; raise timeout, or make fewer calls at once (gRPC has no such limit)")

        return super()._call(what, on_a_worker, inference)

    def infer(self, images: Sequence[bytes], with_crop: bool, timeout_s: float, request_id: str = "") -> RawAnswer:
        """Send one request of len(images) rows (binary tensors both ways)."""
        batch = image_batch(images)
        inp = self._mod.InferInput(INPUT_IMAGE, list(batch.shape), INPUT_DATATYPE)
        inp.set_data_from_numpy(batch, binary_data=True)
        outs = [self._mod.InferRequestedOutput(n, binary_data=True) for n in output_names(with_crop)]
        result = self._call(
            f"analyzing {len(images)} image(s) (request {request_id})",
            lambda: self._worker_client().infer(
                self.config.model_name, [inp], model_version=self.config.model_version, outputs=outs,
                request_id=request_id, headers={REQUEST_ID_HEADER: request_id},
            ),
            inference=True, timeout_s=timeout_s,
        )
        response = result.get_response()
        return RawAnswer(
            {n: result.as_numpy(n) for n in output_names(with_crop)},
            response["model_name"], str(response.get("model_version", "")), response.get("id") or request_id,
            **http_identity(response),
        )

    def live(self, timeout_s: float) -> bool:
        """Whether the server reports itself live."""
        return self._call("health check", lambda: self._worker_client().is_server_live(), timeout_s=timeout_s)

    def ready(self, timeout_s: float) -> bool:
        """Whether the server and the ensemble are ready."""
        return self._call(
            "readiness check",
            lambda: self._worker_client().is_server_ready()
            and self._worker_client().is_model_ready(self.config.model_name, self.config.model_version),
            timeout_s=timeout_s,
        )

    def metadata(self, timeout_s: float, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The model's metadata as a dict (``headers``: extra request headers)."""
        return self._call(
            "reading model metadata",
            lambda: self._worker_client().get_model_metadata(self.config.model_name, self.config.model_version,
                                                             headers=headers),
            timeout_s=timeout_s,
        )

    def close(self) -> None:
        """Close every thread's connection pool."""
        with self._lock:
            self.closed = True
            clients, self._clients = self._clients, []
        self._workers.shutdown()  # calls waiting for a worker end now
        for client in clients:
            client.close()


def http_ssl_options(config: ClientConfig) -> dict[str, str]:
    """geventhttpclient ssl_options for the config's TLS files."""
    options = {}
    if config.root_certificates is not None:
        options["ca_certs"] = str(config.root_certificates)
    if config.certificate_chain is not None:
        options["certfile"] = str(config.certificate_chain)
        options["keyfile"] = str(config.private_key)
    return options


def make_transport(config: ClientConfig) -> GrpcTransport | HttpTransport:
    """The blocking transport for the config's protocol."""
    return GrpcTransport(config) if config.protocol == "grpc" else HttpTransport(config)
