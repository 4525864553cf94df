"""The public gRPC endpoint: Triton's KServe API forwarded to the loopback tritonserver.

Every ``ModelInfer`` leaves one audit line, whatever happens to it (answered, refused, failed in
a step, cancelled). ``ServerLive``/``ServerReady``/``ModelReady`` answer with the guard's truth;
every other call is passed through unchanged with its metadata, so Triton's admin key still
guards the restricted APIs. While the guard recovers, requests wait for readiness (within their
deadline and ``hold_s``); a request that failed because a step broke comes back UNAVAILABLE,
which clients retry.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hmac
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from google.protobuf.message import DecodeError
from tritonclient.grpc import service_pb2

from preprocess.contract import (
    ALL_MODELS,
    BAD_ROWS_METADATA,
    BUILD_PARAMETER,
    ENSEMBLE_NAME,
    RELEASE_PARAMETER,
    STEP_MODELS,
)

from ..base.server_config import GRPC_ADMIN_HEADER, RESTRICTED_APIS
from .admin import (
    KEY_LOCKED,
    KEY_NONE,
    KEY_RIGHT,
    KEY_WRONG,
    MAX_WRONG_KEYS,
    RESTRICTED_METHODS,
    WRONG_KEY_WINDOW_S,
    WrongKeys,
    admin_record,
    admin_refusal,
    parsed_request,
    peer_address,
    requested_model,
)
from .audit import MAX_NAME_CHARS, AuditWriteError, build_record, request_images
from .culprits import FAILURES_TO_REFUSE, REFUSED_FOR_S, Culprits, fingerprint, refusal_text
from .metrics import GuardMetrics
from .requests import (
    images_in,
    quoted,
    request_refusal,
    unknown_model,
    version_problem,
    with_audited_outputs,
    with_default_outputs,
    without_outputs,
)
from .served_copy import CopyError, LoadFailed
from .statuses import (
    DEADLINE_ARRIVING,
    GRPC_CORE_LOGGER,
    NOT_ONE_MESSAGE,
    UNDELIVERED_FILTER,
    abort,
    audited_status,
    bad_rows,
    cancellation,
    held_for,
    is_step_failure,
    over_inflight_budget,
)

if TYPE_CHECKING:
    from .guard import Guard

logger = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"
# Metadata a proxy must not copy onto its own call.
_HOP_BY_HOP = ("user-agent", "grpc-", ":")
# Triton's words when a restricted API is called without its key (it answers UNAVAILABLE, which clients retry).
RESTRICTED_REFUSAL = "This protocol is restricted"


# Triton's extensions (ServerMetadata) by the restricted API that holds them: a caller without the admin key cannot use
# them through the front, so it is not told of them; and those no caller can use here (the front refuses the
# classification extension; no model is a sequence model, and streaming is not served).
EXTENSION_APIS = {"model_repository": "model-repository", "model_repository(unload_dependents)": "model-repository",
                  "model_configuration": "model-config", "statistics": "statistics",
                  "system_shared_memory": "shared-memory", "cuda_shared_memory": "shared-memory", "trace": "trace",
                  "logging": "logging"}
UNSERVED_EXTENSIONS = ("classification", "sequence")
# What the audit line of an internal step's ModelMetadata or ModelReady (admin key only) names as its extension.
INTERNAL_METADATA = "internal-step metadata"
INTERNAL_READINESS = "internal-step readiness"


def served_extensions(extensions: Sequence[str], admin: bool) -> list[str]:
    """The extensions of Triton's list a caller can use through the front (with the admin key, or without)."""
    return [e for e in extensions if e not in UNSERVED_EXTENSIONS
            and (admin or EXTENSION_APIS.get(e) not in RESTRICTED_APIS)]



# The admin calls that change what Triton serves, after which the answers' release and build are read again.
MODEL_CHANGES = ("RepositoryModelLoad", "RepositoryModelUnload")
#: The least time a call must have been in Triton for its deadline passing there to count as a sign of a hang.
EXPIRY_HELD_S = 1.0
#: How a client gives up on a call Triton holds: its deadline, or its own cancel (a proxy's timeout, Ctrl-C): either
#: is a sign of a hang while nothing is answered (with deadlines alone, clients that cancel kept a deadlocked step
#: from ever being healed).
GAVE_UP = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


def identity_parameters(identity: Mapping[str, str]) -> bytes:
    """The serialised response parameters that name the served release and build (appended to an answer's bytes:
    protobuf merges a map field's entries, so the answer is not decoded and encoded again); nothing while unknown."""
    return _identity_bytes(tuple(sorted(identity.items())))


