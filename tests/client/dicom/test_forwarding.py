"""The DICOM node's forwarder against an in-process pynetdicom storage SCP standing in for the PACS.

Real HAM10000 JPEGs made into DICOM (RLE, native RGB, JPEG YBR_FULL_422) are analysed with a synthetic result,
spooled by ``DicomNode.process`` and sent by ``DicomNode.flush`` (called directly: no forwarder thread, no timing).
The PACS accepts only uncompressed transfer syntaxes, or refuses one object for good, or is out of resources.
"""
from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    VLPhotographicImageStorage,
)
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

from dermassist_client.config import ClientConfig
from dermassist_client.dicom.command import log_each_instance
from dermassist_client.dicom.config import NodeConfig, PacsConfig
from dermassist_client.dicom.node import MAX_LASTING_REFUSALS, REASON_FILE, DicomNode
from dermassist_client.dicom.pacs import PacsUnavailableError, store_files
from dermassist_client.dicom.source import describe
from tests.support import dicom_images as di
from tests.support.dicom_checks import picture_size, synthetic_result

PACS_AET = "TESTPACS"
NODE_LOGGER = "dermassist_client.dicom.node"


@dataclass
class FakePacs:
    """A storage SCP in a thread: what it stored (data set and transfer syntax it came in) and what it refuses."""

    syntaxes: Sequence[str]
    unsupported: frozenset[str] = frozenset()          # SOP classes it accepts in no transfer syntax
    refuse: dict[str, int] = field(default_factory=dict)  # SOP Instance UID -> failure status it answers
    drop_stores: bool = False  # abort the association at each C-STORE, as a PACS does to a node it does not know
    stored: list[tuple[Dataset, UID]] = field(default_factory=list)
    port: int = 0

    def _on_store(self, event) -> int | Dataset:
        if self.drop_stores:
            event.assoc.abort()
            return 0xC000
        ds = event.dataset
        ds.file_meta = event.file_meta
        status = self.refuse.get(str(ds.SOPInstanceUID))
        if status is not None:
            answer = Dataset()
            answer.Status, answer.ErrorComment = status, "refused by the test PACS"
            return answer
        self.stored.append((ds, UID(event.context.transfer_syntax)))
        return 0x0000

    def stored_uids(self) -> set[str]:
        """SOP Instance UIDs stored."""
        return {str(ds.SOPInstanceUID) for ds, _ in self.stored}


@contextmanager
def running(pacs: FakePacs, ssl_context: ssl.SSLContext | None = None) -> Iterator[FakePacs]:
    """Serve ``pacs`` for the ``with`` block on its port (0: a free one, then set); with TLS when ``ssl_context``."""
    ae = AE(ae_title=PACS_AET)
    for context in AllStoragePresentationContexts:
        if context.abstract_syntax not in pacs.unsupported:
            ae.add_supported_context(context.abstract_syntax, list(pacs.syntaxes))
    server = ae.start_server(("127.0.0.1", pacs.port), block=False, ssl_context=ssl_context,
                             evt_handlers=[(evt.EVT_C_STORE, pacs._on_store)])
    pacs.port = server.server_address[1]
    try:
        yield pacs
    finally:
        server.shutdown()


@pytest.fixture
def uncompressed_pacs() -> Iterator[FakePacs]:
    """A PACS that accepts every storage class in Explicit and Implicit VR Little Endian only (no RLE, no JPEG)."""
    with running(FakePacs([ExplicitVRLittleEndian, ImplicitVRLittleEndian])) as pacs:
        yield pacs


class SyntheticClient:
    """Stands in for ``DermAssistClient``: a lesion found in every photograph, at the photograph's size."""

    config = ClientConfig(url="127.0.0.1:1")  # its timeout_s bounds the node's analyses, as a client's does

    def analyze(self, photo, timeout_s=None):
        """A synthetic result for ``photo`` (a PIL image, or a JPEG frame's bytes)."""
        return synthetic_result(picture_size(photo))


def make_node(tmp_path: Path, pacs: FakePacs, port: int | None = None) -> DicomNode:
    """A node forwarding to ``pacs`` (not started: the tests call flush())."""
    config = NodeConfig(spool=tmp_path / "spool", port=0, retry_s=30.0,
                        pacs=PacsConfig("127.0.0.1", port or pacs.port, PACS_AET, timeout_s=10))
    return DicomNode(SyntheticClient(), config)


