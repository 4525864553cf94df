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
from dermassist.guard.front import EXPIRY_HELD_S
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
        assert _infer(served.address, ham_jpeg, EXPIRY_HELD_S + 0.2) == "StatusCode.DEADLINE_EXCEEDED"
        assert wait_until(lambda: front.in_flight == 0, 10)  # the front has ended the call that ran out
        expired = front.expired_unanswered
        assert expired is not None and before <= expired <= time.monotonic()
        held = threading.Thread(target=_infer, args=(served.address, ham_jpeg, 3.0 + EXPIRY_HELD_S))
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
            assert front.expired_unanswered == expired  # the held call ran out in its turn: the first sign stays
        else:
            assert front.expired_unanswered is None and front.answered_at > expired  # an answer since: no sign
        release.set()


def _hanging(release: threading.Event):
    async def model_infer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        from tritonclient.grpc import service_pb2

        while not release.is_set():
            await asyncio.sleep(0.02)
        return service_pb2.ModelInferResponse(model_name=ENSEMBLE_NAME).SerializeToString()
    return model_infer


def test_the_sign_of_a_hang_ends_when_a_canary_is_answered_or_the_pipeline_was_healed(tmp_path: Path,
                                                                                       ham_jpeg: bytes) -> None:
    """The sign had lasted until a client's call was answered: hours later, on a quiet site, a canary that timed out
    behind one legitimate long call was read as a hang and tritonserver restarted under it (review 13, finding 1)."""
    release = threading.Event()
    with front_before_stand_in(tmp_path / "audit.jsonl", model_infer=_hanging(release)) as served:
        front = served.front
        assert _infer(served.address, ham_jpeg, EXPIRY_HELD_S + 0.2) == "StatusCode.DEADLINE_EXCEEDED"
        assert wait_until(lambda: front.in_flight == 0, 10) and front.expired_unanswered is not None
        front.ensemble_answered()  # the guard's canary was answered
        assert front.expired_unanswered is None
        assert _infer(served.address, ham_jpeg, EXPIRY_HELD_S + 0.2) == "StatusCode.DEADLINE_EXCEEDED"
        assert wait_until(lambda: front.in_flight == 0, 10) and front.expired_unanswered is not None

        async def heal() -> None:
            front.guard.readiness.set_not_ready("canary inference failed: DEADLINE_EXCEEDED")
            front.guard.readiness.set_ready()

        asyncio.run_coroutine_threadsafe(heal(), served.loop).result(5)
        assert front.expired_unanswered is None  # that call was forwarded before the healing ended it
        release.set()


def test_a_call_forwarded_with_almost_no_time_left_is_no_sign_of_a_hang(tmp_path: Path, ham_jpeg: bytes) -> None:
    """Triton never held it: its deadline passed as it arrived (review 13, finding 2)."""
    release = threading.Event()
    with front_before_stand_in(tmp_path / "audit.jsonl", model_infer=_hanging(release)) as served:
        assert _infer(served.address, ham_jpeg, EXPIRY_HELD_S / 2) == "StatusCode.DEADLINE_EXCEEDED"
        assert wait_until(lambda: served.front.in_flight == 0, 10)
        assert served.front.expired_unanswered is None
        release.set()


