"""What the DICOM node bounds while an instance arrives, and how many associations one sender may hold (security
audit: pynetdicom buffered a whole data set, whatever its size, before the node's checks ran; one sender could take
every association slot).

Real pynetdicom associations on localhost: an instance over ``--max-dataset-mib`` gets its association aborted with
no more than the limit read and no C-STORE handler run; one just under it, and many on one association that together
exceed it, are stored; a sender that sends its next instance before the node answered the last (the node
negotiates no asynchronous operations) is aborted, so one association never holds more than one instance. A second
loopback address (127.0.0.2) stands for a second sender.
"""
from __future__ import annotations

import argparse
import io
import logging
import re
import socket
import struct
import threading

from PIL import Image
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import MaximumLengthNotification
from pynetdicom.sop_class import DermoscopicPhotographyImageStorage, Verification  # type: ignore[attr-defined]

from dermassist_client.dicom import node as node_module
from dermassist_client.dicom.arrival import MAX_CONTROL_PDU_BYTES
from dermassist_client.dicom.command import add_listen_arguments, association_limits
from dermassist_client.dicom.config import NodeConfig
from dermassist_client.dicom.limits import DEFAULT_MAX_ASSOCIATIONS_PER_SENDER, ENVIRONMENT, AssociationLimits
from dermassist_client.dicom.node import DicomNode
from tests.client.dicom.test_forwarding import SyntheticClient
from tests.support import dicom_images as di
from tests.support.polling import wait_until

NODE_LOGGER = "dermassist_client.dicom.node"
ARRIVAL_LOGGER = "dermassist_client.dicom.arrival"  # the ArrivalGuard's aborts
ONE_MIB = 1 << 20
#: A-ABORT PDU (PS3.8 9.3.8): type 7, length 4, source 0 (the DICOM UL service user), reason 0
A_ABORT_FROM_USER = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0x00, 0x00])


class CountingClient(SyntheticClient):
    """Counts the photographs it is asked to analyse."""

    def __init__(self) -> None:
        self.calls = 0

    def analyze(self, photo, timeout_s=None):
        self.calls += 1
        return super().analyze(photo, timeout_s)


class SlowClient(CountingClient):
    """An ensemble that answers only once ``release`` is set (busy behind other senders), or after ``delay_s``."""

    def __init__(self, delay_s: float = 20.0) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.release = threading.Event()
        self.started = threading.Event()

    def analyze(self, photo, timeout_s=None):
        self.started.set()
        self.release.wait(self.delay_s)
        return super().analyze(photo, timeout_s)


def associate(address: tuple[str, int], context=DermoscopicPhotographyImageStorage, source: str = "127.0.0.1"):
    """An association from calling AE 'MODALITY' at ``source`` (not released: the caller holds or releases it)."""
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(context)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    return ae.associate(*address, ae_title="DERMASSIST", bind_address=(source, 0))


def native(jpeg: bytes, patient_id: str, scale: float = 1.0) -> Dataset:
    """An uncompressed RGB photograph of the HAM10000 JPEG, ``scale`` times its 600 x 450 size."""
    if scale != 1.0:
        with Image.open(io.BytesIO(jpeg)) as im:
            out = io.BytesIO()
            im.resize((round(im.width * scale), round(im.height * scale))).save(out, "JPEG", quality=95)
            jpeg = out.getvalue()
    return di.photograph(jpeg, di.Patient(patient_id=patient_id).with_study(), compressed=False)


def node_at(tmp_path, client, **settings) -> DicomNode:
    return DicomNode(client, NodeConfig(spool=tmp_path / "spool", port=0), AssociationLimits(**settings))


def abort_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == ARRIVAL_LOGGER and "aborted the association" in r.message]


def reached_and_held(warning: str) -> tuple[int, int]:
    """The bytes an aborted instance would have reached, and the bytes the node held of it, from the warning."""
    found = re.search(r"would reach ([\d,]+) bytes .*\(holding ([\d,]+)\)", warning)
    assert found, warning
    return int(found[1].replace(",", "")), int(found[2].replace(",", ""))


