"""DICOM in and out without a server: real JPEGs made into DICOM, synthetic results made into SEG and SR.

The outputs are checked with dciodvfy (no errors; the warnings are listed in EXPECTED_WARNINGS) and
read back both by walking the raw content tree and through highdicom's SR API.
"""
from __future__ import annotations

import io
import re
import warnings

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.sr.codedict import codes
from pydicom.uid import SecondaryCaptureImageStorage, VLPhotographicImageStorage

from dermassist_client.dicom.analysis import build_analysis
from dermassist_client.dicom.errors import (
    DicomOutputError,
    MissingIdentifierError,
    NoPixelDataError,
    NotAPhotographError,
    UnreadableDicomError,
    UnsupportedTransferSyntaxError,
)
from dermassist_client.dicom.identity import OutputIdentity
from dermassist_client.dicom.report import NO_LESION_NOTE, lesion_area_mm2
from dermassist_client.dicom.source import read_dicom
from dermassist_client.errors import DermAssistClientError
from tests.support import dicom_images as di
from tests.support.dicom_checks import EXPECTED_WARNINGS, check_seg_and_sr, dciodvfy, synthetic_result

PATIENT = di.Patient(patient_id="DA-UNIT-0042", patient_name="Unit^Test", issuer="DERMASSIST-TEST").with_study()


@pytest.fixture(scope="module")
def ham_rgb(ham_jpeg) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(ham_jpeg)).convert("RGB"))


@pytest.mark.parametrize("sop_class,compressed", [
    (di.DermoscopicPhotographyImageStorage, True), (di.DermoscopicPhotographyImageStorage, False),
    (VLPhotographicImageStorage, True), (SecondaryCaptureImageStorage, False),
])
def test_colour_photographs_decode_to_the_jpeg_pixels(tmp_path, ham_jpeg, ham_rgb, sop_class, compressed):
    path = di.save(di.photograph(ham_jpeg, PATIENT, sop_class=sop_class, compressed=compressed), tmp_path / "a.dcm")
    image = read_dicom(path)
    assert image.size == (600, 450) and image.pixels.dtype == np.uint8
    # JPEG baseline is decoded by Pillow both here and in PIL: the same pixels, not just similar ones.
    assert np.array_equal(image.pixels, ham_rgb)
    assert image.dataset.PatientID == PATIENT.patient_id and not image.pixels.flags.writeable


def test_bytes_and_datasets_read_like_files(tmp_path, ham_jpeg):
    ds = di.photograph(ham_jpeg, PATIENT)
    path = di.save(ds, tmp_path / "a.dcm")
    assert np.array_equal(read_dicom(path.read_bytes()).pixels, read_dicom(ds).pixels)


def test_a_deflated_file_is_refused_before_it_is_inflated_and_a_pipe_is_never_opened(tmp_path, ham_jpeg, monkeypatch):
    """A 1.47 MB Deflated file inflated whole to 2.3 GB (fuzz audit 11): refused from its file meta information, as
    the DICOM node refuses the transfer syntax; a named pipe named as a DICOM file hung."""
    import os

    from pydicom.uid import DeflatedExplicitVRLittleEndian


    cut = di.save(di.photograph(ham_jpeg, PATIENT, compressed=False), tmp_path / "cut.dcm").read_bytes()[:200]
    with pytest.raises(DermAssistClientError) as damaged:  # the look at its meta information leaves the stream at 0
        read_dicom(cut)
    assert "is not a DICOM file" not in str(damaged.value) and "cut off" in str(damaged.value)
    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = tmp_path / "deflated.dcm"
    ds.save_as(path, enforce_file_format=True)
    inflated: list[object] = []
    monkeypatch.setattr(pydicom, "dcmread", lambda *a, **k: inflated.append(a) or pytest.fail("the data set was read"))
    for source in (path, path.read_bytes()):
        with pytest.raises(UnsupportedTransferSyntaxError, match="Deflated Explicit VR Little Endian transfer syntax"):
            read_dicom(source)
    assert inflated == []
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableDicomError, match=r"pipe.dcm is a named pipe \(FIFO\), not a regular file"):
        read_dicom(fifo)
    with pytest.raises(UnreadableDicomError, match="is a folder, not a regular file; expected a DICOM Part 10 file"):
        read_dicom(tmp_path)  # it was called "truncated or corrupt"


def test_the_icc_profile_travels_with_the_pixels_to_the_service(ham_jpeg):
    """An instance's ICC Profile (0028,2000) goes with its pixels, so the service converts its colours to sRGB."""
    from dermassist_client.images import encode_image
    from tests.support import icc

    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    plain = read_dicom(ds)
    assert plain.icc_profile is None
    assert "icc_profile" not in Image.open(io.BytesIO(encode_image(plain.photograph()).data)).info
    ds.ICCProfile = icc.display_p3()
    tagged = read_dicom(ds)
    sent = Image.open(io.BytesIO(encode_image(tagged.photograph()).data))
    assert tagged.icc_profile == icc.display_p3() and sent.info["icc_profile"] == icc.display_p3()
    assert np.array_equal(np.asarray(sent), tagged.pixels)