def test_a_batch_whose_client_gave_up_still_computing_keeps_a_queue_a_queue() -> None:
    """Batch forwarded at 0 s (minutes on a CPU), its client gone at 30 s; a call behind it forwarded at 5 s is held;
    the canary sent at 31 s ran out at 41 s. The expiry alone reads as a hang (review 13, finding 5); with
    tritonserver using the CPU meanwhile it is a queue, up to the busy limit."""
    assert not busy_not_broken(DEADLINE, 31.0, 0.0, holding_since=5.0, now=41.0, limit_s=300.0, expired_unanswered=0.0)
    assert busy_not_broken(DEADLINE, 31.0, 0.0, holding_since=5.0, now=41.0, limit_s=300.0, expired_unanswered=0.0,
                           working=True)
    assert not busy_not_broken(DEADLINE, 31.0, 0.0, holding_since=5.0, now=306.0, limit_s=300.0,
                               expired_unanswered=0.0, working=True)  # held past the limit: healed all the same
    # a step spinning for ever: clients that give up at 30 s keep the call held young (forwarded at 290 s), but
    # nothing was answered since a call forwarded at 0 s ran out: past the limit from then, it is healed (review 14)
    assert not busy_not_broken(DEADLINE, 300.0, 0.0, holding_since=290.0, now=310.0, limit_s=300.0,
                               expired_unanswered=0.0, working=True)
    assert busy_not_broken(DEADLINE, 300.0, 0.0, holding_since=290.0, now=310.0, limit_s=300.0,
                           expired_unanswered=15.0, working=True)


def test_cpu_seconds_of_this_process_match_what_the_os_says() -> None:
    import os

    from dermassist.guard.stubs import cpu_seconds

    burn = time.process_time() + 0.3
    while time.process_time() < burn:
        pass
    times = os.times()
    assert abs(cpu_seconds([os.getpid()]) - (times.user + times.system)) < 0.05
    assert cpu_seconds([2**22 + 7]) == 0.0  # gone: nothing


@pytest.mark.parametrize("busy", [True, False])
def test_the_canary_reads_tritonservers_cpu_use_while_it_waited(tmp_path: Path, busy: bool) -> None:
    """A stand-in tritonserver process that computes (a busy loop) or sleeps (frozen) while the canary times out
    behind a held call, after a call ran out inside Triton."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from dermassist.base.server_config import ServerConfig
    from dermassist.guard.config import GuardConfig
    from dermassist.guard.guard import Guard

    code = "while True: pass" if busy else "import time; time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", code])

    class Triton:
        async def ModelInfer(self, request, timeout, metadata=()):  # Triton's method name
            await asyncio.sleep(1.0)
            raise grpc.aio.AioRpcError(DEADLINE, grpc.aio.Metadata(), grpc.aio.Metadata(), "Deadline Exceeded")

    try:
        server = SimpleNamespace(config=ServerConfig(repository=tmp_path, admin_key="k"), pid=process.pid)
        guard = Guard(ServerConfig(repository=tmp_path), GuardConfig(audit_log=str(tmp_path / "a.jsonl")), server)
        guard.triton = Triton()
        now = time.monotonic()
        guard.front = SimpleNamespace(answered_at=0.0, oldest_forwarded_at=now - 5, expired_unanswered=now - 35,
                                      ensemble_answered=lambda: None)
        time.sleep(0.3)  # the stand-in is running
        problem = asyncio.run(guard.canary())
        guard.audit.close()
    finally:
        process.kill()
        process.wait()
    assert (problem is None) is busy


def test_a_call_its_client_cancelled_inside_triton_is_a_sign_too(tmp_path: Path, ham_jpeg: bytes) -> None:
    """Clients behind a proxy that cancels (or a user's Ctrl-C) never let a deadline pass: a deadlocked step was never
    healed (review 15)."""
    from tritonclient.grpc import service_pb2

    from dermassist.guard.front import SERVICE

    release = threading.Event()
    with front_before_stand_in(tmp_path / "audit.jsonl", model_infer=_hanging(release)) as served:
        request = service_pb2.ModelInferRequest(model_name=ENSEMBLE_NAME, id="cancelled-inside")
        request.inputs.add(name="IMAGE", datatype="BYTES", shape=[1, 1])
        request.raw_input_contents.append(len(ham_jpeg).to_bytes(4, "little") + ham_jpeg)
        with grpc.insecure_channel(served.address) as channel:
            call = channel.unary_unary(f"/{SERVICE}/ModelInfer").future(request.SerializeToString(), timeout=30)
            time.sleep(EXPIRY_HELD_S + 0.3)
            call.cancel()
        assert wait_until(lambda: served.front.in_flight == 0, 10)
        assert served.front.expired_unanswered is not None
        release.set()
