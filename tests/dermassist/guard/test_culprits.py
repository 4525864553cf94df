"""A request that takes the pipeline down is refused after its second failure (failure audit 5): one 32-picture
request too large for the memory had taken tritonserver down four times in a minute through the SDK's retries."""
from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from dermassist.guard.culprits import (
    FAILURES_TO_REFUSE,
    FORGOTTEN_AFTER_S,
    REFUSED_FOR_S,
    REFUSED_WORDS,
    TOGETHER_S,
    Culprits,
    fingerprint,
)
from preprocess.contract import ENSEMBLE_NAME

from .loopback import front_before_stand_in


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Pipeline:
    """A stepped clock, when the pipeline was last healed, and calls forwarded now: ``fail`` is a failure of one."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.culprits = Culprits(self.clock)
        self.healed_at = 990.0

    def heal(self, after_s: float = 12.0) -> None:
        """Healed ``after_s`` from now; the next call is forwarded a second later."""
        self.healed_at = self.clock.now + after_s
        self.clock.now = self.healed_at + 1.0

    def fail(self, key: str | None, size: int, in_flight: list[int] | None = None, sent_at: float | None = None) -> int:
        sent = self.clock.now - 0.5 if sent_at is None else sent_at
        return self.culprits.failed(key, size, in_flight or [], sent, self.healed_at)


def test_the_largest_request_failing_is_blamed_and_refused_at_its_second_failure() -> None:
    p = Pipeline()
    culprits = p.culprits
    assert FAILURES_TO_REFUSE == 2 and not culprits.refusing
    assert p.fail("big", 184_000_000, in_flight=[60_000]) == 1
    assert p.fail("small", 60_000) == 0  # failed with the big one: a bystander
    assert not culprits.refusing and culprits.refusal("big", 32, 184_000_000) is None
    p.heal()  # healed; the client's retry is forwarded and fails again
    assert p.fail("big", 184_000_000) == 2
    assert culprits.refusing
    text = culprits.refusal("big", 32, 184_000_000)
    assert text is not None and text.startswith(f"this request (32 picture(s), 184.0 MB) {REFUSED_WORDS} (2 times): "
                                                "it is not run again for 10 more minute(s)")
    assert "send fewer or smaller pictures per call" in text
    assert culprits.refusal("small", 1, 60_000) is None  # only the culprit
    p.clock.now += REFUSED_FOR_S
    assert not culprits.refusing and culprits.refusal("big", 32, 184_000_000) is None  # for a while, not for ever


def test_a_bystander_is_blamed_only_when_it_was_the_largest_failing() -> None:
    p = Pipeline()
    assert p.fail("a", 500, in_flight=[900]) == 0  # a larger call was in flight
    p.heal(TOGETHER_S + 0.1)
    assert p.fail("a", 500) == 1  # alone: blamed
    assert p.fail("b", 500) == 1  # as large, together: both blamed


def test_copies_failing_together_count_once_and_a_request_answered_well_is_cleared() -> None:
    """A load test sends one picture over and over: every fault a test injected failed several copies of it, and it
    was refused though it had been answered well between the faults (the fault-injection tests of CI)."""
    p = Pipeline()
    culprits = p.culprits
    assert [p.fail("same", 300, in_flight=[300, 300]) for _ in range(3)] == [1, 1, 1]  # one failure
    assert culprits.suspects
    culprits.answered("same")  # a copy of it was answered after the healing
    assert not culprits.suspects
    p.heal(30.0)
    assert p.fail("same", 300) == 1 and not culprits.refusing  # a new first failure
    p.heal(30.0)
    assert p.fail("same", 300) == 2 and culprits.refusing  # never answered between: refused


def test_one_failure_counts_once_however_long_its_calls_take_to_fail() -> None:
    """Copies of one picture in different steps failed at the crash and again at the reload, 2.5 s apart: one fault
    refused the picture (review 13, finding 3d). A request counts once between two healings."""
    p = Pipeline()
    assert p.fail("same", 300) == 1
    p.clock.now += 2.5
    assert p.fail("same", 300) == 1 and not p.culprits.refusing
    p.clock.now += 60.0
    assert p.fail("same", 300) == 1  # still not healed since: the same failure
    p.heal()
    assert p.fail("same", 300) == 2  # failed again after a healing


def test_a_call_forwarded_before_the_last_healing_is_not_counted() -> None:
    """Its failure is the healing's doing (a restart ends every call in flight), not its request's."""
    p = Pipeline()
    sent = p.clock.now
    p.heal()
    assert p.fail("old", 300, sent_at=sent) == 0 and not p.culprits.suspects


def test_failures_are_forgotten_after_a_while() -> None:
    """The same pictures sent again a week later were refused at their next failure (review 13, finding 3c)."""
    p = Pipeline()
    assert p.fail("weekly", 300) == 1
    p.heal(FORGOTTEN_AFTER_S + 1.0)
    assert p.fail("weekly", 300) == 1 and not p.culprits.refusing  # a new first failure
    p.heal(FORGOTTEN_AFTER_S - 1.0)
    assert p.fail("weekly", 300) == 2 and p.culprits.refusing


def test_a_request_whose_pictures_could_not_be_hashed_is_never_blamed() -> None:
    """Every such request had the same fingerprint (review 13, finding 3e)."""
    p = Pipeline()
    assert p.fail(None, 10**9) == 0
    p.heal()
    assert p.fail(None, 10**9) == 0 and not p.culprits.refusing and not p.culprits.suspects
    assert p.culprits.refusal(None, 1, 10**9) is None
    p.culprits.answered(None)


def test_a_requests_fingerprint_is_its_pictures() -> None:
    one = [{"input": "IMAGE", "images": [{"sha256": "ab", "bytes": 3}]}]
    assert fingerprint(one) == fingerprint([{"images": [{"bytes": 3, "sha256": "ab"}], "input": "IMAGE"}])
    assert fingerprint(one) != fingerprint([{"input": "IMAGE", "images": [{"sha256": "cd", "bytes": 3}]}])


def heal(served: SimpleNamespace) -> None:
    """The pipeline is healed: readiness turns false, then true again (on the front's event loop)."""
    async def flip() -> None:
        readiness = served.front.guard.readiness
        readiness.set_not_ready("a pipeline step failed")
        readiness.set_ready()

    asyncio.run_coroutine_threadsafe(flip(), served.loop).result(5)


def refuse_another_request(served: SimpleNamespace) -> None:
    """Make the front's culprits refuse some other request: from then on each call's fingerprint is awaited before
    it is forwarded."""
    clock = Clock()
    served.front.culprits = Culprits(clock)
    served.front.culprits.failed("some other request", 1, [], sent_at=1000.0, healed_at=999.0)
    clock.now += 30.0
    served.front.culprits.failed("some other request", 1, [], sent_at=1030.0, healed_at=1020.0)
    assert served.front.culprits.refusing


def _infer(address: str, picture: bytes, timeout_s: float = 20) -> tuple[str, str]:
    client = grpcclient.InferenceServerClient(address)
    tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[picture]], dtype=object))
    try:
        client.infer(ENSEMBLE_NAME, [tensor], client_timeout=timeout_s)
    except InferenceServerException as e:
        return str(e.status()), str(e.message())
    finally:
        client.close()
    return "OK", ""


