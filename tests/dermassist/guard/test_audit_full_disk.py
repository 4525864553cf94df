"""A full disk under the audit log (an ops audit): the calls were answered UNKNOWN, the unwritten lines stayed in a
buffer and were written later with status OK, a torn half-line sat in the file, and stopping raised."""
from __future__ import annotations

import errno
import json
import logging
import os
import sys
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

import dermassist.guard.audit as audit_module
from dermassist.guard.audit import AuditLog, AuditWriteError, append_whole
from preprocess.contract import ENSEMBLE_NAME

from .loopback import front_before_stand_in


class FullDisk:
    """os.write as on a file system with ``room`` bytes left: a write past it is cut short, the next one fails."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.real = os.write

    def __call__(self, descriptor: int, data: bytes | memoryview) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self.real(descriptor, bytes(data)[: self.room])
        self.room -= written
        return written


def test_a_line_that_does_not_fit_leaves_no_part_in_the_file_and_is_never_written_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    audit.write({"n": 1, "status": "OK"})
    before = path.read_bytes()
    disk = FullDisk(room=10)  # a part of the next line fits, not all of it
    monkeypatch.setattr(audit_module.os, "write", disk)
    with caplog.at_level(logging.INFO, logger="dermassist.guard.audit"):
        for n in (2, 3):
            with pytest.raises(AuditWriteError, match=r"the audit trail cannot be written \(No space left on device\)"):
                audit.write({"n": n, "status": "OK"})
            assert path.read_bytes() == before  # no torn half-line
        monkeypatch.setattr(audit_module.os, "write", disk.real)  # space again
        audit.write({"n": 4, "status": "OK"})
    audit.close()
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [1, 4]  # 2 and 3 never appear
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "cannot be written (No space left on device)" in errors[0]  # once, not per call
    assert any("is written again" in r.getMessage() for r in caplog.records if r.levelname == "INFO")


def test_append_whole_writes_every_byte_of_a_short_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.write
    monkeypatch.setattr(audit_module.os, "write", lambda fd, data: real(fd, bytes(data)[:3]))  # 3 bytes a call
    descriptor = os.open(tmp_path / "f", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        append_whole(descriptor, b"0123456789\n")
    finally:
        os.close(descriptor)
    assert (tmp_path / "f").read_bytes() == b"0123456789\n"


def test_closing_on_a_full_disk_does_not_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    audit.write({"n": 1})
    monkeypatch.setattr(audit_module.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    audit.close()  # logged, not raised: stopping still stops tritonserver


def test_a_call_whose_line_cannot_be_written_is_refused_unavailable_and_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ham_jpeg: bytes) -> None:
    """The answer must not leave without its line: the client is told UNAVAILABLE (it may retry), not UNKNOWN."""
    with front_before_stand_in(tmp_path / "audit.jsonl") as served:
        monkeypatch.setattr(audit_module.os, "write", FullDisk(room=0))
        client = grpcclient.InferenceServerClient(served.address)
        tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[ham_jpeg]], dtype=object))
        try:
            with pytest.raises(InferenceServerException) as refused:
                client.infer(ENSEMBLE_NAME, [tensor], request_id="disk-full")
        finally:
            client.close()
        assert refused.value.status() == str(grpc.StatusCode.UNAVAILABLE)
        assert "the audit trail cannot be written (No space left on device)" in str(refused.value)
        with urllib.request.urlopen(f"http://{served.http_address}/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        assert "dermassist_audit_write_failures_total 1" in metrics
        assert 'dermassist_requests_total{status="UNAVAILABLE"} 1' in metrics
        assert 'dermassist_requests_total{status="OK"} 0' in metrics
        assert served.audit_failures == ["No space left on device"]  # unready, for the bare cause (said once)
    assert not (tmp_path / "audit.jsonl").exists() or (tmp_path / "audit.jsonl").read_text() == ""


def test_a_line_to_stdout_that_cannot_be_written_is_never_written_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """stdout (the default, the Kubernetes Deployment's) went through Python's buffer: a failed line came out later."""
    path = tmp_path / "stdout.txt"
    with open(path, "a", encoding="utf-8") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        audit = AuditLog("-")
        disk = FullDisk(room=0)
        monkeypatch.setattr(audit_module.os, "write", disk)
        with pytest.raises(AuditWriteError):
            audit.write({"n": 1, "status": "OK"})
        monkeypatch.setattr(audit_module.os, "write", disk.real)
        audit.write({"n": 2, "status": "OK"})
        stdout.flush()
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [2]


def test_the_watchdog_ends_the_outage_with_a_line_saying_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the trail takes no lines the guard is not ready; the line that ends the outage says what it was."""
    from types import SimpleNamespace

    from dermassist.guard.guard import Guard, audit_trail
    from dermassist.guard.metrics import GuardMetrics

    path = tmp_path / "audit.jsonl"
    metrics = GuardMetrics()
    guard = SimpleNamespace(audit=audit_trail(str(path), metrics), metrics=metrics)
    assert Guard._audit_problem(guard) is None  # type: ignore[arg-type]
    disk = FullDisk(room=0)
    monkeypatch.setattr(audit_module.os, "write", disk)
    with pytest.raises(AuditWriteError):
        guard.audit.write({"n": 1})
    guard.metrics.observe_audit_failure()
    assert Guard._audit_problem(guard) == "No space left on device"  # type: ignore[arg-type]
    monkeypatch.setattr(audit_module.os, "write", disk.real)
    assert Guard._audit_problem(guard) is None  # type: ignore[arg-type]
    guard.audit.close()
    (line,) = [json.loads(text) for text in path.read_text().splitlines()]
    assert line["event"] == "audit_resumed" and line["error"] == "No space left on device"
    assert line["refused_calls_total"] == 1


def test_a_calls_line_that_ends_an_outage_comes_after_the_resumed_line(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Space came back and a call's line was written before the watchdog's next try: the outage ended with no
    audit_resumed line. The first line that succeeds now carries it, in the same write."""
    from dermassist.guard.guard import audit_trail
    from dermassist.guard.metrics import GuardMetrics

    path = tmp_path / "audit.jsonl"
    metrics = GuardMetrics()
    audit = audit_trail(str(path), metrics)
    disk = FullDisk(room=0)
    monkeypatch.setattr(audit_module.os, "write", disk)
    for n in (1, 2):
        with pytest.raises(AuditWriteError):
            audit.write({"n": n})
        metrics.observe_audit_failure()
    monkeypatch.setattr(audit_module.os, "write", disk.real)
    audit.write({"n": 3, "status": "UNAVAILABLE"})
    assert audit.resume() is None  # the watchdog's next try finds the outage ended: no second resumed line
    audit.close()
    resumed, line = (json.loads(text) for text in path.read_text().splitlines())
    assert (resumed["event"], resumed["error"], resumed["refused_calls_total"]) == (
        "audit_resumed", "No space left on device", 2)
    assert line == {"n": 3, "status": "UNAVAILABLE"}


def test_a_line_cut_short_on_stdout_leaves_the_next_line_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """stdout (here a file on a full disk) cannot be cut back: the torn start of a line stayed and the next line was
    glued to it, so a good call's line did not parse either."""
    path = tmp_path / "stdout.jsonl"
    with path.open("w") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        audit = AuditLog("-")
        disk = FullDisk(room=7)
        monkeypatch.setattr(audit_module.os, "write", disk)
        with pytest.raises(AuditWriteError):
            audit.write({"n": 1, "status": "OK"})
        with pytest.raises(AuditWriteError):  # nothing at all fits: the line to start is still owed
            audit.write({"n": 2, "status": "OK"})
        monkeypatch.setattr(audit_module.os, "write", disk.real)
        audit.write({"n": 3, "status": "OK"})
        audit.write({"n": 4, "status": "OK"})
    torn, *whole = path.read_text().splitlines()
    assert torn == '{"n":1,' and [json.loads(text)["n"] for text in whole] == [3, 4]


def test_admin_calls_are_not_carried_out_while_the_trail_takes_no_lines_and_say_so_when_one_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ham_jpeg: bytes) -> None:
    """An admin call's line is written after it is carried out: a failure then was answered "retry later"."""
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    from dermassist.base.server_config import GRPC_ADMIN_HEADER

    from .loopback import ADMIN_KEY

    real = os.write

    def admin_lines_fail(descriptor: int, data: bytes | memoryview) -> int:
        if b'"admin_call"' in bytes(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(descriptor, data)

    load = service_pb2.RepositoryModelLoadRequest(model_name="dermassist")
    with front_before_stand_in(tmp_path / "audit.jsonl") as served:
        channel = grpc.insecure_channel(served.address)
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            monkeypatch.setattr(audit_module.os, "write", admin_lines_fail)
            with pytest.raises(grpc.RpcError) as done_unaudited:
                stub.RepositoryModelLoad(load, metadata=((GRPC_ADMIN_HEADER, ADMIN_KEY),), timeout=10)
            assert done_unaudited.value.code() == grpc.StatusCode.DATA_LOSS
            assert "RepositoryModelLoad was carried out, but its audit line could not be written" in \
                done_unaudited.value.details()
            assert [name for name, _ in served.received] == ["RepositoryModelLoad"]
            with pytest.raises(grpc.RpcError) as not_done:
                stub.RepositoryModelLoad(load, metadata=((GRPC_ADMIN_HEADER, ADMIN_KEY),), timeout=10)
            assert not_done.value.code() == grpc.StatusCode.UNAVAILABLE
            assert [name for name, _ in served.received] == ["RepositoryModelLoad"]  # the second was not carried out
            # a keyed ServerMetadata was audited before it was asked of Triton: DATA_LOSS "carried out" though it was
            # not; now it is not asked while the trail is down, like every admin call
            with pytest.raises(grpc.RpcError) as metadata_not_asked:
                stub.ServerMetadata(service_pb2.ServerMetadataRequest(), metadata=((GRPC_ADMIN_HEADER, ADMIN_KEY),),
                                    timeout=10)
            assert metadata_not_asked.value.code() == grpc.StatusCode.UNAVAILABLE
            assert [name for name, _ in served.received] == ["RepositoryModelLoad"]
        finally:
            channel.close()


def test_a_keyed_server_metadata_is_audited_after_triton_answered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its line was written (status OK) before the call was forwarded; a failed write then said 'carried out'."""
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    from dermassist.base.server_config import GRPC_ADMIN_HEADER

    from .loopback import ADMIN_KEY

    real = os.write
    seen_when_written: list[list[str]] = []

    with front_before_stand_in(tmp_path / "audit.jsonl") as served:
        def record_order(descriptor: int, data: bytes | memoryview) -> int:
            if b'"ServerMetadata"' in bytes(data):
                seen_when_written.append([name for name, _ in served.received])
            return real(descriptor, data)

        monkeypatch.setattr(audit_module.os, "write", record_order)
        channel = grpc.insecure_channel(served.address)
        try:
            answer = service_pb2_grpc.GRPCInferenceServiceStub(channel).ServerMetadata(
                service_pb2.ServerMetadataRequest(), metadata=((GRPC_ADMIN_HEADER, ADMIN_KEY),), timeout=10)
        finally:
            channel.close()
    assert answer.version  # the key was right: Triton's version is given
    assert seen_when_written == [["ServerMetadata"]]  # one line, written once Triton had the call
    (line,) = [json.loads(text) for text in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert (line["admin_call"], line["status"], line["admin_key"]) == ("ServerMetadata", "OK", "right")


def test_a_short_write_is_a_dermassist_error_and_an_os_error_with_the_causes_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """ShortWriteError stood outside the package's exception root, and a cause without an errno read '[Errno None]
    None'."""
    import errno

    from dermassist.base.errors import DermAssistError
    from dermassist.guard import audit

    writes = iter([3, OSError(errno.ENOSPC, "No space left on device")])

    def write(_descriptor: int, _data: object) -> int:
        step = next(writes)
        if isinstance(step, OSError):
            raise step
        return step

    monkeypatch.setattr(audit.os, "write", write)
    with pytest.raises(audit.ShortWriteError) as raised:
        audit.write_all(1, b"0123456789")
    assert isinstance(raised.value, DermAssistError) and isinstance(raised.value, OSError)
    assert (raised.value.errno, raised.value.strerror, raised.value.written) == (errno.ENOSPC, "No space left on device", 3)
    monkeypatch.setattr(audit.os, "write", lambda *_: (_ for _ in ()).throw(OSError("the pipe's reader went away")))
    with pytest.raises(audit.ShortWriteError) as bare:
        audit.write_all(1, b"x")
    assert str(bare.value) == "the pipe's reader went away" and bare.value.written == 0


class _Space:
    """os.fstatvfs of a file system with ``free`` bytes left, for this user and for root alike."""

    def __init__(self, free: int) -> None:
        self.free = free

    def __call__(self, descriptor: int) -> object:
        blocks = self.free // 4096
        return type("statvfs", (), {"f_bavail": blocks, "f_bfree": blocks, "f_frsize": 4096})()


def test_the_outage_ends_only_once_the_file_has_room_for_more_than_the_resumed_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 86-byte resumed line fitted in the last free bytes where a 570-byte call's did not: readiness came back for
    100 ms at a time while every call was refused, and the trail marked the end of a gap that went on (failure audit
    3). The watchdog now tries it only once RESUME_HEADROOM_BYTES are free, and below the file-size limit."""
    from dermassist.guard.guard import audit_trail
    from dermassist.guard.metrics import GuardMetrics

    path = tmp_path / "audit.jsonl"
    audit = audit_trail(str(path), GuardMetrics())
    real_write = os.write
    monkeypatch.setattr(audit_module.os, "write", FullDisk(room=0))
    with pytest.raises(AuditWriteError):
        audit.write({"n": 1})
    monkeypatch.setattr(audit_module.os, "write", real_write)  # a write would now succeed: is it tried?
    space = _Space(free=200)
    monkeypatch.setattr(audit_module.os, "fstatvfs", space)
    for _ in range(3):
        assert audit.resume() == "No space left on device"
    assert path.read_bytes() == b""  # not tried: nothing written
    space.free = audit_module.RESUME_HEADROOM_BYTES
    limit = path.stat().st_size + audit_module.RESUME_HEADROOM_BYTES - 1  # the file-size limit leaves less
    monkeypatch.setattr(audit_module.resource, "getrlimit", lambda which: (limit, limit))
    assert audit.resume() == "No space left on device" and path.read_bytes() == b""
    monkeypatch.setattr(audit_module.resource, "getrlimit", lambda which: (limit + 1, limit + 1))
    assert audit.resume() is None
    audit.close()
    (line,) = [json.loads(text) for text in path.read_text().splitlines()]
    assert line["event"] == "audit_resumed"


def test_an_outage_ends_once_the_full_file_was_rotated_away_though_no_call_comes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The room that counts is the file at the path: after an outage at the file-size limit, the operator rotated the
    file (rename, no SIGHUP) and the watchdog still measured the old one, so the outage never ended without a call
    (review 13, finding 4)."""
    from dermassist.guard.guard import audit_trail
    from dermassist.guard.metrics import GuardMetrics

    path = tmp_path / "audit.jsonl"
    audit = audit_trail(str(path), GuardMetrics())
    audit.check_interval_s = 0.0  # the path is looked at on every try
    audit.write({"n": 0, "pad": "x" * 500})
    limit = path.stat().st_size + audit_module.RESUME_HEADROOM_BYTES - 1  # the old file has no room left
    monkeypatch.setattr(audit_module.resource, "getrlimit", lambda which: (limit, limit))
    real_write = os.write
    monkeypatch.setattr(audit_module.os, "write", FullDisk(room=0))
    with pytest.raises(AuditWriteError):
        audit.write({"n": 1})
    monkeypatch.setattr(audit_module.os, "write", real_write)
    assert audit.resume() is not None  # the old file still has no room
    path.rename(tmp_path / "audit.jsonl.1")
    assert audit.resume() is None  # the new file at the path has
    audit.close()
    (line,) = [json.loads(text) for text in path.read_text().splitlines()]
    assert line["event"] == "audit_resumed"
    assert [json.loads(t)["n"] for t in (tmp_path / "audit.jsonl.1").read_text().splitlines()] == [0]
