"""Hospital interoperability against real parts: the embedded Triton, a real Orthanc PACS, dciodvfy.

A DICOM dermoscopy image (made from a real HAM10000 JPEG, with made-up identifiers) goes to the
``dermassist-client dicom-listen`` node; its SEG and SR land in Orthanc and are read back through
Orthanc's REST API. The SEG mask must equal the served MASK resampled to the source geometry and the
SR must hold the served figures (the same pixels analysed directly give the reference). Bad inputs
get failure statuses while the node keeps serving and nothing already stored is lost.
"""
from __future__ import annotations

import hashlib
import io
import json
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import VLPhotographicImageStorage

from dermassist.base.server import free_ports
from dermassist_client import DermAssistClient
from dermassist_client.dicom import node as node_module
from dermassist_client.dicom.config import NodeConfig, PacsConfig
from dermassist_client.dicom.node import DicomNode
from dermassist_client.dicom.source import read_dicom
from dermassist_client.terminology import snomed_for
from tests.client.dicom.test_io import sr_items
from tests.conftest import HAM_IMAGES
from tests.support import dicom_images as di
from tests.support.dicom_checks import check_seg_and_sr, dciodvfy
from tests.support.dicom_net import send, wait_for_echo
from tests.support.orthanc import Orthanc
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

NODE_AET = "DERMASSIST"
HAM_A = HAM_IMAGES / "ISIC_0024311.jpg"
HAM_B = HAM_IMAGES / "ISIC_0024354.jpg"  # a second HAM10000 image (named: a glob at import stopped the collection
# of the whole suite where ../shared/data was absent)
SUCCESS = 0x0000
PROBABILITY_NAMES = {"AK": "Actinic keratosis", "BCC": "Basal cell carcinoma", "DF": "Dermatofibroma",
                     "MEL": "Melanoma", "NV": "Nevus", "BKL": "Pigmented benign keratosis",
                     "SCC": "Squamous cell carcinoma", "VASC": "Vascular lesion"}


@dataclass(frozen=True)
class Listener:
    process: subprocess.Popen
    port: int
    spool: Path
    log_path: Path


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    with Orthanc(tmp_path_factory.mktemp("orthanc")) as pacs:
        yield pacs


@pytest.fixture(scope="module")
def listener(triton_server, orthanc, tmp_path_factory):
    """``dermassist-client dicom-listen`` as its own process, forwarding to Orthanc."""
    (port,) = free_ports(1)
    spool = tmp_path_factory.mktemp("spool")
    log_path = spool.parent / "listener.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "dermassist_client.cli", "dicom-listen", "--port", str(port), "--aet", NODE_AET,
         "--pacs", f"127.0.0.1:{orthanc.dicom_port}", "--pacs-aet", orthanc.ae_title, "--spool", str(spool),
         "--url", triton_server.config.grpc_address],
        stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_echo("127.0.0.1", port, NODE_AET, alive=lambda: process.poll() is None)
        yield Listener(process, port, spool, log_path)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
        log.close()
        assert code == 0, log_path.read_text()[-3000:]


def delivered(spool: Path) -> bool:
    """Whether the node's forwarder has sent (and removed) every item of its spool."""
    return not list((spool / "pending").glob("*"))


def served(triton_server, image) -> object:
    """The reference: what the instance sends the service (a JPEG frame as it came), analysed directly by the SDK."""
    with DermAssistClient(triton_server.config.grpc_address) as client:
        return client.analyze(image.for_service())


def study_instances(orthanc: Orthanc, study_uid: str) -> dict[str, dict]:
    """Orthanc's instances of one study by modality."""
    found = [i for i in orthanc.instances() if i["StudyInstanceUID"] == study_uid]
    by_modality = {i["Modality"]: i for i in found}
    assert len(by_modality) == len(found), found
    return by_modality