def test_the_front_refuses_a_request_that_took_the_pipeline_down_twice(tmp_path: Path, ham_jpeg: bytes) -> None:
    from tritonclient.grpc import service_pb2

    poison = b"\xff\xd8\xff" + b"takes the server down" * 10
    forwarded: list[bool] = []  # whether each request Triton got was the poison

    async def model_infer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        forwarded.append(poison in request)
        if poison in request:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "Socket closed")  # tritonserver died under it
        return service_pb2.ModelInferResponse(model_name=ENSEMBLE_NAME).SerializeToString()

    with front_before_stand_in(tmp_path / "audit.jsonl", model_infer=model_infer) as served:
        first = _infer(served.address, poison)
        assert first[0] == "StatusCode.UNAVAILABLE" and "DermAssist is recovering; retry" in first[1]
        assert _infer(served.address, poison)[0] == "StatusCode.UNAVAILABLE"  # not healed since: the same failure
        heal(served)  # healed by a restart
        second = _infer(served.address, poison)  # the client's retry
        assert second[0] == "StatusCode.RESOURCE_EXHAUSTED" and REFUSED_WORDS in second[1]
        assert forwarded == [True, True, True]
        third = _infer(served.address, poison)
        assert third[0] == "StatusCode.RESOURCE_EXHAUSTED" and "send fewer or smaller pictures" in third[1]
        assert _infer(served.address, ham_jpeg) == ("OK", "")  # every other request is served
        assert forwarded == [True, True, True, False]  # the refused one was not sent again


