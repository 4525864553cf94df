"""The DICOM node's answer when its results cannot be written to the spool (ops2 audit #8).

A full disk (ENOSPC), a quota (EDQUOT), a file system gone read-only (EROFS) or no file handle left (EMFILE, ENFILE)
is the node's trouble, not the instance's: it is answered 0xA700 "Out of resources", which senders retry by themselves,
not 0xC011, which they take as final (the study then needed resending by hand), and logged as an ERROR naming the spool
and the fix. Any other spool error keeps 0xC011 and a WARNING. Nothing half-written stays in the spool either way.

The disk is simulated at ``open_private`` (the node's and ``DicomAnalysis.write``'s only way of writing a file): the
k-th file opened fails as a full disk does, at ``open`` or once some bytes are written.
"""
from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from dermassist_client.config import ClientConfig
from dermassist_client.dicom import analysis as analysis_module
from dermassist_client.dicom import node as node_module
from dermassist_client.dicom.config import NodeConfig, PacsConfig
from dermassist_client.dicom.node import ANALYSIS_FAILED, MAX_ERROR_COMMENT, SPOOL_OUT_OF_RESOURCES, DicomNode, _answer
from dermassist_client.private import open_private
from tests.support import dicom_images as di
from tests.support.dicom_checks import picture_size, synthetic_result

NODE_LOGGER = "dermassist_client.dicom.node"
NAME = "the test instance from STORESCU"


class SyntheticClient:
    """Stands in for ``DermAssistClient``: a lesion found in every photograph (so a SEG is written too)."""

    config = ClientConfig(url="127.0.0.1:1")  # its timeout_s bounds the node's analyses, as a client's does

    def analyze(self, photo: Any, timeout_s: float | None = None) -> Any:
        """A synthetic result for ``photo`` (a PIL image, or a JPEG frame's bytes)."""
        return synthetic_result(picture_size(photo))


class _Filling:
    """A file on a disk that fills up: 2,000 bytes are written (into the data set: pydicom then re-raises the OSError
    as one without errno, naming the element), then every write fails with ``error``."""

    def __init__(self, file: BinaryIO, error: int) -> None:
        self._file, self._error, self._left = file, error, 2000

    def write(self, data: bytes) -> int:
        if len(data) <= self._left:
            self._left -= len(data)
            return self._file.write(data)
        self._file.write(bytes(data)[:self._left])
        self._left = 0
        raise OSError(self._error, os.strerror(self._error))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def __enter__(self) -> _Filling:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


def failing_disk(monkeypatch: pytest.MonkeyPatch, error: int, nth: int, at: str) -> list[Path]:
    """From the ``nth`` file opened (1: the source, 2: the SEG), opening (``at`` "open") or writing fails with
    ``error``; the paths opened."""
    opened: list[Path] = []

    def opener(path: Path) -> Any:
        opened.append(Path(path))
        if len(opened) < nth:
            return open_private(path)
        if at == "open":
            raise OSError(error, os.strerror(error), str(path))
        return _Filling(open_private(path), error)

    monkeypatch.setattr(node_module, "open_private", opener)
    monkeypatch.setattr(analysis_module, "open_private", opener)
    return opened


def make_node(tmp_path: Path, pacs: bool = True) -> DicomNode:
    """A node (not started) that forwards to a PACS (never reached here: nothing calls flush) or spools only."""
    config = NodeConfig(spool=tmp_path / "spool", port=0,
                        pacs=PacsConfig("127.0.0.1", 1, "TESTPACS") if pacs else None)
    return DicomNode(SyntheticClient(), config)


def leftovers(node: DicomNode) -> list[str]:
    """Everything in spool/pending, partial folders included."""
    return sorted(p.name for p in (node.config.spool / "pending").iterdir())


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The node's log records of refused instances."""
    return [r for r in caplog.records if r.name == NODE_LOGGER and r.getMessage().startswith("refused ")]


WHERE = [(1, "open"), (1, "write"), (2, "write")]  # the source cannot be opened / fills the disk; the SEG does
WHERE_IDS = ["source-open", "source-write", "seg-write"]


