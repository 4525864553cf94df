"""Exact values where a near miss would pass the broader tests: rows of a batch, border pixels, codes, boundaries.

Each expected value is worked out by hand in a comment (from the module's documented behaviour or the standard it
follows), never copied from a run of the code.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image

from dermassist_client import ClientConfig, ClientConfigError, InvalidImageError, ResultError
from dermassist_client.cli import build_parser, main
from dermassist_client.config import DEMO_PORT, DEMO_RETRIES, connection_options
from dermassist_client.dicom.analysis import build_analysis
from dermassist_client.dicom.config import NodeConfig, PacsConfig, check_ae_title, check_port, parse_host_port
from dermassist_client.dicom.errors import DicomError
from dermassist_client.dicom.identity import OutputIdentity
from dermassist_client.dicom.source import DicomImage, read_dicom
from dermassist_client.fhir import ImagingContext, build_bundle, conclusion, resources_by_type
from dermassist_client.overlay import OUTLINE_INNER, OUTLINE_OUTER, draw_overlay
from dermassist_client.result import LesionResult, build_result
from dermassist_client.verdict import NO_TRIAGE, REFER, ROUTINE, verdict_of
from tests.support import dicom_images as di
from tests.support.dicom_checks import synthetic_result

GREY = (200, 200, 200)


def _two_rows() -> dict[str, np.ndarray]:
    """Two rows that differ in every output, so reading row 0 for row 1 shows in every field."""
    probs = np.full((2, 8), 0.05, np.float32)
    probs[0, 3], probs[1, 4] = 0.65, 0.65  # row 0: MEL (index 3), row 1: NV (index 4)
    mask = np.zeros((2, 256, 256), np.uint8)
    mask[0, :10, :10] = 255
    mask[1, -10:, -10:] = 255
    crop = np.zeros((2, 224, 224, 3), np.uint8)
    crop[1] = 9
    cam = np.zeros((2, 224, 224), np.uint8)
    cam[1] = 200
    return {
        "PROBABILITIES": probs, "MASK": mask, "BBOX": np.array([[1, 2, 3, 4], [10, 20, 30, 40]], np.int32),
        "LESION_FRACTION": np.array([[0.25], [0.5]], np.float32), "CROP": crop, "CAM": cam,
        "REFER": np.array([[False], [True]]), "REFER_SCORE": np.array([[0.125], [0.75]], np.float32),
        "ASSESSABLE": np.array([[True], [False]]), "OOD_SCORE": np.array([[0.5], [2.0]], np.float32),
        "NOTE": np.array([[b""], [b"too dark"]], dtype=object),
    }


def test_each_row_of_a_batch_reads_its_own_triage_fields_mask_crop_and_cam() -> None:
    """Row 1's answer is row 1's values (all exactly representable in float32), none of row 0's."""
    outputs = _two_rows()
    second = build_result(outputs, 1, (600, 450), "dermassist", "1")
    assert (second.refer, second.refer_score, second.assessable, second.ood_score, second.note) == (
        True, 0.75, False, 2.0, "too dark")
    assert second.lesion_fraction == 0.5 and second.bbox.as_tuple() == (10, 20, 30, 40)
    assert second.mask[-1, -1] == 255 and second.mask[0, 0] == 0
    assert second.crop is not None and second.crop[0, 0, 0] == 9
    assert second.cam is not None and second.cam[0, 0] == 200
    first = build_result(outputs, 0, (600, 450), "dermassist", "1")
    assert (first.refer, first.refer_score, first.assessable, first.ood_score, first.note) == (
        False, 0.125, True, 0.5, "")
    assert first.lesion_fraction == 0.25 and first.mask[0, 0] == 255 and first.cam is not None and first.cam.max() == 0


def test_a_probabilities_row_of_the_wrong_length_is_refused() -> None:
    """The contract has 8 classes: a row of 7 is a server fault, not an answer with a silently wrong class."""
    outputs = {**_two_rows(), "PROBABILITIES": np.full((2, 7), 1 / 7, np.float32)}
    with pytest.raises(ResultError, match=r"must have 8 values, got shape \(7,\)"):
        build_result(outputs, 0, (600, 450), "dermassist", "1")