def check_outputs(orthanc: Orthanc, study_uid: str, source, result, tmp_path) -> None:
    """SEG and SR of one study read back from Orthanc against the served result."""
    stored = study_instances(orthanc, study_uid)
    assert result.lesion_found, "the round trip needs an image the served models find a lesion in"
    assert set(stored) == {source.dataset.Modality, "SEG", "SR"}, stored
    assert stored[source.dataset.Modality]["SOPInstanceUID"] == source.dataset.SOPInstanceUID
    seg_path, sr_path = tmp_path / "seg.dcm", tmp_path / "sr.dcm"
    seg_path.write_bytes(orthanc.instance_file(stored["SEG"]["ID"]))
    sr_path.write_bytes(orthanc.instance_file(stored["SR"]["ID"]))
    seg = check_seg_and_sr(seg_path, sr_path, source.size, result)
    assert seg.PatientID == source.dataset.PatientID

    items = dict(sr_items(pydicom.dcmread(sr_path)))
    for code, name in PROBABILITY_NAMES.items():
        if result.assessable is False:  # not assessable: the SR holds no score to read (verdict.scores_withheld)
            assert f"Probability of {name}" not in items
        else:
            assert items[f"Probability of {name}"] == pytest.approx(result.probabilities[code], abs=1e-6)
    snomed = snomed_for(result.top_class)
    if result.diagnosis_given:
        assert items["Differential Diagnosis/Impression"] == (("SCT", snomed.code) if snomed
                                                              else ("99DERMASSIST", result.top_class.code))
    else:  # not assessable (the session's tiny models often are): no diagnosis is coded
        assert "Differential Diagnosis/Impression" not in items
    assert items["Lesion area as a share of the image"] == pytest.approx(100 * result.lesion_fraction, abs=1e-4)
    triage = {"Referral to a dermatologist recommended": result.refer, "Image assessable": result.assessable}
    for name, value in triage.items():
        if value is None:  # a server that predates the triage outputs: the SR leaves them out
            assert name not in items
        else:
            assert items[name][1] == ("373066001" if value else "373067005")


def test_listener_round_trip_through_orthanc(listener, orthanc, triton_server, tmp_path):
    patient = di.Patient(patient_id="DA-INT-0001", patient_name="Round^Trip").with_study()
    ds = di.photograph(HAM_A.read_bytes(), patient)  # JPEG baseline, as dermoscopes write them
    source = read_dicom(ds)
    (answer,) = send("127.0.0.1", listener.port, NODE_AET, [ds])
    assert answer.status == SUCCESS and answer.comment == "", answer
    assert wait_until(lambda: delivered(listener.spool), 60.0, 0.2), "the listener forwarding its results to Orthanc"
    check_outputs(orthanc, patient.study_uid, source, served(triton_server, source), tmp_path)


