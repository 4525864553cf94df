"""What an operator audit found in the audit log: it could not be rotated, a renamed file kept every later line, and
it was flushed, not fsync'd, while the docs said "on disk" (finding 8)."""
from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import pytest

from dermassist.guard.audit import AuditLog


def _lines(path: Path) -> list[int]:
    return [json.loads(line)["n"] for line in path.read_text().splitlines()]


# --- 8. the audit log can be rotated --------------------------------------------------------------------------------


def test_a_renamed_audit_file_gets_the_next_line_at_the_path_and_loses_none(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, check_interval_s=0.0)  # look at every write
    for n in range(3):
        audit.write({"n": n})
    rotated = tmp_path / "audit.jsonl.1"
    path.rename(rotated)  # logrotate's default (create), not copytruncate
    for n in range(3, 5):
        audit.write({"n": n})
    audit.close()
    assert _lines(rotated) == [0, 1, 2]
    assert _lines(path) == [3, 4]
    assert path.stat().st_mode & 0o777 == 0o600  # the new file is private as the first was


def test_the_path_is_looked_at_once_per_interval_and_lines_before_it_go_to_the_rotated_file(tmp_path: Path) -> None:
    now = [100.0]
    path, rotated = tmp_path / "audit.jsonl", tmp_path / "audit.jsonl.1"
    audit = AuditLog(path, check_interval_s=1.0, clock=lambda: now[0])
    audit.write({"n": 0})
    path.rename(rotated)
    now[0] += 0.5
    audit.write({"n": 1})  # within the interval: still the open (renamed) file
    assert not path.exists()
    now[0] += 0.5
    audit.write({"n": 2})  # the interval passed: the path is looked at and opened again
    audit.close()
    assert (_lines(rotated), _lines(path)) == ([0, 1], [2])


def test_a_deleted_audit_file_is_made_again_and_a_reopen_of_the_same_file_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, check_interval_s=3600.0)
    audit.write({"n": 0})
    audit.reopen()  # the same file: nothing changes
    audit.write({"n": 1})
    assert _lines(path) == [0, 1]
    path.unlink()
    audit.reopen()  # as on SIGHUP, without waiting for the interval
    audit.write({"n": 2})
    audit.close()
    assert _lines(path) == [2]


def test_a_path_that_cannot_be_opened_again_keeps_the_old_file_and_says_why_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "logs"
    path = folder / "audit.jsonl"
    audit = AuditLog(path, check_interval_s=0.0)
    audit.write({"n": 0})
    kept = tmp_path / "kept.jsonl"
    path.rename(kept)
    folder.rmdir()
    folder.write_text("a file where the folder was")  # the path cannot be made again
    with caplog.at_level(logging.ERROR, logger="dermassist.guard.audit"):
        audit.write({"n": 1})
        audit.write({"n": 2})
    audit.close()
    assert _lines(kept) == [0, 1, 2]  # nothing lost
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and f"audit log {path} was moved or replaced but" in errors[0]


def test_close_fsyncs_the_file_and_a_second_close_is_harmless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        synced.append(descriptor)
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    audit = AuditLog(tmp_path / "audit.jsonl")
    audit.write({"n": 0})
    assert synced == []  # a line is flushed to the OS, not fsync'd
    audit.close()
    audit.close()
    assert len(synced) == 1


def test_sighup_reopens_the_audit_log_of_a_serving_guard(tmp_path: Path) -> None:
    """``serve`` (serve_until_signal) turns SIGHUP into a reopen, so ``logrotate``'s postrotate can send it."""
    import asyncio
    from types import SimpleNamespace

    from dermassist.guard.background import serve_until_signal

    path, rotated = tmp_path / "audit.jsonl", tmp_path / "audit.jsonl.1"
    audit = AuditLog(path, check_interval_s=3600.0)  # only the signal reopens it within this test

    async def run(stop: asyncio.Event) -> None:
        audit.write({"n": 0})
        path.rename(rotated)
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):  # the handler runs on this loop
            await asyncio.sleep(0.01)
            if path.exists():
                break
        audit.write({"n": 1})
        stop.set()

    asyncio.run(serve_until_signal(SimpleNamespace(audit=audit, run=run)))  # type: ignore[arg-type]
    audit.close()
    assert (_lines(rotated), _lines(path)) == ([0], [1])