def test_the_json_summary_puts_each_triage_field_under_its_own_name() -> None:
    """Row 1 is not assessable with a lesion: lesion found, yet no diagnosis given."""
    summary = build_result(_two_rows(), 1, (600, 450), "dermassist", "1").to_dict()
    assert {k: summary[k] for k in ("refer", "refer_score", "assessable", "ood_score", "note")} == {
        "refer": True, "refer_score": 0.75, "assessable": False, "ood_score": 2.0, "note": "too dark"}
    assert summary["lesion_found"] is True and summary["diagnosis_given"] is False
    assert summary["original_size"] == [600, 450] and summary["top_class"] == "NV"
    assert summary["label"] is None  # no diagnosis given: the top class is not offered as one


# --- the verdict of a server that sent REFER but no ASSESSABLE ---------------------------------------

@pytest.mark.parametrize("refer, kind", [(True, REFER), (False, ROUTINE)])
def test_a_missing_assessable_leaves_the_refer_verdict_standing(refer: bool, kind: str) -> None:
    """Only both fields missing is NO TRIAGE; assessable None is not 'not assessable' (the rule is `is False`)."""
    verdict = verdict_of(refer, 0.5, None)
    assert verdict.kind == kind and "retake" not in verdict.advice


def test_a_refer_verdict_has_only_its_own_advice_and_the_note_is_trimmed() -> None:
    verdict = verdict_of(True, 0.9, True, "  small lesion \n")
    assert verdict.advice == "A dermatologist should see this lesion."  # no 'refer anyway' sentence: it is assessable
    assert verdict.note == "small lesion"
    assert verdict_of(None, None, None).kind == NO_TRIAGE


# --- settings: integers are refused when given as fractions, boundaries hold ------------------------

@pytest.mark.parametrize("kwargs, fragment", [
    ({"retries": 2.5}, "retries must be an integer"),
    ({"max_batch_size": 2.5}, "max_batch_size must be between 1"),
    ({"max_batch_size": 0}, "max_batch_size must be between 1"),
    ({"max_message_bytes": 2.5 * 1024 * 1024}, "max_message_bytes must be an integer"),
    ({"max_message_bytes": 1024 * 1024 - 1}, "max_message_bytes must be an integer >= 1 MiB"),
    ({"url": "h:0"}, "between 1 and 65535"),
    ({"timeout_s": "30"}, "timeout_s must be a positive number"),
    ({"keepalive_timeout_s": 0}, "keepalive_timeout_s must be a positive number"),
    ({"backoff_max_s": -1.0}, "backoff_max_s must be a positive number"),
])
def test_config_refuses_fractions_for_integers_and_values_past_the_limits(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ClientConfigError, match=fragment):
        ClientConfig(**{"url": "h:1", **kwargs})


def test_config_accepts_the_limits_themselves() -> None:
    """1 and 32 images per request, exactly 1 MiB, no retries, ports 1 and 65535 are all allowed."""
    cases: tuple[dict[str, Any], ...] = ({"max_batch_size": 1}, {"max_batch_size": 32},
                                          {"max_message_bytes": 1024 * 1024}, {"retries": 0}, {"url": "h:65535"})
    for kwargs in cases:
        config = ClientConfig(**{"url": "h:1", **kwargs})
        assert all(getattr(config, k) == v for k, v in kwargs.items())


@pytest.mark.parametrize("argv", [
    ["analyze", "a.jpg", "--retries", "2.5"],
    ["demo", "--port", "2.5"],
    ["dicom-listen", "--port", "2.5"],
])
def test_the_command_line_refuses_a_fraction_for_an_integer_flag(argv: list[str], capsys: pytest.CaptureFixture[str]
                                                                  ) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2 and "invalid int value: '2.5'" in capsys.readouterr().err