def test_bad_inputs_fail_and_the_listener_keeps_serving(listener, orthanc, triton_server, tmp_path):
    patient = di.Patient(patient_id="DA-INT-0002", patient_name="Bad^Inputs").with_study()
    jpeg = HAM_A.read_bytes()
    first = di.photograph(HAM_B.read_bytes(), patient, compressed=False)
    assert send("127.0.0.1", listener.port, NODE_AET, [first])[0].status == SUCCESS
    assert wait_until(lambda: delivered(listener.spool), 60.0, 0.2), "the listener forwarding its results to Orthanc"
    before = {i["ID"] for i in orthanc.instances()}

    truncated = pydicom.dcmread(di.truncated_file(jpeg, patient, tmp_path / "cut.dcm"))
    bad = [di.without_pixels(jpeg, patient), di.ct_slice(patient), truncated, di.with_transfer_syntax(jpeg, patient)]
    answers = send("127.0.0.1", listener.port, NODE_AET, bad)
    assert [a.status for a in answers] == [0xC002, 0xC001, 0xC000, 0xC003], answers
    assert answers[0].comment == "no Pixel Data"
    assert answers[1].comment == "not a single-frame 8-bit colour photograph"
    assert "truncated" in answers[2].comment
    assert answers[3].comment == "unsupported transfer syntax 1.2.840.10008.1.2.4.107"
    assert listener.process.poll() is None
    assert {i["ID"] for i in orthanc.instances()} == before  # nothing stored for them, nothing lost

    # The last one comes from DCMTK's storescu, another implementation than the node's pynetdicom.
    last = di.save(di.photograph(jpeg, patient, sop_class=VLPhotographicImageStorage, compressed=False),
                   tmp_path / "last.dcm")
    sent = subprocess.run(["storescu", "-v", "-aet", "STORESCU", "-aec", NODE_AET, "127.0.0.1", str(listener.port),
                           str(last)], capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0 and "Received Store Response (Success)" in sent.stdout + sent.stderr, sent.stderr
    assert wait_until(lambda: delivered(listener.spool), 60.0, 0.2), "the listener forwarding its results to Orthanc"
    after = {i["ID"] for i in orthanc.instances()}
    assert before < after and len(after - before) == 3
    text = listener.log_path.read_text()
    for words in ("has no Pixel Data", "not an RGB photograph", "cannot be decoded", "HEVC/H.265"):
        assert words in text, text[-3000:]


def test_results_wait_in_the_spool_while_the_pacs_is_down_and_reach_it_when_it_is_back(triton_server, tmp_path):
    (pacs_port,) = free_ports(1)
    config = NodeConfig(spool=tmp_path / "spool", port=0, retry_s=1.0,
                        pacs=PacsConfig("127.0.0.1", pacs_port, "ORTHANC", timeout_s=5))
    patient = di.Patient(patient_id="DA-INT-0003", patient_name="Pacs^Down").with_study()
    ds = di.photograph(HAM_A.read_bytes(), patient)
    with DermAssistClient(triton_server.config.grpc_address) as client, DicomNode(client, config) as node:
        host, port = node.address
        assert send(host, port, NODE_AET, [ds])[0].status == SUCCESS
        assert wait_until(lambda: node.counts["forward_failed"] >= 2, 60.0, 0.2), "two failed attempts to reach the stopped PACS"
        (item,) = node.pending()
        assert sorted(p.name.split("_")[1] for p in item.glob("*.dcm")) == ["SEG", "SOURCE", "SR"]
        with Orthanc(tmp_path / "orthanc", dicom_port=pacs_port) as orthanc:
            # No image is sent again and nobody calls flush(): the forwarder's next attempt delivers.
            assert wait_until(lambda: node.pending() == [], 60.0, 0.2), "the spooled results reaching the PACS once it is back"
            assert node.counts["received"] == 1 and node.counts["forwarded"] == 1
            source = read_dicom(ds)
            check_outputs(orthanc, patient.study_uid, source, served(triton_server, source), tmp_path)


def test_the_sender_is_answered_without_waiting_for_a_pacs_that_does_not_answer(triton_server, tmp_path, monkeypatch,
                                                                               caplog):
    monkeypatch.setattr(node_module, "STOP_WAIT_S", 1.0)
    # A PACS whose port accepts the connection but never answers the association request.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        config = NodeConfig(spool=tmp_path / "spool", port=0,
                            pacs=PacsConfig("127.0.0.1", silent.getsockname()[1], "ORTHANC", timeout_s=20))
        patient = di.Patient(patient_id="DA-INT-0005", patient_name="Pacs^Silent").with_study()
        with DermAssistClient(triton_server.config.grpc_address) as client, DicomNode(client, config) as node:
            host, port = node.address
            (answer,) = send(host, port, NODE_AET, [di.photograph(HAM_A.read_bytes(), patient)])
            # Answered while the forwarder still waits on the PACS (20 s): nothing has failed or been sent yet.
            assert answer.status == SUCCESS
            assert node.counts["forward_failed"] == 0 and node.counts["forwarded"] == 0
            assert len(node.pending()) == 1
        # Stopped while the forwarder still waits: stop() does not wait out the PACS, and the item stays.
        assert len(node.pending()) == 1 and "sent again at the next start" in caplog.text