def test_an_instance_over_the_limit_is_aborted_while_it_arrives(tmp_path, ham_jpeg, caplog):
    """3.2 MB against a 1 MiB limit: the association is aborted once the node holds about 1 MiB of it; the C-STORE
    handler never runs, nothing is analysed or spooled, and the node serves the next sender."""
    caplog.set_level(logging.WARNING, logger="dermassist_client.dicom")
    client = CountingClient()
    big = native(ham_jpeg, "DA-ARRIVE-BIG", scale=2.0)  # 1200 x 900 x 3 = 3,240,000 bytes of pixels
    with node_at(tmp_path, client, max_dataset_mib=1) as node:
        assoc = associate(node.address)
        assert assoc.is_established
        answer = assoc.send_c_store(big)
        assert wait_until(lambda: not assoc.is_established, 5.0)
        assert assoc.is_aborted and "Status" not in answer  # no C-STORE response: the association ended first
        assert node.counts["aborted_while_arriving"] == 1
        assert node.counts["received"] == 0 and client.calls == 0 and node.pending() == []
        after = associate(node.address, context=Verification)  # the node keeps serving
        assert after.is_established and after.send_c_echo().Status == 0x0000
        after.release()
    [warning] = abort_warnings(caplog)
    assert "from MODALITY at 127.0.0.1:" in warning
    assert "more than the 1,048,576 one instance may bring (--max-dataset-mib, DERMASSIST_DICOM_MAX_DATASET_MIB)" \
        in warning
    reached, held = reached_and_held(warning)
    assert reached > ONE_MIB >= held  # what it had read stayed within the limit; the PDU that would pass it was not read


def test_one_pdu_declaring_more_than_the_limit_is_aborted_before_its_body_is_read(tmp_path, ham_jpeg, caplog):
    """A sender that ignores the node's maximum PDU length sends the whole data set in one P-DATA-TF: its header is
    enough to abort, with none of its body read (pynetdicom alone would read whatever length the header declares)."""
    caplog.set_level(logging.WARNING, logger="dermassist_client.dicom")
    with node_at(tmp_path, CountingClient(), max_dataset_mib=1) as node:
        assoc = associate(node.address)
        for item in assoc.acceptor.user_information:  # what this sender takes as the node's maximum: none
            if isinstance(item, MaximumLengthNotification):
                item.maximum_length_received = 0
        answer = assoc.send_c_store(native(ham_jpeg, "DA-ONE-PDU", scale=2.0))
        assert wait_until(lambda: not assoc.is_established, 5.0)
        assert assoc.is_aborted and "Status" not in answer
        assert node.counts["aborted_while_arriving"] == 1 and node.counts["received"] == 0
    [warning] = abort_warnings(caplog)
    reached, held = reached_and_held(warning)
    assert held < 1024 < 3 * ONE_MIB < reached  # it held the command set only: the data set's PDU was not read


def test_an_oversized_association_request_is_aborted_unread(tmp_path):
    """An A-ASSOCIATE-RQ declaring 64 MiB: A-ABORT at its header, the connection closed, the 64 MiB never read."""
    with node_at(tmp_path, CountingClient()) as node, socket.create_connection(node.address, timeout=5) as peer:
        peer.sendall(struct.pack(">BBL", 0x01, 0, 64 * ONE_MIB) + b"\x00" * 1024)
        received = b""
        while chunk := peer.recv(64):
            received += chunk
        assert received == A_ABORT_FROM_USER
        assert node.counts["aborted_while_arriving"] == 1
    assert 64 * ONE_MIB > MAX_CONTROL_PDU_BYTES


def test_an_instance_just_under_the_limit_is_stored(tmp_path, ham_jpeg):
    """A 600 x 450 uncompressed photograph (810,000 bytes of pixels) against a 1 MiB limit."""
    ds = native(ham_jpeg, "DA-ARRIVE-OK")
    assert 0.75 * ONE_MIB < len(ds.PixelData) < ONE_MIB
    with node_at(tmp_path, CountingClient(), max_dataset_mib=1) as node:
        assoc = associate(node.address)
        try:
            assert assoc.send_c_store(ds).Status == 0x0000
        finally:
            assoc.release()
        assert node.counts["stored"] == 1 and node.counts["aborted_while_arriving"] == 0