@pytest.mark.parametrize("make,error,words", [
    (lambda jpeg, tmp: di.save(di.ct_slice(PATIENT), tmp / "ct.dcm"), NotAPhotographError,
     ["CT Image Storage", "not an RGB photograph", "MONOCHROME2", "1 sample(s)"]),
    (lambda jpeg, tmp: di.save(di.without_pixels(jpeg, PATIENT), tmp / "np.dcm"), NoPixelDataError,
     ["has no Pixel Data (7FE0,0010)"]),
    (lambda jpeg, tmp: di.truncated_file(jpeg, PATIENT, tmp / "cut.dcm"), UnreadableDicomError,
     ["cannot be decoded", "truncated or corrupt", "less than expected"]),
    (lambda jpeg, tmp: di.save(di.with_transfer_syntax(jpeg, PATIENT), tmp / "hevc.dcm"),
     UnsupportedTransferSyntaxError, ["HEVC/H.265", "1.2.840.10008.1.2.4.107", "uncompressed or as JPEG baseline"]),
    (lambda jpeg, tmp: di.save(di.with_transfer_syntax(jpeg, PATIENT, di.UID("1.2.840.10008.1.2.4.70")),
                               tmp / "lossless.dcm"),
     UnsupportedTransferSyntaxError, ["JPEG Lossless", "no decoder for it is installed", "pylibjpeg"]),
    (lambda jpeg, tmp: (tmp / "photo.jpg").write_bytes(jpeg) and tmp / "photo.jpg", UnreadableDicomError,
     ["is not a DICOM file", "'DICM' at byte 128"]),
])
def test_bad_inputs_get_a_clear_error_and_their_own_status(tmp_path, ham_jpeg, make, error, words):
    path = make(ham_jpeg, tmp_path)
    with pytest.raises(error) as caught:
        read_dicom(path)
    message = str(caught.value)
    assert str(path) in message and all(w in message for w in words), message
    assert isinstance(caught.value, DermAssistClientError)
    assert 0xC000 <= caught.value.status <= 0xCFFF and 0 < len(caught.value.comment) <= 64


def test_a_frame_no_decoder_can_read_is_refused_without_pydicoms_traceback(tmp_path, ham_jpeg, caplog):
    """pydicom logged each plugin's failure as an ERROR with a traceback (on stderr) before the clean refusal."""
    import logging
    import threading

    from dermassist_client.dicom.source import PIXEL_DECODER_LOGGER

    cut = di.truncated_file(ham_jpeg, PATIENT, tmp_path / "cut.dcm")  # no plugin decodes its frame
    with caplog.at_level(logging.DEBUG, logger="pydicom"), pytest.raises(UnreadableDicomError, match="cannot be decoded"):
        read_dicom(cut)
    assert not [r for r in caplog.records if r.name == PIXEL_DECODER_LOGGER and r.levelno >= logging.ERROR]
    decoding, other = threading.Event(), threading.Event()
    with caplog.at_level(logging.DEBUG, logger="pydicom"):
        logging.getLogger(PIXEL_DECODER_LOGGER).error("not while decoding: kept")
        from dermassist_client.dicom import source as source_module

        def decode_in_a_thread() -> None:  # while this thread decodes, another thread's ERROR is kept
            with source_module._decoder_failures_unlogged():
                decoding.set()
                other.wait(5)
                logging.getLogger(PIXEL_DECODER_LOGGER).error("this thread's plugin failure: dropped")

        worker = threading.Thread(target=decode_in_a_thread)
        worker.start()
        decoding.wait(5)
        logging.getLogger(PIXEL_DECODER_LOGGER).error("another thread's: kept")
        other.set()
        worker.join(5)
    kept = [r.getMessage() for r in caplog.records if r.name == PIXEL_DECODER_LOGGER]
    assert kept == ["not while decoding: kept", "another thread's: kept"]


@pytest.mark.parametrize("sop_class,kind", [
    ("1.2.840.10008.5.1.4.1.1.2", "CT Image Storage"), ("1.2.840.10008.5.1.4.1.1.77.1.1.1", "Video Endoscopic"),
    (None, "without a SOP Class UID")])
def test_rgb_pixels_of_another_storage_class_are_refused_as_not_a_photograph(ham_jpeg, sop_class, kind):
    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    if sop_class is None:
        del ds.SOPClassUID
    else:
        ds.SOPClassUID = sop_class
    with pytest.raises(NotAPhotographError, match=f"{kind}.*not a photograph.*store the picture as one of those"):
        read_dicom(ds, name="odd.dcm")


@pytest.mark.parametrize("compressed", [True, False], ids=["jpeg", "native"])
@pytest.mark.parametrize("change", ["no Rows", "no Columns", "Rows 0"])
def test_an_instance_without_rows_or_columns_is_refused_as_unreadable(ham_jpeg, compressed, change):
    """It was an AttributeError: a traceback that ended the command line's batch, and 0xC211 with no comment."""
    ds = di.photograph(ham_jpeg, PATIENT, compressed=compressed)
    if change == "Rows 0":
        ds.Rows = 0
    else:
        delattr(ds, change.split()[1])
    with pytest.raises(UnreadableDicomError) as caught:
        read_dicom(ds, name="unsized.dcm")
    element = "Columns (0028,0011)" if change == "no Columns" else "Rows (0028,0010)"
    assert f"has no {element} (absent, empty or 0)" in str(caught.value)
    assert caught.value.status == 0xC000 and caught.value.comment == "no Rows or Columns"


