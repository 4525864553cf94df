"""``analyze`` end to end with a stand-in client: an image without a lesion gets an SR with no lesion finding, and
--fhir-out makes its missing folder as --dicom-out does, while a path it could never write is refused up front."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pydicom
import pytest
from PIL import Image

from dermassist_client import interop
from dermassist_client.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from dermassist_client.errors import InvalidImageError
from dermassist_client.result import LesionResult
from tests.support import dicom_images as di
from tests.support.dicom_checks import EXPECTED_WARNINGS, dciodvfy, picture_size, synthetic_result

PATIENT = di.Patient(patient_id="DA-AUDIT-0007", patient_name="Audit^Test", issuer="DERMASSIST-TEST").with_study()


class _Client:
    """Stands in for DermAssistClient: answers a picture with a synthetic result (a lesion unless ``lesion`` is
    False), refuses paths with 'bad' in them, and records its calls."""

    lesion = True
    calls: list[Any] = []

    def __init__(self, url: str, protocol: str, **options: Any) -> None:
        type(self).calls = []

    def __enter__(self) -> _Client:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def analyze(self, picture: Any) -> LesionResult:
        self.calls.append(picture)
        if isinstance(picture, str) and "bad" in picture:
            raise InvalidImageError(f"{picture} is not an image")
        size = Image.open(picture).size if isinstance(picture, str) else picture_size(picture)  # a path, or a DICOM's
        return synthetic_result(size, lesion=self.lesion)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> type[_Client]:
    import dermassist_client.client

    monkeypatch.setattr(dermassist_client.client, "DermAssistClient", _Client)
    monkeypatch.setattr(_Client, "lesion", True)
    return _Client


@pytest.fixture
def dcm(tmp_path: Path, ham_jpeg: bytes) -> Path:
    return di.save(di.photograph(ham_jpeg, PATIENT), tmp_path / "photo.dcm")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_dicom_out_and_fhir_out_into_one_new_folder(client: type[_Client], dcm: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit's `analyze photo.dcm --dicom-out out1 --fhir-out out1/bundle.json` on a fresh folder."""
    monkeypatch.chdir(tmp_path)
    assert main(["analyze", str(dcm), "--dicom-out", "out1", "--fhir-out", "out1/bundle.json"]) == EXIT_OK
    out = tmp_path / "out1"
    assert json.loads((out / "bundle.json").read_text())["resourceType"] == "Bundle"
    assert sorted(p.name[:3] for p in out.glob("*.dcm")) == ["SEG", "SR_"]
    assert mode(out) == 0o700 and mode(out / "bundle.json") == 0o600


def test_fhir_out_makes_its_missing_folders(client: type[_Client], tmp_path: Path) -> None:
    picture = tmp_path / "good.png"
    Image.new("RGB", (60, 40), (150, 100, 90)).save(picture)
    bundle = tmp_path / "a" / "b" / "bundle.json"
    assert main(["analyze", str(picture), "--fhir-out", str(bundle), "--patient-id", "MRN-1"]) == EXIT_OK
    assert "MRN-1" in bundle.read_text() and mode(bundle.parent) == 0o700


def test_a_run_that_answers_nothing_makes_no_folder_and_still_removes_an_earlier_bundle(client: type[_Client],
                                                                                         tmp_path: Path) -> None:
    assert main(["analyze", "bad.png", "--fhir-out", str(tmp_path / "new" / "b.json")]) == EXIT_FAILED
    assert not (tmp_path / "new").exists()  # as --dicom-out's folder: made only when an output is written
    earlier = tmp_path / "old" / "b.json"
    earlier.parent.mkdir()
    earlier.write_text('{"resourceType": "Bundle", "type": "transaction"}')
    assert main(["analyze", "bad.png", "--fhir-out", str(earlier)]) == EXIT_FAILED
    assert not earlier.exists()


