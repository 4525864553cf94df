"""How the DICOM node treats associations (security audit findings 4 and 10): an idle one is aborted after a short,
configurable time (8 idle ones locked every sender out for 63 s), associations naming another called AE title are
rejected unless a setting says otherwise, and a data set too large is refused before it is parsed."""
from __future__ import annotations

import threading
import time

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import DermoscopicPhotographyImageStorage, Verification  # type: ignore[attr-defined]

from dermassist_client.dicom import node as node_module
from dermassist_client.dicom.config import NodeConfig
from dermassist_client.dicom.errors import DicomError
from dermassist_client.dicom.limits import (
    DEFAULT_ANSWER_WITHIN_S,
    DEFAULT_IDLE_TIMEOUT_S,
    ENVIRONMENT,
    AssociationLimits,
)
from dermassist_client.dicom.node import DicomNode
from dermassist_client.errors import DeadlineExceededError
from tests.client.dicom.test_forwarding import SyntheticClient
from tests.support import dicom_images as di
from tests.support.polling import wait_until


def associate(address: tuple[str, int], called: str = "DERMASSIST", context=Verification):
    """An association from calling AE 'MODALITY' (not released: the caller holds or releases it)."""
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(context)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    return ae.associate(*address, ae_title=called)


def test_an_idle_association_is_dropped_and_frees_its_slot(tmp_path):
    limits = AssociationLimits(idle_timeout_s=1.0, max_associations=1)
    with DicomNode(SyntheticClient(), NodeConfig(spool=tmp_path / "spool", port=0), limits) as node:
        held = associate(node.address)  # established, then sends nothing
        assert held.is_established
        blocked = associate(node.address)  # the one slot is taken
        assert not blocked.is_established
        assert wait_until(lambda: not held.is_established, 5.0), "the idle association was not dropped"
        assert held.is_aborted
        answered = []

        def echo_answered() -> bool:  # the node's side of the aborted association ends within moments
            after = associate(node.address)
            if after.is_established:
                answered.append(after.send_c_echo().Status)
                after.release()
            return bool(answered)
        assert wait_until(echo_answered, 5.0) and answered == [0x0000]


class SlowClient(SyntheticClient):
    """Answers after longer than the node's idle timeout."""

    def analyze(self, photo, timeout_s=None):
        time.sleep(1.5)
        return super().analyze(photo, timeout_s)


def test_time_spent_analysing_is_not_idleness(tmp_path, ham_jpeg):
    """The idle timer counts only from the answer: a sender waiting on a slow analysis keeps its association."""
    config = NodeConfig(spool=tmp_path / "spool", port=0)
    with DicomNode(SlowClient(), config, AssociationLimits(idle_timeout_s=1.0)) as node:
        assoc = associate(node.address, context=DermoscopicPhotographyImageStorage)
        try:
            for n in range(2):
                ds = di.photograph(ham_jpeg, di.Patient(patient_id=f"DA-SLOW-{n}").with_study(), compressed=False)
                assert assoc.send_c_store(ds).Status == 0x0000
        finally:
            if assoc.is_established:
                assoc.release()
        assert node.counts["stored"] == 2


class HungClient(SyntheticClient):
    """An ensemble that answers after ``analysis_s``, or fails at the call's deadline as gRPC does (unless
    ``honours_timeout`` is False, as over HTTP): ``timeouts`` holds each call's timeout_s."""

    def __init__(self, analysis_s: float, honours_timeout: bool = True) -> None:
        self.analysis_s = analysis_s
        self.honours_timeout = honours_timeout
        self.timeouts: list[float] = []

    def analyze(self, photo, timeout_s=None):
        self.timeouts.append(timeout_s)
        time.sleep(min(self.analysis_s, timeout_s) if self.honours_timeout else self.analysis_s)
        if self.honours_timeout and timeout_s < self.analysis_s:
            raise DeadlineExceededError("analyzing the image: no answer from h:1 within the deadline; raise timeout")
        return super().analyze(photo, timeout_s)


def _timed(node: DicomNode, jpeg: bytes, n: int):
    """Outcome and seconds to answer of instance ``n`` (a photograph of ``jpeg``) given to the node now."""
    ds = di.photograph(jpeg, di.Patient(patient_id=f"DA-HUNG-{n}").with_study(), compressed=False)
    start = time.monotonic()
    outcome = node.process(ds, name=f"instance {n} from MODALITY")
    return outcome, time.monotonic() - start