@pytest.mark.parametrize("modality", ["CT", None, "DMS"], ids=["CT", "absent", "DMS"])
def test_a_dermoscopy_instance_with_another_modality_is_analysed_with_a_warning(ham_jpeg, caplog, modality):
    """A misconfigured modality's DMS instance with Modality CT, or none, was analysed without a word."""
    import logging

    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    if modality is None:
        del ds.Modality
    else:
        ds.Modality = modality
    with caplog.at_level(logging.WARNING, logger="dermassist_client.dicom.source"):
        image = read_dicom(ds, name="odd.dcm")
    warned = [r.getMessage() for r in caplog.records if "where DICOM defines DMS" in r.getMessage()]
    assert image.size == (600, 450)
    if modality == "DMS":
        assert warned == []
    else:
        (text,) = warned
        assert f"whose Modality is {modality or 'absent'}" in text and f"carry {modality or 'OT'} as it came" in text


def test_an_instance_without_its_study_uid_is_refused_by_name(ham_jpeg):
    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    del ds.StudyInstanceUID
    with pytest.raises(MissingIdentifierError, match=r"no StudyInstanceUID \(0020,000D\); its segmentation and report") as e:
        read_dicom(ds, name="anon.dcm")
    assert e.value.status == 0xC000 and e.value.comment


def test_an_anonymised_instance_still_gets_its_seg_and_sr(tmp_path, ham_jpeg, caplog):
    """Anonymisers drop Type 2 patient and study attributes, and some write dates that are not DICOM dates."""
    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyID", "AccessionNumber",
                    "StudyTime", "ReferringPhysicianName", "Modality"):
        delattr(ds, keyword)
    with pytest.warns(UserWarning, match="Invalid value for VR DA"):  # pydicom warns, and writes it as given
        ds.StudyDate = "2026"
    image = read_dicom(di.save(ds, tmp_path / "anon.dcm"))
    analysis = build_analysis(image, synthetic_result(image.size))
    seg_path, sr_path = analysis.write(tmp_path / "out")
    for written in (pydicom.dcmread(seg_path), pydicom.dcmread(sr_path)):
        assert written.PatientID == "" and written.StudyDate == "" and written.StudyInstanceUID == ds.StudyInstanceUID
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("dermassist_client")]
    assert sum("StudyDate is not a DICOM DA value" in m for m in ours) == 1  # one copy serves the SEG and the SR
    # a malformed date may be a birth date: its value is never logged (UIDs, which may hold its digits, left aside)
    assert not any("2026" in re.sub(r"\d+(?:\.\d+){3,}", "UID", m) for m in ours)
    assert "PatientID" not in image.dataset and image.dataset.StudyDate == "2026"  # the instance stays as it came
    assert dciodvfy(seg_path).errors == [] and dciodvfy(sr_path).errors == []


@pytest.mark.parametrize("keyword,value", [("StudyDate", "2026.12.03"), ("StudyDate", "20260230"),
                                           ("StudyDate", "00000000"), ("StudyTime", "12:30:00")])
def test_retired_and_impossible_dates_are_written_empty_and_the_instance_keeps_its_own(tmp_path, ham_jpeg, caplog,
                                                                                      keyword, value):
    """Old ACR-NEMA dates ("2026.12.03", "12:30:00"), which pydicom reads, and dates no calendar has: a DICOM object
    may not carry them, so the SEG and SR carry the attribute empty; the instance, held in memory as a node holds
    what it received, is left as it came."""
    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    with warnings.catch_warnings():  # pydicom warns about some of them, and keeps the value as given
        warnings.simplefilter("ignore")
        setattr(ds, keyword, value)
    image = read_dicom(ds, name="old")
    seg_path, sr_path = build_analysis(image, synthetic_result(image.size)).write(tmp_path / "out")
    for written in (pydicom.dcmread(seg_path), pydicom.dcmread(sr_path)):
        assert getattr(written, keyword) == ""
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("dermassist_client")]
    assert any(f"{keyword} is not a DICOM" in m for m in ours) and not any(value in m for m in ours)
    assert str(getattr(image.dataset, keyword)) == value
    assert dciodvfy(seg_path).errors == [] and dciodvfy(sr_path).errors == []


def test_a_japanese_instance_with_code_extensions_gets_its_seg_and_sr(tmp_path, ham_jpeg):
    """"\\ISO 2022 IR 87": the empty first value is the default repertoire (PS3.3 C.12.1.1.2), which the SEG and SR
    spell out; the name comes back as written."""
    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientName = "Yamada^Tarou=\u5c71\u7530^\u592a\u90ce=\u3084\u307e\u3060^\u305f\u308d\u3046"
    image = read_dicom(di.save(ds, tmp_path / "jis.dcm"))
    seg_path, sr_path = build_analysis(image, synthetic_result(image.size)).write(tmp_path / "out")
    for written in (pydicom.dcmread(seg_path), pydicom.dcmread(sr_path)):
        assert list(written.SpecificCharacterSet) == ["ISO 2022 IR 6", "ISO 2022 IR 87"]
        assert str(written.PatientName) == str(image.dataset.PatientName)
        assert "\u5c71\u7530" in str(written.PatientName)
    assert list(image.dataset.SpecificCharacterSet) == ["", "ISO 2022 IR 87"]
    assert dciodvfy(seg_path).errors == [] and dciodvfy(sr_path).errors == []


