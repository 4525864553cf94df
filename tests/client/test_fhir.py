"""FHIR out: the Bundle of synthetic results parses back with fhir.resources and holds the figures."""
from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.bundle import Bundle

from dermassist_client import terminology as term
from dermassist_client.classes import CLASSES
from dermassist_client.fhir import FhirError, ImagingContext, build_bundle, resources_by_type, write_bundle
from tests.support.dicom_checks import synthetic_result

CONTEXT = ImagingContext(patient_id="DA-UNIT-0042", patient_issuer="DERMASSIST-TEST", patient_name="Unit^Test^J",
                         patient_system="urn:oid:1.2.3.4.5", local_issuer="DERMASSIST-TEST",
                         study_uid="1.2.826.0.1.3680043.8.498.1", report_uid="1.2.826.0.1.3680043.8.498.2",
                         effective="2026-12-03", lesion_area_mm2=42.5)


def parsed(bundle) -> dict:
    """Write and parse back through fhir.resources, then as plain JSON."""
    text = bundle.model_dump_json(exclude_none=True, by_alias=True)
    return json.loads(Bundle.model_validate_json(text).model_dump_json(exclude_none=True, by_alias=True))


def by_code(observations: list[dict]) -> dict[str, dict]:
    return {o["code"]["coding"][0]["code"]: o for o in observations}


