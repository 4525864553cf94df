"""DICOM TLS on the node's two legs (privacy audit M6: instances crossed the network in clear text), and what a sender
that stops in the middle of a PDU or of a TLS handshake may hold (nothing, after the idle timeout).

Certificates come from ``trustme`` (a test CA made in memory); the PACS is an in-process pynetdicom storage SCP
(``tests.client.dicom.test_forwarding``), with TLS."""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
import socket
import ssl
import struct
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dermassist_client.cli import build_parser
from dermassist_client.dicom.command import tls_settings
from dermassist_client.dicom.config import NodeConfig, PacsConfig
from dermassist_client.dicom.errors import DicomError
from dermassist_client.dicom.limits import AssociationLimits
from dermassist_client.dicom.node import DicomNode, plaintext_dicom
from dermassist_client.dicom.pacs import PacsUnavailableError, store_files
from dermassist_client.dicom.tls import NodeTls, PacsTls, handshake_refusal, pacs_refusal
from dermassist_client.errors import ClientConfigError
from tests.client.dicom.test_forwarding import PACS_AET, FakePacs, SyntheticClient, running, spool
from tests.support import dicom_images as di
from tests.support.dicom_net import send
from tests.support.polling import wait_until

trustme = pytest.importorskip("trustme")
NODE_LOGGER = "dermassist_client.dicom"


@dataclass(frozen=True)
class Party:
    """One side's files: its certificate chain, its key, and the CA certificate that signed it."""

    certificate: Path
    key: Path
    ca: Path


def party(folder: Path, name: str, ca, *identities: str, **options) -> Party:
    """Write a certificate for ``identities`` signed by ``ca`` (and that CA's certificate) into ``folder``;
    ``options``: trustme's (dates, key type)."""
    folder.mkdir(parents=True, exist_ok=True)
    leaf = ca.issue_cert(*identities, **options)
    files = Party(folder / f"{name}.pem", folder / f"{name}.key", folder / f"{name}-ca.pem")
    files.certificate.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(files.key))
    ca.cert_pem.write_to_path(str(files.ca))
    return files


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A hospital CA with the node's certificate (for 127.0.0.1 and localhost) and a modality's, and a CA no one
    here trusts with a certificate of its own."""
    folder = tmp_path_factory.mktemp("pki")
    hospital, stranger = trustme.CA(), trustme.CA()
    return {"node": party(folder, "node", hospital, "127.0.0.1", "localhost"),
            "modality": party(folder, "modality", hospital, "modality.example.org"),
            "pacs": party(folder, "pacs", hospital, "127.0.0.1", "pacs.example.org"),
            "stranger": party(folder, "stranger", stranger, "127.0.0.1", "modality.example.org")}


def client_context(trust: Path | None = None, own: Party | None = None, check_name: bool = True) -> ssl.SSLContext:
    """A sender's TLS context: trusting ``trust``'s CA, presenting ``own``'s certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = check_name
    if trust is not None:
        context.load_verify_locations(cafile=str(trust))
    else:
        context.verify_mode = ssl.CERT_NONE
    if own is not None:
        context.load_cert_chain(str(own.certificate), str(own.key))
    return context


def echo(address: tuple[str, int], context: ssl.SSLContext | None, source: str | None = None) -> int | None:
    """A C-ECHO's status over a new association (with TLS when ``context``; from the loopback address ``source`` when
    given); None when none was made."""
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    assoc = ae.associate(*address, ae_title="DERMASSIST", tls_args=None if context is None else (context, "127.0.0.1"),
                         **({} if source is None else {"bind_address": (source, 0)}))
    if not assoc.is_established:
        return None
    try:
        return int(assoc.send_c_echo().Status)
    finally:
        assoc.release()


def tls_node(tmp_path: Path, tls: NodeTls | None, idle_timeout_s: float = 10.0) -> DicomNode:
    return DicomNode(SyntheticClient(), NodeConfig(spool=tmp_path / "spool", port=0, tls=tls),
                     AssociationLimits(idle_timeout_s=idle_timeout_s))


def test_a_sender_with_tls_is_answered_and_one_without_is_refused_with_the_reason(tmp_path, pki, ham_jpeg, caplog):
    node_files = pki["node"]
    with tls_node(tmp_path, NodeTls(node_files.certificate, node_files.key)) as node:
        assert echo(node.address, client_context(node_files.ca)) == 0x0000
        ds = di.photograph(ham_jpeg, di.Patient(patient_id="DA-TLS-1").with_study(), compressed=False)
        context = client_context(node_files.ca)
        answers = send(*node.address, "DERMASSIST", [ds], tls_args=(context, "127.0.0.1"))
        assert [a.status for a in answers] == [0x0000]
        assert node.counts["stored"] == 1
        with caplog.at_level(logging.WARNING, logger=NODE_LOGGER):
            assert echo(node.address, None) is None  # plain DICOM to the TLS port
            assert wait_until(lambda: node.counts["tls_refused"] == 1, 10.0)
        assert "configure it for DICOM TLS" in caplog.text and "WRONG_VERSION_NUMBER" in caplog.text
        assert echo(node.address, client_context(pki["stranger"].ca)) is None  # the sender does not trust the node
        assert wait_until(lambda: node.counts["tls_refused"] == 2, 10.0)
        assert echo(node.address, client_context(node_files.ca)) == 0x0000  # still serving