@pytest.mark.parametrize("nth, at", WHERE, ids=WHERE_IDS)
@pytest.mark.parametrize("error, short", [
    (errno.ENOSPC, "spool full"), (errno.EDQUOT, "spool over its disk quota"), (errno.EROFS, "spool read-only"),
    (errno.EMFILE, "too many open files"), (errno.ENFILE, "too many open files"),
], ids=["ENOSPC", "EDQUOT", "EROFS", "EMFILE", "ENFILE"])
def test_a_spool_out_of_space_or_files_is_answered_out_of_resources_so_the_sender_retries(
        tmp_path: Path, ham_jpeg: bytes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        error: int, short: str, nth: int, at: str) -> None:
    node = make_node(tmp_path)
    ds = di.photograph(ham_jpeg, di.Patient(patient_id="DA-FULL").with_study(), compressed=False)
    waiting = node.config.spool / "pending" / "00000000000000000001-1.2.3"  # an item the PACS has not taken yet
    waiting.mkdir()
    opened = failing_disk(monkeypatch, error, nth, at)
    caplog.set_level(logging.INFO, logger=NODE_LOGGER)

    outcome = node.process(ds, name=NAME)

    assert len(opened) == nth  # it failed where the test made it fail, and nothing was written after that
    comment = f"results cannot be stored: {short}, retry later"
    assert (outcome.status, outcome.comment) == (0xA700, comment) and len(comment) <= MAX_ERROR_COMMENT
    answer = _answer(outcome)
    assert (answer.Status, answer.ErrorComment) == (0xA700, comment)  # what the sender reads
    assert leftovers(node) == [waiting.name]  # no item, and no .partial folder, left behind
    assert node.counts["failed"] == 1 and node.counts["stored"] == 0
    (record,) = refusals(caplog)
    message = record.getMessage()
    assert record.levelno == logging.ERROR, message
    item = f"{node.config.spool / 'pending'}/"
    assert message.startswith(f"refused {NAME}: its results cannot be written to the spool {item}"), message
    assert f"[Errno {error}] {os.strerror(error)}" in message and "Traceback" not in message  # the OS's words only
    assert "answered 0xA700 (out of resources), so that the sender sends it again later (nothing of it was kept)" in message
    assert message.count(NAME) == 1, message
    fix = SPOOL_OUT_OF_RESOURCES[error][1].format(spool=node.config.spool)
    if error in (errno.ENOSPC, errno.EDQUOT):  # what fills the disk: the items waiting for the PACS
        assert message.endswith(f": {fix} (1 item(s) wait in {node.config.spool / 'pending'} for the PACS "
                                "TESTPACS@127.0.0.1:1)"), message
    else:
        assert message.endswith(f": {fix}"), message