@pytest.mark.parametrize("uid", ["1.2/../../../outside/PWNED", "1.2.3.", "1.02.3", "1." + "2" * 63, "1.2.3x"])
def test_a_sop_instance_uid_that_is_not_a_uid_is_refused_before_it_names_a_file(ham_jpeg, uid):
    """The node names its spool folders by the SOP Instance UID: "1.2/../.." would write and delete outside it."""
    from dermassist_client.dicom.errors import InvalidIdentifierError

    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom only warns about an invalid UI value
        ds.SOPInstanceUID = uid
    with pytest.raises(InvalidIdentifierError, match=r"SOPInstanceUID \(0008,0018\) that is not a DICOM UID") as e:
        read_dicom(ds, name="sent")
    assert e.value.status == 0xC000


def test_a_dicom_declaring_more_pixels_than_the_service_takes_is_refused_before_decoding(ham_jpeg):
    """A few KB of compressed pixel data can declare 65535 x 65535 (12.9 GB decoded): refused by its header."""
    from dermassist_client.dicom.source import MAX_PIXELS
    from preprocess.contract import MAX_IMAGE_PIXELS

    assert MAX_PIXELS == MAX_IMAGE_PIXELS  # the client's copy of the service's limit
    ds = di.photograph(ham_jpeg, PATIENT, compressed=True)
    ds.Rows, ds.Columns = 12000, 12000  # the JPEG inside is 600 x 450: never decoded
    with pytest.raises(NotAPhotographError, match=r"declares 12000 x 12000 pixels \(144.0 megapixels\); .* at most 50"):
        read_dicom(ds, name="bomb")


def test_multiframe_is_refused(ham_jpeg):
    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    ds.NumberOfFrames = 2
    with pytest.raises(NotAPhotographError, match="has 2 frames"):
        read_dicom(ds, name="cine")


def sr_items(ds) -> list[tuple[str, object]]:
    """Every content item under the root as (code meaning of its concept name, its value), depth first."""
    found = []

    def walk(items):
        for item in items:
            name = item.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in item else ""
            kind = item.ValueType
            if kind == "NUM":
                value = float(item.MeasuredValueSequence[0].NumericValue)
            elif kind == "CODE":
                code = item.ConceptCodeSequence[0]
                value = (code.CodingSchemeDesignator, code.CodeValue)
            elif kind == "TEXT":
                value = item.TextValue
            elif kind == "IMAGE":
                ref = item.ReferencedSOPSequence[0]
                value = (ref.ReferencedSOPInstanceUID, ref.get("ReferencedSegmentNumber"), ref.get("ReferencedFrameNumber"))
            else:
                value = None
            found.append((name, value))
            walk(item.get("ContentSequence", []))

    walk(ds.ContentSequence)
    return found


@pytest.fixture
def source(tmp_path, ham_jpeg):
    return read_dicom(di.save(di.photograph(ham_jpeg, PATIENT, pixel_spacing_mm=0.05), tmp_path / "src.dcm"))


def test_seg_and_sr_with_triage_outputs(tmp_path, source):
    result = synthetic_result(source.size)
    analysis = build_analysis(source, result, OutputIdentity(device_serial_number="node-7"))
    seg_path, sr_path = analysis.write(tmp_path / "out")

    seg = check_seg_and_sr(seg_path, sr_path, source.size, result)
    assert seg.SegmentationType == "BINARY"
    lesion_pixels = int(seg.pixel_array.astype(bool).sum())  # the served mask at the source's size (checked above)
    assert seg.PatientID == PATIENT.patient_id and seg.StudyInstanceUID == PATIENT.study_uid
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID \
        == source.dataset.SOPInstanceUID
    assert seg.DeviceSerialNumber == "node-7" and "dermassist 3" in seg.SoftwareVersions

    sr = pydicom.dcmread(sr_path)
    assert sr.PatientID == PATIENT.patient_id and sr.StudyInstanceUID == PATIENT.study_uid
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99DERMASSIST"
    items = dict(sr_items(sr))
    assert "Differential Diagnosis/Impression" not in items  # not assessable: no diagnosis coded
    assert items["Finding"] == ("SCT", "52988006")  # finding type: Lesion
    # not assessable: no score to read, neither the class probabilities nor the refer score
    assert [i for i in items if i.startswith("Probability of")] == []
    assert items["Referral to a dermatologist recommended"] == ("SCT", "373066001")  # Yes
    assert items["Image assessable"] == ("SCT", "373067005")  # No
    assert items["Out-of-distribution score (1.0 is the limit applied)"] == pytest.approx(0.62)
    assert items["Image problems"] == result.note
    assert items["Lesion area as a share of the image"] == pytest.approx(100 * result.lesion_fraction)
    assert items["Area"] == pytest.approx(lesion_pixels * 0.05 * 0.05)
    assert items["Algorithm Name"] == "dermassist" and items["Algorithm Version"] == "3"
    segment_refs = [v for n, v in sr_items(sr) if n == "Referenced Segmentation Frame"]
    assert segment_refs == [(seg.SOPInstanceUID, 1, None)]

    parsed = hd.sr.ComprehensiveSR.from_dataset(sr)
    (group,) = parsed.content.get_planar_roi_measurement_groups()
    assert group.referenced_segmentation_frame.referenced_sop_instance_uid == seg.SOPInstanceUID
    assert group.get_measurements(name=codes.SCT.Area)[0].value == pytest.approx(lesion_pixels * 0.0025)
    assert group.get_qualitative_evaluations(name=codes.DCM.DifferentialDiagnosisImpression) == []


