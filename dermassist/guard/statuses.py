"""How a call through the front ends: which of Triton's errors mean a broken or healing step (clients retry), the
status an audit line records past the client's deadline, a cancelled call's cause, how long a call may wait for
readiness, and gRPC's undelivered answers said in one line instead of a traceback."""
from __future__ import annotations

import asyncio
import logging
import re
from typing import NoReturn

import grpc

from preprocess.contract import BAD_ROW_FORMAT

logger = logging.getLogger(__name__)

STUB_UNHEALTHY = "is not healthy"  # the client's STEP_UNHEALTHY; not imported: the serving image ships no client
#: The longest margin a held call keeps of its deadline for its refusal to reach it (``held_for``).
HOLD_REPLY_MARGIN_S = 1.0


# Triton's words for a model none of whose versions is loaded: the ensemble in the middle of the guard's reload (or
# unloaded by an admin), not a version the client named that does not exist ("version N is not found").
NO_VERSION_LOADED = "has no available versions"


def is_step_failure(code: grpc.StatusCode, details: str) -> bool:
    """Whether Triton's error means the pipeline broke or is being healed (not that the request was bad)."""
    return (code == grpc.StatusCode.UNAVAILABLE or (code == grpc.StatusCode.INTERNAL and STUB_UNHEALTHY in details)
            or (code == grpc.StatusCode.NOT_FOUND and NO_VERSION_LOADED in details))


# The server learns a client's deadline as a timeout counted from when the call's headers arrived, so its copy of
# the deadline runs late by the time they took to come; the client's own timer fires first and cancels the call.
# A cancel this close to the server's deadline is the client's deadline (the soak saw such ones audited CANCELLED).
DEADLINE_SLACK_S = 0.1
DEADLINE_PASSED = "the client's deadline passed before the answer"
DEADLINE_ARRIVING = f"{DEADLINE_PASSED}: it passed while the request was still arriving"
ANSWERED_LATE = f"{DEADLINE_PASSED}: the answer was ready after it and not delivered"
NOT_ONE_MESSAGE = ("the request did not arrive as one message: it was larger than the front reads (--max-request-mib) "
                   "or the client sent none; send fewer images per call")


def audited_status(status: grpc.StatusCode, error: str | None,
                   remaining_s: float | None) -> tuple[grpc.StatusCode, str | None]:
    """The status a call's audit line records: a failure after the client's deadline passed is the deadline (the
    client got that, not this), with the failure named unless it was the forwarded call's own DEADLINE_EXCEEDED,
    which ran out with the client's (which of the two fires first under load is a race: said once either way); an
    answer ready only after the deadline (its pictures hashed for the trail meanwhile) is the deadline too: gRPC does
    not deliver it, and the client, whose deadline passed first, got DEADLINE_EXCEEDED."""
    if remaining_s is None or remaining_s > 0 or (error or "").startswith(DEADLINE_PASSED):
        return status, error
    if status == grpc.StatusCode.OK:
        return grpc.StatusCode.DEADLINE_EXCEEDED, ANSWERED_LATE
    upstream = "" if status == grpc.StatusCode.DEADLINE_EXCEEDED else f" ({status.name}: {error})"
    return grpc.StatusCode.DEADLINE_EXCEEDED, f"{DEADLINE_PASSED}{upstream}"


def cancellation(remaining_s: float | None, stopping: bool, drain_s: float) -> tuple[grpc.StatusCode, str]:
    """The audited status of a call cancelled before its answer: the client's deadline, the server's shutdown
    (the call was still running when the drain ended), or the client itself."""
    if remaining_s is not None and remaining_s <= DEADLINE_SLACK_S:
        return grpc.StatusCode.DEADLINE_EXCEEDED, DEADLINE_PASSED
    if stopping:
        return (grpc.StatusCode.UNAVAILABLE,
                f"DermAssist shut down before the answer (calls in flight get {drain_s:g} s, --drain-s)")
    return grpc.StatusCode.CANCELLED, "the client cancelled the call"