@functools.lru_cache(maxsize=8)
def _identity_bytes(identity: tuple[tuple[str, str], ...]) -> bytes:
    """``identity_parameters`` of one identity, serialised once, not for every answer."""
    names = {"release": RELEASE_PARAMETER, "build": BUILD_PARAMETER}
    parameters = {names[key]: service_pb2.InferParameter(string_param=value) for key, value in identity}
    return service_pb2.ModelInferResponse(parameters=parameters).SerializeToString() if parameters else b""


def method_path(name: str) -> str:
    """The full gRPC path of one method of Triton's service."""
    return f"/{SERVICE}/{name}"


def forwarded_metadata(context: grpc.aio.ServicerContext, admin_key: str, internal_key: str,
                       inference: bool = False) -> tuple[tuple[str, str | bytes], ...]:
    """The caller's metadata without transport headers; a right admin key is swapped for tritonserver's own
    (``internal_key``, which never leaves this process), a wrong one is dropped. An ``inference`` call carries
    tritonserver's key whatever the caller sent: inference on its loopback ports is behind that key (the front has
    checked who may call which model already)."""
    kept: list[tuple[str, str | bytes]] = [(m.key, m.value) for m in (context.invocation_metadata() or ())
                                           if not m.key.startswith(_HOP_BY_HOP) and m.key != GRPC_ADMIN_HEADER]
    if inference or has_admin_key(context, admin_key):
        kept.append((GRPC_ADMIN_HEADER, internal_key))
    return tuple(kept)


async def finished_hashes(hashing: concurrent.futures.Future | None) -> Any:
    """The hashing thread's result, awaited so the event loop (every other call, the health endpoint) runs meanwhile.

    A second cancellation while it is awaited still finishes the audit line: then it waits for the thread. A hashing
    that failed is recorded as such (``not_hashed``), never raised: a MemoryError in it (a guard under an address-space
    limit) had ended the call UNKNOWN without its audit line.
    """
    if hashing is None:
        return None
    try:
        try:
            return await asyncio.shield(asyncio.wrap_future(hashing))
        except asyncio.CancelledError:
            return hashing.result()
    except Exception as e:  # noqa: BLE001 - the line is written whatever the hashing met
        logger.warning("a request's images could not be hashed for its audit line: %s: %s", type(e).__name__, e)
        return [{"not_hashed": f"{type(e).__name__}: {e}"[:MAX_NAME_CHARS]}]


@dataclass
class AuditedCall:
    """What one inference call's audit line records, filled in as the call goes."""

    started: float  # time.perf_counter() when it arrived
    request: service_pb2.ModelInferRequest | None = None
    response: service_pb2.ModelInferResponse | None = None
    status: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    error: str | None = "the request ended before an answer"
    request_id: str = ""
    peer: str = ""  # context.peer() and the client's name, read on arrival: a call that ended has none to give
    client: str | None = None
    hashing: concurrent.futures.Future | None = None
    written: bool = False
    read: bool = False  # whether the handler got as far as reading the request (which may then be refused)


def header_value(context: grpc.aio.ServicerContext, key: str) -> str | bytes | None:
    """The value of the call's metadata ``key`` as gRPC gives it (None: it has none)."""
    for m in context.invocation_metadata() or ():
        if m.key == key:
            return m.value
    return None


def admin_header(context: grpc.aio.ServicerContext) -> bytes | None:
    """The value of the call's admin key header (None: it has none)."""
    value = header_value(context, GRPC_ADMIN_HEADER)
    return value.encode() if isinstance(value, str) else value


#: The header a client may repeat its request id in: the audit line of a call that ended before its request was read
#: (its deadline, or its client, ended it first) still names it, where it had held an empty id.
REQUEST_ID_HEADER = "x-request-id"


def header_request_id(context: grpc.aio.ServicerContext) -> str:
    """The request id the call's REQUEST_ID_HEADER gives ("" when none)."""
    value = header_value(context, REQUEST_ID_HEADER) or ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def has_admin_key(context: grpc.aio.ServicerContext, key: str) -> bool:
    """Whether the call carries the admin key header with the right value."""
    value = admin_header(context)
    return value is not None and hmac.compare_digest(value, key.encode())


ADMIN_KEY_REFUSAL = (f"this API needs the admin key in the {GRPC_ADMIN_HEADER!r} header; the call carried none or a "
                     "wrong one (see docs/operations.md, 'Serving safely')")