def test_connection_options_carry_each_flag_to_its_own_option() -> None:
    args = build_parser().parse_args(["analyze", "a.jpg", "--timeout", "12.5", "--retries", "0", "--ssl",
                                      "--root-certificates", "ca.pem", "--private-key", "key.pem",
                                      "--certificate-chain", "chain.pem", "--model-version", "4"])
    assert connection_options(args) == {"timeout": 12.5, "retries": 0, "model_version": "4", "ssl": True,
                                        "root_certificates": "ca.pem", "private_key": "key.pem",
                                        "certificate_chain": "chain.pem"}
    defaults = build_parser().parse_args(["demo"])
    # the defaults the help promises: the page retries once (a server that is down is said soon), analyze three times
    assert (defaults.timeout, defaults.retries, defaults.port) == (30.0, DEMO_RETRIES, DEMO_PORT) == (30.0, 1, 7860)
    assert build_parser().parse_args(["analyze", "a.jpg"]).retries == 3


@pytest.mark.parametrize("call", [
    lambda: check_port(2.5, "port"),  # type: ignore[arg-type]
    lambda: check_port(0, "port"),
    lambda: parse_host_port("pacs:2.5", "--pacs"),
    lambda: parse_host_port(":104", "--pacs"),
    lambda: check_ae_title("A" * 17, "AE"),
    lambda: check_ae_title("   ", "AE"),
    lambda: check_ae_title("A\\B", "AE"),
    lambda: OutputIdentity(segmentation_series_number=2.5),  # type: ignore[arg-type]
    lambda: OutputIdentity(report_series_number=2**31),
    lambda: OutputIdentity(manufacturer="M" * 65),
    lambda: PacsConfig("pacs", 104, "ORTHANC", timeout_s=0),
    lambda: PacsConfig("", 104, "ORTHANC"),
])
def test_dicom_settings_refuse_fractions_and_values_past_the_limits(call: Any) -> None:
    with pytest.raises(DicomError):
        call()


def test_dicom_settings_accept_the_limits_themselves(tmp_path: Path) -> None:
    """AE titles of 16 characters, LO values of 64, series numbers up to 2**31 - 1, port 0 only for the node."""
    assert check_ae_title("A" * 16, "AE") == "A" * 16
    assert parse_host_port("pacs.example.org:104", "--pacs") == ("pacs.example.org", 104)
    assert check_port(0, "node port", allow_zero=True) == 0
    identity = OutputIdentity(manufacturer="M" * 64, report_series_number=2**31 - 1)
    assert identity.report_series_number == 2**31 - 1
    node = NodeConfig(spool=tmp_path, port=0, retry_s=86400)
    assert node.port == 0 and node.retry_s == 86400
    assert str(PacsConfig("pacs", 104, "ORTHANC")) == "ORTHANC@pacs:104"


# --- the overlay: the box's outline at the image border --------------------------------------------

def _boxed(size: tuple[int, int], bbox: tuple[int, int, int, int], lesion: bool = True) -> LesionResult:
    """A result with an empty mask (no tint) and the given box; lesion found unless ``lesion`` is False."""
    outputs: dict[str, np.ndarray] = {
        "PROBABILITIES": np.full((1, 8), 0.125, np.float32), "MASK": np.zeros((1, 256, 256), np.uint8),
        "BBOX": np.array([bbox], np.int32), "LESION_FRACTION": np.array([[0.1 if lesion else 0.0]], np.float32)}
    return build_result(outputs, 0, size, "dermassist", "1")


def test_a_box_that_fills_the_image_is_outlined_on_its_last_pixels() -> None:
    """BBOX (0, 0, 600, 450) has exclusive ends: the black outline covers columns 0..2 and 597..599, rows 0..2 and
    447..449 (width max(2, round(600 / 200)) = 3, drawn inward), the white line inside it column 3 and 596, rows 3
    and 446 (width 3 // 2 = 1), and nothing else."""
    out = np.asarray(draw_overlay(Image.new("RGB", (600, 450), GREY), _boxed((600, 450), (0, 0, 600, 450))))
    row, column = out[225], out[:, 300]
    assert [tuple(row[x]) for x in (0, 2, 597, 599)] == [OUTLINE_OUTER] * 4
    assert [tuple(row[x]) for x in (3, 596)] == [OUTLINE_INNER] * 2
    assert [tuple(row[x]) for x in (4, 595)] == [GREY] * 2
    assert [tuple(column[y]) for y in (0, 2, 447, 449)] == [OUTLINE_OUTER] * 4
    assert [tuple(column[y]) for y in (3, 446)] == [OUTLINE_INNER] * 2
    assert [tuple(column[y]) for y in (4, 445)] == [GREY] * 2