def rle_photograph(jpeg: bytes, patient: di.Patient) -> Dataset:
    """The photograph's RGB pixels, RLE Lossless compressed."""
    ds = di.photograph(jpeg, patient, compressed=False)
    ds.compress(RLELossless, generate_instance_uid=False)
    return ds


def spool(node: DicomNode, datasets: Sequence[Dataset]) -> list[dict[str, Dataset]]:
    """Analyse and spool each data set (oldest first); each item's objects as spooled, by SOP Instance UID."""
    items = []
    for ds in datasets:
        assert node.process(ds, name=f"test instance {ds.SOPInstanceUID}").ok
        item = node.pending()[-1]
        items.append({str(f.SOPInstanceUID): f for f in map(pydicom.dcmread, sorted(item.glob("*.dcm")))})
    return items


def the_three_photographs(jpeg: bytes) -> list[Dataset]:
    """The auditor's three instances, each its own patient: RLE, native RGB, JPEG baseline YBR_FULL_422."""
    return [rle_photograph(jpeg, di.Patient(patient_id="DA-FWD-RLE").with_study()),
            di.photograph(jpeg, di.Patient(patient_id="DA-FWD-RGB").with_study(), compressed=False),
            di.photograph(jpeg, di.Patient(patient_id="DA-FWD-JPEG").with_study(), compressed=True)]


def test_an_rle_item_and_all_other_results_reach_a_pacs_that_takes_only_uncompressed(tmp_path, ham_jpeg,
                                                                                      uncompressed_pacs):
    node = make_node(tmp_path, uncompressed_pacs)
    sources = the_three_photographs(ham_jpeg)
    items = spool(node, sources)
    assert [str(s.file_meta.TransferSyntaxUID) for s in sources] == [RLELossless, ExplicitVRLittleEndian,
                                                                     "1.2.840.10008.1.2.4.50"]

    assert node.flush() == len(sources)

    assert node.pending() == [] and node.failed() == []
    spooled = {uid: ds for item in items for uid, ds in item.items()}
    assert uncompressed_pacs.stored_uids() == set(spooled)  # source, SEG and SR of every item, UIDs kept
    assert {syntax for _, syntax in uncompressed_pacs.stored} <= {ExplicitVRLittleEndian, ImplicitVRLittleEndian}
    by_uid = {str(ds.SOPInstanceUID): ds for ds, _ in uncompressed_pacs.stored}
    for source in sources:  # each source arrives with the pixels it was received with, decompressed
        arrived = by_uid[str(source.SOPInstanceUID)]
        assert np.array_equal(arrived.pixel_array, source.pixel_array)
        assert arrived.PhotometricInterpretation == "RGB"
    for item in items:  # the SEG and SR reference a source the PACS holds
        seg = next(ds for ds in item.values() if ds.Modality == "SEG")
        assert seg.SourceImageSequence[0].ReferencedSOPInstanceUID in by_uid
    assert node.counts["forwarded"] == len(sources)


def test_a_pacs_accepting_no_context_for_a_file_refuses_it_for_good_rather_than_being_down(tmp_path, ham_jpeg):
    with running(FakePacs(ALL_TRANSFER_SYNTAXES, unsupported=frozenset({VLPhotographicImageStorage}))) as pacs:
        path = di.save(di.photograph(ham_jpeg, di.Patient(), sop_class=VLPhotographicImageStorage),
                       tmp_path / "vl.dcm")
        delivery = store_files(PacsConfig("127.0.0.1", pacs.port, PACS_AET, timeout_s=10), "DERMASSIST", [path])
        assert not delivery.ok and delivery.lasting and delivery.stored == ()
        (refusal,) = delivery.refused
        assert refusal.path == path and "accepted no presentation context for VL Photographic Image Storage" \
            in refusal.reason and PACS_AET in refusal.reason
        assert pacs.stored == []


