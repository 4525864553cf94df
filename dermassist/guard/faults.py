"""What the guard's watchdog finds and what it did about it: a ``Fault``, a ``Recovery``; which models an error names,
whether a canary out of time met a queue or a hang, and the backoff after failed recoveries."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from .statuses import STUB_UNHEALTHY

MAX_BACKOFF_S = 60.0
_STUB_IN_MESSAGE = re.compile(rf"Stub process '(?P<instance>[^']+?)_\d+_\d+' {STUB_UNHEALTHY}")


@dataclass(frozen=True)
class Fault:
    """What the watchdog found: why, which models (if known), whether tritonserver is gone, and whether the pipeline
    stopped answering (``hang``: a canary ran out of time; healing it ends the calls it held, which are not blamed on
    their requests)."""

    reason: str
    models: tuple[str, ...] = ()
    server_down: bool = False
    hang: bool = False


@dataclass
class Recovery:
    """One healing, for the log and the tests: what broke, what was done, how long it took."""

    reason: str
    action: str
    detected_at: float  # time.monotonic()
    ready_at: float | None = None  # when the pipeline came back: by this recovery, or (error set) later by itself
    error: str | None = None
    fault: str = ""  # which fault it healed (``fault_key``): a healing that did not hold counts against the same one

    @property
    def duration_s(self) -> float | None:
        """Seconds from detection to readiness (None while it has not come back)."""
        return None if self.ready_at is None else self.ready_at - self.detected_at


def models_in_message(message: str) -> tuple[str, ...]:
    """The models whose stub an error message names as unhealthy."""
    return tuple(sorted({m.group("instance") for m in _STUB_IN_MESSAGE.finditer(message)}))


def busy_not_broken(code: grpc.StatusCode, sent_at: float, answered_at: float, holding_since: float | None = None,
                    now: float = 0.0, limit_s: float = 0.0, expired_unanswered: float | None = None,
                    working: bool = False) -> bool:
    """A canary sent at ``sent_at`` that ran out of time met a queue, not a fault, when the ensemble answered a client
    meanwhile (at ``answered_at``), or when a client call it queued behind (forwarded at ``holding_since``, the
    oldest still being worked on) has been worked on for less than ``limit_s`` (all time.monotonic; ``now``: the
    canary's end). One large batch answers nothing for minutes: healing a pipeline that works would turn load into
    an outage. A call held past ``limit_s`` with no answer since is a hang, and is healed; so is a pipeline in
    which a call forwarded no later than the one held (at ``expired_unanswered``) ran out of its deadline with
    nothing answered since: clients that give up after 30 s never let a call reach the limit, and a frozen
    tritonserver stayed ready while every call timed out (failure audit 0), unless tritonserver's processes used the
    CPU while the canary waited (``working``): a batch whose client gave up goes on computing, and the calls queued
    behind it are still a queue (review 13, finding 5), until ``limit_s`` after that call was forwarded with
    nothing answered since: a step spinning for ever uses the CPU too, and clients that give up keep the oldest
    call held young (review 14)."""
    if code != grpc.StatusCode.DEADLINE_EXCEEDED:
        return False
    if answered_at > sent_at:
        return True
    if holding_since is None or holding_since > sent_at:
        return False
    if expired_unanswered is not None and expired_unanswered <= holding_since:
        return working and now - expired_unanswered < limit_s
    return now - holding_since < limit_s


def fault_key(fault: Fault) -> str:
    """What a fault is, for telling whether it came back: tritonserver gone, the models it names, or its reason less
    its numbers (pids, request ids)."""
    if fault.server_down:
        return "tritonserver"
    return "models " + ",".join(fault.models) if fault.models else re.sub(r"\d+", "#", fault.reason)


def held(recovery: Recovery, until: float, stable_s: float) -> bool:
    """Whether the pipeline ``recovery`` brought back (``ready_at``) stayed so for ``stable_s`` up to ``until`` (the
    next fault's detection, or now): readiness that broke sooner healed nothing."""
    return recovery.ready_at is not None and until - recovery.ready_at >= stable_s


def recovery_backoff(recoveries: Sequence[Recovery], now: float, stable_s: float, fault: str | None = None) -> float:
    """Seconds to wait before the next recovery: 2, 4, 8 ... up to MAX_BACKOFF_S by the failed recoveries in a row
    since the pipeline last came back (``ready_at``: a recovery that healed, or a failed one after which the watchdog
    found it working), so the failures of earlier, healed incidents do not count; a healing counts as failed too when
    the same fault came back less than ``stable_s`` after it (flapping; ``fault``: the one about to be healed, when
    it has no record yet). Faults of different steps in quick succession are healed at once (``now``:
    time.monotonic())."""
    failed = 0
    until, later = now, fault
    for recovery in reversed(recoveries):
        if recovery.ready_at is not None and (held(recovery, until, stable_s) or later != recovery.fault):
            break
        failed += 1
        until, later = recovery.detected_at, recovery.fault
    return min(MAX_BACKOFF_S, 2.0 ** failed)