def test_with_a_client_ca_only_senders_holding_its_certificates_are_answered(tmp_path, pki, caplog):
    node_files, modality = pki["node"], pki["modality"]
    with tls_node(tmp_path, NodeTls(node_files.certificate, node_files.key, client_ca=modality.ca)) as node:
        with caplog.at_level(logging.WARNING, logger=NODE_LOGGER):
            assert echo(node.address, client_context(node_files.ca)) is None  # no certificate
            assert echo(node.address, client_context(node_files.ca, own=pki["stranger"])) is None  # another CA's
            assert wait_until(lambda: node.counts["tls_refused"] == 2, 10.0)
        assert "presented no certificate" in caplog.text
        assert "its certificate was refused" in caplog.text and "--tls-client-ca" in caplog.text
        assert echo(node.address, client_context(node_files.ca, own=modality)) == 0x0000


def test_a_connection_that_never_shakes_hands_holds_neither_the_node_nor_a_slot(tmp_path, pki):
    """pynetdicom shakes hands in its accept loop: one connection sending nothing had stopped every other sender."""
    node_files = pki["node"]
    with tls_node(tmp_path, NodeTls(node_files.certificate, node_files.key), idle_timeout_s=1.0) as node:
        silent = socket.create_connection(node.address)
        try:
            started = time.monotonic()
            assert echo(node.address, client_context(node_files.ca)) == 0x0000
            assert time.monotonic() - started < 1.0, "the handshake waited behind the silent connection"
            assert wait_until(lambda: node.counts["tls_refused"] == 1, 10.0), "the silent connection was never closed"
            silent.settimeout(5.0)
            assert silent.recv(1) == b""  # closed by the node
        finally:
            silent.close()


@pytest.mark.parametrize("trickle", [False, True], ids=["stops", "trickles"])
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_a_sender_stopping_or_trickling_in_the_middle_of_a_pdu_is_aborted(tmp_path, pki, tls, trickle, caplog):
    """pynetdicom's idle timer runs between PDUs only: a PDU's header and one byte of its body, then nothing (or one
    byte every 0.3 s, each read within the idle timeout: review 21, H2), had held the association's thread and slot for
    good. A PDU must now arrive whole within the idle timeout of its first byte."""
    node_files = pki["node"]
    config = NodeTls(node_files.certificate, node_files.key) if tls else None
    with tls_node(tmp_path, config, idle_timeout_s=1.0) as node:
        raw = socket.create_connection(node.address)
        stalled = client_context(node_files.ca).wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw
        try:
            with caplog.at_level(logging.WARNING, logger=NODE_LOGGER):
                stalled.sendall(b"\x01\x00\x00\x00\x01\x00\x00")  # an A-ASSOCIATE-RQ of 256 bytes: 1 sent
                started = time.monotonic()
                while trickle and node.counts["stalled_while_arriving"] == 0 and time.monotonic() - started < 10:
                    time.sleep(0.3)
                    with contextlib.suppress(OSError):
                        stalled.sendall(b"\x00")
                assert wait_until(lambda: node.counts["stalled_while_arriving"] == 1, 10.0)
                assert time.monotonic() - started < 3.0
            assert "did not arrive whole within 1 s of its first byte" in caplog.text
            assert wait_until(lambda: not node._ae.active_associations, 10.0), "its association was not ended"
        finally:
            stalled.close()
        assert echo(node.address, client_context(node_files.ca) if tls else None) == 0x0000


def test_connections_that_send_no_request_are_capped_per_address_and_a_refused_one_frees_its_slot(tmp_path, pki):
    """Slow connections from one address had filled every slot before the per-sender cap (checked at the association
    request) could apply (review 21, H2); a connection refused at its handshake had held a slot for the ACSE timeout
    (review 21, M3)."""
    node_files = pki["node"]
    limits = AssociationLimits(idle_timeout_s=10.0, max_associations=3, max_associations_per_sender=2)
    with DicomNode(SyntheticClient(), NodeConfig(spool=tmp_path / "spool", port=0), limits) as node:
        silent = []
        for _ in range(4):  # from another loopback address than the sender that must still get in
            connection = socket.socket()
            connection.bind(("127.0.0.2", 0))
            connection.connect(node.address)
            silent.append(connection)
        try:
            assert wait_until(lambda: node.counts["refused_awaiting_cap"] == 2, 10.0)
            started = time.monotonic()
            assert echo(node.address, None) == 0x0000  # the third slot, from 127.0.0.1
            assert time.monotonic() - started < 5.0
        finally:
            for connection in silent:
                connection.close()
    with tls_node(tmp_path / "tls", NodeTls(node_files.certificate, node_files.key), idle_timeout_s=10.0) as node:
        node._ae.maximum_associations = 1
        assert echo(node.address, None) is None  # plain DICOM: refused at the handshake
        assert wait_until(lambda: node.counts["tls_refused"] == 1, 5.0)
        started = time.monotonic()
        assert wait_until(lambda: echo(node.address, client_context(node_files.ca)) == 0x0000, 5.0, 0.2)
        assert time.monotonic() - started < 5.0  # not the 10 s of the ACSE timeout