def test_a_pacs_refusing_rle_gets_every_result_and_the_rle_image_decompressed(tmp_path, ham_jpeg):
    """The auditor's case: Orthanc with RLE refused; an RLE, a native RGB and a JPEG YBR_FULL_422 image all arrive
    with their SEG and SR (the RLE image decompressed, its SOP Instance UID kept), none left in the spool."""
    from tests.client.dicom.test_forwarding import SyntheticClient, the_three_photographs

    sources = the_three_photographs(ham_jpeg)
    with Orthanc(tmp_path / "orthanc", extra_config={"RleTransferSyntaxAccepted": False}) as orthanc:
        config = NodeConfig(spool=tmp_path / "spool", port=0, retry_s=5.0,
                            pacs=PacsConfig("127.0.0.1", orthanc.dicom_port, orthanc.ae_title, timeout_s=10))
        with DicomNode(SyntheticClient(), config) as node:
            host, port = node.address
            assert [a.status for a in send(host, port, NODE_AET, sources)] == [SUCCESS] * len(sources)
            assert wait_until(lambda: node.pending() == [], 60.0, 0.2), "every spool item reaching the PACS that refuses RLE"
            assert node.failed() == [] and node.counts["forwarded"] == len(sources)
        stored = orthanc.instances()
        assert len(stored) == 3 * len(sources)  # each source with its SEG and SR
        assert {s.SOPInstanceUID for s in sources} <= {i["SOPInstanceUID"] for i in stored}
        rle = next(i for i in stored if i["SOPInstanceUID"] == sources[0].SOPInstanceUID)
        arrived = pydicom.dcmread(io.BytesIO(orthanc.instance_file(rle["ID"])))
        assert not arrived.file_meta.TransferSyntaxUID.is_compressed
        assert np.array_equal(arrived.pixel_array, sources[0].pixel_array)


def test_analyze_writes_dicom_and_fhir(triton_server, tmp_path):
    from fhir.resources.R4B.bundle import Bundle

    from dermassist_client.fhir import resources_by_type

    patient = di.Patient(patient_id="DA-INT-0004", patient_name="Command^Line").with_study()
    ds = di.photograph(HAM_A.read_bytes(), patient, pixel_spacing_mm=0.02)
    dcm = di.save(ds, tmp_path / "lesion.dcm")
    ct = di.save(di.ct_slice(patient), tmp_path / "ct.dcm")
    out, bundle_path = tmp_path / "dicom-out", tmp_path / "bundle.json"
    done = subprocess.run(
        [sys.executable, "-m", "dermassist_client.cli", "analyze", str(dcm), str(HAM_B), str(ct), "--json",
         "--dicom-out", str(out), "--fhir-out", str(bundle_path), "--patient-id", "MRN-PLAIN-9",
         "--patient-system", "urn:oid:1.2.3.4.5", "--url", triton_server.config.grpc_address],
        capture_output=True, text=True, timeout=180)
    assert done.returncode == 1, done.stderr  # the CT slice fails, the others are answered
    assert f"{ct}: FAILED:" in done.stderr and "not an RGB photograph" in done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(dcm), str(HAM_B), str(ct)]  # the failure has its own line
    assert len(lines[0]["dicom_outputs"]) == 2 and "dicom_outputs" not in lines[1]
    assert "not an RGB photograph" in lines[2]["error"]["message"] and "dicom_outputs" not in lines[2]

    source = read_dicom(dcm)
    result = served(triton_server, source)
    seg = pydicom.dcmread(next(out.glob("SEG_*.dcm")))
    expected = np.asarray(Image.fromarray(result.mask).resize(source.size, Image.NEAREST)) > 0
    assert np.array_equal(seg.pixel_array.astype(bool), expected)
    sr_path = next(out.glob("SR_*.dcm"))
    assert dciodvfy(sr_path).errors == [] and dciodvfy(out / next(out.glob("SEG_*.dcm")).name).errors == []
    assert dict(sr_items(pydicom.dcmread(sr_path)))["Area"] == pytest.approx(expected.sum() * 0.02 * 0.02)

    bundle = json.loads(Bundle.model_validate_json(bundle_path.read_text()).model_dump_json(exclude_none=True))
    reports = resources_by_type(bundle)["DiagnosticReport"]
    assert len(reports) == 2  # the DICOM image and the JPEG
    dicom_report = next(r for r in reports if "imagingStudy" in r)
    assert dicom_report["subject"]["identifier"]["value"] == "DA-INT-0004"  # its own, not --patient-id
    jpeg_report = next(r for r in reports if "imagingStudy" not in r)  # the plain picture: --patient-id, its digest
    assert jpeg_report["subject"]["identifier"] == {"system": "urn:oid:1.2.3.4.5", "value": "MRN-PLAIN-9"}
    # the digest the service's audit line records, and the request id that line holds
    assert jpeg_report["identifier"] == [{"system": "urn:dermassist:image-sha256",
                                          "value": hashlib.sha256(HAM_B.read_bytes()).hexdigest()},
                                         {"system": "urn:dermassist:request-id", "value": lines[1]["request_id"]}]
    assert dicom_report["identifier"] == [  # the SR, the digest and the request id
        {"system": "urn:dicom:uid", "value": f"urn:oid:{pydicom.dcmread(sr_path).SOPInstanceUID}"},
        {"system": "urn:dermassist:image-sha256", "value": hashlib.sha256(HAM_A.read_bytes()).hexdigest()},
        {"system": "urn:dermassist:request-id", "value": lines[0]["request_id"]}]
    assert len({lines[0]["request_id"], lines[1]["request_id"]}) == 2
    assert dicom_report["imagingStudy"][0]["identifier"]["value"] == f"urn:oid:{patient.study_uid}"
    if result.diagnosis_given:
        assert result.top_class.name in dicom_report["conclusion"] and "conclusionCode" in dicom_report
    else:
        assert "so no diagnosis is given" in dicom_report["conclusion"] and "conclusionCode" not in dicom_report