def test_a_small_images_box_is_two_pixels_wide_and_ends_before_its_exclusive_corner() -> None:
    """100x80: width max(2, round(100 / 200) = 0) = 2; box (10, 10, 50, 40) outlines columns 10, 11, 48, 49 in black,
    12 and 47 in white."""
    out = np.asarray(draw_overlay(Image.new("RGB", (100, 80), GREY), _boxed((100, 80), (10, 10, 50, 40))))
    row = out[25]
    assert [tuple(row[x]) for x in (10, 11, 48, 49)] == [OUTLINE_OUTER] * 4
    assert [tuple(row[x]) for x in (12, 47)] == [OUTLINE_INNER] * 2
    assert [tuple(row[x]) for x in (9, 13, 46, 50)] == [GREY] * 4
    assert tuple(out[39, 30]) == OUTLINE_OUTER and tuple(out[40, 30]) == GREY  # the bottom edge is row 39
    assert tuple(out[37, 30]) == OUTLINE_INNER


def test_no_box_is_drawn_when_no_lesion_was_found() -> None:
    out = np.asarray(draw_overlay(Image.new("RGB", (600, 450), GREY), _boxed((600, 450), (0, 0, 600, 450), False)))
    assert np.all(out == GREY)


def test_the_mask_tint_is_forty_percent_red() -> None:
    """Grey 200 under MASK_ALPHA 0.4 of (255, 40, 40): 0.6 * 200 + 0.4 * 255 = 222, 0.6 * 200 + 0.4 * 40 = 136."""
    outputs: dict[str, np.ndarray] = {
        "PROBABILITIES": np.full((1, 8), 0.125, np.float32), "MASK": np.full((1, 256, 256), 255, np.uint8),
        "BBOX": np.array([[0, 0, 600, 450]], np.int32), "LESION_FRACTION": np.array([[1.0]], np.float32)}
    out = np.asarray(draw_overlay(Image.new("RGB", (600, 450), GREY), build_result(outputs, 0, (600, 450), "d", "1")))
    assert np.abs(out[225, 300].astype(int) - np.array([222, 136, 136])).max() <= 1


# --- the command line's JSON ----------------------------------------------------------------------

class _FakeClient:
    """Stands in for DermAssistClient: answers every path but those naming 'bad'."""

    options: dict[str, Any] = {}

    def __init__(self, url: str, protocol: str, **options: Any) -> None:
        type(self).options = {"url": url, "protocol": protocol, **options}

    def __enter__(self) -> _FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def analyze(self, path: str) -> LesionResult:
        if "bad" in path:
            raise InvalidImageError(f"{path} is not an image")
        return build_result(_two_rows(), 1, (600, 450), "dermassist", "7")