@pytest.mark.parametrize("cause", ["failure status", "no presentation context"])
def test_a_refused_item_does_not_hold_up_the_others_and_ends_in_the_failed_folder(tmp_path, ham_jpeg, caplog,
                                                                                   cause):
    refused_source = di.photograph(ham_jpeg, di.Patient(patient_id="DA-FWD-REFUSED").with_study(),
                                   sop_class=VLPhotographicImageStorage)
    others = the_three_photographs(ham_jpeg)
    pacs = FakePacs(ALL_TRANSFER_SYNTAXES)
    if cause == "failure status":
        pacs.refuse[str(refused_source.SOPInstanceUID)] = 0xA900  # Data Set does not match SOP Class
        words = "status 0xA900"
    else:
        pacs.unsupported = frozenset({VLPhotographicImageStorage})
        words = "accepted no presentation context for VL Photographic Image Storage"
    with running(pacs):
        node = make_node(tmp_path, pacs)
        first, *later = spool(node, [refused_source, *others])  # the refused item is the oldest
        refused_item = node.pending()[0]

        caplog.set_level(logging.INFO, logger=NODE_LOGGER)
        assert node.flush() == len(others)  # the later items go at once, past the refused one
        assert pacs.stored_uids() == {uid for item in later for uid in item} | (set(first) - {
            str(refused_source.SOPInstanceUID)})  # and the refused item's SEG and SR too
        assert node.pending() == [refused_item]
        assert [p.name for p in refused_item.glob("*.dcm")] == [f"0_SOURCE_{refused_source.SOPInstanceUID}.dcm"]

        for _ in range(MAX_LASTING_REFUSALS - 1):
            assert node.failed() == []
            assert node.flush() == 0

    assert node.pending() == []
    (moved,) = node.failed()
    assert moved.name == refused_item.name and moved.parent.name == "failed"
    kept = pydicom.dcmread(moved / f"0_SOURCE_{refused_source.SOPInstanceUID}.dcm")  # nothing lost
    assert kept.SOPInstanceUID == refused_source.SOPInstanceUID
    reason = (moved / REASON_FILE).read_text()
    assert words in reason and str(node.config.pacs) in reason and "move" in reason
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and str(moved) in r.getMessage()]
    assert len(errors) == 1, caplog.text
    assert refused_item.name in errors[0] and str(node.config.pacs) in errors[0] and words in errors[0]
    assert f"back into {tmp_path / 'spool' / 'pending'}" in errors[0]
    assert node.counts["moved_to_failed"] == 1 and node.counts["forwarded"] == len(others)


def test_a_pacs_out_of_resources_keeps_the_item_pending_however_often_it_refuses(tmp_path, ham_jpeg):
    (source,) = sources = [di.photograph(ham_jpeg, di.Patient().with_study(), compressed=False)]
    with running(FakePacs(ALL_TRANSFER_SYNTAXES, refuse={str(source.SOPInstanceUID): 0xA700})) as pacs:
        node = make_node(tmp_path, pacs)
        spool(node, sources)
        for _ in range(MAX_LASTING_REFUSALS + 1):
            assert node.flush() == 0
        assert len(node.pending()) == 1 and node.failed() == []


def test_a_pacs_that_is_down_keeps_every_item_pending(tmp_path, ham_jpeg, caplog):
    with running(FakePacs(ALL_TRANSFER_SYNTAXES)) as pacs:
        closed_port = pacs.port
        node = make_node(tmp_path, pacs)
        spool(node, the_three_photographs(ham_jpeg))
    with pytest.raises(PacsUnavailableError, match="did not accept an association"):
        store_files(node.config.pacs, "DERMASSIST", sorted(node.pending()[0].glob("*.dcm")))
    caplog.set_level(logging.ERROR, logger=NODE_LOGGER)
    assert node.config.pacs.port == closed_port and node.flush() == 0
    assert len(node.pending()) == 3 and node.failed() == []
    assert all(len(list(item.glob("*.dcm"))) == 3 for item in node.pending())
    assert "3 item(s) kept in" in caplog.text


def test_a_refusal_is_logged_naming_the_instance_once(tmp_path, caplog):
    """The node names an instance by its description and sender; the refusal's log line said the description three
    times ("refused CT ... from STORESCU: CT ... from STORESCU: CT ... is not an RGB photograph")."""
    ds = di.ct_slice(di.Patient(patient_id="DA-LOG-0001", patient_name="Log^Once").with_study())
    node = DicomNode(SyntheticClient(), NodeConfig(spool=tmp_path / "spool", port=0))
    with caplog.at_level(logging.WARNING, logger=NODE_LOGGER):
        outcome = node.process(ds, name=f"{describe(ds)} from STORESCU")
    assert not outcome.ok and "not an RGB photograph" in outcome.message
    (line,) = [r.getMessage() for r in caplog.records if r.name == NODE_LOGGER]
    assert line.startswith(f"refused {describe(ds)} from STORESCU is not an RGB photograph"), line
    assert line.count(str(ds.SOPInstanceUID)) == 1, line