def test_connections_in_their_handshake_count_against_the_cap_and_port_checks_free_their_slot(tmp_path, pki):
    """The cap had counted pynetdicom's association threads, which a connection in its TLS handshake does not have
    yet: 12 handshakes from one address finishing together all got in and took every slot (review 22, 1). A port check
    (connect, close) on a plain port had held its slot for the idle timeout, and counted against the cap (review 22,
    2)."""
    node_files = pki["node"]
    limits = AssociationLimits(idle_timeout_s=10.0, max_associations=6, max_associations_per_sender=3)
    with DicomNode(SyntheticClient(), NodeConfig(spool=tmp_path / "tls", port=0, tls=NodeTls(
            node_files.certificate, node_files.key)), limits) as node:
        go, held = threading.Event(), []

        def connect() -> None:
            raw = socket.create_connection(node.address, source_address=("127.0.0.2", 0))
            go.wait(10)  # the node waits in the handshake meanwhile
            with contextlib.suppress(OSError):
                held.append(client_context(node_files.ca).wrap_socket(raw, server_hostname="127.0.0.1"))
        threads = [threading.Thread(target=connect) for _ in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        go.set()
        for thread in threads:
            thread.join()
        try:
            assert wait_until(lambda: node.counts["refused_awaiting_cap"] == 5, 10.0), dict(node.counts)
            assert echo(node.address, client_context(node_files.ca)) == 0x0000  # another sender still gets in
        finally:
            for connection in held:
                connection.close()
    with DicomNode(SyntheticClient(), NodeConfig(spool=tmp_path / "plain", port=0), limits) as node:
        for _ in range(4):
            socket.create_connection(node.address, source_address=("127.0.0.2", 0)).close()
        time.sleep(0.5)  # each has been accepted and has its thread
        assert wait_until(lambda: not node._ae.active_associations, 3.0), "a port check held its slot"
        assert echo(node.address, None, source="127.0.0.2") == 0x0000  # the address is not locked out after its checks


def test_the_node_trusts_only_the_cas_it_was_given(tmp_path, pki, ham_jpeg):
    """A certificate file holding the node's chain up to its root had put that root among the CAs trusted for the peer:
    any certificate the node's own CA signed got in, whatever --tls-client-ca or --pacs-ca said (review 21, H1)."""
    root = trustme.CA()
    issuing = root.create_child_ca()
    leaf = issuing.issue_cert("127.0.0.1")
    chain = tmp_path / "chain.pem"  # node, intermediate, root: as a site's certificate bundle often is
    chain.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems) + root.cert_pem.bytes())
    key = tmp_path / "chain.key"
    leaf.private_key_pem.write_to_path(str(key))
    sibling = party(tmp_path, "sibling", issuing, "modality.example.org")  # signed by the node's own issuing CA
    modality = pki["modality"]
    root_file = tmp_path / "root.pem"
    root.cert_pem.write_to_path(str(root_file))
    with tls_node(tmp_path, NodeTls(chain, key, client_ca=modality.ca)) as node:
        assert echo(node.address, client_context(root_file, own=sibling)) is None
        assert echo(node.address, client_context(root_file, own=modality)) == 0x0000
    issuing_file = tmp_path / "issuing.pem"
    issuing.cert_pem.write_to_path(str(issuing_file))
    with tls_node(tmp_path / "anchor", NodeTls(chain, key, client_ca=issuing_file)) as node:  # an intermediate alone
        assert echo(node.address, client_context(root_file, own=sibling)) == 0x0000

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # a PACS whose certificate the node's own CA signed
    server.load_cert_chain(str(sibling.certificate), str(sibling.key))
    with running(FakePacs([ExplicitVRLittleEndian]), ssl_context=server) as pacs:
        config = PacsConfig("127.0.0.1", pacs.port, PACS_AET, timeout_s=10,
                            tls=PacsTls(ca=pki["pacs"].ca, certificate=chain, key=key, server_name="modality.example.org"))
        node = DicomNode(SyntheticClient(), NodeConfig(spool=tmp_path / "pacs-spool", port=0, pacs=config))
        spool(node, [di.photograph(ham_jpeg, di.Patient(patient_id="DA-TLS-SCOPE").with_study(), compressed=False)])
        with pytest.raises(PacsUnavailableError, match="not trusted"):
            store_files(config, "DERMASSIST", sorted(node.pending()[0].glob("*.dcm")))
        with pytest.raises(PacsUnavailableError, match="not trusted.*--pacs-ca"):  # this system's CAs by default
            store_files(PacsConfig("127.0.0.1", pacs.port, PACS_AET, timeout_s=10, tls=PacsTls(
                server_name="modality.example.org")), "DERMASSIST", sorted(node.pending()[0].glob("*.dcm")))
        assert not pacs.stored