def test_analyze_json_prints_one_object_per_image_with_its_path_and_fails_with_1(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import dermassist_client.client

    monkeypatch.setattr(dermassist_client.client, "DermAssistClient", _FakeClient)
    assert main(["analyze", "a.jpg", "--json", "--retries", "0"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    expected = {"image": "a.jpg", **build_result(_two_rows(), 1, (600, 450), "dermassist", "7").to_dict()}
    assert json.loads(line) == expected and _FakeClient.options["retries"] == 0
    assert main(["analyze", "bad1.jpg", "a.jpg", "bad2.jpg", "--json"]) == 1  # any image failure: exit status 1
    captured = capsys.readouterr()
    records = [json.loads(x) for x in captured.out.splitlines()]
    assert [(r["image"], "error" in r) for r in records] == [("bad1.jpg", True), ("a.jpg", False), ("bad2.jpg", True)]
    assert "bad1.jpg: FAILED: bad1.jpg is not an image" in captured.err and "bad2.jpg: FAILED" in captured.err


def test_interop_run_names_the_patient_of_plain_pictures_and_writes_no_empty_bundle(tmp_path: Path) -> None:
    """--patient-id and --patient-system become the subject's identifier; a run with nothing analysed writes nothing."""
    from dermassist_client.interop import InteropRun

    assert InteropRun(_FakeClient("h:1", "grpc"), fhir_out=tmp_path / "empty.json").finish() is None
    assert not (tmp_path / "empty.json").exists()
    picture = tmp_path / "a.png"
    Image.new("RGB", (60, 40), GREY).save(picture)
    run = InteropRun(_FakeClient("h:1", "grpc"), fhir_out=tmp_path / "b.json", patient_id="MRN-7",
                     patient_system="urn:oid:1.2.3")
    assert run.analyze(str(picture))["top_class"] == "NV"
    written = run.finish()
    assert written == tmp_path / "b.json"
    (report,) = resources_by_type(json.loads(written.read_text()))["DiagnosticReport"]
    assert report["subject"]["identifier"] == {"system": "urn:oid:1.2.3", "value": "MRN-7"}


# --- FHIR: the conclusion sentence, the category, the scores ---------------------------------------

def test_the_conclusion_is_one_sentence_per_finding_then_the_machine_output_caveat() -> None:
    """synthetic_result: not assessable, refer True (0.81), note without a full stop; probabilities 1 - 7 * 0.02."""
    caveat = "Machine output, not reviewed by a clinician."
    assert conclusion(synthetic_result((600, 450))) == (
        "The image is not assessable, so no diagnosis is given. "
        "Referral to a dermatologist recommended because the image is not assessable. "
        f"image too blurred: sharpness 0.4 of the minimum. {caveat}")
    assessable = synthetic_result((600, 450), assessable=True)
    assert conclusion(assessable) == (
        f"Most likely Melanoma (MEL, probability 0.86). Referral to a dermatologist recommended (score 0.81). {caveat}")
    no_score = LesionResult(**{**assessable.__dict__, "refer_score": None, "note": "Check again!"})
    assert conclusion(no_score) == ("Most likely Melanoma (MEL, probability 0.86). "
                                    f"Referral to a dermatologist recommended. Check again! {caveat}")
    no_assessable = LesionResult(**{**assessable.__dict__, "assessable": None})  # REFER sent, ASSESSABLE not
    assert conclusion(no_assessable) == conclusion(assessable)
    kept = LesionResult(**{**synthetic_result((600, 450)).__dict__, "refer": False})  # not assessable, not referred
    assert conclusion(kept) == (
        "The image is not assessable, so no diagnosis is given. No referral indicated by the model, but the image is "
        f"not assessable: retake it before relying on any answer. image too blurred: sharpness 0.4 of the minimum. "
        f"{caveat}")  # no '(score 0.81)': the score of a picture that is not assessable is not one to read
    old_server = synthetic_result((600, 450), triage=False, lesion=False)  # assessable None: not 'not assessable'
    assert conclusion(old_server) == f"No lesion was found, so no diagnosis is given. {caveat}"


def test_every_observation_is_in_the_imaging_category_and_the_scores_sit_where_they_belong() -> None:
    """HL7 observation-category 'imaging'; ASSESSABLE carries OOD_SCORE 0.62, REFER carries REFER_SCORE 0.81;
    the lesion share is in UCUM '%' with the area in mm2 as its LESION_AREA component. (An assessable answer: one
    that is not has no REFER_SCORE and no class probabilities, test_fhir.)"""
    result = synthetic_result((600, 450), assessable=True)
    context = ImagingContext(lesion_area_mm2=12.5)
    bundle = build_bundle([(result, context)], client_version="9.9.9", now=datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
    data = json.loads(bundle.model_dump_json(exclude_none=True, by_alias=True))
    assert all(e["request"] == {"method": "POST", "url": e["resource"]["resourceType"]} for e in data["entry"])
    resources = resources_by_type(data)
    imaging = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "imaging"}]}]
    assert [o["category"] for o in resources["Observation"]] == [imaging] * 5
    observations = {o["code"]["coding"][0]["code"]: o for o in resources["Observation"]}
    (ood,) = observations["ASSESSABLE"]["component"]
    assert ood["code"]["coding"][0]["code"] == "OOD_SCORE" and ood["valueQuantity"]["value"] == pytest.approx(0.62)
    (refer_score,) = observations["REFER"]["component"]
    assert refer_score["code"]["coding"][0]["code"] == "REFER_SCORE" and refer_score["valueQuantity"]["value"] == 0.81
    share = observations["LESION_FRACTION"]
    assert (share["valueQuantity"]["unit"], share["valueQuantity"]["code"]) == ("%", "%")
    (area,) = share["component"]
    assert area["code"]["coding"][0]["code"] == "LESION_AREA" and area["valueQuantity"]["value"] == 12.5
    (device,) = resources["Device"]
    assert [v["value"] for v in device["version"]] == ["3", "9.9.9"]
    assert device["deviceName"] == [{"name": "DermAssist dermassist", "type": "model-name"}]
    assert observations["DIAGNOSIS"]["issued"].startswith("2026-12-03T09:00:00")


