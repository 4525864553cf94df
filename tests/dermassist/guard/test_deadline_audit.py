"""Security audit findings 7 and 12: a call whose deadline passes while its request is still arriving is audited, and
an ordinary client deadline leaves no ERROR traceback in the log."""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import struct
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from dermassist.guard.config import GuardConfig
from dermassist.guard.front import SERVICE
from dermassist.guard.statuses import GRPC_CORE_LOGGER, UNDELIVERED, ExecuteBatchError, UndeliveredAnswer, abort
from preprocess.contract import ENSEMBLE_OUTPUTS, NUMPY_DTYPES, ON_REQUEST_OUTPUTS
from tests.support.guard import audit_lines

from .loopback import front_before_stand_in


def _big_request(request_id: str, mib: int) -> service_pb2.ModelInferRequest:
    image = b"\xff\xd8" + b"\x00" * (mib << 20)
    request = service_pb2.ModelInferRequest(model_name="dermassist", id=request_id)
    request.inputs.add(name="IMAGE", datatype="BYTES", shape=[1, 1])
    request.raw_input_contents.append(struct.pack("<I", len(image)) + image)
    return request


def _lines_of(audit: Path, request_id: str | None, wait_s: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + wait_s
    while True:
        lines = [line for line in audit_lines(audit) if request_id is None or line["request_id"] == request_id]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_a_call_whose_deadline_passes_while_its_request_arrives_is_audited(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with front_before_stand_in(audit) as front:
        with grpc.insecure_channel(front.address, options=[("grpc.max_send_message_length", -1)]) as channel:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ServerLive(service_pb2.ServerLiveRequest(), timeout=10)
            # serialized first: the deadline runs while the 200 MiB travel, not while the client encodes them
            infer = channel.unary_unary(f"/{SERVICE}/ModelInfer")
            raw = _big_request("slow-arrival", 200).SerializeToString()
            with pytest.raises(grpc.RpcError) as info:
                infer(raw, timeout=0.5)
        lines = _lines_of(audit, None)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert len(lines) == 1, lines
    (line,) = lines
    assert line["status"] == "DEADLINE_EXCEEDED" and line["peer"].startswith("ipv4:127.0.0.1:")
    assert "deadline passed" in line["error"]


def test_a_request_larger_than_the_front_reads_is_audited(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with front_before_stand_in(audit, GuardConfig(audit_log=str(audit), max_request_mib=1)) as front:
        with grpc.insecure_channel(front.address, options=[("grpc.max_send_message_length", -1)]) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(_big_request("too-big", 2), timeout=10)
        (line,) = _lines_of(audit, None)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert line["status"] == "RESOURCE_EXHAUSTED" and "--max-request-mib" in line["error"]


class _Context:
    """The part of grpc.aio's ServicerContext ``abort`` uses: the time left, and an abort that fails or is counted."""

    def __init__(self, remaining: float | None, error: BaseException | None = None) -> None:
        self.remaining, self.error, self.aborted = remaining, error, 0

    def time_remaining(self) -> float | None:
        return self.remaining

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted += 1
        if self.error is not None:
            raise self.error


def test_a_status_for_a_call_past_its_deadline_ends_it_quietly(caplog: pytest.LogCaptureFixture) -> None:
    """grpc logs an ExecuteBatchError that leaves a servicer at ERROR with its traceback; a CancelledError at DEBUG."""
    caplog.set_level(logging.DEBUG)
    past = _Context(remaining=0.0)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(abort(past, grpc.StatusCode.UNAVAILABLE, "late"))  # type: ignore[arg-type]
    assert past.aborted == 0
    raced = _Context(remaining=1.0, error=ExecuteBatchError('Failed "execute_batch"'))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(abort(raced, grpc.StatusCode.UNAVAILABLE, "late"))  # type: ignore[arg-type]
    assert raced.aborted == 1
    assert all(r.levelno <= logging.DEBUG for r in caplog.records if r.name.startswith("dermassist"))


def _core_record(error: BaseException) -> logging.LogRecord:
    """The record grpc.aio's core writes when a servicer's answer could not be sent (logger.exception)."""
    try:
        raise error
    except BaseException:
        record = logging.getLogger(GRPC_CORE_LOGGER).makeRecord(
            GRPC_CORE_LOGGER, logging.ERROR, "server.pyx.pxi", 710, "%s raised in core by servicer method [%s]",
            ("ExecuteBatchError", f"/{SERVICE}/ModelInfer"), sys.exc_info())
    return record


def test_an_answer_grpc_could_not_deliver_is_one_warning_line_not_an_error_traceback(tmp_path: Path) -> None:
    """A gRPC integrator's audit, finding 1: a client that refuses an answer's size (a plain client's 4 MiB default,
    CROP and CAM for 16 images) put grpc's ExecuteBatchError traceback at ERROR in the operator's log."""
    with front_before_stand_in(tmp_path / "audit.jsonl"):  # the front puts the filter on grpc's core logger
        assert any(isinstance(f, UndeliveredAnswer) for f in logging.getLogger(GRPC_CORE_LOGGER).filters)
    record = _core_record(ExecuteBatchError('Failed "execute_batch"'))
    assert UndeliveredAnswer().filter(record) is True  # kept, rewritten
    assert (record.levelno, record.levelname, record.exc_info) == (logging.WARNING, "WARNING", None)
    message = record.getMessage()
    assert f"/{SERVICE}/ModelInfer" in message and "4 MiB" in message and "Calling without the SDK" in message
    other = _core_record(ValueError("a servicer's own bug"))
    UndeliveredAnswer().filter(other)
    assert other.levelno == logging.ERROR and other.exc_info is not None  # a real failure keeps its traceback


def test_the_answer_sizes_the_log_line_and_docs_state_follow_the_contract() -> None:
    """The per-image answer sizes told to integrators (docs/sdk.md, the undelivered-answer warning) are the contract's
    tensor sizes, and the 15 images that fit a plain client's 4 MiB with CROP and CAM follow from them."""
    def row_bytes(specs) -> int:
        return sum(math.prod(s.dims) * np.dtype(NUMPY_DTYPES[s.dtype]).itemsize for s in specs if s.dtype != "TYPE_STRING")
    plain = row_bytes([s for s in ENSEMBLE_OUTPUTS if s not in ON_REQUEST_OUTPUTS])  # NOTE adds its sentences
    with_crop = row_bytes(ENSEMBLE_OUTPUTS)
    docs = (Path(__file__).resolve().parents[3] / "docs" / "sdk.md").read_text()
    assert f"About {round(plain / 1000)} KB an image without `CROP` and `CAM`, about {round(with_crop / 1000)} KB" in docs
    assert f"({32 * with_crop / 1e6:.1f} MB for 32 images)" in docs
    assert f"at most\n  {(4 << 20) // with_crop} images a request" in docs
    assert f"about {with_crop / 1e6:.2f} MB an image, {32 * with_crop / 1e6:.1f} MB for 32 images" in UNDELIVERED


def test_a_call_that_ends_before_its_request_is_read_is_named_by_its_header(tmp_path: Path) -> None:
    """Under a burst, a call whose 50 ms deadline passed before the front's handler read its request was audited with
    the id "" (several lines shared it) and no mark (concurrency audit 3): the id its header repeats is recorded, and
    the line says the request was not read."""
    from types import SimpleNamespace

    from dermassist.guard.front import REQUEST_ID_HEADER

    class Unread:
        """A call's context whose request never comes: its deadline ends it while the handler waits to read."""

        def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
            self.metadata = metadata

        def peer(self) -> str:
            return "ipv4:127.0.0.1:50000"

        def auth_context(self) -> dict:
            return {}

        def invocation_metadata(self) -> tuple:
            return tuple(SimpleNamespace(key=k, value=v) for k, v in self.metadata)

        def time_remaining(self) -> float:
            return 0.0

        async def read(self) -> bytes:
            raise asyncio.CancelledError

    audit = tmp_path / "audit.jsonl"
    with front_before_stand_in(audit) as served:
        for metadata in (((REQUEST_ID_HEADER, "0123abcd"),), ()):
            with pytest.raises(concurrent.futures.CancelledError):  # the handler's cancellation, as gRPC sees it
                asyncio.run_coroutine_threadsafe(served.front.model_infer(None, Unread(metadata)), served.loop).result(5)
        lines = _lines_of(audit, None)
    assert [(line["request_id"], line["request_unread"], line["status"]) for line in lines] == [
        ("0123abcd", True, "DEADLINE_EXCEEDED"), ("", True, "DEADLINE_EXCEEDED")]
    assert all(line["images"] == [] for line in lines)


def test_a_request_read_but_not_understood_is_not_called_unread(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with front_before_stand_in(audit) as front:
        with grpc.insecure_channel(front.address) as channel:
            with pytest.raises(grpc.RpcError) as info:
                channel.unary_unary(f"/{SERVICE}/ModelInfer")(b"\xff\xfe not a protobuf", timeout=10)
        lines = _lines_of(audit, None)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (line,) = lines
    assert line["status"] == "INVALID_ARGUMENT" and "request_unread" not in line