def test_bundle_with_triage_outputs(tmp_path):
    result = synthetic_result((600, 450))
    path = write_bundle(build_bundle([(result, CONTEXT)], now=datetime(2026, 12, 3, 9, 0, tzinfo=UTC)),
                        tmp_path / "bundle.json")
    bundle = json.loads(Bundle.model_validate_json(path.read_text()).model_dump_json(exclude_none=True, by_alias=True))
    assert bundle["type"] == "transaction"
    assert all(e["fullUrl"].startswith("urn:uuid:") and e["request"]["method"] == "POST" for e in bundle["entry"])
    resources = resources_by_type(bundle)
    (device,) = resources["Device"]
    assert device["version"][0]["value"] == "3" and device["modelNumber"] == "dermassist"
    (report,) = resources["DiagnosticReport"]
    observations = by_code(resources["Observation"])
    assert set(observations) == {"DIAGNOSIS", "LESION_FRACTION", "REFER", "ASSESSABLE"}  # not assessable: no scores
    urls = {e["resource"]["resourceType"] + e["resource"]["code"]["coding"][0]["code"]: e["fullUrl"]
            for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"}
    assert sorted(r["reference"] for r in report["result"]) == sorted(urls.values())

    # not assessable: no coded class a registry could count as a diagnosis, and no score to read: no class
    # probabilities, and REFER without its score; ASSESSABLE keeps the out-of-distribution score that explains it
    diagnosis = observations["DIAGNOSIS"]
    assert "valueCodeableConcept" not in diagnosis and "component" not in diagnosis
    assert diagnosis["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    assert "not assessable" in diagnosis["dataAbsentReason"]["text"]
    assert observations["REFER"]["valueBoolean"] is True and "component" not in observations["REFER"]
    assert observations["ASSESSABLE"]["valueBoolean"] is False
    assert observations["ASSESSABLE"]["component"][0]["valueQuantity"]["value"] == pytest.approx(0.62)
    assert observations["ASSESSABLE"]["note"][0]["text"] == result.note
    assert observations["LESION_FRACTION"]["valueQuantity"]["value"] == pytest.approx(100 * result.lesion_fraction)
    assert observations["LESION_FRACTION"]["component"][0]["valueQuantity"] == {
        "value": 42.5, "unit": "mm2", "system": "http://unitsofmeasure.org", "code": "mm2"}

    assert report["subject"]["display"] == "Unit, Test J"  # DICOM Unit^Test^J: family name, then given names
    for resource in [report, *observations.values()]:
        assert resource["status"] == "preliminary" and resource["subject"]["identifier"] == {
            "system": "urn:oid:1.2.3.4.5", "value": "DA-UNIT-0042", "assigner": {"display": "DERMASSIST-TEST"}}
        assert resource["effectiveDateTime"] == "2026-12-03" and resource["issued"].startswith("2026-12-03T09:00:00")
    study = {"type": "ImagingStudy", "identifier": {"system": "urn:dicom:uid",
                                                    "value": "urn:oid:1.2.826.0.1.3680043.8.498.1"}}
    assert report["imagingStudy"] == [study] and observations["REFER"]["derivedFrom"] == [study]
    assert report["identifier"] == [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.826.0.1.3680043.8.498.2"}]
    assert all(o["device"]["reference"] == bundle["entry"][0]["fullUrl"] for o in observations.values())
    assert "Referral to a dermatologist recommended because the image is not assessable" in report["conclusion"]
    assert result.note in report["conclusion"] and "not assessable, so no diagnosis" in report["conclusion"]
    assert "conclusionCode" not in report and "Melanoma" not in report["conclusion"]
    assert "score" not in report["conclusion"]


@pytest.mark.parametrize("refer", [True, False])
def test_a_picture_not_assessable_gets_no_class_probabilities_and_no_refer_score(refer):
    """The coffee cup: the service's own answer is that nothing here can be trusted, so no figure of it is written
    (no P_<class>, no REFER_SCORE, anywhere in the Bundle); the Bundle still validates as R4B."""
    result = synthetic_result((600, 450), top="MEL")
    result = type(result)(**{**result.__dict__, "refer": refer, "refer_score": 0.957})
    bundle = parsed(build_bundle([(result, CONTEXT)]))
    Bundle.model_validate(bundle)
    text = json.dumps(bundle)
    for withheld in ("CLASS_PROBABILITIES", "P_MEL", "REFER_SCORE", "0.957", "0.96", "0.86"):
        assert withheld not in text, withheld
    resources = resources_by_type(bundle)
    observations = by_code(resources["Observation"])
    assert set(observations) == {"DIAGNOSIS", "LESION_FRACTION", "REFER", "ASSESSABLE"}
    assert observations["REFER"]["valueBoolean"] is refer and "component" not in observations["REFER"]
    (report,) = resources["DiagnosticReport"]
    assert report["conclusion"].startswith("The image is not assessable, so no diagnosis is given. " + (
        "Referral to a dermatologist recommended because the image is not assessable." if refer else
        "No referral indicated by the model, but the image is not assessable: retake it before relying on any "
        "answer."))


@pytest.mark.parametrize("assessable,lesion", [(True, True), (True, False)])
def test_a_diagnosis_is_coded_only_when_the_image_was_assessable_and_a_lesion_found(assessable, lesion):
    result = synthetic_result((600, 450), assessable=assessable, lesion=lesion)
    resources = resources_by_type(parsed(build_bundle([(result, CONTEXT)])))
    (report,) = resources["DiagnosticReport"]
    diagnosis = by_code(resources["Observation"])["DIAGNOSIS"]
    if lesion:
        snomed, local = diagnosis["valueCodeableConcept"]["coding"]
        assert (snomed["system"], snomed["code"]) == ("http://snomed.info/sct", "372244006")
        assert (local["system"], local["code"]) == (term.LOCAL_FHIR_SYSTEM, "MEL")
        assert diagnosis["component"][0]["valueQuantity"]["value"] == pytest.approx(result.probabilities["MEL"])
        # assessable: every figure is written, as before
        components = {c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"]
                      for c in by_code(resources["Observation"])["CLASS_PROBABILITIES"]["component"]}
        assert components == pytest.approx({f"P_{c.code}": result.probabilities[c.code] for c in CLASSES})
        refer_score = by_code(resources["Observation"])["REFER"]["component"][0]
        assert refer_score["code"]["coding"][0]["code"] == "REFER_SCORE"
        assert refer_score["valueQuantity"]["value"] == pytest.approx(0.81)
        assert report["conclusionCode"][0]["coding"][0]["code"] == "372244006"
        assert report["conclusion"].startswith("Most likely Melanoma (MEL, probability 0.86).")
        assert "Referral to a dermatologist recommended (score 0.81)." in report["conclusion"]
    else:
        assert "conclusionCode" not in report and "valueCodeableConcept" not in diagnosis
        assert "no lesion was found" in diagnosis["dataAbsentReason"]["text"]
        assert report["conclusion"].startswith("No lesion was found, so no diagnosis is given.")
    routine = synthetic_result((600, 450), top="NV", assessable=True)
    routine = type(routine)(**{**routine.__dict__, "refer": False, "refer_score": 0.05})
    (report,) = resources_by_type(parsed(build_bundle([(routine, CONTEXT)])))["DiagnosticReport"]
    # a ROUTINE answer in the record says what the text line and the page say: it does not rule out melanoma
    assert ("No referral indicated by the model (score 0.05). This does not rule out melanoma: refer on clinical "
            "grounds as usual.") in report["conclusion"]


def test_without_triage_outputs_and_without_context():
    result = synthetic_result((600, 450), top="NV", triage=False)
    bundle = parsed(build_bundle([(result, None)]))
    resources = resources_by_type(bundle)
    observations = by_code(resources["Observation"])
    assert set(observations) == {"DIAGNOSIS", "CLASS_PROBABILITIES", "LESION_FRACTION"}
    assert [c["system"] for c in observations["DIAGNOSIS"]["valueCodeableConcept"]["coding"]] == [term.LOCAL_FHIR_SYSTEM]
    (report,) = resources["DiagnosticReport"]
    for key in ("subject", "imagingStudy", "identifier", "effectiveDateTime"):
        assert key not in report
    assert "Referral" not in report["conclusion"] and "component" not in observations["LESION_FRACTION"]


def test_one_device_per_model_version_and_one_report_per_result():
    a, b = synthetic_result((600, 450), assessable=True), synthetic_result((600, 450), top="BCC", assessable=True)
    resources = resources_by_type(parsed(build_bundle([(a, CONTEXT), (b, CONTEXT)])))
    assert len(resources["Device"]) == 1 and len(resources["DiagnosticReport"]) == 2
    codes = {r["conclusionCode"][0]["coding"][0]["code"] for r in resources["DiagnosticReport"]}
    assert codes == {"372244006", "254701007"}


def test_empty_bundle_is_refused():
    with pytest.raises(FhirError, match="no results"):
        build_bundle([])


def test_snomed_codes_name_only_contract_classes():
    codes = {c.code for c in CLASSES}
    assert set(term.SNOMED_BY_CLASS) <= codes
    assert {"NV", "DF", "BKL", "VASC"}.isdisjoint(term.SNOMED_BY_CLASS)


def _photo(tmp_path, taken: str | None, offset: str | None = None):
    import io

    from PIL import Image

    exif = Image.Exif()
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
    if offset is not None:
        exif.get_ifd(0x8769)[0x9011] = offset
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (150, 100, 90)).save(buffer, "JPEG", exif=exif)
    path = tmp_path / f"photo{len(list(tmp_path.iterdir()))}.jpg"
    path.write_bytes(buffer.getvalue())
    return path


def test_a_plain_picture_is_tied_to_its_digest_its_patient_and_when_it_was_taken(tmp_path):
    """A JPEG carries no study: its report is identified by the SHA-256 the service's audit records, and by the request
    id of the answer (the link to the audit line that holds nothing of the picture)."""
    import hashlib

    from dermassist_client.fhir import exif_taken

    photo = _photo(tmp_path, "2026:12:03 10:15:30", "+01:00")
    assert exif_taken(photo.read_bytes()) == "2026-12-03T10:15:30+01:00"
    assert exif_taken(_photo(tmp_path, "2026:12:03 10:15:30").read_bytes()) == "2026-12-03"  # FHIR: a time needs a zone
    assert exif_taken(_photo(tmp_path, "0000:00:00 00:00:00").read_bytes()) is None
    assert exif_taken(_photo(tmp_path, None).read_bytes()) is None and exif_taken(b"not an image") is None

    from dermassist_client.images import encode_image

    context = ImagingContext.from_image_file(photo, patient_id="MRN-7", patient_system="urn:oid:1.2.3.4.5")
    sent = encode_image(photo).data  # without the EXIF date the server does not read: the audit line's digest
    assert context.image_sha256 == hashlib.sha256(sent).hexdigest() != hashlib.sha256(photo.read_bytes()).hexdigest()
    result = dataclasses.replace(synthetic_result((64, 48)), request_id="5f0c2a9e8d7b4c1a9e3f6b2d8c4a7e10")
    resources = resources_by_type(parsed(build_bundle([(result, context)])))
    (report,) = resources["DiagnosticReport"]
    assert report["identifier"] == [{"system": term.IMAGE_SHA256_FHIR_SYSTEM, "value": context.image_sha256},
                                    {"system": term.REQUEST_ID_FHIR_SYSTEM, "value": result.request_id}]
    (without_id,) = resources_by_type(parsed(build_bundle([(synthetic_result((64, 48)), context)])))["DiagnosticReport"]
    assert [i["system"] for i in without_id["identifier"]] == [term.IMAGE_SHA256_FHIR_SYSTEM]  # none given: none made
    assert report["subject"]["identifier"] == {"system": "urn:oid:1.2.3.4.5", "value": "MRN-7"}
    assert all(o["effectiveDateTime"] == "2026-12-03T10:15:30+01:00" for o in resources["Observation"])


@pytest.mark.parametrize("taken,offset,expected", [
    ("2026:02:30 10:15:30", "+01:00", None),  # no 30 February: no date rather than a Bundle that does not validate
    ("2026:13:01 10:15:30", None, None),
    ("2026:12:03 24:15:30", "+01:00", "2026-12-03"),  # a date with an impossible time keeps the date alone
    ("2024:02:29 23:59:59", "-05:00", "2024-02-29T23:59:59-05:00"),  # a leap day is a day
])
def test_an_exif_date_no_calendar_has_is_left_out(tmp_path, taken, offset, expected):
    from dermassist_client.fhir import exif_taken

    photo = _photo(tmp_path, taken, offset)
    assert exif_taken(photo.read_bytes()) == expected
    bundle = parsed(build_bundle([(synthetic_result((64, 48)), ImagingContext.from_image_file(photo))]))
    assert all(o.get("effectiveDateTime") == expected for o in resources_by_type(bundle)["Observation"])


@pytest.mark.parametrize("content_date,expected", [("20261203", "2026-12-03"), ("00000000", None),
                                                   ("20260230", None), ("2026.12.03", None)])
def test_a_dicom_date_no_calendar_has_is_left_out(content_date, expected):
    from types import SimpleNamespace

    context = ImagingContext.from_dataset(SimpleNamespace(ContentDate=content_date, PatientID="MRN-7"))
    assert context.effective == expected
    bundle = parsed(build_bundle([(synthetic_result((64, 48)), context)]))  # validates whatever the date was
    assert all(o.get("effectiveDateTime") == expected for o in resources_by_type(bundle)["Observation"])


@pytest.mark.parametrize(("issuer", "local", "identifier"), [
    ("HOSP-A", "DERMASSIST-TEST", {"value": "MRN-0001", "assigner": {"display": "HOSP-A"}}),  # referred in
    ("HOSP-A", None, {"value": "MRN-0001", "assigner": {"display": "HOSP-A"}}),  # no local issuer named
    ("DERMASSIST-TEST", "DERMASSIST-TEST", {"value": "MRN-0001", "system": "urn:oid:1.2.3.4",
                                            "assigner": {"display": "DERMASSIST-TEST"}}),  # the site's own
    (None, None, {"value": "MRN-0001", "system": "urn:oid:1.2.3.4"}),  # no issuer: the site's
], ids=["other-issuer", "no-local-issuer", "local-issuer", "no-issuer"])
def test_the_sites_patient_system_names_only_the_sites_own_patient_ids(issuer, local, identifier):
    """A referred-in study's MRN-0001 from HOSP-A was sent as the site's urn:oid:1.2.3.4|MRN-0001: another patient."""
    context = ImagingContext(patient_id="MRN-0001", patient_issuer=issuer, patient_system="urn:oid:1.2.3.4",
                             local_issuer=local)
    (report,) = resources_by_type(parsed(build_bundle([(synthetic_result((600, 450)), context)])))["DiagnosticReport"]
    assert report["subject"]["identifier"] == identifier
    assert context.system_withheld == ("system" not in identifier)


def test_a_name_with_ideographic_and_phonetic_groups_is_shown_by_its_alphabetic_one():
    from dataclasses import replace

    from dermassist_client.fhir import _subject

    context = replace(CONTEXT, patient_name="Yamada^Tarou=\u5c71\u7530^\u592a\u90ce=\u3084\u307e\u3060^\u305f\u308d\u3046")
    assert _subject(context)["display"] == "Yamada, Tarou"
    assert _subject(replace(CONTEXT, patient_name="=\u5c71\u7530^\u592a\u90ce"))["display"] == "\u5c71\u7530, \u592a\u90ce"


@pytest.mark.parametrize("system", ["not a uri", "mrn", "urn:oid:1.2 3"])
def test_a_patient_system_that_is_no_uri_is_refused(system: str, tmp_path, capsys) -> None:
    """'not a uri' went into every Observation's subject of the Bundle (fuzz audit 12.4)."""
    from dermassist_client.cli import main

    with pytest.raises(FhirError, match="is not an absolute URI"):
        ImagingContext(patient_id="MRN-1", patient_system=system)
    assert main(["analyze", "x.jpg", "--fhir-out", str(tmp_path / "b.json"), "--patient-system", system,
                 "--url", "127.0.0.1:1"]) == 2
    assert "--patient-system " in capsys.readouterr().err
    for good in ("urn:oid:1.2.3.4", "https://hospital.example/mrn", "http://example.org/fhir/sid/us-ssn"):
        assert ImagingContext(patient_system=good).patient_system == good
    assert ImagingContext(patient_system="").patient_system == ""  # empty: none, as an empty --patient-id is