def test_a_hung_ensemble_is_answered_0xa700_within_the_set_time(tmp_path, ham_jpeg, caplog):
    """The failure audit's node answered at 30.1 s, just after a sender with a 30 s DIMSE timeout left; the node now
    answers within --answer-within (default 20 s), retryable, and says which setting."""
    client = HungClient(analysis_s=60.0)
    node = DicomNode(client, NodeConfig(spool=tmp_path / "spool", port=0), AssociationLimits(answer_within_s=0.5))
    outcome, seconds = _timed(node, ham_jpeg, 0)
    assert (outcome.status, outcome.comment) == (0xA700, "no answer in time: retry later")
    assert 0.4 < seconds < 1.5 and client.timeouts[0] <= 0.5
    assert "not answered within 0.5 s of its arrival (--answer-within, DERMASSIST_DICOM_ANSWER_WITHIN_S)" in caplog.text
    assert "the ensemble did not answer in time" in caplog.text and "raise timeout" not in caplog.text
    assert not list((tmp_path / "spool" / "pending").iterdir())


def test_an_instance_waiting_behind_others_is_answered_in_time_too(tmp_path, ham_jpeg, caplog):
    """One analysis at a time: the second of two instances arriving together waits for the first, and is answered
    0xA700 when the first leaves it no time, rather than after both analyses (the first here takes 1 s whatever its
    timeout, as an HTTP request may)."""
    client = HungClient(analysis_s=1.0, honours_timeout=False)
    node = DicomNode(client, NodeConfig(spool=tmp_path / "spool", port=0), AssociationLimits(answer_within_s=0.6))
    results: list = []
    first = threading.Thread(target=lambda: results.append(_timed(node, ham_jpeg, 1)))
    first.start()
    assert wait_until(lambda: client.timeouts, 5.0)
    second, seconds = _timed(node, ham_jpeg, 2)
    first.join()
    assert (second.status, second.comment) == (0xA700, "no answer in time: retry later") and seconds < 1.2
    assert "the node was still analysing earlier instances" in caplog.text
    assert len(client.timeouts) == 1  # the second never reached the ensemble
    assert results[0][0].ok  # the first was answered, late


def test_the_clients_own_lower_timeout_still_bounds_an_analysis(tmp_path, ham_jpeg):
    """--timeout below --answer-within: the analysis gives up at the client's timeout (review 14)."""
    from dataclasses import replace

    client = HungClient(analysis_s=60.0)
    client.config = replace(client.config, timeout_s=0.3)
    node = DicomNode(client, NodeConfig(spool=tmp_path / "spool", port=0), AssociationLimits(answer_within_s=5.0))
    outcome, seconds = _timed(node, ham_jpeg, 4)
    assert outcome.status == 0xA700 and client.timeouts == [0.3] and seconds < 2.0


def test_an_instance_answered_in_time_is_stored_with_what_was_left_as_its_timeout(tmp_path, ham_jpeg):
    client = HungClient(analysis_s=0.05)
    node = DicomNode(client, NodeConfig(spool=tmp_path / "spool", port=0), AssociationLimits(answer_within_s=5.0))
    outcome, _ = _timed(node, ham_jpeg, 3)
    assert outcome.ok and 4.0 < client.timeouts[0] <= 5.0
    assert len(list((tmp_path / "spool" / "pending").iterdir())) == 1
    assert DicomNode(client, NodeConfig(spool=tmp_path / "s2", port=0)).limits.answer_within_s == DEFAULT_ANSWER_WITHIN_S


@pytest.mark.parametrize("any_called,accepted", [(False, False), (True, True)])
def test_another_called_ae_title_is_rejected_unless_allowed(tmp_path, any_called, accepted):
    limits = AssociationLimits(any_called_aet=any_called)
    with DicomNode(SyntheticClient(), NodeConfig(spool=tmp_path / "spool", port=0), limits) as node:
        wrong = associate(node.address, called="WRONGAET")
        assert wrong.is_established is accepted
        if accepted:
            wrong.release()
        else:
            assert wrong.is_rejected
            assert (wrong.acceptor.primitive.result_source, wrong.acceptor.primitive.diagnostic) == (1, 7)
        right = associate(node.address)  # its own title is always accepted
        assert right.is_established
        right.release()


