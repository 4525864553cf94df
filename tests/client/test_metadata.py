"""The client sends what the server reads of a picture and nothing more (privacy audit, M1): a JPEG's GPS position,
camera serial number, description, comments and IPTC caption, and a PNG's text chunks, had gone to the server byte
for byte. Orientation and colour marks still go, and the server reads the same pixels from what is sent."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import ExifTags, Image, PngImagePlugin

from dermassist_client.images import encode_image, without_metadata
from dermassist_client.metadata import jpeg_without_metadata, minimal_exif, png_without_metadata
from preprocess.decode import parse_header, sniff_format
from preprocess.prepare import prepare_image

SECRETS = (b"Jane Doe", b"MRN123456", b"SERIAL-998877")


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _camera_jpeg(ham_jpeg: bytes, orientation: int = 6, adobe_rgb: bool = False) -> bytes:
    """The HAM picture as a camera and an editor leave it: EXIF with GPS, serial and description, a comment, an IPTC
    caption, a vendor segment and a trailer after the EOI."""
    exif = Image.Exif()
    exif[ExifTags.Base.ImageDescription] = "Jane Doe MRN123456"
    exif[ExifTags.Base.Orientation] = orientation
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.BodySerialNumber] = "SERIAL-998877"
    if adobe_rgb:
        sub[0xA001] = 0xFFFF
        sub[0xA005] = {1: "R03"}
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "N", (51.0, 30.0, 12.5)
    out = io.BytesIO()
    Image.open(io.BytesIO(ham_jpeg)).save(out, "JPEG", quality=90, exif=exif.tobytes())
    data = out.getvalue()
    extra = _segment(0xFE, b"PATIENT Jane Doe") + _segment(0xED, b"Photoshop 3.0\x00IPTC MRN123456") + _segment(
        0xE4, b"vendor SERIAL-998877")
    return data[:2] + extra + data[2:] + b"trailer Jane Doe"


def test_a_camera_jpeg_goes_without_its_metadata_and_the_server_reads_the_same_picture(ham_jpeg: bytes) -> None:
    for orientation, adobe_rgb in ((6, False), (1, True), (3, True)):
        original = _camera_jpeg(ham_jpeg, orientation, adobe_rgb)
        assert all(secret in original for secret in SECRETS)
        sent = encode_image(original).data
        assert not any(secret in sent for secret in SECRETS), orientation
        exif = Image.open(io.BytesIO(sent)).getexif()
        assert not dict(exif.get_ifd(ExifTags.IFD.GPSInfo)) and ExifTags.Base.ImageDescription not in exif
        before, after = parse_header(original, "JPEG"), parse_header(sent, sniff_format(sent))
        assert (after.size, after.orientation, after.profile) == (before.size, before.orientation, before.profile)
        assert (after.profile is not None) == adobe_rgb  # Adobe RGB's mark kept
        assert np.array_equal(prepare_image(sent).work_image, prepare_image(original).work_image)  # the coded data as it came
    assert encode_image(ham_jpeg).data == ham_jpeg  # a JPEG with nothing to leave out goes as it came


def test_a_jpeg_file_and_its_fhir_digest_are_the_bytes_sent(tmp_path, ham_jpeg: bytes) -> None:
    import hashlib

    from dermassist_client.fhir import ImagingContext

    path = tmp_path / "Doe_Jane.jpg"
    path.write_bytes(_camera_jpeg(ham_jpeg))
    sent = encode_image(path).data
    assert not any(secret in sent for secret in SECRETS)
    assert ImagingContext.from_image_file(path).image_sha256 == hashlib.sha256(sent).hexdigest()


def test_a_png_goes_without_its_text_chunks_keeping_its_orientation_and_colour(ham_jpeg: bytes) -> None:
    picture = Image.open(io.BytesIO(ham_jpeg))
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "Patient Jane Doe")
    info.add_itxt("Description", "MRN123456", zip=True)
    info.add_text("Serial", "SERIAL-998877", zip=True)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 8
    exif[ExifTags.Base.ImageDescription] = "Jane Doe"
    out = io.BytesIO()
    picture.save(out, "PNG", pnginfo=info, exif=exif.tobytes(), icc_profile=picture.info.get("icc_profile"))
    original = out.getvalue()
    assert b"Jane Doe" in original
    sent = encode_image(original).data
    assert not any(secret in sent for secret in SECRETS)
    before, after = parse_header(original, "PNG"), parse_header(sent, "PNG")
    assert after.orientation == before.orientation == 8 and after.size == before.size
    assert np.array_equal(prepare_image(sent).work_image, prepare_image(original).work_image)


def test_what_does_not_walk_as_a_jpeg_or_png_goes_as_it_came() -> None:
    """The server refuses it with its own words; the client changes nothing it cannot read."""
    for data in (b"\xff\xd8\xff\xe0\x00", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", b"GIF89a", b"BM" + bytes(60)):
        assert without_metadata(data) == data
    truncated_png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 1) + b"tEXt" + b"x" + struct.pack(
        ">I", zlib.crc32(b"tEXtx"))
    assert png_without_metadata(truncated_png, None) == truncated_png  # no IEND: not a whole PNG


def test_the_minimal_exif_holds_only_orientation_and_the_adobe_rgb_mark() -> None:
    assert minimal_exif(1, False) is None
    block = minimal_exif(6, True)
    assert block is not None and block.startswith(b"Exif\x00\x00")
    exif = Image.Exif()
    exif.load(block[6:])
    assert dict(exif) == {ExifTags.Base.Orientation: 6, ExifTags.IFD.Exif: exif[ExifTags.IFD.Exif]}
    assert exif.get_ifd(ExifTags.IFD.Exif)[0xA001] == 0xFFFF and exif.get_ifd(0xA005) == {1: "R03"}
    jpeg = b"\xff\xd8" + _segment(0xE0, b"JFIF\x00" + bytes(9)) + _segment(0xFE, b"note") + b"\xff\xda\x00\x02\xff\xd9"
    kept = jpeg_without_metadata(jpeg, block)
    assert kept.startswith(b"\xff\xd8\xff\xe0") and kept[20:22] == b"\xff\xe1" and b"note" not in kept


@pytest.mark.parametrize("marker", [0xFE, 0xED, 0xE4, 0xE1])
def test_a_dicom_jpeg_frame_goes_without_text_segments(ham_jpeg: bytes, marker: int) -> None:
    """Only APP1 had been left out of a DICOM frame: a comment, an IPTC caption or a vendor segment went too."""
    pytest.importorskip("pydicom")
    from dermassist_client.dicom.frames import jpeg_for_service

    frame = ham_jpeg[:2] + _segment(marker, b"Exif\x00\x00 Jane Doe MRN123456") + ham_jpeg[2:]
    sent = jpeg_for_service(frame, None)
    assert b"Jane Doe" not in sent and sent.endswith(b"\xff\xd9")
    assert np.array_equal(prepare_image(sent).work_image, prepare_image(ham_jpeg).work_image)


def test_stray_bytes_between_segments_and_text_between_scans_are_left_out_too(ham_jpeg: bytes) -> None:
    """Review 19, M2 and M3: a stray byte between two segments (which decoders skip) made the client send the file as
    it came, metadata and all; a comment between a progressive JPEG's scans was sent, and one holding the bytes FF D9
    cut the picture short at them, so the server refused a picture it answers."""
    original = _camera_jpeg(ham_jpeg, orientation=1)
    sos = original.index(b"\xff\xda")
    stray = original[:sos] + b"\x00\x17" + original[sos:]  # two stray bytes before the scan
    sent = encode_image(stray).data
    assert not any(secret in sent for secret in SECRETS)
    assert np.array_equal(prepare_image(sent).work_image, prepare_image(stray).work_image)

    out = io.BytesIO()
    Image.open(io.BytesIO(ham_jpeg)).save(out, "JPEG", quality=90, progressive=True)
    progressive = out.getvalue()
    second_scan = progressive.index(b"\xff\xda", progressive.index(b"\xff\xda") + 2)
    between = progressive[:second_scan] + _segment(0xFE, b"\xff\xd9 Jane Doe MRN123456") + progressive[second_scan:]
    sent = encode_image(between).data
    assert b"Jane Doe" not in sent and sent.count(b"\xff\xda") == progressive.count(b"\xff\xda")
    assert np.array_equal(prepare_image(sent).work_image, prepare_image(progressive).work_image)


def test_a_stray_ff_00_between_segments_and_an_app0_that_is_not_jfif_are_left_out(ham_jpeg: bytes) -> None:
    """Review 20, M1: a stray FF 00 between segments (libjpeg skips it) was read as a marker with a length: the file
    went with its metadata, or came out refused; a DICOM frame went with its EXIF orientation. An APP0 that is not
    JFIF (``AVI1`` and its text) had been kept whole."""
    from dermassist_client.metadata import sent_jpeg_segment

    original = _camera_jpeg(ham_jpeg, orientation=6)
    dqt = original.index(b"\xff\xdb")
    stray = original[:dqt] + b"\xff\x00" + original[dqt:]
    sent = encode_image(stray).data
    assert not any(secret in sent for secret in SECRETS)
    assert np.array_equal(prepare_image(sent).work_image, prepare_image(original).work_image)
    assert parse_header(sent, "JPEG").orientation == 6
    assert not sent_jpeg_segment(0xE0, _segment(0xE0, b"AVI1\x00 Jane Doe"))
    assert sent_jpeg_segment(0xE0, _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"))