def test_a_damaged_or_mislabelled_jpeg_instance_is_judged_on_its_codestream(triton_server, tmp_path):
    """The client decoded DICOM pixels itself: a JPEG frame with 600 bytes overwritten got a diagnosis (the same bytes
    as a .jpg were refused), and a YCbCr frame labelled RGB came back 'not assessable' in the wrong colours."""
    patient = di.Patient(patient_id="DA-INT-0005", patient_name="Damaged^Frame").with_study()
    jpeg = HAM_A.read_bytes()
    damaged = bytearray(jpeg)
    at = int(len(jpeg) * 0.85)
    damaged[at:at + 600] = bytes(600)
    mislabelled = di.photograph(jpeg, patient)
    mislabelled.PhotometricInterpretation = "RGB"
    files = [di.save(di.photograph(jpeg, patient), tmp_path / "ok.dcm"),
             di.save(di.photograph(bytes(damaged), patient), tmp_path / "damaged.dcm"),
             di.save(mislabelled, tmp_path / "mislabelled.dcm")]
    done = subprocess.run([sys.executable, "-m", "dermassist_client.cli", "analyze", *map(str, files), "--json",
                           "--url", triton_server.config.grpc_address], capture_output=True, text=True, timeout=180)
    assert done.returncode == 1, done.stderr
    ok, refused, relabelled = (json.loads(line) for line in done.stdout.splitlines())
    assert refused["error"]["kind"] == "InvalidImageError" and "cannot be decoded in full" in refused["error"]["message"]
    assert "error" not in ok and "error" not in relabelled  # (the suite's models judge assessability their own way)
    assert (relabelled["probabilities"], relabelled["assessable"], relabelled["bbox"]) == (
        ok["probabilities"], ok["assessable"], ok["bbox"])


def test_listener_needs_both_pacs_flags():
    done = subprocess.run([sys.executable, "-m", "dermassist_client.cli", "dicom-listen", "--pacs", "127.0.0.1:104"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--pacs and --pacs-aet go together" in done.stderr