def legacy_sender(trust: Path, cipher: str | None = None, newest: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A sender of an older DICOM profile: one cipher only, or a TLS version no newer than ``newest``."""
    context = client_context(trust)
    if cipher is not None:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(f"{cipher}:@SECLEVEL=1")
    if newest is not None:
        context.minimum_version, context.maximum_version = ssl.TLSVersion.TLSv1, newest
        context.set_ciphers("ALL:@SECLEVEL=0")
    return context


def test_a_tampered_tls_record_is_told_as_such(tmp_path, pki, caplog):
    """A record failing its integrity check (what an attacker on the path produces) is a WARNING of its own and counted,
    not a connection that 'broke' at INFO (review 21, L7)."""
    node_files = pki["node"]
    with tls_node(tmp_path, NodeTls(node_files.certificate, node_files.key)) as node:
        sender = client_context(node_files.ca).wrap_socket(socket.create_connection(node.address),
                                                           server_hostname="127.0.0.1")
        try:
            with caplog.at_level(logging.WARNING, logger=NODE_LOGGER):
                sender.sendall(b"\x01\x00\x00\x00\x01\x00\x00")  # mid-PDU: the guard is reading its body
                time.sleep(0.3)
                forged = socket.socket(fileno=os.dup(sender.fileno()))  # past TLS: a record no key wrote
                forged.sendall(b"\x17\x03\x03\x00\x40" + os.urandom(64))
                forged.close()
                assert wait_until(lambda: node.counts["tls_broken"] == 1, 10.0)
        finally:
            sender.close()
    assert "failed its check" in caplog.text and "data altered on the way" in caplog.text


def test_profiles_ciphers_versions_and_dates_are_refused_or_taken_with_the_reason(tmp_path, pki, caplog):
    node_files, modality = pki["node"], pki["modality"]
    expired = party(tmp_path, "expired", trustme.CA(), "modality.example.org",
                    not_before=datetime.datetime(2020, 1, 1), not_after=datetime.datetime(2021, 1, 1))
    with caplog.at_level(logging.WARNING, logger=NODE_LOGGER):
        with tls_node(tmp_path / "bcp", NodeTls(node_files.certificate, node_files.key, client_ca=expired.ca)) as node:
            assert echo(node.address, legacy_sender(node_files.ca, cipher="AES128-SHA")) is None
            assert echo(node.address, legacy_sender(node_files.ca, newest=ssl.TLSVersion.TLSv1_1)) is None
            assert echo(node.address, client_context(node_files.ca, own=expired)) is None
            assert wait_until(lambda: node.counts["tls_refused"] == 3, 10.0)
    assert "offers no cipher of the node's profile" in caplog.text and "--tls-profile aes" in caplog.text
    assert "older than 1.2" in caplog.text
    assert "a certificate of its chain is out of its dates" in caplog.text and "renew the sender's certificate" in caplog.text
    rsa = party(tmp_path, "rsa-node", trustme.CA(key_type=trustme.KeyType.RSA), "127.0.0.1",
                key_type=trustme.KeyType.RSA)  # the AES profile's cipher exchanges its key by RSA
    aes = NodeTls(rsa.certificate, rsa.key, profile="aes")
    assert "AES128-SHA" in [c["name"] for c in aes.context().get_ciphers()]
    assert "AES128-SHA" not in [c["name"] for c in NodeTls(node_files.certificate, node_files.key).context().get_ciphers()]
    with tls_node(tmp_path / "aes", aes) as node:
        assert echo(node.address, legacy_sender(rsa.ca, cipher="AES128-SHA")) == 0x0000
        assert echo(node.address, client_context(rsa.ca, own=modality)) == 0x0000  # BCP 195 senders too
        assert echo(node.address, legacy_sender(rsa.ca, newest=ssl.TLSVersion.TLSv1_1)) is None
    with pytest.raises(DicomError, match="--tls-profile must be one of bcp195, aes"):
        NodeTls(node_files.certificate, node_files.key, profile="basic")


def test_the_node_sends_to_a_pacs_over_tls_and_says_why_when_it_cannot(tmp_path, pki, ham_jpeg):
    pacs_files, node_files = pki["pacs"], pki["node"]
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(str(pacs_files.certificate), str(pacs_files.key))
    server.load_verify_locations(cafile=str(node_files.ca))
    server.verify_mode = ssl.CERT_REQUIRED  # the PACS asks for the node's certificate
    with running(FakePacs([ExplicitVRLittleEndian, ImplicitVRLittleEndian]), ssl_context=server) as pacs:
        def deliver(tls: PacsTls | None, host: str = "127.0.0.1"):
            config = NodeConfig(spool=tmp_path / "spool", port=0, pacs=PacsConfig(host, pacs.port, PACS_AET,
                                                                                   timeout_s=10, tls=tls))
            node = DicomNode(SyntheticClient(), config)
            if not node.pending():
                spool(node, [di.photograph(ham_jpeg, di.Patient(patient_id="DA-TLS-PACS").with_study(),
                                           compressed=False)])
            return store_files(config.pacs, "DERMASSIST", sorted(node.pending()[0].glob("*.dcm")))

        with pytest.raises(PacsUnavailableError, match="asks for a client certificate.*--pacs-cert"):
            deliver(PacsTls(ca=pacs_files.ca))
        with pytest.raises(PacsUnavailableError, match="not trusted.*--pacs-ca"):
            deliver(PacsTls(ca=pki["stranger"].ca, certificate=node_files.certificate, key=node_files.key))
        with pytest.raises(PacsUnavailableError, match="does not name 'localhost'.*--pacs-server-name"):
            deliver(PacsTls(ca=pacs_files.ca, certificate=node_files.certificate, key=node_files.key), host="localhost")
        with pytest.raises(PacsUnavailableError, match="refused the node's client certificate"):
            deliver(PacsTls(ca=pacs_files.ca, certificate=pki["stranger"].certificate, key=pki["stranger"].key))
        with pytest.raises(PacsUnavailableError, match="did not accept an association"):
            deliver(None)  # plain DICOM to the TLS port: the PACS drops it
        assert not pacs.stored
        delivered = deliver(PacsTls(ca=pacs_files.ca, certificate=node_files.certificate, key=node_files.key,
                                    server_name="pacs.example.org"), host="127.0.0.1")
        assert delivered.ok and len(delivered.stored) == len(pacs.stored) >= 2


def test_a_pacs_without_tls_is_told_apart_from_one_refusing_the_node(tmp_path, pki, ham_jpeg):
    with running(FakePacs([ExplicitVRLittleEndian])) as pacs:
        config = PacsConfig("127.0.0.1", pacs.port, PACS_AET, timeout_s=10, tls=PacsTls(ca=pki["pacs"].ca))
        node = DicomNode(SyntheticClient(), NodeConfig(spool=tmp_path / "spool", port=0, pacs=config))
        spool(node, [di.photograph(ham_jpeg, di.Patient(patient_id="DA-TLS-PLAIN").with_study(), compressed=False)])
        with pytest.raises(PacsUnavailableError, match="does not speak TLS.*2762"):
            store_files(config, "DERMASSIST", sorted(node.pending()[0].glob("*.dcm")))


def test_settings_are_checked_when_made(tmp_path, pki):
    node_files, other = pki["node"], pki["modality"]
    with pytest.raises(DicomError, match=r"--tls-cert file .*missing.pem does not exist"):
        NodeTls(tmp_path / "missing.pem", node_files.key)
    with pytest.raises(DicomError, match="--tls-key file .* is a folder"):
        NodeTls(node_files.certificate, tmp_path)
    with pytest.raises(DicomError, match="--tls-key file .* is not the key of the first certificate .* begins with the"):
        NodeTls(node_files.certificate, other.key)
    with pytest.raises(DicomError, match="--tls-cert file .* cannot be used"):
        NodeTls(node_files.key, node_files.key)  # a key where the certificate goes
    with pytest.raises(DicomError, match="--tls-client-ca file .* cannot be used"):
        NodeTls(node_files.certificate, node_files.key, client_ca=node_files.key)
    with pytest.raises(DicomError, match="--pacs-cert and --pacs-key go together"):
        PacsTls(ca=node_files.ca, certificate=node_files.certificate)
    with pytest.raises(DicomError, match="--pacs-server-name must be"):
        PacsTls(ca=node_files.ca, server_name=" ")
    expired = party(tmp_path, "expired", trustme.CA(), "127.0.0.1",
                    not_before=datetime.datetime(2020, 1, 1), not_after=datetime.datetime(2021, 1, 1))
    with pytest.raises(DicomError, match="--tls-cert file .*: the certificate expired on"):
        NodeTls(expired.certificate, expired.key)
    with pytest.raises(DicomError, match="--pacs-cert file .*: the certificate expired on"):
        PacsTls(certificate=expired.certificate, key=expired.key)
    old_ca = tmp_path / "old-ca.pem"  # a CA out of its dates: every sender would be told its own certificate was
    old_ca.write_bytes(expired.certificate.read_bytes())
    with pytest.raises(DicomError, match="--tls-client-ca file .*: the CA certificate expired on"):
        NodeTls(node_files.certificate, node_files.key, client_ca=old_ca)
    with pytest.raises(DicomError, match="--pacs-ca file .*: the CA certificate expired on"):
        PacsTls(ca=old_ca)


def refusal(reason: str = "", verify_message: str | None = None) -> ssl.SSLError:
    """An SSL error as the handshake raises it: its reason, or a certificate check's message."""
    error = ssl.SSLError(1, reason) if verify_message is None else ssl.SSLCertVerificationError(1, "verify failed")
    error.reason = reason or "CERTIFICATE_VERIFY_FAILED"
    if verify_message is not None:
        error.verify_message = verify_message
    return error


def test_each_refusal_names_its_cause_and_a_fix_that_applies():
    """Causes the tests above cannot make with trustme (a weak key), and words that depend on the node's profile."""
    assert "--tls-profile aes" in handshake_refusal(refusal("NO_SHARED_CIPHER"), 10.0)
    on_aes = handshake_refusal(refusal("NO_SHARED_CIPHER"), 10.0, profile="aes")
    assert "--tls-profile aes" not in on_aes and "the AES profile's included" in on_aes
    weak = handshake_refusal(refusal(verify_message="EE certificate key too weak"), 10.0)
    assert "too weak" in weak and "2048" in weak and "signed by the CA" not in weak
    reset = handshake_refusal(ConnectionResetError(104, "reset"), 10.0, after_hello=False)  # a probe that resets
    assert reset.startswith("its connection was reset before its TLS hello") and "port check" in reset
    after = handshake_refusal(ConnectionResetError(104, "reset"), 10.0, after_hello=True)
    assert after.startswith("it closed the connection after its TLS hello") and "port check" not in after
    expired = handshake_refusal(refusal(verify_message="certificate has expired"), 10.0)
    assert "renew the sender's certificate, or the CA's in --tls-client-ca" in expired
    assert "did not finish within 3 s" in handshake_refusal(TimeoutError("timed out"), 3.0)
    assert "update the PACS" in pacs_refusal(refusal("TLSV1_ALERT_PROTOCOL_VERSION"), "pacs")
    assert "renew it on the PACS" in pacs_refusal(refusal(verify_message="certificate has expired"), "pacs")
    both = pacs_refusal(refusal("SSLV3_ALERT_HANDSHAKE_FAILURE"), "pacs")
    assert "--pacs-cert" in both and "--tls-profile aes" in both


def listen_args(*flags: str):
    return build_parser().parse_args(["dicom-listen", *flags])


def test_the_command_line_builds_both_legs_and_refuses_a_flag_without_the_one_it_needs(pki):
    node_files, pacs_files = pki["node"], pki["pacs"]
    node_tls, pacs_tls = tls_settings(listen_args(
        "--tls-cert", str(node_files.certificate), "--tls-key", str(node_files.key), "--tls-client-ca",
        str(node_files.ca), "--pacs", "127.0.0.1:2762", "--pacs-aet", "PACS", "--pacs-tls", "--pacs-ca",
        str(pacs_files.ca), "--pacs-server-name", "pacs.example.org"))
    assert node_tls == NodeTls(node_files.certificate, node_files.key, node_files.ca)
    assert pacs_tls == PacsTls(ca=pacs_files.ca, server_name="pacs.example.org")
    assert tls_settings(listen_args()) == (None, None)
    node_tls, pacs_tls = tls_settings(listen_args(
        "--tls-cert", str(node_files.certificate), "--tls-key", str(node_files.key), "--pacs", "h:2762", "--pacs-aet",
        "P", "--pacs-tls", "--pacs-ca", str(pacs_files.ca), "--tls-profile", "aes"))
    assert node_tls is not None and pacs_tls is not None and node_tls.profile == pacs_tls.profile == "aes"
    refusals = {
        ("--tls-cert", str(node_files.certificate)): "--tls-cert and --tls-key go together",
        ("--tls-client-ca", str(node_files.ca)): "--tls-client-ca needs --tls-cert",
        ("--pacs", "h:1", "--pacs-aet", "P", "--pacs-ca", str(pacs_files.ca)): "--pacs-ca given without --pacs-tls",
        ("--pacs-tls",): "--pacs-tls needs --pacs",
        ("--tls-profile", "aes"): "--tls-profile given without a leg that speaks TLS",
    }
    for flags, message in refusals.items():
        with pytest.raises(ClientConfigError, match=message):
            tls_settings(listen_args(*flags))


def test_no_plaintext_warning_for_a_leg_with_tls(pki):
    node_files = pki["node"]
    node_tls = NodeTls(node_files.certificate, node_files.key)
    plain_pacs = PacsConfig("10.0.0.5", 104, "PACS")
    tls_pacs = PacsConfig("10.0.0.5", 2762, "PACS", tls=PacsTls(ca=pki["pacs"].ca))
    assert plaintext_dicom(NodeConfig(spool="s", host="0.0.0.0", tls=node_tls, pacs=tls_pacs)) == []
    told = plaintext_dicom(NodeConfig(spool="s", host="0.0.0.0", tls=node_tls, pacs=plain_pacs))
    assert len(told) == 1 and "PACS 10.0.0.5 in PLAINTEXT" in told[0] and "--pacs-tls" in told[0]
    told = plaintext_dicom(NodeConfig(spool="s", host="0.0.0.0", pacs=tls_pacs))
    assert len(told) == 1 and "listens on 0.0.0.0 in PLAINTEXT" in told[0] and "--tls-cert" in told[0]


def test_a_port_check_and_a_connection_ending_mid_pdu_are_told_at_info_without_a_traceback(tmp_path, pki, caplog):
    """A load balancer's TCP probe (connect, close) on the TLS port, and a sender resetting its connection in the middle
    of a PDU or closing it there (plain DICOM: pynetdicom had logged an ERROR, the reset with a traceback): one INFO
    line each."""
    node_files = pki["node"]
    with caplog.at_level(logging.INFO):
        with tls_node(tmp_path / "tls", NodeTls(node_files.certificate, node_files.key)) as node:
            socket.create_connection(node.address).close()
            assert wait_until(lambda: node.counts["tls_refused"] == 1, 10.0)
        with tls_node(tmp_path / "plain", None) as node:
            reset = socket.create_connection(node.address)
            reset.sendall(b"\x01\x00\x00\x00\x01\x00\x00")  # 1 byte of a 256-byte PDU
            time.sleep(0.3)
            reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            reset.close()
            assert wait_until(lambda: "its connection broke while a PDU arrived" in caplog.text, 10.0), caplog.text
            assert wait_until(lambda: not node._ae.active_associations, 10.0)
            closed = socket.create_connection(node.address)
            closed.sendall(b"\x01\x00\x00\x00\x01\x00\x00")
            time.sleep(0.3)
            closed.close()
            assert wait_until(lambda: "closed in the middle of a PDU (1 of its 256 bytes came)" in caplog.text, 10.0)
    assert "it closed the connection before its TLS hello: a port check or a load balancer's probe" in caplog.text
    louder = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not louder, [r.getMessage() for r in louder]
    assert not any(r.exc_info for r in caplog.records)


def client_hello(trust: Path) -> bytes:
    """The first flight of a TLS client that trusts ``trust``: its ClientHello, as a sender puts it on the wire."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    hello = client_context(trust).wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        hello.do_handshake()
    return outgoing.read()


def test_a_sender_that_hangs_up_after_its_hello_is_told_as_a_refusal_not_a_port_check(tmp_path, pki, caplog):
    """A sender that did not accept the node's certificate and closed without an alert had been logged at INFO with a
    port check's words (review 21): it sent its hello first, a port check sends nothing."""
    node_files = pki["node"]
    with caplog.at_level(logging.INFO, logger=NODE_LOGGER), \
            tls_node(tmp_path, NodeTls(node_files.certificate, node_files.key)) as node:
        sender = socket.create_connection(node.address)
        sender.sendall(client_hello(node_files.ca))
        sender.recv(1)  # the node's answer begins: then the sender hangs up
        sender.close()
        assert wait_until(lambda: node.counts["tls_refused"] == 1, 10.0)
        assert echo(node.address, client_context(node_files.ca)) == 0x0000  # the node still answers others
    (told,) = [r for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert told.levelno == logging.WARNING
    assert "it closed the connection after its TLS hello, without saying why" in told.getMessage()
    assert "port check" not in told.getMessage()


def revocation_list(ca, revoked: list, path: Path, days: int = 7, seconds: float | None = None,
                    issued_ago: datetime.timedelta = datetime.timedelta(days=1)) -> Path:
    """A CRL of ``ca`` (trustme's) revoking the leaf certificates ``revoked`` (trustme's, or a Party's), issued
    ``issued_ago`` (a day) ago, its next update in ``days`` days (negative: already past) or ``seconds`` seconds,
    written to ``path`` as PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject
    now = datetime.datetime.now(datetime.UTC)
    ends = now + (datetime.timedelta(seconds=seconds) if seconds is not None else datetime.timedelta(days=days))
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer)
               .last_update(now - issued_ago - datetime.timedelta(days=max(0, -days)))
               .next_update(ends))
    for leaf in revoked:
        pem = leaf.certificate.read_bytes() if isinstance(leaf, Party) else leaf.cert_chain_pems[0].bytes()
        serial = x509.load_pem_x509_certificate(pem).serial_number
        builder = builder.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                                  .revocation_date(now - datetime.timedelta(hours=1)).build())
    path.write_bytes(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return path


def test_a_sender_whose_certificate_the_crl_revokes_is_refused_and_the_others_are_answered(tmp_path, pki, caplog):
    node_files = pki["node"]
    hospital = trustme.CA()
    kept, retired = (hospital.issue_cert("modality.example.org") for _ in range(2))
    ca_file = tmp_path / "hospital.pem"
    hospital.cert_pem.write_to_path(str(ca_file))

    def sender(leaf) -> ssl.SSLContext:
        context = client_context(node_files.ca)
        with tempfile.TemporaryDirectory() as folder:
            chain, key = Path(folder) / "chain.pem", Path(folder) / "key.pem"
            chain.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
            leaf.private_key_pem.write_to_path(str(key))
            context.load_cert_chain(str(chain), str(key))
        return context

    crl = revocation_list(hospital, [retired], tmp_path / "hospital.crl.pem")
    with caplog.at_level(logging.WARNING, logger=NODE_LOGGER):
        with tls_node(tmp_path / "a", NodeTls(node_files.certificate, node_files.key, client_ca=ca_file, crl=crl)) as node:
            assert echo(node.address, sender(kept)) == 0x0000
            assert echo(node.address, sender(retired)) is None
            assert wait_until(lambda: node.counts["tls_refused"] == 1, 10.0)
        assert "its certificate is revoked" in caplog.text
        stale = revocation_list(hospital, [], tmp_path / "stale.crl.pem", days=-1)
        with pytest.raises(DicomError, match=r"--tls-crl file .*stale.crl.pem: list 1 is past its next update \(.*\), so "
                                             "every sender of its CA would be refused; fetch the CA's current list"):
            NodeTls(node_files.certificate, node_files.key, client_ca=ca_file, crl=stale)
        ending = revocation_list(hospital, [], tmp_path / "ending.crl.pem", seconds=2)
        with tls_node(tmp_path / "b", NodeTls(node_files.certificate, node_files.key, client_ca=ca_file,
                                              crl=ending)) as node:
            time.sleep(2.5)  # the list's next update passes while the node runs, and no new one comes
            assert echo(node.address, sender(kept)) is None  # a list past its next update vouches for no one
            assert wait_until(lambda: node.counts["tls_refused"] == 1, 10.0)
        assert "the revocation lists cannot vouch for its certificate" in caplog.text
    with pytest.raises(DicomError, match="--tls-crl file .* holds no revocation list"):
        NodeTls(node_files.certificate, node_files.key, client_ca=ca_file, crl=ca_file)
    with pytest.raises(DicomError, match="--tls-crl needs --tls-client-ca"):
        NodeTls(node_files.certificate, node_files.key, crl=crl)
    with pytest.raises(ClientConfigError, match="--tls-crl needs --tls-client-ca"):
        tls_settings(listen_args("--tls-cert", str(node_files.certificate), "--tls-key", str(node_files.key),
                                 "--tls-crl", str(crl)))
    assert tls_settings(listen_args("--tls-cert", str(node_files.certificate), "--tls-key", str(node_files.key),
                                    "--tls-client-ca", str(ca_file), "--tls-crl", str(crl)))[0].crl == crl


@pytest.fixture
def renewals_at_once(monkeypatch):
    """The node looks at its files on every new connection and takes up a change at once (no second's wait)."""
    from dermassist_client.dicom import tls as tls_module

    monkeypatch.setattr(tls_module, "CHECK_S", 0.0)
    monkeypatch.setattr(tls_module, "SETTLE_S", 0.0)


def test_renewed_node_files_are_used_for_new_associations_without_a_restart(tmp_path, renewals_at_once, caplog):
    """A CA rotation written over the node's files in place: a sender of the new CA is refused before and answered
    after, one of the old CA the other way round; an association opened before keeps going."""
    old_ca, new_ca = trustme.CA(), trustme.CA()
    files = tmp_path / "node"
    node_files = party(files, "node", old_ca, "127.0.0.1")
    clients_ca = files / "clients-ca.pem"
    old_ca.cert_pem.write_to_path(str(clients_ca))
    old_sender = party(tmp_path / "old", "modality", old_ca, "modality.example.org")
    new_sender = party(tmp_path / "new", "modality", new_ca, "modality.example.org")
    with caplog.at_level(logging.INFO, logger=NODE_LOGGER), \
            tls_node(tmp_path, NodeTls(node_files.certificate, node_files.key, client_ca=clients_ca)) as node:
        assert echo(node.address, client_context(old_sender.ca, old_sender)) == 0x0000
        assert echo(node.address, client_context(new_sender.ca, new_sender)) is None
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(Verification)
        opened = ae.associate(*node.address, ae_title="DERMASSIST",
                              tls_args=(client_context(old_sender.ca, old_sender), "127.0.0.1"))
        assert opened.is_established
        party(files, "node", new_ca, "127.0.0.1")  # the same paths, written over
        new_ca.cert_pem.write_to_path(str(clients_ca))
        assert wait_until(lambda: echo(node.address, client_context(new_sender.ca, new_sender)) == 0x0000, 20.0)
        assert echo(node.address, client_context(old_sender.ca, old_sender)) is None
        assert int(opened.send_c_echo().Status) == 0x0000  # opened before the renewal: keeps its handshake
        opened.release()
    assert f"new associations now use the renewed TLS files: TLS (bcp195 profile), senders must present a certificate " \
           f"signed by {clients_ca}" in caplog.text


def test_a_crl_written_over_its_file_refuses_a_sender_it_now_revokes(tmp_path, renewals_at_once, caplog):
    """A revocation list fetched anew (a modality decommissioned, or the list's next update come): no restart."""
    hospital = trustme.CA()
    node_files = party(tmp_path / "node", "node", hospital, "127.0.0.1")
    retired = party(tmp_path / "retired", "modality", hospital, "modality.example.org")
    crl = revocation_list(hospital, [], tmp_path / "hospital.crl.pem")
    with tls_node(tmp_path, NodeTls(node_files.certificate, node_files.key, client_ca=node_files.ca, crl=crl)) as node:
        assert echo(node.address, client_context(retired.ca, retired)) == 0x0000
        revocation_list(hospital, [retired], crl)  # written over the file
        assert wait_until(lambda: echo(node.address, client_context(retired.ca, retired)) is None, 20.0)
    assert "its certificate is revoked" in caplog.text


def test_a_renewal_the_node_cannot_use_is_told_once_and_the_files_used_before_stay_in_use(
        tmp_path, renewals_at_once, caplog):
    hospital = trustme.CA()
    node_files = party(tmp_path / "node", "node", hospital, "127.0.0.1")
    sender = party(tmp_path / "sender", "modality", hospital, "modality.example.org")
    with caplog.at_level(logging.INFO, logger=NODE_LOGGER), \
            tls_node(tmp_path, NodeTls(node_files.certificate, node_files.key, client_ca=node_files.ca)) as node:
        trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(node_files.key))  # another's key
        for _ in range(3):
            assert echo(node.address, client_context(sender.ca, sender)) == 0x0000  # the files used before
    told = [r for r in caplog.records if "renewed TLS files" in r.getMessage()]
    assert [(r.levelname, r.getMessage().startswith(
        f"the renewed TLS files are not used: --tls-key file {node_files.key} is not the key of the first certificate "
        "given with it")) for r in told] == [("ERROR", True)]


def test_node_files_being_written_are_not_read_until_left_alone_for_a_while(tmp_path, monkeypatch):
    from dermassist_client.dicom import tls as tls_module

    monkeypatch.setattr(tls_module, "CHECK_S", 0.0)
    monkeypatch.setattr(tls_module, "SETTLE_S", 0.5)
    hospital = trustme.CA()
    node_files = party(tmp_path, "node", hospital, "127.0.0.1")
    tls = NodeTls(node_files.certificate, node_files.key)
    context = tls.followed_context()
    renewal = context.renewal
    assert renewal.current() is context  # nothing changed
    party(tmp_path, "node", trustme.CA(), "127.0.0.1")  # written just now
    assert renewal.current() is context
    time.sleep(0.6)
    renewed = renewal.current()
    assert renewed is not context and renewal.current() is renewed


def test_a_stale_or_older_revocation_list_is_not_taken_up_and_the_list_in_use_stays(tmp_path, renewals_at_once, caplog):
    """A list past its next update (a stale mirror) had been taken up and refused every sender; an older one (a cache, a
    rollback) had let a revoked modality in again (review 23, M5). A newer list is taken up."""
    hospital = trustme.CA()
    node_files = party(tmp_path / "node", "node", hospital, "127.0.0.1")
    kept = party(tmp_path / "kept", "modality", hospital, "modality.example.org")
    retired = party(tmp_path / "retired", "modality", hospital, "modality.example.org")
    crl = revocation_list(hospital, [retired], tmp_path / "hospital.crl.pem", issued_ago=datetime.timedelta(hours=1))
    with caplog.at_level(logging.INFO, logger=NODE_LOGGER), \
            tls_node(tmp_path, NodeTls(node_files.certificate, node_files.key, client_ca=node_files.ca, crl=crl)) as node:
        assert echo(node.address, client_context(retired.ca, retired)) is None
        revocation_list(hospital, [], crl, days=-1)  # stale
        assert echo(node.address, client_context(kept.ca, kept)) == 0x0000  # the list in use still vouches
        revocation_list(hospital, [], crl, issued_ago=datetime.timedelta(days=2))  # older: the revocation undone
        assert echo(node.address, client_context(retired.ca, retired)) is None
        revocation_list(hospital, [kept, retired], crl, issued_ago=datetime.timedelta(minutes=1))  # newer
        assert wait_until(lambda: echo(node.address, client_context(kept.ca, kept)) is None, 20.0)
    told = [(r.levelname, r.getMessage()) for r in caplog.records if "renewed TLS files" in r.getMessage()]
    assert [level for level, _ in told] == ["ERROR", "ERROR", "INFO"], told
    assert "list 1 is past its next update" in told[0][1]
    assert "list 1 was issued before the list of its CA in use" in told[1][1]


def test_revocation_lists_dates_are_read_from_their_der(tmp_path):
    from dermassist_client.dicom.crl import CrlFormatError, revocation_lists

    hospital, other = trustme.CA(), trustme.CA()
    first = revocation_list(hospital, [], tmp_path / "a.pem", days=3).read_bytes()
    second = revocation_list(other, [], tmp_path / "b.pem", seconds=30, issued_ago=datetime.timedelta(hours=5))
    lists = revocation_lists(first + second.read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    assert len(lists) == 2 and lists[0].issuer != lists[1].issuer
    assert abs((lists[0].next_update - now) - datetime.timedelta(days=3)) < datetime.timedelta(minutes=1)
    assert abs((now - lists[1].this_update) - datetime.timedelta(hours=5)) < datetime.timedelta(minutes=1)
    assert abs((lists[1].next_update - now).total_seconds() - 30) < 60
    with pytest.raises(CrlFormatError, match="list 1"):
        revocation_lists(b"-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----\n")
