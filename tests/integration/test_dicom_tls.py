"""DICOM TLS on both of the node's legs against a real PACS: Orthanc (Debian's, built on DCMTK) sends a dermoscopic
photograph to ``dermassist-client dicom-listen`` over mutual TLS, and the node sends the SEG and SR back to Orthanc over
mutual TLS; a sender without a certificate of the hospital's CA (none, or another CA's) is refused."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

import pydicom
import pytest

from dermassist.base.server import free_ports
from dermassist_client.dicom.source import read_dicom
from tests.client.dicom.test_tls import client_context, echo, party
from tests.integration.test_hospital_integration import HAM_A, NODE_AET, check_outputs, delivered, served, study_instances
from tests.support import dicom_images as di
from tests.support.orthanc import Orthanc
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration
trustme = pytest.importorskip("trustme")


def test_orthanc_and_the_node_speak_mutual_tls_both_ways(triton_server, tmp_path):
    hospital = trustme.CA(key_type=trustme.KeyType.RSA)
    node_files = party(tmp_path / "node", "node", hospital, "127.0.0.1", key_type=trustme.KeyType.RSA)
    pacs_files = party(tmp_path / "pacs", "pacs", hospital, "127.0.0.1", key_type=trustme.KeyType.RSA)
    node_port, = free_ports(1)
    tls = {"DicomTlsEnabled": True, "DicomTlsCertificate": str(pacs_files.certificate),
           "DicomTlsPrivateKey": str(pacs_files.key), "DicomTlsTrustedCertificates": str(pacs_files.ca),
           "DicomTlsRemoteCertificateRequired": True,
           "DicomModalities": {"node": {"AET": NODE_AET, "Host": "127.0.0.1", "Port": node_port, "UseDicomTls": True}}}
    with Orthanc(tmp_path / "orthanc", extra_config=tls) as orthanc:
        spool = tmp_path / "spool"
        log_path = tmp_path / "node.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "dermassist_client.cli", "dicom-listen", "--port", str(node_port), "--aet",
                 NODE_AET, "--tls-cert", str(node_files.certificate), "--tls-key", str(node_files.key),
                 "--tls-client-ca", str(node_files.ca), "--pacs", f"127.0.0.1:{orthanc.dicom_port}", "--pacs-aet",
                 orthanc.ae_title, "--pacs-tls", "--pacs-ca", str(pacs_files.ca), "--pacs-cert",
                 str(node_files.certificate), "--pacs-key", str(node_files.key), "--no-forward-source", "--spool",
                 str(spool), "--url", triton_server.config.grpc_address],
                stdout=log, stderr=subprocess.STDOUT, text=True)
            try:
                def orthanc_echoes() -> bool:  # Orthanc's C-ECHO to the node, over TLS with its certificate
                    assert process.poll() is None, log_path.read_text()[-3000:]
                    try:
                        orthanc.post("/modalities/node/echo", b"{}")
                        return True
                    except RuntimeError:
                        return False
                assert wait_until(orthanc_echoes, 60.0, 0.5), log_path.read_text()[-3000:] + orthanc.log_tail()

                patient = di.Patient(patient_id="DA-TLS-0001", patient_name="Mutual^Tls").with_study()
                ds = di.photograph(HAM_A.read_bytes(), patient)
                source = read_dicom(ds)
                path = tmp_path / "photo.dcm"
                ds.save_as(path, enforce_file_format=True)
                uploaded = json.loads(orthanc.post("/instances", path.read_bytes()))
                orthanc.post("/modalities/node/store", json.dumps({"Resources": [uploaded["ID"]],
                                                                  "Synchronous": True}).encode())
                assert wait_until(lambda: {"SEG", "SR"} <= set(study_instances(orthanc, patient.study_uid)), 60.0, 0.5), \
                    log_path.read_text()[-3000:] + orthanc.log_tail()
                assert wait_until(lambda: delivered(spool), 30.0, 0.2)
                check_outputs(orthanc, patient.study_uid, source, served(triton_server, source), tmp_path)

                assert echo(("127.0.0.1", node_port), None) is None  # plain DICOM: refused
                assert echo(("127.0.0.1", node_port), client_context(node_files.ca)) is None  # no certificate
                stranger = party(tmp_path / "stranger", "stranger", trustme.CA(), "modality.example.org")
                assert echo(("127.0.0.1", node_port), client_context(node_files.ca, own=stranger)) is None  # another CA
                assert echo(("127.0.0.1", node_port), client_context(node_files.ca, own=node_files)) == 0x0000
                assert pydicom.dcmread(path).PatientID == "DA-TLS-0001"
            finally:
                process.send_signal(signal.SIGTERM)
                code = process.wait(30)
    text = log_path.read_text()
    assert code == 0, text[-3000:]
    assert "TLS (bcp195 profile), senders must present a certificate signed by" in text
    assert "PLAINTEXT" not in text
    assert text.count("its TLS handshake failed") == 3, text[-3000:]