def key_refusal(key: str, locked_s: float) -> str:
    """Why an admin call whose key was found ``key`` (not right) is refused; ``locked_s``: how long its address's
    admin calls are still refused unchecked."""
    if key != KEY_LOCKED:
        return ADMIN_KEY_REFUSAL
    return (f"too many wrong admin keys from this address (over {MAX_WRONG_KEYS - 1} within {WRONG_KEY_WINDOW_S:g} s): "
            f"its admin calls are refused without looking at the key for {max(locked_s, 1):.0f} s more; check the key "
            "(the --admin-key-file file) and call again after that")


# Where gRPC's auth context names the client certificate, in the order the audit trail takes: its common name, else its
# first subject alternative name (current PKIs put the identity there only, with an empty CN), else its subject.
CLIENT_NAME_KEYS = ("x509_common_name", "x509_subject_alternative_name", "x509_subject")


def client_identity(context: grpc.aio.ServicerContext) -> str | None:
    """Who the client certificate names under mutual TLS (see CLIENT_NAME_KEYS), else None (no certificate)."""
    auth = context.auth_context() or {}
    for key in CLIENT_NAME_KEYS:
        for value in auth.get(key) or []:
            name = value.decode("utf-8", "replace").strip()
            if name:
                return name
    return None


def forwarded_status(code: grpc.StatusCode, details: str) -> tuple[grpc.StatusCode, str]:
    """Triton's status of a forwarded call as the client gets it: a restricted API refused for its key is
    PERMISSION_DENIED (Triton says UNAVAILABLE, which clients retry), everything else as it came."""
    if code == grpc.StatusCode.UNAVAILABLE and RESTRICTED_REFUSAL in details:
        return grpc.StatusCode.PERMISSION_DENIED, ADMIN_KEY_REFUSAL
    return code, details


@dataclass
class AdminCall:
    """What one admin call's audit line records, filled in as the call goes."""

    method: str
    started: float  # time.perf_counter() when it arrived
    peer: str
    client: str | None
    key: str  # KEY_RIGHT, KEY_WRONG, KEY_NONE or KEY_LOCKED
    extension: str | None = None  # the restricted extension it belongs to (RESTRICTED_METHODS), if any
    model: str = ""
    status: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    error: str | None = "the call ended before an answer"
    written: bool = False


Handler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


def parsed_first(kind: Any, behaviour: Handler) -> Handler:
    """``behaviour`` for the bytes of a ``kind`` request only: bytes that are not one are refused INVALID_ARGUMENT
    (Triton answered them INTERNAL, 'Unable to parse request', as if the fault were its own)."""
    async def checked(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            kind.FromString(request)
        except DecodeError as e:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                        f"the request is not a {kind.DESCRIPTOR.name}: {e}; send the message the method takes "
                        "(KServe's grpc_service.proto, as Triton 2.51 defines it)")
        return await behaviour(request, context)
    return checked


