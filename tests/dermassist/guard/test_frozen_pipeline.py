"""A frozen tritonserver under steady client traffic (failure audit 0): each call ran out of its 30 s deadline, a newer
one was always in flight, so every canary that timed out was called "busy" and readiness stayed true for minutes.
A call that runs out of its deadline inside Triton, with nothing answered since, now tells a hang from a queue."""
from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from dermassist.guard.faults import busy_not_broken
from preprocess.contract import ENSEMBLE_NAME
from tests.support.polling import wait_until

from .loopback import front_before_stand_in

DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED


def test_the_verdict_by_hand() -> None:
    """Canary sent at 100 s, timed out at 110 s; the call held now was forwarded at 95 s; busy limit 300 s."""
    assert busy_not_broken(DEADLINE, 100.0, 0.0, holding_since=95.0, now=110.0, limit_s=300.0)  # a queue
    assert not busy_not_broken(DEADLINE, 100.0, 0.0, holding_since=95.0, now=110.0, limit_s=300.0,
                               expired_unanswered=65.0)  # an older call ran out unanswered: a hang
    assert not busy_not_broken(DEADLINE, 100.0, 0.0, holding_since=95.0, now=110.0, limit_s=300.0,
                               expired_unanswered=95.0)  # the held call's twin, forwarded at the same instant
    assert busy_not_broken(DEADLINE, 100.0, 0.0, holding_since=95.0, now=110.0, limit_s=300.0,
                           expired_unanswered=97.0)  # a newer call gave up behind one long batch: still a queue
    assert busy_not_broken(DEADLINE, 100.0, 104.0, holding_since=95.0, now=110.0, limit_s=300.0,
                           expired_unanswered=65.0)  # answered while the canary waited: working


def _infer(address: str, picture: bytes, timeout_s: float) -> str:
    client = grpcclient.InferenceServerClient(address)
    tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[picture]], dtype=object))
    try:
        client.infer(ENSEMBLE_NAME, [tensor], client_timeout=timeout_s)
    except InferenceServerException as e:
        return str(e.status())
    finally:
        client.close()
    return "OK"


@pytest.mark.parametrize("frozen", [True, False])
def test_the_fronts_record_of_calls_that_ran_out_inside_triton(tmp_path: Path, ham_jpeg: bytes, frozen: bool) -> None:
    """Frozen: every call hangs until its deadline. Working: the same, but the stand-in then answers a call, which
    clears the sign."""
    release = threading.Event()

    async def model_infer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        from tritonclient.grpc import service_pb2

        while not release.is_set():
            await asyncio.sleep(0.02)
        return service_pb2.ModelInferResponse(model_name=ENSEMBLE_NAME).SerializeToString()

    with front_before_stand_in(tmp_path / "audit.jsonl", model_infer=model_infer) as served:
        front = served.front
        assert front.expired_unanswered is None
        before = time.monotonic()
        assert _infer(served.address, ham_jpeg, 0.5) == "StatusCode.DEADLINE_EXCEEDED"
        assert wait_until(lambda: front.in_flight == 0, 10)  # the front has ended the call that ran out
        expired = front.expired_unanswered
        assert expired is not None and before <= expired <= time.monotonic()
        held = threading.Thread(target=_infer, args=(served.address, ham_jpeg, 3.0))
        held.start()  # the next client's call, in flight while a canary waits
        deadline = time.monotonic() + 10
        while front.oldest_forwarded_at is None and time.monotonic() < deadline:
            time.sleep(0.01)
        holding_since = front.oldest_forwarded_at
        assert holding_since is not None and expired <= holding_since
        now = time.monotonic()
        assert not busy_not_broken(DEADLINE, now - 0.01, front.answered_at, holding_since, now, 300.0,
                                   front.expired_unanswered)  # frozen: healed, not waited on
        if not frozen:
            release.set()
        held.join(30)
        assert wait_until(lambda: front.in_flight == 0, 10)
        if frozen:
            assert front.expired_unanswered == holding_since  # the held call ran out in its turn
        else:
            assert front.expired_unanswered is None and front.answered_at > expired  # an answer since: no sign
        release.set()