@pytest.mark.parametrize("laterality", ["L", "U", None], ids=["left", "unpaired", "none"])
def test_the_body_site_and_laterality_travel_to_the_seg_the_sr_and_fhir(tmp_path, ham_jpeg, laterality):
    """The source's Anatomic Region ("Back") and Image Laterality were dropped: the SEG and SR said Skin, FHIR had no
    bodySite, and three moles of one study could not be told apart in the EHR."""
    import json

    from pydicom.dataset import Dataset as PlainDataset

    from dermassist_client.fhir import ImagingContext, build_bundle, bundle_json

    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    region = PlainDataset()
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "123851003", "SCT", "Back"
    ds.AnatomicRegionSequence = [region]
    if laterality:
        ds.ImageLaterality = laterality
    image = read_dicom(ds)
    result = synthetic_result(image.size, assessable=True)
    seg_path, sr_path = build_analysis(image, result).write(tmp_path / "out")
    check_seg_and_sr(seg_path, sr_path, image.size, result)  # dciodvfy: no error
    seg = pydicom.dcmread(seg_path)
    (seg_region,) = seg.SegmentSequence[0].AnatomicRegionSequence
    assert (seg_region.CodeValue, seg_region.CodeMeaning) == ("123851003", "Back")
    sites = [value for name, value in sr_items(pydicom.dcmread(sr_path)) if name in ("Finding Site", "Laterality")]
    assert sites == [("SCT", "123851003")] + ([("SCT", "7771000")] if laterality == "L" else [])
    bundle = json.loads(bundle_json(build_bundle([(result, ImagingContext.from_dataset(ds))])))
    body_sites = [e["resource"]["bodySite"] for e in bundle["entry"] if "bodySite" in e["resource"]]
    assert body_sites and all(site == {"text": "Back (left)" if laterality == "L" else "Back",
                                       "coding": [{"system": "http://snomed.info/sct", "code": "123851003",
                                                   "display": "Back"}]} for site in body_sites)


@pytest.mark.parametrize("case", ["undeclared Latin-1 source", "identity outside the source's set", "ASCII"])
def test_the_outputs_declare_utf8_when_their_text_needs_it(tmp_path, ham_jpeg, caplog, case):
    """An undeclared Latin-1 name was written back undeclared (a dciodvfy error), and an institution in Japanese on
    a Latin-1 instance came out as '??'."""
    import logging

    patient = di.Patient(patient_id="DA-CHARSET", patient_name="Müller^Anna" if case != "ASCII" else "Plain^Ascii")
    ds = di.photograph(ham_jpeg, patient.with_study(), compressed=False)
    ds.SpecificCharacterSet = "ISO_IR 100"
    saved = di.save(ds, tmp_path / "source.dcm")
    source = pydicom.dcmread(saved)
    if case == "undeclared Latin-1 source":
        del source.SpecificCharacterSet  # before the name is decoded: as a modality that declares none writes it
    institution = "Hôpital Zürich 東京" if case == "identity outside the source's set" else "Clinic"
    image = read_dicom(source, name="source.dcm")
    with caplog.at_level(logging.INFO, logger="dermassist_client.dicom"):
        paths = build_analysis(image, synthetic_result(image.size), OutputIdentity(institution_name=institution)).write(
            tmp_path / "out")
    for path in paths:
        assert dciodvfy(path).errors == [], dciodvfy(path).output
        written = pydicom.dcmread(path)
        assert str(written.PatientName) == patient.patient_name and written.InstitutionName == institution
        assert written.SpecificCharacterSet == ("ISO_IR 100" if case == "ASCII" else "ISO_IR 192")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "declares no Specific" in r.getMessage()]
    assert len(warned) == (case == "undeclared Latin-1 source")
    if warned:
        assert "holds text outside ASCII (in PatientName (0010,0010))" in warned[0]
    # the logs name the element, never its value: a patient's name went to the node's log (privacy audit, H1)
    assert "Müller" not in caplog.text and "Zürich" not in caplog.text
    if case != "ASCII":
        assert "e.g. in PatientName (0010,0010)" in caplog.text or "e.g. in InstitutionName (0008,0080)" in caplog.text


def test_a_body_site_in_snomed_rt_is_given_in_words_not_as_a_snomed_ct_code():
    """DICOM's old SRT scheme (T-D2100) is not SNOMED CT: it was labelled http://snomed.info/sct."""
    from dermassist_client.fhir import ImagingContext, _body_site
    from dermassist_client.terminology import LATERALITY, SiteCode

    legacy = ImagingContext(body_site=SiteCode("T-D2100", "SRT", "Back"), laterality=LATERALITY["R"])
    assert _body_site(legacy) == {"text": "Back (right)"}
    current = ImagingContext(body_site=SiteCode("123851003", "SCT", "Back"))
    assert _body_site(current)["coding"] == [{"system": "http://snomed.info/sct", "code": "123851003", "display": "Back"}]