def test_calls_the_guards_healing_of_a_hang_ends_are_not_blamed(tmp_path: Path) -> None:
    """A restart for a hang ends every call in flight: their requests did not take the pipeline down (review 13,
    finding 3b)."""
    picture = b"\xff\xd8\xff" + b"in flight at a restart" * 10

    async def model_infer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "Socket closed")  # the guard's restart ended it

    with front_before_stand_in(tmp_path / "audit.jsonl", model_infer=model_infer) as served:
        served.front.guard.healing_a_hang = True
        for _ in range(3):
            assert _infer(served.address, picture)[0] == "StatusCode.UNAVAILABLE"
            heal(served)
        assert not served.front.culprits.suspects


def test_a_request_answered_well_between_two_failures_is_not_refused(tmp_path: Path, ham_jpeg: bytes) -> None:
    from tritonclient.grpc import service_pb2

    outcomes = ["fail", "answer", "fail"]

    async def model_infer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if outcomes.pop(0) == "fail":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "Socket closed")  # a stub killed under it
        return service_pb2.ModelInferResponse(model_name=ENSEMBLE_NAME).SerializeToString()

    with front_before_stand_in(tmp_path / "audit.jsonl", model_infer=model_infer) as served:
        assert _infer(served.address, ham_jpeg)[0] == "StatusCode.UNAVAILABLE"
        heal(served)
        assert _infer(served.address, ham_jpeg) == ("OK", "")
        heal(served)
        third = _infer(served.address, ham_jpeg)
        assert third[0] == "StatusCode.UNAVAILABLE" and "retry" in third[1]  # its first failure again, not a refusal


def test_the_client_knows_the_refusal_by_the_guards_own_words() -> None:
    """The thin client imports nothing of the server: the words it looks for are checked here against the guard's."""
    from dermassist_client.translate import _TAKES_PIPELINE_DOWN

    assert _TAKES_PIPELINE_DOWN in REFUSED_WORDS