def test_codes_carry_their_meaning_as_text_and_the_class_its_name() -> None:
    """terminology: DIAGNOSIS means 'Most likely skin lesion class', the report 'DermAssist dermoscopy analysis';
    the coded class reads as its name, Melanoma."""
    resources = resources_by_type(json.loads(build_bundle([(synthetic_result((600, 450), assessable=True), None)])
                                             .model_dump_json(exclude_none=True, by_alias=True)))
    diagnosis = next(o for o in resources["Observation"] if o["code"]["coding"][0]["code"] == "DIAGNOSIS")
    assert diagnosis["code"]["text"] == "Most likely skin lesion class"
    assert diagnosis["valueCodeableConcept"]["text"] == "Melanoma"
    (report,) = resources["DiagnosticReport"]
    assert report["code"] == {"coding": [{"system": "urn:dermassist:codes", "code": "DERMOSCOPY_ANALYSIS",
                                          "display": "DermAssist dermoscopy analysis"}],
                              "text": "DermAssist dermoscopy analysis"}
    assert report["conclusionCode"][0]["text"] == "Melanoma"


def test_the_context_of_a_dicom_dataset_takes_the_content_date_first() -> None:
    """ContentDate 20261203 -> 2026-12-03 (StudyDate only when there is none); empty values are absent."""
    ds = SimpleNamespace(PatientID="P1", IssuerOfPatientID="", PatientName="Doe^Jane", StudyInstanceUID="1.2.3",
                         AccessionNumber="A7", SOPInstanceUID="1.2.3.4", ContentDate="20261203", StudyDate="20260101")
    context = ImagingContext.from_dataset(ds)
    assert (context.patient_id, context.patient_issuer, context.patient_name) == ("P1", None, "Doe^Jane")
    assert (context.study_uid, context.accession_number, context.image_uid) == ("1.2.3", "A7", "1.2.3.4")
    assert context.effective == "2026-12-03"
    assert ImagingContext.from_dataset(SimpleNamespace(StudyDate="20260107")).effective == "2026-01-07"
    assert ImagingContext.from_dataset(SimpleNamespace(StudyDate="2026")).effective is None  # not a DICOM DA


# --- DICOM SEG and SR: coded concepts and series numbers --------------------------------------------

@pytest.fixture
def dicom_source(tmp_path: Path, ham_jpeg: bytes) -> DicomImage:
    """A dermoscopy photograph whose Patient Orientation (anterior, foot) the SEG must copy."""
    dataset = di.photograph(ham_jpeg, di.Patient().with_study())
    dataset.PatientOrientation = ["A", "F"]
    return read_dicom(di.save(dataset, tmp_path / "src.dcm"))