def test_the_sr_carries_the_served_float32_figures_as_the_fhir_bundle_does(tmp_path, source):
    """0.62 came out as "0.62000000476837" in the SR (float32 widened), and 0.62 in FHIR and the docs."""
    import dataclasses
    import json

    from dermassist_client.fhir import ImagingContext, build_bundle, bundle_json
    from dermassist_client.result import reported

    assert reported(np.float32(0.62)) == 0.62 and reported(np.float32(18.8385009765625)) == 18.838501
    result = dataclasses.replace(synthetic_result(source.size, assessable=True), ood_score=float(np.float32(0.62)),
                                 refer_score=float(np.float32(0.4)))
    sr = pydicom.dcmread(build_analysis(source, result).write(tmp_path / "out")[-1])
    raw = [str(element.value) for element in sr.iterall() if element.keyword == "NumericValue"]  # as written
    assert "0.62" in raw and "0.4" in raw and "0.02" in raw, raw  # the OOD score, the refer score, a probability
    assert all(len(str(text).partition(".")[2]) <= 6 for text in raw), raw
    bundle = json.loads(bundle_json(build_bundle([(result, ImagingContext(patient_id="P-1"))])))
    values = [c["valueQuantity"]["value"] for e in bundle["entry"] for c in e["resource"].get("component", [])
              if "valueQuantity" in c]
    assert 0.4 in values and 0.02 in values, values


def test_the_sr_codes_the_most_likely_class_when_the_image_was_assessable(tmp_path, source):
    result = synthetic_result(source.size, assessable=True)
    analysis = build_analysis(source, result)
    sr = analysis.report
    items = dict(sr_items(sr))
    assert items["Differential Diagnosis/Impression"] == ("SCT", "372244006")
    assert items["Image assessable"] == ("SCT", "373066001")  # Yes
    for lesion_class in result.probabilities:  # assessable: every figure is written
        name = next(i for i in items if i.startswith("Probability of") and i.endswith(
            {"AK": "Actinic keratosis", "BCC": "Basal cell carcinoma", "DF": "Dermatofibroma", "MEL": "Melanoma",
             "NV": "Nevus", "BKL": "Pigmented benign keratosis", "SCC": "Squamous cell carcinoma",
             "VASC": "Vascular lesion"}[lesion_class]))
        assert items[name] == pytest.approx(result.probabilities[lesion_class])
    assert items["Probability of a malignant or pre-malignant lesion"] == pytest.approx(0.81)
    seg_path, sr_path = analysis.write(tmp_path / "out")
    check_seg_and_sr(seg_path, sr_path, source.size, result)  # dciodvfy: no errors, only the expected warning
    (group,) = hd.sr.ComprehensiveSR.from_dataset(sr).content.get_planar_roi_measurement_groups()
    finding = group.get_qualitative_evaluations(name=codes.DCM.DifferentialDiagnosisImpression)[0]
    assert finding.value.value == "372244006"


def test_without_triage_outputs_those_items_are_absent(tmp_path, source):
    result = synthetic_result(source.size, top="NV", triage=False)
    analysis = build_analysis(source, result)
    names = [n for n, _ in sr_items(analysis.report)]
    for absent in ("Referral to a dermatologist recommended", "Image assessable", "Image problems",
                   "Probability of a malignant or pre-malignant lesion",
                   "Out-of-distribution score (1.0 is the limit applied)"):
        assert absent not in names
    # Nevus has no SNOMED CT code in terminology: the finding is DermAssist's class code.
    assert dict(sr_items(analysis.report))["Differential Diagnosis/Impression"] == ("99DERMASSIST", "NV")
    assert dciodvfy(analysis.write(tmp_path)[1]).errors == []


def qualitative_evaluations(sr) -> list[tuple[str, object]]:
    """The items of the report's own Qualitative Evaluations container (TID 1500 row 12)."""
    (container,) = [item for item in sr.ContentSequence
                    if item.ConceptNameCodeSequence[0].CodeMeaning == "Qualitative Evaluations"]
    return sr_items(container)


def test_no_lesion_gives_an_sr_without_seg_or_any_lesion_finding(tmp_path, source):
    """No lesion found: no measurement group (no tracking identifier, Lesion finding or 0% area), only what is
    true: the image analysed (in the Image Library), not assessable, referred, and the note."""
    result = synthetic_result(source.size, lesion=False)
    analysis = build_analysis(source, result)
    assert analysis.segmentation is None and analysis.lesion_area_mm2 is None
    (sr_path,) = analysis.write(tmp_path)
    verdict = dciodvfy(sr_path)
    assert verdict.errors == [] and verdict.warnings <= EXPECTED_WARNINGS, verdict.output
    sr = pydicom.dcmread(sr_path)
    items = sr_items(sr)
    names = {name for name, _ in items}
    assert not names & {"Imaging Measurements", "Measurement Group", "Tracking Identifier", "Tracking Unique Identifier",
                        "Finding", "Finding Site", "Lesion area as a share of the image", "Area",
                        "Differential Diagnosis/Impression", "Source of Measurement"}
    assert not any(name.startswith("Probability of") for name in names)
    assert "52988006" not in {e.value for e in sr.iterall() if e.keyword == "CodeValue"}  # SCT Lesion, nowhere
    assert ("Source", (source.dataset.SOPInstanceUID, None, None)) in items  # the Image Library: it was analysed
    assert qualitative_evaluations(sr) == [("Referral to a dermatologist recommended", ("SCT", "373066001")),
                                           ("Image assessable", ("SCT", "373067005")), ("Image problems", result.note)]
    report = hd.sr.ComprehensiveSR.from_dataset(sr).content
    assert report.get_image_measurement_groups() == [] and report.get_planar_roi_measurement_groups() == []