def test_without_a_pacs_a_full_spool_says_nothing_empties_it(tmp_path: Path, ham_jpeg: bytes,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    node = make_node(tmp_path, pacs=False)
    failing_disk(monkeypatch, errno.ENOSPC, 1, "write")
    caplog.set_level(logging.WARNING, logger=NODE_LOGGER)
    assert node.process(di.photograph(ham_jpeg, di.Patient().with_study()), name=NAME).status == 0xA700
    (record,) = refusals(caplog)
    assert record.getMessage().endswith(f"(0 item(s) in {node.config.spool / 'pending'}: without a PACS to send "
                                        "them to, nothing removes them)"), record.getMessage()


@pytest.mark.parametrize("nth, at", WHERE, ids=WHERE_IDS)
@pytest.mark.parametrize("error", [errno.EACCES, errno.EIO], ids=["EACCES", "EIO"])
def test_other_spool_errors_keep_their_failure_status_and_leave_nothing(
        tmp_path: Path, ham_jpeg: bytes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        error: int, nth: int, at: str) -> None:
    node = make_node(tmp_path)
    failing_disk(monkeypatch, error, nth, at)
    caplog.set_level(logging.INFO, logger=NODE_LOGGER)
    outcome = node.process(di.photograph(ham_jpeg, di.Patient().with_study()), name=NAME)
    assert (outcome.status, outcome.comment) == (0xC011, "results could not be written")
    assert leftovers(node) == []
    (record,) = refusals(caplog)
    assert record.levelno == logging.WARNING and f"{os.strerror(error)}" in record.getMessage()
    assert record.getMessage().startswith(f"refused {NAME}: its results cannot be written to the spool ")


def test_the_spool_written_in_full_still_holds_source_seg_and_sr(tmp_path: Path, ham_jpeg: bytes,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulated disk itself: with room for everything, the item is spooled whole, through the same opener."""
    node = make_node(tmp_path)
    opened = failing_disk(monkeypatch, errno.ENOSPC, 4, "write")  # three files: never reached
    assert node.process(di.photograph(ham_jpeg, di.Patient().with_study()), name=NAME).ok
    (item,) = node.pending()
    assert [p.name.split("_")[0] for p in opened] == ["0", "SEG", "SR"]
    assert [p.name.split("_", 2)[:2] for p in sorted(item.iterdir())] == [["0", "SOURCE"], ["1", "SEG"], ["2", "SR"]]


def test_an_unforeseen_fault_is_answered_with_a_status_and_a_comment_and_logged(
        tmp_path: Path, ham_jpeg: bytes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """pynetdicom answered an exception in the handler 0xC211 with no Error Comment; the node now says what failed."""
    node = make_node(tmp_path)
    ds = di.photograph(ham_jpeg, di.Patient(patient_id="DA-TRIP").with_study(), compressed=False)

    def trips(*args: object) -> None:
        raise AttributeError("'FileDataset' object has no attribute 'Rows'")

    monkeypatch.setattr(node_module, "build_analysis", trips)
    caplog.set_level(logging.INFO, logger=NODE_LOGGER)
    outcome = node.process(ds, name=NAME)
    answer = _answer(outcome)
    assert (answer.Status, answer.ErrorComment) == (ANALYSIS_FAILED, "analysis failed: unexpected error")
    assert node.counts["failed"] == 1
    assert any(r.exc_info and "failed unexpectedly" in r.getMessage() for r in caplog.records)  # its traceback, logged
    assert leftovers(node) == []


def test_the_results_are_on_disk_before_the_sender_hears_success(tmp_path: Path, ham_jpeg: bytes,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The docs say "safe on disk" when Success is answered; no file or folder was fsync'd (a power loss could lose
    an item the sender would not send again)."""
    node = make_node(tmp_path)
    synced: list[str] = []
    real = node_module.fsync_path
    monkeypatch.setattr(node_module, "fsync_path", lambda path: (synced.append(Path(path).name), real(path))[1])
    ds = di.photograph(ham_jpeg, di.Patient(patient_id="DA-SYNC").with_study(), compressed=False)
    assert node.process(ds, name=NAME).ok
    (item,) = leftovers(node)
    files = sorted(p.name for p in (node.config.spool / "pending" / item).iterdir())
    assert [name.split("_")[1] for name in files] == ["SOURCE", "SEG", "SR"]
    assert synced == [*files, f"{item}.partial", "pending"]  # every file, its folder, then the rename in pending


def test_a_spool_folder_that_cannot_be_flushed_after_the_rename_still_answers_success(
        tmp_path: Path, ham_jpeg: bytes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The item was in place (and would be forwarded) but the sender heard a failure, and a resend gave the PACS a
    second SEG and SR. A folder a file system cannot flush at all (EINVAL) is no error."""
    node = make_node(tmp_path)
    real = node_module.fsync_path

    def pending_fails(path: Path) -> None:
        if Path(path).name == "pending":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(path)

    monkeypatch.setattr(node_module, "fsync_path", pending_fails)
    caplog.set_level(logging.WARNING, logger=NODE_LOGGER)
    ds = di.photograph(ham_jpeg, di.Patient(patient_id="DA-EIO").with_study(), compressed=False)
    assert node.process(ds, name=NAME).ok and len(leftovers(node)) == 1
    assert any("could not be flushed to disk" in r.getMessage() for r in caplog.records)

    monkeypatch.setattr(node_module.os, "fsync", lambda descriptor: (_ for _ in ()).throw(OSError(errno.EINVAL, "x")))
    folder = tmp_path / "a-folder"
    folder.mkdir()
    real(folder)  # EINVAL on a folder: tolerated
    (folder / "f").write_bytes(b"x")
    with pytest.raises(OSError):
        real(folder / "f")  # on a file it is not


def test_a_listening_address_that_cannot_be_bound_names_the_host_or_the_port(tmp_path: Path) -> None:
    """A host that does not resolve was told "choose a free port"."""
    import socket

    from dermassist_client.dicom.errors import DicomError

    bad_host = DicomNode(SyntheticClient(), NodeConfig(spool=tmp_path / "a", host="nosuchhost.invalid", port=0))
    with pytest.raises(DicomError, match=r"nosuchhost.invalid:0: the host does not resolve .*pass another --host$"):
        bad_host.start()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = DicomNode(SyntheticClient(), NodeConfig(spool=tmp_path / "b", host="127.0.0.1", port=port))
        with pytest.raises(DicomError, match=rf"127.0.0.1:{port}: Address already in use; .*pass another --port"):
            busy.start()
