"""A request that takes the pipeline down is refused after its second failure (failure audit 5): one 32-picture
request too large for the memory had taken tritonserver down four times in a minute through the SDK's retries."""
from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from dermassist.guard.culprits import (
    FAILURES_TO_REFUSE,
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


def test_the_largest_request_failing_is_blamed_and_refused_at_its_second_failure() -> None:
    clock = Clock()
    culprits = Culprits(clock)
    assert FAILURES_TO_REFUSE == 2 and not culprits.refusing
    assert culprits.failed("big", 184_000_000, in_flight=[60_000]) == 1
    assert culprits.failed("small", 60_000, in_flight=[]) == 0  # failed with the big one: a bystander
    assert not culprits.refusing and culprits.refusal("big", 32, 184_000_000) is None
    clock.now += 30.0  # healed; the client's retry is forwarded and fails again
    assert culprits.failed("big", 184_000_000, in_flight=[]) == 2
    assert culprits.refusing
    text = culprits.refusal("big", 32, 184_000_000)
    assert text is not None and text.startswith(f"this request (32 picture(s), 184.0 MB) {REFUSED_WORDS} (2 times): "
                                                "it is not run again for 10 more minute(s)")
    assert "send fewer or smaller pictures per call" in text
    assert culprits.refusal("small", 1, 60_000) is None  # only the culprit
    clock.now += REFUSED_FOR_S
    assert not culprits.refusing and culprits.refusal("big", 32, 184_000_000) is None  # for a while, not for ever


def test_a_bystander_is_blamed_only_when_it_was_the_largest_failing() -> None:
    clock = Clock()
    culprits = Culprits(clock)
    assert culprits.failed("a", 500, in_flight=[900]) == 0  # a larger call was in flight
    clock.now += TOGETHER_S + 0.1
    assert culprits.failed("a", 500, in_flight=[]) == 1  # alone: blamed
    assert culprits.failed("b", 500, in_flight=[]) == 1  # as large, together: both blamed


def test_copies_failing_together_count_once_and_a_request_answered_well_is_cleared() -> None:
    """A load test sends one picture over and over: every fault a test injected failed several copies of it, and it
    was refused though it had been answered well between the faults (the fault-injection tests of CI)."""
    clock = Clock()
    culprits = Culprits(clock)
    assert [culprits.failed("same", 300, in_flight=[300, 300]) for _ in range(3)] == [1, 1, 1]  # one failure
    assert culprits.suspects
    culprits.answered("same")  # a copy of it was answered after the healing
    assert not culprits.suspects
    clock.now += 30.0
    assert culprits.failed("same", 300, in_flight=[]) == 1 and not culprits.refusing  # a new first failure
    clock.now += 30.0
    assert culprits.failed("same", 300, in_flight=[]) == 2 and culprits.refusing  # never answered between: refused


def test_a_requests_fingerprint_is_its_pictures() -> None:
    one = [{"input": "IMAGE", "images": [{"sha256": "ab", "bytes": 3}]}]
    assert fingerprint(one) == fingerprint([{"images": [{"bytes": 3, "sha256": "ab"}], "input": "IMAGE"}])
    assert fingerprint(one) != fingerprint([{"input": "IMAGE", "images": [{"sha256": "cd", "bytes": 3}]}])


def _infer(address: str, picture: bytes) -> tuple[str, str]:
    client = grpcclient.InferenceServerClient(address)
    tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[picture]], dtype=object))
    try:
        client.infer(ENSEMBLE_NAME, [tensor], client_timeout=20)
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

    with pytest.MonkeyPatch.context() as patch, front_before_stand_in(tmp_path / "audit.jsonl",
                                                                      model_infer=model_infer) as served:
        clock = Clock()
        patch.setattr(served.front, "culprits", Culprits(clock))
        first = _infer(served.address, poison)
        assert first[0] == "StatusCode.UNAVAILABLE" and "DermAssist is recovering; retry" in first[1]
        clock.now += 12.0  # healed by a restart
        second = _infer(served.address, poison)  # the client's retry
        assert second[0] == "StatusCode.RESOURCE_EXHAUSTED" and REFUSED_WORDS in second[1]
        assert forwarded == [True, True]
        third = _infer(served.address, poison)
        assert third[0] == "StatusCode.RESOURCE_EXHAUSTED" and "send fewer or smaller pictures" in third[1]
        assert _infer(served.address, ham_jpeg) == ("OK", "")  # every other request is served
        assert forwarded == [True, True, False]  # the third was not sent again


def test_a_request_answered_well_between_two_failures_is_not_refused(tmp_path: Path, ham_jpeg: bytes) -> None:
    from tritonclient.grpc import service_pb2

    outcomes = ["fail", "answer", "fail"]

    async def model_infer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if outcomes.pop(0) == "fail":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "Socket closed")  # a stub killed under it
        return service_pb2.ModelInferResponse(model_name=ENSEMBLE_NAME).SerializeToString()

    with pytest.MonkeyPatch.context() as patch, front_before_stand_in(tmp_path / "audit.jsonl",
                                                                      model_infer=model_infer) as served:
        clock = Clock()
        patch.setattr(served.front, "culprits", Culprits(clock))
        assert _infer(served.address, ham_jpeg)[0] == "StatusCode.UNAVAILABLE"
        clock.now += 12.0
        assert _infer(served.address, ham_jpeg) == ("OK", "")
        clock.now += 12.0
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

    def out_of_memory(request: object) -> list[dict[str, str]]:
        raise MemoryError

    monkeypatch.setattr(front_module, "request_images", out_of_memory)
    audit = tmp_path / "audit.jsonl"
    with front_before_stand_in(audit) as served:
        clock = Clock()
        served.front.culprits = Culprits(clock)
        served.front.culprits.failed("some other request", 1, in_flight=[])
        clock.now += 30.0
        served.front.culprits.failed("some other request", 1, in_flight=[])  # refusing: the fingerprint is awaited
        assert _infer(served.address, ham_jpeg) == ("OK", "")
    (line,) = [json.loads(text) for text in audit.read_text().splitlines()]
    assert line["status"] == "OK" and line["images"] == [{"not_hashed": "MemoryError: "}]