def test_no_lesion_from_a_server_without_triage_outputs_is_noted_by_the_client(tmp_path, source):
    analysis = build_analysis(source, synthetic_result(source.size, lesion=False, triage=False))
    assert qualitative_evaluations(analysis.report) == [("Image problems", NO_LESION_NOTE)]
    verdict = dciodvfy(analysis.write(tmp_path)[0])
    assert verdict.errors == [] and verdict.warnings <= EXPECTED_WARNINGS, verdict.output


def test_without_pixel_spacing_there_is_no_area_in_mm2(tmp_path, ham_jpeg):
    image = read_dicom(di.photograph(ham_jpeg, PATIENT))
    analysis = build_analysis(image, synthetic_result(image.size))
    assert analysis.lesion_area_mm2 is None and "Area" not in dict(sr_items(analysis.report))


def test_a_result_of_another_image_size_is_refused(source):
    with pytest.raises(DicomOutputError, match=r"computed on an image of size \(300, 225\)"):
        build_analysis(source, synthetic_result((300, 225)))


def test_identity_is_validated():
    with pytest.raises(DermAssistClientError, match="device_serial_number"):
        OutputIdentity(device_serial_number="x" * 65)
    with pytest.raises(DermAssistClientError, match="report_series_number"):
        OutputIdentity(report_series_number=0)


@pytest.mark.parametrize("retry_s", [0, -1.0, float("nan"), float("inf"), True, "30"])
def test_the_spool_retry_interval_is_validated(tmp_path, retry_s):
    from dermassist_client.dicom.config import NodeConfig

    with pytest.raises(DermAssistClientError, match=r"--pacs-retry\) must be more than 0"):
        NodeConfig(spool=tmp_path, retry_s=retry_s)
    assert NodeConfig(spool=tmp_path, retry_s=0.5).retry_s == 0.5


def test_snomed_codes_shared_with_dicom_match_its_dictionary():
    from dermassist_client.terminology import SNOMED_BY_CLASS

    assert SNOMED_BY_CLASS["AK"].code == codes.SCT.ActinicKeratosis.value
    assert SNOMED_BY_CLASS["SCC"].code == codes.SCT.SquamousCellCarcinomaOfSkin.value


def test_the_lesion_area_multiplies_row_and_column_spacing(tmp_path, ham_jpeg):
    """Pixels are not always square: 0.05 mm rows by 0.08 mm columns make each pixel 0.004 mm2."""
    dataset = di.photograph(ham_jpeg, PATIENT, pixel_spacing_mm=0.05)
    dataset.PixelSpacing = [0.05, 0.08]
    image = read_dicom(di.save(dataset, tmp_path / "oblong.dcm"))
    mask = np.zeros((image.size[1], image.size[0]), bool)
    mask[10:20, 10:60] = True  # 500 pixels
    assert lesion_area_mm2(image, mask) == pytest.approx(500 * 0.05 * 0.08)


def _part10(ds: pydicom.Dataset) -> bytearray:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return bytearray(out.getvalue())


def _damaged(ham_jpeg: bytes, old: bytes, new: bytes) -> bytes:
    """A Part 10 photograph (uncompressed, explicit VR little endian) with the first ``old`` bytes replaced."""
    data = _part10(di.photograph(ham_jpeg, PATIENT, compressed=False))
    at = data.index(old, 132)
    data[at:at + len(old)] = new
    return bytes(data)


@pytest.mark.parametrize(("old", "new", "message"), [
    (b"\x08\x00\x60\x00CS", b"\x08\x00\x60\x00ZS",
     r"cannot be decoded \(NotImplementedError: Unknown Value Representation 'ZS' in tag \(0008,0060\)\)"),
    (b"\x28\x00\x04\x00CS\x04\x00RGB ", b"\x28\x00\x04\x00CS\x04\x00R\\B ",
     r"PhotometricInterpretation \(0028,0004\) holds 2 values, expected one"),
    (b"\x28\x00\x02\x00US\x02\x00\x03\x00", b"\x28\x00\x02\x00US\x04\x00\x03\x00\x03\x00",
     r"cannot be decoded|holds 2 values"),
], ids=["unknown-vr", "two-photometrics", "samples-of-wrong-length"])
def test_a_damaged_element_is_an_unreadable_dicom_error_naming_it(ham_jpeg: bytes, old: bytes, new: bytes,
                                                                   message: str) -> None:
    """Found by fuzzing 60,000 damaged files: pydicom decodes elements when they are first read, and a damaged one
    came out of read_dicom (and the DICOM node's store handler) as NotImplementedError, TypeError or ValueError, not
    as the DicomInputError the sender is answered with."""
    data = _damaged(ham_jpeg, old, new)
    with pytest.raises(UnreadableDicomError, match=message):
        read_dicom(data)