def test_many_instances_on_one_association_are_counted_one_by_one(tmp_path, ham_jpeg):
    """Three instances of ~0.8 MB on one association (2.4 MB together) against a 1 MiB limit: each new command set
    starts the count again, so all are stored."""
    client = CountingClient()
    instances = [native(ham_jpeg, f"DA-ARRIVE-{n}") for n in range(3)]
    assert sum(len(ds.PixelData) for ds in instances) > 2 * ONE_MIB
    with node_at(tmp_path, client, max_dataset_mib=1) as node:
        assoc = associate(node.address)
        try:
            statuses = [assoc.send_c_store(ds).Status for ds in instances]
        finally:
            assoc.release()
        assert statuses == [0x0000] * 3
        assert node.counts["stored"] == 3 and client.calls == 3 and node.counts["aborted_while_arriving"] == 0


def test_a_sender_that_does_not_wait_for_each_response_is_aborted(tmp_path, ham_jpeg, caplog):
    """Review 1, finding 1: twelve ~0.85 MB C-STOREs sent without waiting for any C-STORE-RSP, against a 1 MiB limit
    and an ensemble busy with the first. pynetdicom would read on and queue every one (8.9 MB held, each under the
    limit). The node aborts at the first PDU of the second: it held the first instance only, within the limit."""
    caplog.set_level(logging.WARNING, logger="dermassist_client.dicom")
    ds = native(ham_jpeg, "DA-PIPELINED")
    client = SlowClient()
    with node_at(tmp_path, client, max_dataset_mib=1) as node:
        assoc = associate(node.address)
        try:
            assert assoc.is_established
            context = assoc.accepted_contexts[0]
            syntax = context.transfer_syntax[0]
            encoded = encode(ds, syntax.is_implicit_VR, syntax.is_little_endian)
            assert 0.75 * ONE_MIB < len(encoded) < ONE_MIB and 12 * len(encoded) > 8 * ONE_MIB
            for number in range(1, 13):
                request = C_STORE()
                request.MessageID, request.Priority = number, 2
                request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
                request.DataSet = io.BytesIO(encoded)
                assoc.dimse.send_msg(request, context.context_id)  # no wait for the C-STORE-RSP
            assert wait_until(lambda: node.counts["aborted_while_arriving"] == 1, 10.0)
            # the first instance reaches the (busy) ensemble: in its handler's thread, which the abort in the reading
            # thread may come before (a bare is_set() failed once under load)
            assert client.started.wait(10.0)
            [server] = [a for a in node._ae.active_associations if a.is_acceptor] or [None]
            if server is not None:  # nothing else was read: no instance waits in pynetdicom's queue
                assert all(message is None for _, message in list(server.dimse.msg_queue.queue))
            assert wait_until(lambda: not assoc.is_established, 10.0) and assoc.is_aborted
        finally:
            client.release.set()
            assoc.abort()
        assert wait_until(lambda: node.counts["received"] == 1, 10.0)
        assert client.calls == 1 and node.counts["aborted_while_arriving"] == 1  # the second one never got in
    [warning] = abort_warnings(caplog)
    assert "from MODALITY at 127.0.0.1:" in warning
    assert "started another message while its request 1 was still unanswered" in warning
    assert "the node negotiates no asynchronous operations" in warning
    assert "one instance of at most 1,048,576 bytes (--max-dataset-mib, DERMASSIST_DICOM_MAX_DATASET_MIB)" in warning
    found = re.search(r"\(holding ([\d,]+) bytes of it\)", warning)
    assert found, warning
    assert len(encoded) <= int(found[1].replace(",", "")) <= ONE_MIB  # the first instance: within the limit


def test_a_sender_that_waits_for_each_response_may_send_many_to_a_slow_node(tmp_path, ham_jpeg, caplog):
    """An echo and three instances on one association, each sent only once the last was answered, against an ensemble
    that takes a while: the answers come late, but nothing is aborted (a request counts as answered before the
    sender can see its response, so sending at once after it is never taken for pipelining)."""
    caplog.set_level(logging.WARNING, logger="dermassist_client.dicom")
    client = SlowClient(delay_s=0.3)
    with node_at(tmp_path, client, max_dataset_mib=1) as node:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(DermoscopicPhotographyImageStorage)
        ae.add_requested_context(Verification)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
        both = ae.associate(*node.address, ae_title="DERMASSIST")
        try:
            assert both.send_c_echo().Status == 0x0000
            statuses = [both.send_c_store(native(ham_jpeg, f"DA-WAITS-{n}")).Status for n in range(3)]
            assert both.send_c_echo().Status == 0x0000
        finally:
            both.release()
        assert statuses == [0x0000] * 3
        assert node.counts["stored"] == 3 and node.counts["aborted_while_arriving"] == 0
    assert abort_warnings(caplog) == []