def test_the_seg_codes_its_segment_and_both_outputs_carry_their_own_series_numbers(dicom_source: DicomImage) -> None:
    """SNOMED CT: category 49755003 Morphologically abnormal structure, type 52988006 Lesion, region 39937001 Skin;
    the identity's series numbers go to the SEG (77) and the SR (78) respectively."""
    identity = OutputIdentity(segmentation_series_number=77, report_series_number=78, institution_name="Unit Clinic")
    analysis = build_analysis(dicom_source, synthetic_result(dicom_source.size, assessable=True), identity)
    seg, sr = analysis.segmentation, analysis.report
    assert seg is not None and (seg.SeriesNumber, sr.SeriesNumber) == (77, 78)
    assert seg.InstanceNumber == sr.InstanceNumber == 1  # each is the only instance of its own series
    assert seg.InstitutionName == sr.InstitutionName == "Unit Clinic"
    (segment,) = seg.SegmentSequence

    def code(item: pydicom.Dataset) -> tuple[str, str]:
        return (item.CodingSchemeDesignator, item.CodeValue)

    assert code(segment.SegmentedPropertyCategoryCodeSequence[0]) == ("SCT", "49755003")
    assert code(segment.SegmentedPropertyTypeCodeSequence[0]) == ("SCT", "52988006")
    assert code(segment.AnatomicRegionSequence[0]) == ("SCT", "39937001")
    assert (segment.SegmentNumber, segment.SegmentLabel, segment.SegmentAlgorithmType) == (1, "Lesion", "AUTOMATIC")
    assert code(segment.SegmentationAlgorithmIdentificationSequence[0].AlgorithmFamilyCodeSequence[0]) == (
        "DCM", "123110")  # Artificial Intelligence
    assert seg.ContentLabel == "LESION" and seg.ManufacturerModelName == "dermassist"
    assert list(seg.PatientOrientation) == ["A", "F"]
    default = build_analysis(dicom_source, synthetic_result(dicom_source.size))
    assert default.segmentation is not None
    assert (default.segmentation.SeriesNumber, default.report.SeriesNumber) == (9901, 9902)  # OutputIdentity defaults


def test_the_sr_says_no_to_referral_and_names_the_procedure_and_site(dicom_source: DicomImage) -> None:
    """refer False is coded SCT 373067005 (No), not left out; procedure SCT 446078004 Dermoscopic photography."""
    result = LesionResult(**{**synthetic_result(dicom_source.size, assessable=True).__dict__, "refer": False})
    sr = build_analysis(dicom_source, result, OutputIdentity(device_serial_number="node-9")).report
    found: dict[str, tuple[str, str]] = {}
    texts: dict[str, str] = {}

    def walk(items: Any) -> None:
        for item in items:
            if item.ValueType == "CODE":
                name, value = item.ConceptNameCodeSequence[0], item.ConceptCodeSequence[0]
                found[name.CodeMeaning] = (value.CodingSchemeDesignator, value.CodeValue)
            elif item.ValueType == "TEXT":
                texts[item.ConceptNameCodeSequence[0].CodeMeaning] = item.TextValue
            walk(item.get("ContentSequence", []))

    walk(sr.ContentSequence)
    assert found["Referral to a dermatologist recommended"] == ("SCT", "373067005")
    assert found["Image assessable"] == ("SCT", "373066001")
    assert found["Procedure reported"] == ("SCT", "446078004")
    assert found["Finding Site"] == ("SCT", "39937001")
    # the observer is the device: manufacturer and model as its name, the node's serial number
    assert texts["Device Observer Name"] == "DermAssist dermassist"
    assert texts["Device Observer Serial Number"] == "node-9"
    (scheme,) = sr.CodingSchemeIdentificationSequence  # the private scheme, declared by its maker
    assert (scheme.CodingSchemeDesignator, scheme.CodingSchemeName, scheme.CodingSchemeResponsibleOrganization) == (
        "99DERMASSIST", "DermAssist codes", "DermAssist")