def test_several_sop_classes_or_a_frame_count_that_is_no_number_are_refused_by_name(ham_jpeg: bytes) -> None:
    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    ds.SOPClassUID = [di.DermoscopicPhotographyImageStorage, VLPhotographicImageStorage]
    with pytest.raises(UnreadableDicomError, match=r"SOPClassUID \(0008,0016\) holds 2 values, expected one"):
        read_dicom(ds)
    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    ds.NumberOfFrames = 1
    data = _part10(ds)
    at = data.index(b"\x28\x00\x08\x00IS\x02\x001 ", 132)
    data[at + 8:at + 10] = b"P "  # pydicom reads the value as it is, with a warning
    with pytest.raises(UnreadableDicomError, match=r"NumberOfFrames \(0028,0008\) is 'P', expected an integer"):
        read_dicom(bytes(data))


def test_an_instance_whose_identifying_elements_are_damaged_is_still_described() -> None:
    from dermassist_client.dicom.source import describe

    ds = pydicom.Dataset()
    ds.SOPClassUID = ["1.2.3", "4.5.6"]
    assert describe(ds) == "DICOM instance with unreadable identifying elements"



def test_an_undecodable_element_is_placed_after_the_last_element_that_was_read(ham_jpeg: bytes) -> None:
    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    before = max(tag for tag in ds.keys() if tag < 0x00080060)  # the element the file holds just before Modality
    with pytest.raises(UnreadableDicomError, match=rf"an element after element \({before.group:04X},{before.elem:04X}\) "
                                                   r"cannot be decoded \(NotImplementedError"):
        read_dicom(_damaged(ham_jpeg, b"\x08\x00\x60\x00CS", b"\x08\x00\x60\x00ZS"))


def test_an_instance_whose_frame_count_is_written_empty_reads_as_one_frame(ham_jpeg: bytes) -> None:
    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    ds.NumberOfFrames = ""  # Type 2 emptied: the file holds the element with no value
    data = _part10(ds)
    assert data.find(b"\x28\x00\x08\x00IS\x00\x00", 132) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns that it assumes one frame
        image = read_dicom(bytes(data))
    assert np.array_equal(image.pixels, read_dicom(di.photograph(ham_jpeg, PATIENT, compressed=False)).pixels)


@pytest.mark.parametrize(("keyword", "tag"), [("Columns", "0028,0011"), ("Rows", "0028,0010"),
                                              ("SOPInstanceUID", "0008,0018"), ("StudyInstanceUID", "0020,000D")])
def test_a_header_element_holding_two_values_is_refused_by_name(ham_jpeg: bytes, keyword: str, tag: str) -> None:
    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    value = ds.get(keyword)
    setattr(ds, keyword, [value, value])
    with pytest.raises(UnreadableDicomError, match=rf"{keyword} \({tag}\) holds 2 values, expected one; the file is "
                                                   "corrupt or was written wrongly"):
        read_dicom(ds, name="twice")


def test_an_instance_without_modality_or_sop_class_is_described_as_such() -> None:
    from dermassist_client.dicom.source import describe

    ds = pydicom.Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = di.DermoscopicPhotographyImageStorage, "1.2.3"
    assert describe(ds) == "no modality Dermoscopic Photography Image Storage instance 1.2.3"
    del ds.SOPClassUID
    ds.Modality = "DMS"
    assert describe(ds) == "DMS unknown SOP class instance 1.2.3"


@pytest.mark.parametrize(("uid", "message"), [
    ("", r"no Transfer Syntax UID \(0002,0010\) in the file meta information; the pixel data cannot be interpreted"),
    (["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50"],
     r"Transfer Syntax UID \(0002,0010\) holds 2 values, expected one; the file meta information is corrupt"),
], ids=["empty", "two-values"])
def test_a_transfer_syntax_uid_that_is_empty_or_doubled_is_refused_by_name(ham_jpeg: bytes, uid, message: str) -> None:
    ds = di.photograph(ham_jpeg, PATIENT, compressed=False)
    ds.file_meta.TransferSyntaxUID = uid
    with pytest.raises(UnreadableDicomError, match=message):
        read_dicom(ds, name="meta")


def test_a_header_highdicom_refuses_is_named_without_the_values_it_quotes(ham_jpeg):
    """highdicom's ValueError quoted the header's value ('Jane-F' is not a valid PatientSexValues) into the refusal,
    which the node logs and the command line prints (privacy audit, H1)."""
    from dermassist_client.dicom.errors import DicomOutputError, without_quoted_values

    ds = di.photograph(ham_jpeg, di.Patient(patient_id="DA-SEX").with_study(), compressed=False)
    ds.PatientSex = "Jane-F"
    image = read_dicom(ds, name="source.dcm")
    with pytest.raises(DicomOutputError) as refused:
        build_analysis(image, synthetic_result(image.size), OutputIdentity())
    assert "Jane" not in str(refused.value) and "cannot build the" in str(refused.value)
    assert "PatientSex" in str(refused.value)  # what is wrong is still named
    assert without_quoted_values("'Doe^Jane' is not valid PatientName") == "'...' is not valid PatientName"
    assert "Jane" not in without_quoted_values("the patient's sex 'Jane-F' is not one of M, F, O")  # review 19, L5
    assert "Brien" not in without_quoted_values("'O'Brien^Jane' is not a valid PN")
    assert "Jane" not in without_quoted_values('"x" and \'say "hi" Jane\' are not valid')  # mixed quotes (review 20, L3)