# What grpc.aio raises when a status cannot be sent because the call already ended (its deadline passed, the client
# went): gRPC logs it at ERROR with its traceback unless the client closed the call itself.
ExecuteBatchError: type[BaseException] = getattr(getattr(getattr(grpc, "_cython", None), "cygrpc", None),
                                                 "ExecuteBatchError", RuntimeError)


#: The logger grpc.aio reports a failed send on, and the line an undelivered answer becomes there.
GRPC_CORE_LOGGER = "grpc._cython.cygrpc"
UNDELIVERED = ("gRPC could not deliver a call's answer or status (%s): the client went, its deadline passed, or it "
               "refused the answer's size (answers with CROP and CAM reach about 0.27 MB an image, 8.5 MB for 32 images, "
               "over the 4 MiB a plain gRPC client accepts by default: docs/sdk.md, 'Calling without the SDK'); the audit "
               "line of an inference says OK when its answer was handed to gRPC before the client's deadline")


class UndeliveredAnswer(logging.Filter):
    """Turns grpc.aio's ERROR traceback for an answer it could not send (an ordinary client-side failure, nothing
    wrong in the service) into one WARNING line that says what happened and what the client can change."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` when it reports an ExecuteBatchError; keep every record."""
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ExecuteBatchError) or "ExecuteBatchError raised in core" in str(record.msg):
            where = record.getMessage().rpartition("servicer method ")[2] or "a call"
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
            record.msg, record.args, record.exc_info, record.exc_text = UNDELIVERED, (where,), None, None
        return True


UNDELIVERED_FILTER = UndeliveredAnswer()


def held_for(time_remaining: float | None, hold_s: float) -> float:
    """How long a call may wait for readiness: ``hold_s``, but never its whole deadline: the refusal that names why
    it was not served (UNAVAILABLE, which clients retry, here or on another replica) must reach the client before its
    deadline does, or it only learns to raise its timeout. The margin is a tenth of the time left, at most
    ``HOLD_REPLY_MARGIN_S``."""
    if time_remaining is None:
        return hold_s
    return max(0.0, min(hold_s, time_remaining - min(HOLD_REPLY_MARGIN_S, 0.1 * time_remaining)))


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    """End the call with ``code`` and ``details`` (grpc.aio raises inside ``abort``; this says so to the type checker).

    A call that has already ended (its deadline passed, or gRPC could not send the status) is ended as cancelled
    instead: an ordinary client deadline, logged at DEBUG, not a traceback at ERROR.
    """
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        logger.debug("not sending %s to a call past its deadline: %s", code.name, details)
        raise asyncio.CancelledError(f"the client's deadline passed before {code.name} could be sent")
    try:
        await context.abort(code, details)
    except ExecuteBatchError as e:
        logger.debug("the call ended before %s could be sent (%s): %s", code.name, e, details)
        raise asyncio.CancelledError(f"the call ended before {code.name} could be sent") from e
    raise RuntimeError("grpc.aio's ServicerContext.abort returned instead of raising")


def over_inflight_budget(held: int, arriving: int, budget_mib: int) -> str | None:
    """Why a request of ``arriving`` bytes is refused while ``held`` bytes of others are in flight (UNAVAILABLE, which
    clients retry), or None when it fits the front's budget of ``budget_mib`` MiB (GuardConfig.max_inflight_mib); a
    request alone in flight always fits (one of max_request_mib, however large, is served)."""
    budget = budget_mib * 1024 * 1024
    if held == 0 or held + arriving <= budget:
        return None
    return (f"DermAssist holds {held / 2**20:.0f} MiB of requests in flight and this one of {arriving / 2**20:.1f} MiB "
            f"would pass its limit of {budget_mib} MiB (--max-inflight-mib); retry shortly, or send fewer or smaller "
            "images per call")


_BAD_ROW = re.compile(re.escape(BAD_ROW_FORMAT.format(row="ROW")).replace("ROW", r"(\d+)"))


def bad_rows(details: str) -> list[int]:
    """The rows a refusal names as bad images (``BAD_ROW_FORMAT``), ascending, each once."""
    return sorted({int(row) for row in _BAD_ROW.findall(details)})