def test_a_data_set_too_large_is_refused_before_it_is_read(tmp_path, ham_jpeg, monkeypatch):
    monkeypatch.setattr(node_module, "MAX_DATASET_BYTES", 10_000)  # the real limit is ~318 MB
    ds = di.photograph(ham_jpeg, di.Patient(patient_id="DA-BIG").with_study(), compressed=False)
    # an arrival limit above the data set: it arrives whole and is refused by the check after receipt (the default
    # arrival limit is MAX_DATASET_BYTES itself, which would abort it while it arrives: test_arrival_limits.py)
    limits = AssociationLimits(max_dataset_mib=64)
    with DicomNode(SyntheticClient(), NodeConfig(spool=tmp_path / "spool", port=0), limits) as node:
        assoc = associate(node.address, context=DermoscopicPhotographyImageStorage)
        try:
            answer = assoc.send_c_store(ds)
        finally:
            assoc.release()
    assert (answer.Status, answer.ErrorComment) == (0xC000, "data set too large")
    assert node.counts["failed"] == 1 and node.counts["stored"] == 0


def test_the_settings_come_from_the_flag_else_the_environment_else_the_default():
    environ = {ENVIRONMENT["idle_timeout_s"]: "12.5", ENVIRONMENT["max_associations"]: "3",
               ENVIRONMENT["any_called_aet"]: "1"}
    assert AssociationLimits.resolve({}, {}) == AssociationLimits()
    assert AssociationLimits().idle_timeout_s == DEFAULT_IDLE_TIMEOUT_S and not AssociationLimits().any_called_aet
    assert AssociationLimits.resolve({}, environ) == AssociationLimits(12.5, 3, True)
    flags = {"idle_timeout_s": 5.0, "max_associations": None, "any_called_aet": None}
    assert AssociationLimits.resolve(flags, environ) == AssociationLimits(5.0, 3, True)
    environ[ENVIRONMENT["answer_within_s"]] = "12"
    assert AssociationLimits.resolve({}, environ).answer_within_s == 12.0
    assert AssociationLimits.resolve({"answer_within_s": 8.5}, environ).answer_within_s == 8.5


@pytest.mark.parametrize("settings,words", [
    ({"idle_timeout_s": 0}, r"idle timeout \(--idle-timeout, DERMASSIST_DICOM_IDLE_TIMEOUT_S\) must be more than 0"),
    ({"answer_within_s": 0}, r"the time to answer an instance in \(--answer-within, DERMASSIST_DICOM_ANSWER_WITHIN_S\) "
                             r"must be more than 0 and at most 3600 seconds, got 0; e.g. 20"),
    ({"answer_within_s": float("nan")}, r"got nan"),
    ({"max_associations": 0}, r"--max-associations, DERMASSIST_DICOM_MAX_ASSOCIATIONS\) must be a whole number"),
    ({"max_associations_per_sender": 0}, r"one sender \(--max-associations-per-sender, "
                                         r"DERMASSIST_DICOM_MAX_ASSOCIATIONS_PER_SENDER\) must be a whole number 1\.\.8"),
    ({"max_associations": 3, "max_associations_per_sender": 4}, r"must be a whole number 1\.\.3 \(at most the maximum "
                                                                r"number of associations, --max-associations\), got 4"),
    ({"max_associations_per_sender": True}, r"got True"),
    ({"max_dataset_mib": 0}, r"\(--max-dataset-mib, DERMASSIST_DICOM_MAX_DATASET_MIB\) must be a whole number "
                             r"1\.\.4096, got 0"),
    ({"max_dataset_mib": 4097}, r"got 4097"),
    ({"max_dataset_mib": 1.5}, r"got 1\.5"),
])
def test_a_setting_out_of_range_is_refused_naming_its_flag_and_variable(settings, words):
    with pytest.raises(DicomError, match=words):
        AssociationLimits(**settings)


def test_an_unreadable_environment_value_is_refused_naming_the_variable():
    with pytest.raises(DicomError, match="DERMASSIST_DICOM_IDLE_TIMEOUT_S must be a number of seconds, got 'soon'"):
        AssociationLimits.resolve({}, {ENVIRONMENT["idle_timeout_s"]: "soon"})
    with pytest.raises(DicomError, match="DERMASSIST_DICOM_ANY_CALLED_AET must be 1 or 0"):
        AssociationLimits.resolve({}, {ENVIRONMENT["any_called_aet"]: "maybe"})
    with pytest.raises(DicomError, match="DERMASSIST_DICOM_MAX_DATASET_MIB must be a whole number, got '64M'"):
        AssociationLimits.resolve({}, {ENVIRONMENT["max_dataset_mib"]: "64M"})
    with pytest.raises(DicomError, match="DERMASSIST_DICOM_MAX_ASSOCIATIONS_PER_SENDER must be a whole number"):
        AssociationLimits.resolve({}, {ENVIRONMENT["max_associations_per_sender"]: "two"})