def test_output_paths_under_a_file_are_refused_before_any_analysis(client: type[_Client], dcm: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    for flag, target in (("--fhir-out", a_file / "b.json"), ("--fhir-out", a_file / "sub" / "b.json"),
                         ("--dicom-out", a_file / "sub")):
        assert main(["analyze", str(dcm), flag, str(target)]) == EXIT_USAGE
        assert f"error: {flag} {target}: {a_file} is a file, not a folder" in capsys.readouterr().err
        assert client.calls == []


def test_an_unwritable_output_folder_is_refused_before_any_analysis(client: type[_Client], dcm: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(interop.os, "access", lambda p, m: False if Path(p) == locked else real_access(p, m))
    for flag, target in (("--fhir-out", locked / "b.json"), ("--fhir-out", locked / "new" / "b.json"),
                         ("--dicom-out", locked), ("--dicom-out", locked / "new")):
        assert main(["analyze", str(dcm), flag, str(target)]) == EXIT_USAGE
        assert f"error: {flag} {target}: this user cannot write into the folder {locked}" in capsys.readouterr().err
        assert client.calls == [] and list(locked.iterdir()) == []


def test_an_image_without_a_lesion_gets_an_sr_without_a_lesion_finding(client: type[_Client], dcm: Path,
                                                                      tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The audit's `analyze nolesion.dcm --dicom-out out2`: no 'Lesion 1', no Lesion finding, no 0% area."""
    client.lesion = False
    assert main(["analyze", str(dcm), "--dicom-out", str(tmp_path / "out2"), "--json"]) == EXIT_OK
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert record["lesion_found"] is False
    (sr_path,) = [Path(p) for p in record["dicom_outputs"]]
    verdict = dciodvfy(sr_path)
    assert verdict.errors == [] and verdict.warnings <= EXPECTED_WARNINGS, verdict.output
    sr = pydicom.dcmread(sr_path)
    codes = {e.value for e in sr.iterall() if e.keyword == "CodeValue"}
    texts = {e.value for e in sr.iterall() if e.keyword == "TextValue"}
    assert not codes & {"52988006", "112039", "112040", "125007", "LESION_FRACTION"}  # Lesion, tracking, group, area
    assert {"ASSESSABLE", "373067005", "NOTE"} <= codes and synthetic_result((1, 1), lesion=False).note in texts
    assert "Lesion 1" not in texts


def test_a_folder_that_cannot_be_made_at_the_end_is_named(client: type[_Client], tmp_path: Path) -> None:
    """The folder was fine when the run started but a file took its place before the Bundle was written."""
    from dermassist_client.fhir import FhirError

    picture = tmp_path / "good.png"
    Image.new("RGB", (60, 40), (150, 100, 90)).save(picture)
    run = interop.InteropRun(client("h:1", "grpc"), fhir_out=tmp_path / "new" / "b.json", patient_id="MRN-1")
    run.analyze(str(picture))
    (tmp_path / "new").write_text("x")
    with pytest.raises(FhirError, match=f"cannot create the folder {tmp_path / 'new'} of --fhir-out"):
        run.finish()


@pytest.mark.parametrize("local_issuer", [None, "DERMASSIST-TEST"], ids=["other-issuer", "local-issuer"])
def test_patient_system_goes_only_to_the_sites_own_patient_ids(client: type[_Client], dcm: Path, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture,
                                                               local_issuer: str | None) -> None:
    """The DICOM file's Patient ID was issued by DERMASSIST-TEST: --patient-system names it only with --local-issuer."""
    import logging

    bundle = tmp_path / "bundle.json"
    argv = ["analyze", str(dcm), "--fhir-out", str(bundle), "--patient-system", "urn:oid:1.2.3"]
    with caplog.at_level(logging.WARNING, logger="dermassist_client.interop"):
        assert main(argv + (["--local-issuer", local_issuer] if local_issuer else [])) == EXIT_OK
    (report,) = [e["resource"] for e in json.loads(bundle.read_text())["entry"]
                 if e["resource"]["resourceType"] == "DiagnosticReport"]
    identifier = report["subject"]["identifier"]
    assert identifier["value"] == PATIENT.patient_id and identifier["assigner"] == {"display": "DERMASSIST-TEST"}
    warned = [r.getMessage() for r in caplog.records if "not by this site" in r.getMessage()]
    if local_issuer:
        assert identifier["system"] == "urn:oid:1.2.3" and warned == []
    else:
        assert "system" not in identifier
        (text,) = warned
        assert "assigned by 'DERMASSIST-TEST'" in text and "pass --local-issuer 'DERMASSIST-TEST'" in text


def test_a_dicom_images_report_carries_the_digest_of_what_was_sent(client: type[_Client], dcm: Path, tmp_path: Path,
                                                                   ham_jpeg: bytes) -> None:
    """With --fhir-out and no --dicom-out its report had no identifier at all: nothing tied it to the audit line,
    which records the digest of the bytes sent (here the JPEG frame as it came)."""
    import hashlib

    bundle = tmp_path / "bundle.json"
    assert main(["analyze", str(dcm), "--fhir-out", str(bundle)]) == EXIT_OK
    (report,) = [e["resource"] for e in json.loads(bundle.read_text())["entry"]
                 if e["resource"]["resourceType"] == "DiagnosticReport"]
    assert report["identifier"] == [{"system": "urn:dermassist:image-sha256",
                                     "value": hashlib.sha256(ham_jpeg).hexdigest()}]
    assert client.calls[-1] == ham_jpeg  # what the service got, and so what its audit line's digest is of


def test_the_outputs_uids_start_with_the_sites_root(client: type[_Client], dcm: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Every UID the SEG and SR make was under pydicom's root (highdicom's for the dimension organisation), and a site
    that must use its own could not say so."""
    import pydicom.uid

    from dermassist_client.dicom.identity import DEFAULT_UID_ROOT

    assert DEFAULT_UID_ROOT == pydicom.uid.PYDICOM_ROOT_UID
    root, out = "1.2.840.99999.7.", tmp_path / "out"
    assert main(["analyze", str(dcm), "--dicom-out", str(out), "--uid-root", root]) == EXIT_OK
    source = pydicom.dcmread(dcm)
    theirs = {str(source[k].value) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}
    for path in sorted(out.glob("*.dcm")):
        assert dciodvfy(path).errors == []
        made = {str(e.value) for e in pydicom.dcmread(path).iterall() if e.VR == "UI"} - theirs
        made = {uid for uid in made if not uid.startswith("1.2.840.10008.")}  # DICOM's own (classes, syntaxes)
        assert made and all(uid.startswith(root) for uid in made), made
    capsys.readouterr()
    for bad in ("1.2.840.99999.7", "01.2.", "1.2.x.", "1." * 21):
        assert main(["analyze", str(dcm), "--uid-root", bad]) == EXIT_USAGE
        assert "--uid-root: uid_root must be a DICOM UID root" in capsys.readouterr().err