def test_each_instance_analysed_is_logged_with_its_answer_and_the_command_lets_that_through(tmp_path, ham_jpeg,
                                                                                         caplog):
    node = make_node(tmp_path, FakePacs([ExplicitVRLittleEndian]), port=1)
    caplog.set_level(logging.DEBUG, logger=NODE_LOGGER)
    source = di.photograph(ham_jpeg, di.Patient(patient_id="DA-LOG").with_study(), compressed=True)
    assert node.process(source, name="the test instance").ok
    (line,) = [r.getMessage() for r in caplog.records if r.name == NODE_LOGGER and r.levelno == logging.INFO]
    # at INFO the request id the service's audit line holds, not the answer: a diagnosis keyed by an identifier the
    # PACS resolves to a patient stays out of the operational log (privacy audit, L5)
    assert re.fullmatch(r"analysed the test instance \(request \S+\)", line), line
    (answer,) = [r.getMessage() for r in caplog.records if r.name == NODE_LOGGER and r.levelno == logging.DEBUG]
    # the synthetic answer is not assessable: the log says so rather than naming its top class as a diagnosis
    assert answer == "answer for the test instance: no diagnosis (not assessable), refer True"

    package, root = logging.getLogger("dermassist_client.dicom"), logging.getLogger()
    saved = package.level, root.level
    try:
        for command_level, expected in ((logging.WARNING, logging.INFO), (logging.DEBUG, logging.DEBUG)):
            package.setLevel(logging.NOTSET)
            root.setLevel(command_level)  # dermassist-client's level: WARNING, or DEBUG with --verbose
            log_each_instance()
            assert package.getEffectiveLevel() == expected
    finally:
        package.setLevel(saved[0])
        root.setLevel(saved[1])


# --- the delivery of held items is logged (ops2 audit #9) ----------------------------------------------------------

NEW_YEAR_2026 = 1_767_225_600  # 2026-01-01T00:00:00Z: 56 years of 365 days and 14 leap days after 1970, times 86,400


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC for the test (the log gives local times)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def spooled_at(node: DicomNode, seconds: int) -> Path:
    """Rename the newest pending item as if it had been spooled at ``seconds`` since the epoch (names keep the order)."""
    item = node.pending()[-1]
    return item.rename(item.with_name(f"{seconds * 10**9:020d}-{item.name.split('-', 1)[1]}"))


def delivered_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The node's INFO lines about held items it delivered, and clear the capture."""
    lines = [r.getMessage() for r in caplog.records
             if r.name == NODE_LOGGER and r.levelno == logging.INFO and r.getMessage().startswith("forwarded ")]
    caplog.clear()
    return lines


def test_items_held_while_the_pacs_was_down_are_logged_once_when_it_takes_them(tmp_path, ham_jpeg, caplog, utc):
    """The ERROR of each failed pass had no counterpart: nothing said when the held items reached the PACS."""
    first, second, fresh, later = [di.photograph(ham_jpeg, di.Patient(patient_id=f"DA-HELD-{i}").with_study(),
                                                 compressed=False) for i in range(4)]
    with running(FakePacs(ALL_TRANSFER_SYNTAXES)) as pacs:
        node = make_node(tmp_path, pacs)
    spool(node, [first])
    spooled_at(node, NEW_YEAR_2026)
    spool(node, [second])
    spooled_at(node, NEW_YEAR_2026 + 60)
    caplog.set_level(logging.INFO, logger=NODE_LOGGER)
    assert node.flush() == 0  # the PACS is down: the ERROR of a failed pass, both items held
    assert "2 item(s) kept in" in caplog.text and delivered_lines(caplog) == []

    pending, where = tmp_path / "spool" / "pending", f"TESTPACS@127.0.0.1:{pacs.port}"
    # back on its port, still out of resources for the second item; a fresh item comes in meanwhile
    with running(FakePacs(ALL_TRANSFER_SYNTAXES, refuse={str(second.SOPInstanceUID): 0xA700}, port=pacs.port)) as back:
        spool(node, [fresh])
        assert node.flush() == 2  # the first held item and the fresh one
        assert delivered_lines(caplog) == [
            f"forwarded 1 spool item(s) held since 2026-01-01T00:00:00+0000 to the PACS {where} (kept by a pass that "
            f"could not deliver them, or found in the spool at start-up); 1 item(s) still wait in {pending} and are "
            "tried again in 30 s"]
        back.refuse.clear()
        spool(node, [later])
        assert node.flush() == 2  # the second held item and the later fresh one
        assert delivered_lines(caplog) == [
            f"forwarded 1 spool item(s) held since 2026-01-01T00:01:00+0000 to the PACS {where} (kept by a pass that "
            "could not deliver them, or found in the spool at start-up)"]
        spool(node, [di.photograph(ham_jpeg, di.Patient(patient_id="DA-HELD-5").with_study(), compressed=False)])
        assert node.flush() == 1 and delivered_lines(caplog) == []  # nothing was held: nothing to report
    assert node.pending() == [] and len(back.stored_uids()) == 5 * 3  # source, SEG and SR of each