def test_one_sender_cannot_hold_more_than_its_share(tmp_path, caplog):
    """Cap 2 of 4: a third association from 127.0.0.1 is rejected (transient, local limit exceeded) while one from
    127.0.0.2 is accepted; once 127.0.0.1 releases one, it may open another."""
    caplog.set_level(logging.WARNING, logger="dermassist_client.dicom")
    with node_at(tmp_path, CountingClient(), max_associations=4, max_associations_per_sender=2) as node:
        held = [associate(node.address, context=Verification) for _ in range(2)]
        try:
            assert all(assoc.is_established for assoc in held)
            third = associate(node.address, context=Verification)
            assert third.is_rejected and not third.is_established
            primitive = third.acceptor.primitive
            assert (primitive.result, primitive.result_source, primitive.diagnostic) == (0x02, 0x03, 0x02)
            assert node.counts["rejected_sender_cap"] == 1
            other = associate(node.address, context=Verification, source="127.0.0.2")
            assert other.is_established, "another sender was locked out"
            assert other.send_c_echo().Status == 0x0000
            other.release()
            held.pop().release()

            def one_more() -> bool:  # the released association's thread ends within moments
                again = associate(node.address, context=Verification)
                if again.is_established:
                    held.append(again)
                return again.is_established
            assert wait_until(one_more, 5.0)
        finally:
            for assoc in held:
                assoc.release()
    warning = next(r.getMessage() for r in caplog.records if "rejected an association" in r.getMessage())
    assert ("from MODALITY at 127.0.0.1 (local limit exceeded): that address already holds 2 association(s), and one "
            "sender may hold at most 2 of the 4 in all (--max-associations-per-sender, "
            "DERMASSIST_DICOM_MAX_ASSOCIATIONS_PER_SENDER)") in warning


def test_the_defaults_follow_the_other_limits():
    assert AssociationLimits().sender_cap == DEFAULT_MAX_ASSOCIATIONS_PER_SENDER
    assert AssociationLimits(max_associations=2).sender_cap == 2  # never more than the associations in all
    assert AssociationLimits().max_dataset_bytes == node_module.MAX_DATASET_BYTES  # what the node accepts at all
    assert AssociationLimits(max_dataset_mib=3).max_dataset_bytes == 3 * ONE_MIB


def test_the_flag_outranks_the_environment_which_outranks_the_default():
    parser = argparse.ArgumentParser()
    add_listen_arguments(parser)
    environ = {ENVIRONMENT["max_dataset_mib"]: "5", ENVIRONMENT["max_associations_per_sender"]: "3"}
    assert association_limits(parser.parse_args([]), {}) == AssociationLimits()
    assert association_limits(parser.parse_args([]), environ) == AssociationLimits(max_associations_per_sender=3,
                                                                                     max_dataset_mib=5)
    flags = parser.parse_args(["--max-dataset-mib", "2", "--max-associations-per-sender", "1"])
    assert association_limits(flags, environ) == AssociationLimits(max_associations_per_sender=1, max_dataset_mib=2)
    assert association_limits(parser.parse_args(["--answer-within", "7.5"]), {}) == AssociationLimits(answer_within_s=7.5)


def test_over_http_the_nodes_client_times_out_within_the_answer_time():
    """tritonclient.http bounds each socket wait by the client's timeout, not a call's: the node's answer had come at
    --timeout (30 s) rather than within --answer-within (review 14)."""
    from dermassist_client.cli import build_parser
    from dermassist_client.config import config_default
    from dermassist_client.dicom.command import client_options

    parser = build_parser()
    limits = AssociationLimits(answer_within_s=12.0)
    http = parser.parse_args(["dicom-listen", "--protocol", "http"])
    assert client_options(http, limits)["timeout"] == 12.0
    assert client_options(parser.parse_args(["dicom-listen", "--protocol", "http", "--timeout", "5"]),
                          limits)["timeout"] == 5.0
    grpc = client_options(parser.parse_args(["dicom-listen"]), limits)["timeout"]
    assert grpc in (None, config_default("timeout_s"))  # gRPC honours each call's own timeout: left as given
