"""Values the thin client copies from the guard (the client imports no project package, and the serving image ships
no client, so neither side can import the other's): each copy must equal its original."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from dermassist.guard.config import MIB, GuardConfig
from dermassist.guard.statuses import STUB_UNHEALTHY
from dermassist_client.config import MAX_MESSAGE_BYTES
from dermassist_client.translate import STEP_UNHEALTHY


def test_the_client_retries_what_the_guard_calls_an_unhealthy_step() -> None:
    assert STEP_UNHEALTHY == STUB_UNHEALTHY


def test_the_clients_largest_request_is_the_largest_the_guards_public_port_reads_by_default() -> None:
    (max_request_mib,) = [f.default for f in fields(GuardConfig) if f.name == "max_request_mib"]
    assert MAX_MESSAGE_BYTES == max_request_mib * MIB


def test_the_dicom_node_follows_renewed_tls_files_as_the_guard_does(tmp_path: Path) -> None:
    """Both look at the files alike (device, inode, size, modification time; an error number for a file not there) and
    take a change up after the same quiet time."""
    from dermassist.guard import rotation
    from dermassist_client.dicom import tls

    here, gone = tmp_path / "tls.crt", tmp_path / "gone.crt"
    here.write_text("certificate")
    assert rotation.file_marks((here, gone)) == tls.file_marks((here, gone))
    marks = rotation.file_marks((here,))
    modified = marks[0][3]
    for after_s in (0.0, 0.999, 1.0, 5.0):
        now = modified + int(after_s * 1e9)
        assert rotation.left_alone(marks, now) == tls.left_alone(marks, now), after_s
    assert (rotation.CHECK_S, rotation.SETTLE_S) == (tls.CHECK_S, tls.SETTLE_S)


def test_the_sdk_finds_bad_rows_by_the_contracts_words() -> None:
    """The SDK reads a refusal's rows from its words (a server without the guard sends no dermassist-bad-rows)."""
    from dermassist_client.batching import _SERVER_ROW
    from preprocess.contract import BAD_ROW_FORMAT

    assert [m.group() for m in _SERVER_ROW.finditer(BAD_ROW_FORMAT.format(row=7) + "why")] == ["IMAGE row 7: "]