def test_a_hashing_that_fails_still_leaves_the_calls_audit_line(tmp_path: Path, ham_jpeg: bytes,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Under an address-space limit the hashing thread met a MemoryError while a request was refused as a culprit:
    the call ended UNKNOWN, without its audit line (found checking failure audit 5 on a real server)."""
    import json

    from dermassist.guard import front as front_module

    def out_of_memory(request: object, key: bytes | None) -> list[dict[str, str]]:
        raise MemoryError

    monkeypatch.setattr(front_module, "request_images", out_of_memory)
    audit = tmp_path / "audit.jsonl"
    with front_before_stand_in(audit) as served:
        refuse_another_request(served)
        assert _infer(served.address, ham_jpeg) == ("OK", "")
    (line,) = [json.loads(text) for text in audit.read_text().splitlines()]
    assert line["status"] == "OK" and line["images"] == [{"not_hashed": "MemoryError: "}]


def test_a_call_whose_deadline_passes_while_its_fingerprint_is_awaited_ends_there(
        tmp_path: Path, ham_jpeg: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fingerprint awaited before forwarding (while some request is refused) swallowed the call's cancellation:
    the dead call was forwarded anyway, the event loop blocked on the hashing, and its DEADLINE_EXCEEDED was taken
    for a sign of a hang (review 13, finding 2)."""
    import json
    import threading
    import time

    from tritonclient.grpc import service_pb2

    from dermassist.guard import front as front_module

    real = front_module.request_images

    def slow_hash(request: object, key: bytes | None) -> object:  # a large request's SHA-256
        time.sleep(1.0)
        return real(request, key)

    monkeypatch.setattr(front_module, "request_images", slow_hash)
    forwarded: list[float] = []

    async def model_infer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        forwarded.append(time.monotonic())
        return service_pb2.ModelInferResponse(model_name=ENSEMBLE_NAME).SerializeToString()

    audit = tmp_path / "audit.jsonl"
    with front_before_stand_in(audit, model_infer=model_infer) as served:
        refuse_another_request(served)
        lags: list[float] = []
        stop = threading.Event()

        def probe() -> None:  # how late the event loop runs a no-op
            while not stop.is_set():
                start = time.monotonic()
                asyncio.run_coroutine_threadsafe(asyncio.sleep(0), served.loop).result(5)
                lags.append(time.monotonic() - start)
                time.sleep(0.02)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            assert _infer(served.address, ham_jpeg, timeout_s=0.3)[0] == "StatusCode.DEADLINE_EXCEEDED"
            time.sleep(1.2)  # the hashing ends meanwhile
        finally:
            stop.set()
            prober.join()
        assert forwarded == [] and served.front.expired_unanswered is None
        assert max(lags) < 0.3, f"the event loop stalled {max(lags):.2f} s"
    (line,) = [json.loads(text) for text in audit.read_text().splitlines()]
    assert line["status"] == "DEADLINE_EXCEEDED" and "sha256" in str(line["images"]), line  # hashed, audited


def test_a_canary_out_of_time_is_a_hang_whose_healing_blames_no_request(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist.guard.guard import CANARY_FAILED, canary_fault

    from .test_start_checks import _guard

    hang = canary_fault(f"{CANARY_FAILED}DEADLINE_EXCEEDED: Deadline Exceeded")
    crash = canary_fault(f"{CANARY_FAILED}UNAVAILABLE: Stub process 'triage_0_0' is not healthy.")
    assert hang.hang and not crash.hang and crash.models == ("triage",)
    guard = _guard(tmp_path)
    seen: list[bool] = []

    async def heal(fault: object) -> None:
        seen.append(guard.healing_a_hang)

    monkeypatch.setattr(guard, "_heal_fault", heal)
    for fault in (hang, crash):
        asyncio.run(guard._recover(fault))
    assert seen == [True, False] and not guard.healing_a_hang
    guard.audit.close()


def test_a_deadline_passing_after_tritons_answer_is_no_sign_of_a_hang(
        tmp_path: Path, ham_jpeg: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Triton answered at once; the client's deadline passed while the front awaited the request's fingerprint (some
    request has failures counted): that had been recorded as a call that ran out inside Triton (review 14)."""
    import time

    from dermassist.guard import front as front_module

    real = front_module.request_images

    def slow_hash(request: object, key: bytes | None) -> object:
        time.sleep(1.5)
        return real(request, key)

    monkeypatch.setattr(front_module, "request_images", slow_hash)
    with front_before_stand_in(tmp_path / "audit.jsonl") as served:
        served.front.culprits.failed("another request", 1, [], sent_at=2.0, healed_at=1.0)  # a suspect: awaited after
        assert _infer(served.address, ham_jpeg, timeout_s=1.2)[0] == "StatusCode.DEADLINE_EXCEEDED"
        time.sleep(0.5)
        assert served.front.expired_unanswered is None