def test_items_an_earlier_run_left_in_the_spool_are_logged_when_the_pacs_takes_them(tmp_path, ham_jpeg, caplog, utc):
    with running(FakePacs(ALL_TRANSFER_SYNTAXES)) as pacs:
        earlier_run = make_node(tmp_path, pacs)  # stopped before it sent them
        for i in (1, 2):
            spool(earlier_run, [di.photograph(ham_jpeg, di.Patient(patient_id=f"DA-LEFT-{i}").with_study())])
            spooled_at(earlier_run, NEW_YEAR_2026 + i * 3600)
        caplog.set_level(logging.INFO, logger=NODE_LOGGER)
        node = make_node(tmp_path, pacs)
        assert node.flush() == 2
        assert delivered_lines(caplog) == [
            f"forwarded 2 spool item(s) held since 2026-01-01T01:00:00+0000 to the PACS TESTPACS@127.0.0.1:{pacs.port} "
            "(kept by a pass that could not deliver them, or found in the spool at start-up)"]



def test_a_pacs_that_drops_the_nodes_stores_keeps_the_items_and_names_the_likely_cause(tmp_path, ham_jpeg):
    """Orthanc without the node in DicomModalities accepts the association, then drops it at the C-STORE: the log said
    'timeout or abort' and never hinted at the PACS's list of known modalities."""
    with running(FakePacs(ALL_TRANSFER_SYNTAXES, drop_stores=True)) as pacs:
        node = make_node(tmp_path, pacs)
        spool(node, [di.photograph(ham_jpeg, di.Patient(patient_id="DA-DROP").with_study(), compressed=False)])
        quick = PacsConfig("127.0.0.1", pacs.port, PACS_AET, timeout_s=2)  # it waits out the timeout for an answer
        delivery = store_files(quick, "DERMASSIST", sorted(node.pending()[0].glob("*.dcm")))
    assert delivery.stored == () and pacs.stored == [] and len(node.pending()) == 1  # kept, to be sent again
    first = delivery.refused[0]
    assert "gave no answer" in first.reason and not first.lasting
    assert "check that it lists the AE title DERMASSIST with this host (Orthanc: DicomModalities" in first.reason


def test_an_item_half_written_when_the_node_stopped_is_removed_at_the_next_start_and_said(tmp_path, caplog):
    """A `.partial` item (the node stopped while writing it) was kept for good, unsaid, with a patient's instance in
    it (privacy audit, L3); its sender was never answered Success, so it sends the instance again."""
    import os

    from dermassist_client.dicom.node import HALF_WRITTEN_AFTER_S

    half = tmp_path / "spool" / "pending" / "01796640000000000000-1.2.3.4.partial"
    half.mkdir(parents=True)
    (half / "0_SOURCE_1.2.3.4.dcm").write_bytes(b"a patient's instance")
    stopped = time.time() - HALF_WRITTEN_AFTER_S - 1
    os.utime(half, (stopped, stopped))
    being_written = tmp_path / "spool" / "pending" / "01796640000000000002-1.2.3.6.partial"  # another node's, now
    being_written.mkdir()
    kept = tmp_path / "spool" / "pending" / "01796640000000000001-1.2.3.5"
    kept.mkdir()
    caplog.set_level(logging.WARNING, logger=NODE_LOGGER)
    node = make_node(tmp_path, FakePacs([ExplicitVRLittleEndian]), port=1)
    assert not half.exists() and node.pending() == [kept]
    assert being_written.is_dir()  # review 19, L7: a second node on the spool had deleted it
    (line,) = [r.getMessage() for r in caplog.records if r.name == NODE_LOGGER]
    assert line.startswith(f"removed {half}, an item half-written when the node last stopped")
