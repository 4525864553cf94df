"""A refused or failed inference leaves its audit line before its status leaves the front.

grpc.aio's ``abort`` sends the status at once; a client (or an auditor, or a test) may read the trail the moment it
has its answer, and the process may end right after. So the line is written first, even when hashing the images
is slow. The front runs here on a real grpc.aio server, in front of a stand-in Triton whose step always fails.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

import dermassist.guard.front as front_module
from dermassist.guard.statuses import DEADLINE_PASSED
from preprocess.contract import ENSEMBLE_NAME
from tests.support.guard import audit_lines

from .loopback import front_before_stand_in

HASHING_DELAY_S = 0.5
STEP_FAILURE = "in ensemble 'dermassist', Stub process 'lesion_crop_0_0' is not healthy."


async def _broken_step(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.INTERNAL, STEP_FAILURE)
    raise AssertionError("abort returned")


@pytest.fixture
def front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """A Front on loopback, its audit file, and the step failures it reported to its guard."""
    real = front_module.request_images

    def slow_hashing(request, key):
        time.sleep(HASHING_DELAY_S)
        return real(request, key)

    monkeypatch.setattr(front_module, "request_images", slow_hashing)
    audit = tmp_path / "audit.jsonl"
    failures: list[str] = []
    with front_before_stand_in(audit, model_infer=_broken_step,
                               report_step_failure=lambda details, sent_at: failures.append(details)) as served:
        yield SimpleNamespace(address=served.address, audit=audit, failures=failures)


@pytest.mark.parametrize(("model", "status", "words"), [
    ("no_such_model", "NOT_FOUND", "no model named"),
    (ENSEMBLE_NAME, "UNAVAILABLE", "is not healthy"),
])
def test_the_audit_line_is_on_disk_when_the_client_has_its_error(front, model: str, status: str, words: str) -> None:
    client = grpcclient.InferenceServerClient(front.address)
    tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[b"\xff\xd8 not really a picture"]], dtype=object))
    try:
        with pytest.raises(InferenceServerException) as info:
            client.infer(model, [tensor], request_id="audited-1", client_timeout=20)
        lines = audit_lines(front.audit)  # read the moment the error arrived, without waiting
    finally:
        client.close()
    assert status in str(info.value.status()) and words in info.value.message()
    assert [(line["request_id"], line["status"]) for line in lines] == [("audited-1", status)]
    assert words in lines[0]["error"] and lines[0]["images"][0]["sha256"]
    assert front.failures == ([STEP_FAILURE] if status == "UNAVAILABLE" else [])


def test_a_refusal_whose_client_gave_up_while_it_was_audited_is_recorded_as_the_client_saw_it(front) -> None:
    """Hashing (0.5 s here) outlasted the client's 0.2 s deadline: it got DEADLINE_EXCEEDED, and so says the trail."""
    client = grpcclient.InferenceServerClient(front.address)
    tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[b"\xff\xd8 not really a picture"]], dtype=object))
    try:
        with pytest.raises(InferenceServerException) as info:
            client.infer("no_such_model", [tensor], request_id="late-1", client_timeout=0.2)
    finally:
        client.close()
    assert "DEADLINE_EXCEEDED" in str(info.value.status())
    deadline = time.monotonic() + 10
    while not audit_lines(front.audit) and time.monotonic() < deadline:
        time.sleep(0.05)
    (line,) = audit_lines(front.audit)
    assert line["status"] == "DEADLINE_EXCEEDED" and "no model named" in line["error"], line