class Front(grpc.GenericRpcHandler):
    """Routes each method of Triton's service: audited inference, truthful health, plain forwarding."""

    def __init__(self, guard: Guard, channel: grpc.aio.Channel, metrics: GuardMetrics | None = None) -> None:
        self.guard = guard
        self.channel = channel
        self.metrics = GuardMetrics() if metrics is None else metrics  # what clients saw, for /metrics
        self.in_flight = 0  # inference calls received and not yet answered (what a shutdown drains)
        self.bytes_in_flight = 0  # their requests' bytes (GuardConfig.max_inflight_mib bounds it)
        self.answered_at = 0.0  # time.monotonic() of the last inference the ensemble answered (a busy pipeline works)
        # calls Triton is working on: a token -> when it was forwarded, and its request's bytes
        self._forwarded: dict[int, tuple[float, int]] = {}
        self.culprits = Culprits()  # requests in flight at failures of the pipeline, and those refused for it
        # (when it was forwarded, when it ran out) of that call (``expired_unanswered``)
        self._expired: tuple[float, float] | None = None
        self._tokens = itertools.count()
        self._calls: dict[str, Any] = {}
        # SHA-256 of the images runs here while Triton works on the request (hashlib releases the GIL)
        self._hashing = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="dermassist-audit")
        self.wrong_keys = WrongKeys()  # wrong admin keys by address: past a few, that address is refused a while
        logging.getLogger(GRPC_CORE_LOGGER).addFilter(UNDELIVERED_FILTER)  # once: the same filter is added once
        own: dict[str, Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]] = {
            "ServerLive": self.server_live,
            "ServerReady": self.server_ready,
            "ModelReady": self.model_ready,
            "ServerMetadata": self.server_metadata,
            "ModelMetadata": self.model_metadata,
        }
        own.update({name: self._admin(name, extension) for name, extension in RESTRICTED_METHODS.items()})
        self._internal_metadata = self._admin("ModelMetadata", INTERNAL_METADATA)
        self._internal_ready = self._admin("ModelReady", INTERNAL_READINESS)
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}
        for method in service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
            if method.client_streaming or method.server_streaming:
                self._handlers[method_path(method.name)] = grpc.stream_stream_rpc_method_handler(self.refuse_stream)
            elif method.name == "ModelInfer":
                # read by the handler itself: a unary handler is not called at all when the deadline passes while the
                # request is still arriving, and such a call would leave no audit line
                self._handlers[method_path(method.name)] = grpc.stream_unary_rpc_method_handler(self.model_infer)
            else:
                behaviour = own.get(method.name) or self._forwarder(method.name)
                if method.name not in RESTRICTED_METHODS:  # an admin call is audited whatever it sent
                    behaviour = parsed_first(getattr(service_pb2, method.input_type.name), behaviour)
                self._handlers[method_path(method.name)] = grpc.unary_unary_rpc_method_handler(behaviour)

    @property
    def oldest_forwarded_at(self) -> float | None:
        """time.monotonic() when the oldest call Triton is still working on was forwarded (None: none is)."""
        return min((sent_at for sent_at, _ in self._forwarded.values()), default=None)

    @property
    def expired_unanswered(self) -> float | None:
        """time.monotonic() when the first call whose client gave up while Triton worked on it since the ensemble last
        answered (neither a client nor the guard's canary) had been forwarded (None otherwise, and for a call
        forwarded before the pipeline was last healed): a sign of a hang."""
        if (self._expired is None or self._expired[1] <= self.answered_at
                or self._expired[0] < self.guard.readiness.ready_at):
            return None
        return self._expired[0]

    def ensemble_answered(self) -> None:
        """The ensemble answered an inference (a client's, or the guard's canary): it is not hung."""
        self.answered_at = time.monotonic()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        """The handler of a method path (None: UNIMPLEMENTED)."""
        return self._handlers.get(handler_call_details.method)

    def _metadata(self, context: grpc.aio.ServicerContext,
                  inference: bool = False) -> tuple[tuple[str, str | bytes], ...]:
        return forwarded_metadata(context, self.guard.admin_key, self.guard.internal_admin_key, inference)

    def _call(self, name: str) -> Any:
        if name not in self._calls:
            self._calls[name] = self.channel.unary_unary(method_path(name))
        return self._calls[name]

    def _forwarder(self, name: str) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]:
        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            try:
                return await self._call(name)(request, metadata=self._metadata(context),
                                              timeout=context.time_remaining())
            except grpc.aio.AioRpcError as e:
                await abort(context, *forwarded_status(e.code(), e.details() or ""))
        return forward

    def key_check(self, context: grpc.aio.ServicerContext) -> str:
        """How the call's admin key is found: KEY_NONE, KEY_RIGHT, KEY_WRONG (counted against its address), or
        KEY_LOCKED (its address sent too many wrong ones lately: the key is not looked at)."""
        value = admin_header(context)
        if value is None:
            return KEY_NONE
        address = peer_address(context.peer())
        if self.wrong_keys.locked_for(address) > 0:
            return KEY_LOCKED
        if hmac.compare_digest(value, self.guard.admin_key.encode()):
            return KEY_RIGHT
        if self.wrong_keys.record(address):
            logger.warning("%d wrong admin keys from %s within %g s: its admin calls are refused for the next %g s "
                           "(each is in the audit trail)", MAX_WRONG_KEYS, address, WRONG_KEY_WINDOW_S,
                           WRONG_KEY_WINDOW_S)
        return KEY_WRONG

    def _admin(self, name: str, extension: str | None) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]:
        """The handler of a call that needs the admin key: refused without the right one, or when it asks what the
        front allows no one (``admin_refusal``), else forwarded; audited either way."""
        async def admin(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            request = parsed_request(name, raw)
            call = AdminCall(name, time.perf_counter(), context.peer(), client_identity(context),
                             self.key_check(context), extension, requested_model(request))
            try:
                if call.key != KEY_RIGHT:
                    locked_s = self.wrong_keys.locked_for(peer_address(call.peer))
                    await self._end_admin(call, context, grpc.StatusCode.PERMISSION_DENIED,
                                          key_refusal(call.key, locked_s))
                await self._refuse_while_unaudited(call, context)
                refusal = admin_refusal(name, request)
                if refusal is not None:
                    logger.warning("refused an admin call from %s (client %s): %s", call.peer, call.client, refusal)
                    await self._end_admin(call, context, grpc.StatusCode.PERMISSION_DENIED, refusal)
                return await self._carry_out(name, call, raw, context)
            except asyncio.CancelledError:
                self._cancelled(call, context)
                raise
            finally:
                await self._audit_admin(call, context)
        return admin

    async def _refuse_while_unaudited(self, call: AdminCall, context: grpc.aio.ServicerContext) -> None:
        """End an admin call UNAVAILABLE, not carried out, while the audit trail takes no lines."""
        if self.guard.audit.problem is not None:  # nothing is done that could not be audited
            await self._end_admin(call, context, grpc.StatusCode.UNAVAILABLE,
                                  f"the audit trail cannot be written ({self.guard.audit.problem}): nothing was done; "
                                  "retry later")

    async def _carry_out(self, name: str, call: AdminCall, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Forward an admin call to Triton; its answer, with ``call`` marked OK, or the call ended with Triton's
        status (its audit line is the caller's, written in its ``finally``)."""
        if name == "RepositoryModelLoad" and self.guard.copy is not None:
            return await self._load_copied(name, call, raw, context)
        # from now on the answers name no build: Triton may be changing what it serves
        before = self.guard.models_changing() if name in MODEL_CHANGES else None
        try:
            answer = await self._call(name)(raw, metadata=self._metadata(context), timeout=context.time_remaining())
        except grpc.aio.AioRpcError as e:
            if before is not None:  # Triton keeps what it served (a refused load, or one that failed to load)
                self.guard.models_unchanged(before)
            await self._end_admin(call, context, *forwarded_status(e.code(), e.details() or ""))
        finally:
            if before is not None:  # the stubs of the instances it replaced are no faults for a while yet
                self.guard.models_changed()
        call.status, call.error = grpc.StatusCode.OK, None
        if name in MODEL_CHANGES:  # the files on disk are what Triton serves now: read them, whatever becomes of the call
            self.guard.read_identity_soon()
        return answer

    async def _load_copied(self, name: str, call: AdminCall, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """An admin load of the ensemble where the guard serves a copy of the repository (``Guard.load_copied``): the
        copy is made again and loaded, or the load refused with nothing changed. The load runs to its end in the
        guard, whatever becomes of this call (its deadline does not cut Triton's load short)."""
        forward = functools.partial(self._call(name), raw, metadata=self._metadata(context),
                                    timeout=self.guard.triton_config.startup_timeout_s)
        loading = self.guard.start_load_copied(forward)
        try:
            answer = await asyncio.shield(loading)
        except CopyError as e:
            await self._end_admin(call, context, grpc.StatusCode.FAILED_PRECONDITION, f"{e}; nothing was loaded")
        except LoadFailed as e:
            code, details = forwarded_status(e.code, e.details)
            await self._end_admin(call, context, code, f"{details}; {e.outcome}")
        call.status, call.error = grpc.StatusCode.OK, None
        return answer

    async def _failed_with_pipeline(self, call: AuditedCall, request: Any, token: int, size: int,
                                    error: str) -> tuple[grpc.StatusCode, str]:
        """The status of a call that failed with the pipeline: UNAVAILABLE, to be retried once it is healed, unless
        this request was the largest in flight at FAILURES_TO_REFUSE failures: then RESOURCE_EXHAUSTED, and it is
        refused for a while (``Culprits``). A call the guard's own healing of a hang ended is not counted."""
        sent_at = self._forwarded[token][0]
        others = [bytes_ for other, (_, bytes_) in self._forwarded.items() if other != token]
        failures = 0
        if not self.guard.healing_a_hang:
            failures = self.culprits.failed(await self._fingerprint(call), size, others, sent_at,
                                            self.guard.readiness.ready_at)
        if failures < FAILURES_TO_REFUSE:
            return grpc.StatusCode.UNAVAILABLE, f"a pipeline step failed and DermAssist is recovering; retry: {error}"
        text = refusal_text(images_in(request), size, failures, REFUSED_FOR_S)
        logger.warning("request %s %s", call.request_id, text)
        return grpc.StatusCode.RESOURCE_EXHAUSTED, f"{text} ({error})"

    @staticmethod
    async def _fingerprint(call: AuditedCall) -> str | None:
        """What identifies the call's request across its retries (``culprits.fingerprint``; None when its pictures
        could not be hashed). Awaited in the middle of the call: a cancellation of the call is raised, not waited out
        (the hashing goes on for the audit line)."""
        if call.hashing is None:
            return None
        try:
            images = await asyncio.shield(asyncio.wrap_future(call.hashing))
        except Exception:  # noqa: BLE001 - the audit line tells why (finished_hashes); nothing is blamed on it
            return None
        return fingerprint(images)

    def _note_expiry(self, token: int, gave_up: bool) -> None:
        """Remember a forwarded call whose client gave up (``gave_up``: its deadline passed, or it cancelled) while
        Triton worked on it (``expired_unanswered``): the first since the ensemble last answered, so that steady calls
        giving up one after another do not keep the sign young; one Triton held for under EXPIRY_HELD_S tells
        nothing of Triton."""
        forwarded = self._forwarded.get(token)
        now = time.monotonic()
        if (gave_up and forwarded is not None
                and now - forwarded[0] >= EXPIRY_HELD_S and self.expired_unanswered is None):
            self._expired = (forwarded[0], now)

    def _cancelled(self, call: Any, context: grpc.aio.ServicerContext) -> None:
        """Record why a call was cancelled (its deadline, the server stopping, or the client) unless its answer was
        already written: the audit line then says so."""
        if not call.written:
            call.status, call.error = cancellation(context.time_remaining(), self.guard.stopping,
                                                   self.guard.config.drain_s)

    async def _end_admin(self, call: AdminCall, context: grpc.aio.ServicerContext, status: grpc.StatusCode,
                         error: str) -> NoReturn:
        """End an admin call with ``status``, its audit line written first."""
        call.status, call.error = status, error
        await self._audit_admin(call, context)
        await abort(context, status, error)

    async def _audit_admin(self, call: AdminCall, context: grpc.aio.ServicerContext) -> None:
        """Write an admin call's audit line, once (never the key: only how it was found); a line that cannot be
        written ends the call UNAVAILABLE (``unaudited``)."""
        if call.written:
            return
        call.written = True
        try:
            self.guard.audit.write(admin_record(
                method=call.method, extension=call.extension, model=call.model, peer=call.peer, client=call.client,
                key=call.key, status=call.status.name, error=call.error,
                latency_ms=(time.perf_counter() - call.started) * 1000.0))
        except AuditWriteError as e:
            if call.status == grpc.StatusCode.OK:  # carried out: saying "retry" would have it done twice, unaudited
                self.metrics.observe_admin(grpc.StatusCode.DATA_LOSS.name)
                await self.unaudited(context, e, grpc.StatusCode.DATA_LOSS,
                                     f"{call.method} was carried out, but its audit line could not be written: it is "
                                     "missing from the audit trail; do not repeat it")
            self.metrics.observe_admin(grpc.StatusCode.UNAVAILABLE.name)
            await self.unaudited(context, e)
        self.metrics.observe_admin(call.status.name)

    async def unaudited(self, context: grpc.aio.ServicerContext, error: AuditWriteError,
                        status: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE, details: str = "") -> NoReturn:
        """End a call whose audit line could not be written: UNAVAILABLE by default (the client may retry, here or on
        another replica), never its answer, which would then leave without a record; readiness turns false."""
        self.metrics.observe_audit_failure()
        self.guard.report_audit_failure(self.guard.audit.problem or str(error))  # the bare cause: the reason words it
        await abort(context, status, details or f"DermAssist cannot answer now: {error}; retry later (its operator is "
                                                "told in its log)")

    async def refuse_stream(self, requests: Any, context: grpc.aio.ServicerContext) -> None:
        """Streaming inference is not part of the contract (and could not be audited per request)."""
        await abort(context, grpc.StatusCode.UNIMPLEMENTED,
                            "streaming inference is not served; call ModelInfer (one request per batch of images)")

    async def server_live(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Live while the guard runs (it restarts tritonserver itself when that dies) and has not been unready past
        its bound (``Readiness.live_problem``: recoveries that keep failing), as the health endpoint says."""
        live = self.guard.readiness.live_problem() is None
        return service_pb2.ServerLiveResponse(live=live).SerializeToString()

    async def server_ready(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Ready only when the last canary inference through the ensemble succeeded."""
        return service_pb2.ServerReadyResponse(ready=self.guard.readiness.ready).SerializeToString()

    async def model_ready(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Triton's answer, and false while the guard is not ready; an internal step's only with the admin key (as its
        metadata)."""
        asked = parsed_request("ModelReady", request)
        model = requested_model(asked)
        if model in STEP_MODELS:
            return await self._internal_ready(request, context)
        await self._refuse_unservable(asked, model, context)
        if not self.guard.readiness.ready:
            return service_pb2.ModelReadyResponse(ready=False).SerializeToString()
        return await self._forwarder("ModelReady")(request, context)

    async def server_metadata(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Triton's answer, listing only the extensions this caller can use through the front; Triton's version only
        to a caller with the admin key (it tells which published flaws apply). A call carrying a key is audited."""
        key = self.key_check(context)
        raw = (await self._forwarder("ServerMetadata")(request, context) if key == KEY_NONE
               else await self._keyed_server_metadata(request, context, key))
        answer = service_pb2.ServerMetadataResponse.FromString(raw)
        kept = served_extensions(list(answer.extensions), key == KEY_RIGHT)
        del answer.extensions[:]
        answer.extensions.extend(kept)
        if key != KEY_RIGHT:
            answer.version = ""
        return answer.SerializeToString()

    async def _keyed_server_metadata(self, request: bytes, context: grpc.aio.ServicerContext, key: str) -> bytes:
        """Triton's server metadata for a call carrying a key (right or wrong), audited as an admin call: not asked of
        Triton while the trail takes no lines, its line written after Triton answered, with how it ended."""
        call = AdminCall("ServerMetadata", time.perf_counter(), context.peer(), client_identity(context), key)
        try:
            await self._refuse_while_unaudited(call, context)
            return await self._carry_out("ServerMetadata", call, request, context)
        except asyncio.CancelledError:
            self._cancelled(call, context)
            raise
        finally:
            await self._audit_admin(call, context)

    async def model_metadata(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """The ensemble's metadata (the public contract) to anyone; an internal step's only with the admin key."""
        asked = parsed_request("ModelMetadata", request)
        model = requested_model(asked)
        if model in STEP_MODELS:
            return await self._internal_metadata(request, context)
        await self._refuse_unservable(asked, model, context)
        return await self._forwarder("ModelMetadata")(request, context)

    @staticmethod
    async def _refuse_unservable(asked: Any, model: str, context: grpc.aio.ServicerContext) -> None:
        """NOT_FOUND for a model name no served model has (ModelReady of a misspelt name had answered "not ready", a
        probe never ready; Triton's refusal of a long name quoted it whole, past gRPC's 16 KiB status limit);
        INVALID_ARGUMENT for a version that is no whole number (Triton's refusal says 'stol')."""
        if model not in ALL_MODELS:
            await abort(context, grpc.StatusCode.NOT_FOUND, unknown_model(model))
        problem = version_problem(str(getattr(asked, "version", "") or ""))
        if problem is not None:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, problem)

    async def model_infer(self, requests: Any, context: grpc.aio.ServicerContext) -> bytes:
        """Forward one inference request and write exactly one audit line for it, before its answer leaves.

        The handler reads the request itself (``requests``, the stream gRPC would iterate, is not used), so a call
        whose deadline passes (or whose client goes) while the request is still arriving is audited too."""
        call = AuditedCall(started=time.perf_counter(), peer=context.peer(), client=client_identity(context),
                           request_id=header_request_id(context))
        token = -1  # set when the call is forwarded to Triton
        held = 0  # bytes of this request counted in bytes_in_flight
        self.in_flight += 1
        try:
            raw = await context.read()
            call.read = True
            if not isinstance(raw, bytes):  # EOF: gRPC refused the message (too large), or none came
                await self._end(call, context, grpc.StatusCode.RESOURCE_EXHAUSTED, NOT_ONE_MESSAGE)
            try:
                request = service_pb2.ModelInferRequest.FromString(raw)
            except DecodeError as e:
                await self._end(call, context, grpc.StatusCode.INVALID_ARGUMENT,
                                f"the request is not a ModelInferRequest: {e}")
            call.request, call.request_id = request, request.id
            over = over_inflight_budget(self.bytes_in_flight, len(raw), self.guard.config.max_inflight_mib)
            if over is not None:
                self.metrics.over_budget += 1
                await self._end(call, context, grpc.StatusCode.UNAVAILABLE, over)
            held = len(raw)
            self.bytes_in_flight += held
            defaulted = with_default_outputs(request)
            added, named = with_audited_outputs(request), bool(request.id)
            if not named:
                request.id = uuid.uuid4().hex
            if defaulted or added or not named:
                raw = request.SerializeToString()
            call.request_id = request.id
            call.hashing = self._hashing.submit(request_images, request, self.guard.config.audit_digest_secret)
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                await self._end(call, context, grpc.StatusCode.DEADLINE_EXCEEDED, DEADLINE_ARRIVING)
            refusal = request_refusal(request)
            if refusal is not None:
                await self._end(call, context, *refusal)
            if request.model_name != ENSEMBLE_NAME and self.key_check(context) != KEY_RIGHT:
                await self._end(call, context, grpc.StatusCode.PERMISSION_DENIED,
                                f"model {quoted(request.model_name)} is an internal step; clients call "
                                f"{ENSEMBLE_NAME!r} (internal steps need the admin key)")
            hold = held_for(context.time_remaining(), self.guard.config.hold_s)
            if not self.guard.readiness.ready:
                self.metrics.held += 1
            self.metrics.waiting += 1
            try:
                ready = await self.guard.readiness.wait(hold)
            finally:
                self.metrics.waiting -= 1
            if not ready:
                await self._end(call, context, grpc.StatusCode.UNAVAILABLE,
                                f"DermAssist is not ready ({self.guard.readiness.reason}); retry later")
            if self.culprits.refusing:  # only then is the request's fingerprint awaited before it is sent
                culprit = self.culprits.refusal(await self._fingerprint(call), images_in(request), held)
                if culprit is not None:
                    await self._end(call, context, grpc.StatusCode.RESOURCE_EXHAUSTED, culprit)
            sent_at = time.monotonic()
            token = next(self._tokens)
            self._forwarded[token] = (sent_at, held)
            try:
                answer = await self._call("ModelInfer")(raw, metadata=self._metadata(context, inference=True),
                                                         timeout=context.time_remaining())
            except grpc.aio.AioRpcError as e:
                status, error = e.code(), e.details() or ""
                self._note_expiry(token, status == grpc.StatusCode.DEADLINE_EXCEEDED)  # Triton's CANCELLED: its own
                if is_step_failure(status, error):
                    self.guard.report_step_failure(error, sent_at)
                    status, error = await self._failed_with_pipeline(call, request, token, held, error)
                rows = bad_rows(error) if status == grpc.StatusCode.INVALID_ARGUMENT else []
                if rows:  # the rows a client without the SDK sends again without, not to be parsed from the text
                    context.set_trailing_metadata(((BAD_ROWS_METADATA, ",".join(map(str, rows))),))
                await self._end(call, context, status, error)
            self._forwarded.pop(token, None)  # answered: a deadline passing from here (hashing) is no sign of a hang
            self.ensemble_answered()
            if self.culprits.suspects:  # a request answered well is no culprit
                self.culprits.answered(await self._fingerprint(call))
            call.response = service_pb2.ModelInferResponse.FromString(answer)
            call.status, call.error = grpc.StatusCode.OK, None
            served = without_outputs(call.response, added).SerializeToString() if added else answer
            return served + identity_parameters(self.guard.identity)
        except asyncio.CancelledError:
            self._cancelled(call, context)
            self._note_expiry(token, call.status in GAVE_UP)
            raise
        finally:
            self.in_flight -= 1
            self.bytes_in_flight -= held
            self._forwarded.pop(token, None)
            await self._audit(call, context)  # an answer is sent after this; a refusal had its line before it left

    async def _end(self, call: AuditedCall, context: grpc.aio.ServicerContext, status: grpc.StatusCode,
                   error: str) -> NoReturn:
        """End the call with ``status``: its audit line is written first, since the client may act on the status
        (or the process end) the moment it leaves."""
        call.status, call.error = status, error
        await self._audit(call, context)
        await abort(context, status, error)

    async def _audit(self, call: AuditedCall, context: grpc.aio.ServicerContext) -> None:
        """Write the call's audit line, once."""
        if call.written:
            return
        call.written = True
        images = await finished_hashes(call.hashing)
        remaining = context.time_remaining()
        call.status, call.error = audited_status(call.status, call.error, remaining)
        latency_ms = (time.perf_counter() - call.started) * 1000.0
        fields = dict(request_id=call.request_id, peer=call.peer, client=call.client, versions=self.guard.versions,
                      identity=self.guard.identity, status=call.status.name, error=call.error, latency_ms=latency_ms,
                      unread=not call.read, key=self.guard.config.audit_digest_secret)
        try:
            record = build_record(call.request, response=call.response, images=images, **fields)
        except Exception:  # the audit line must never take the answer down with it; it loses the answer columns
            logger.exception("the audit line of request %s was written without its answer", call.request_id)
            record = build_record(call.request, images=images, **fields)
        try:
            self.guard.audit.write(record)
        except AuditWriteError as e:
            self.metrics.observe_request(grpc.StatusCode.UNAVAILABLE.name, latency_ms / 1000.0)
            await self.unaudited(context, e)
        self.metrics.observe_request(call.status.name, latency_ms / 1000.0)

    def close(self) -> None:
        """Stop the hashing threads."""
        self._hashing.shutdown(wait=True)