def _line_of_a_call_past_its_deadline(tmp_path: Path, request_id: str, **stand_in: Any) -> dict:
    """Call a front before a stand-in Triton (``stand_in``: front_before_stand_in's options) with a 1 s deadline, check
    the client got DEADLINE_EXCEEDED, and return the call's one audit line."""
    audit = tmp_path / "audit.jsonl"
    with front_before_stand_in(audit, **stand_in) as served:
        client = grpcclient.InferenceServerClient(served.address)
        tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[b"\xff\xd8 not really a picture"]], dtype=object))
        try:
            with pytest.raises(InferenceServerException) as info:  # 0.3 s could pass while it arrived, on a loaded host
                client.infer(ENSEMBLE_NAME, [tensor], request_id=request_id, client_timeout=1.0)
        finally:
            client.close()
        deadline = time.monotonic() + 10
        while not audit_lines(audit) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "DEADLINE_EXCEEDED" in str(info.value.status())
    (line,) = audit_lines(audit)
    return line


def test_the_line_of_a_call_past_its_deadline_records_the_callers_address(tmp_path: Path) -> None:
    """gRPC forgets a call's peer once the call has ended: the line of a call the client's deadline cut had "peer": ""
    while every other line records ipv4:... The stand-in Triton takes longer than the client waits."""
    async def slow_answer(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await asyncio.sleep(3)
        return service_pb2.ModelInferResponse(model_name=ENSEMBLE_NAME).SerializeToString()

    line = _line_of_a_call_past_its_deadline(tmp_path, "too-slow-1", model_infer=slow_answer)
    assert line["peer"].startswith("ipv4:127.0.0.1:"), line
    assert (line["request_id"], line["status"]) == ("too-slow-1", "DEADLINE_EXCEEDED")
    assert line["error"] == DEADLINE_PASSED  # said once (it was said twice: "... (DEADLINE_EXCEEDED: ...)")



def test_a_forwarded_call_that_ran_out_with_the_clients_deadline_is_said_once() -> None:
    """Which fires first under load, the forwarded call's own deadline or the client's cancel, is a race: the line said
    "... before the answer (DEADLINE_EXCEEDED: Deadline Exceeded)" when the forwarded call's came first (a CI run)."""
    from dermassist.guard.statuses import ANSWERED_LATE, audited_status

    code = grpc.StatusCode
    assert audited_status(code.DEADLINE_EXCEEDED, "Deadline Exceeded", -0.01) == (code.DEADLINE_EXCEEDED, DEADLINE_PASSED)
    assert audited_status(code.UNAVAILABLE, "Socket closed", 0.0) == (
        code.DEADLINE_EXCEEDED, f"{DEADLINE_PASSED} (UNAVAILABLE: Socket closed)")  # another failure is still named
    assert audited_status(code.UNAVAILABLE, "Socket closed", 0.5) == (code.UNAVAILABLE, "Socket closed")  # in time
    assert audited_status(code.OK, None, 0.2) == (code.OK, None)  # answered in time
    assert audited_status(code.OK, None, None) == (code.OK, None)  # no deadline
    # ready after the deadline: not delivered (the client got DEADLINE_EXCEEDED), and the trail said OK
    assert audited_status(code.OK, None, -0.05) == (code.DEADLINE_EXCEEDED, ANSWERED_LATE)
    assert ANSWERED_LATE == "the client's deadline passed before the answer: the answer was ready after it and not delivered"
    assert audited_status(code.CANCELLED, DEADLINE_PASSED, -1.0) == (code.CANCELLED, DEADLINE_PASSED)  # said already


def test_an_answer_ready_only_after_the_clients_deadline_is_audited_as_not_delivered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in Triton answers at once, but hashing the pictures for the trail outlasts the client's deadline: the
    client got DEADLINE_EXCEEDED and no answer, while its line said OK."""
    from dermassist.guard.statuses import ANSWERED_LATE

    real = front_module.request_images

    def slower_than_the_deadline(request, key):
        time.sleep(2.0)
        return real(request, key)

    monkeypatch.setattr(front_module, "request_images", slower_than_the_deadline)
    line = _line_of_a_call_past_its_deadline(tmp_path, "late-answer-1")
    assert (line["request_id"], line["status"], line["error"]) == ("late-answer-1", "DEADLINE_EXCEEDED", ANSWERED_LATE)
