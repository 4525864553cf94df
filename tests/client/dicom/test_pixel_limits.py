"""The DICOM reader refuses pixel data that does not fit its header before decoding a pixel (security audit findings
1 and 5: a 2.7 KB JPEG-LS frame declaring 20000 x 20000 pixels was decoded at that size; 400 MiB of native pixel data
declared 64 x 64 was decoded as 34,133 frames), and a sender's value cannot forge a line of the node's log (finding 6).
"""
from __future__ import annotations

import io
import logging
import struct

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from dermassist_client.dicom.config import NodeConfig
from dermassist_client.dicom.errors import NotAPhotographError, UnreadableDicomError, UnsupportedTransferSyntaxError
from dermassist_client.dicom.frames import (
    FrameHeaderError,
    check_pixel_data,
    j2k_frame_header,
    jpeg_frame_header,
    rle_decoded_lengths,
)
from dermassist_client.dicom.node import DicomNode
from dermassist_client.dicom.source import MAX_PIXELS, read_dicom
from tests.client.dicom.test_forwarding import SyntheticClient
from tests.support import dicom_images as di

SIDE = 64  # what every header here declares
PATIENT = di.Patient(patient_id="DA-LIMITS-1", patient_name="Limits^Pat").with_study()


def rgb(side: int) -> np.ndarray:
    """A smooth side x side RGB picture."""
    ramp = np.linspace(0, 255, side, dtype=np.uint8)
    return np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], ramp[:, None] // 2), axis=-1).copy()


def jpeg(side: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb(side)).save(out, "JPEG", quality=90)
    return out.getvalue()


def jpeg_ls(side: int) -> bytes:
    import jpeg_ls as charls  # pyjpegls, pydicom's JPEG-LS decoder here

    return bytes(charls.encode(rgb(side)))


def j2k(side: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb(side)).save(out, "JPEG2000", no_jp2=True, irreversible=False)
    return out.getvalue()


def instance(transfer_syntax: UID, pixel_data: bytes, photometric: str = "RGB") -> Dataset:
    """A 64 x 64 VL photograph whose Pixel Data is ``pixel_data`` (encapsulated unless native)."""
    ds = di.photograph(jpeg(SIDE), PATIENT, compressed=False)
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.PhotometricInterpretation = photometric
    ds.PixelData = pixel_data
    if transfer_syntax.is_encapsulated:
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    return ds


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any pixel is decoded."""
    def refuse(self):
        raise AssertionError("the pixel data was decoded")
    monkeypatch.setattr(Dataset, "pixel_array", property(refuse))


def rle_bomb() -> bytes:
    """An RLE frame of three segments, each 2 KB of runs that decode to 128 bytes per 2 (64 times Rows x Columns)."""
    segment = b"\x81\x00" * 2048  # header 0x81: the next byte 128 times
    offsets = [64, 64 + len(segment), 64 + 2 * len(segment)]
    return struct.pack("<16I", 3, *offsets, *[0] * 12) + segment * 3


@pytest.mark.parametrize("transfer_syntax,frame,codec", [
    (JPEGBaseline8Bit, lambda: jpeg(2000), "JPEG"),
    (JPEGLSLossless, lambda: jpeg_ls(2000), "JPEG-LS"),
    (JPEG2000Lossless, lambda: j2k(2000), "JPEG 2000"),
])
def test_a_frame_larger_than_its_header_is_refused_before_decoding(transfer_syntax, frame, codec, no_decoding):
    photometric = "YBR_FULL_422" if transfer_syntax == JPEGBaseline8Bit else "RGB"
    with pytest.raises(UnreadableDicomError) as caught:
        read_dicom(instance(transfer_syntax, encapsulate([frame()]), photometric), name="bomb")
    message = str(caught.value)
    assert f"its {codec} frame declares 2000 x 2000 pixels" in message and "say 64 x 64" in message, message
    assert "refused before decoding" in message and caught.value.status == 0xC000
    assert caught.value.comment == "frame is 2000x2000, header says 64x64"


def test_a_frame_beyond_the_limit_names_the_limit(no_decoding):
    """The auditor's shape: a JPEG-LS frame header declaring 20000 x 20000 (only its header is built here)."""
    sof55 = b"\xff\xd8\xff\xf7\x00\x11\x08" + struct.pack(">HH", 20000, 20000) + b"\x03" + b"\x01\x11\x00" * 3
    with pytest.raises(UnreadableDicomError, match=r"20000 x 20000 pixels .* and 400.0 megapixels is more than "
                                                   rf"the {MAX_PIXELS / 1e6:.0f} DermAssist analyses"):
        read_dicom(instance(JPEGLSLossless, encapsulate([sof55 + b"\x00" * 64])), name="bomb")


def test_an_rle_frame_decoding_to_more_than_its_header_is_refused_before_decoding(no_decoding):
    with pytest.raises(UnreadableDicomError, match=r"RLE frame has 3 segment\(s\) decoding to more than 4,160, "
                                                   r"more than 4,160, more than 4,160 bytes"):
        read_dicom(instance(RLELossless, encapsulate([rle_bomb()])), name="rle bomb")
    assert rle_decoded_lengths(rle_bomb(), limit=10**9) == [262144] * 3  # what pydicom would have built, each


def test_frames_matching_their_header_still_decode():
    for transfer_syntax, frame in ((JPEGLSLossless, jpeg_ls(SIDE)), (JPEG2000Lossless, j2k(SIDE))):
        image = read_dicom(instance(transfer_syntax, encapsulate([frame])), name="fine")
        assert image.pixels.shape == (SIDE, SIDE, 3) and np.array_equal(image.pixels, rgb(SIDE))
    ds = instance(ExplicitVRLittleEndian, rgb(SIDE).tobytes())
    ds.compress(RLELossless, generate_instance_uid=False)
    assert np.array_equal(read_dicom(ds, name="rle").pixels, rgb(SIDE))


def test_a_frame_of_other_components_or_precision_is_refused(no_decoding):
    grey = io.BytesIO()
    Image.fromarray(rgb(SIDE)[..., 0]).save(grey, "JPEG")
    with pytest.raises(NotAPhotographError, match=r"its JPEG frame has 1 component\(s\) of 8 bits; expected 3"):
        read_dicom(instance(JPEGBaseline8Bit, encapsulate([grey.getvalue()]), "YBR_FULL_422"), name="grey")


@pytest.mark.parametrize("frame,words", [
    (b"not a jpeg", "does not start with a JPEG SOI marker"),
    (b"\xff\xd8\xff\xda\x00\x02", "its scan starts before any frame header"),
    (b"\xff\xd8\xff\xe0\x00\x10" + b"\x00" * 14, "it ends before its frame header"),
])
def test_an_unreadable_frame_header_is_refused_not_decoded_blind(frame, words, no_decoding):
    with pytest.raises(UnreadableDicomError, match=words) as caught:
        read_dicom(instance(JPEGBaseline8Bit, encapsulate([frame]), "YBR_FULL_422"), name="odd")
    assert caught.value.comment == "unreadable frame header"


def test_a_transfer_syntax_without_a_header_reader_is_refused():
    hevc = UID("1.2.840.10008.1.2.4.107")  # no decoder here either; check_pixel_data refuses it by itself
    with pytest.raises(UnsupportedTransferSyntaxError, match="whose frame size DermAssist cannot read before decoding"):
        check_pixel_data(instance(hevc, encapsulate([b"\x00" * 64])), hevc, "x", MAX_PIXELS)


def test_the_header_readers_read_sizes_and_refuse_junk():
    header = jpeg_frame_header(jpeg(37))
    assert (header.width, header.height, header.components, header.precision) == (37, 37, 3, 8)
    assert (j2k_frame_header(j2k(40)).width, j2k_frame_header(j2k(40)).components) == (40, 3)
    jp2 = io.BytesIO()
    Image.fromarray(rgb(24)).save(jp2, "JPEG2000")  # wrapped in a JP2 file, as some writers do
    assert j2k_frame_header(jp2.getvalue()).height == 24
    with pytest.raises(FrameHeaderError, match="SOC and SIZ"):
        j2k_frame_header(b"\xff\xd8junk")


def test_native_pixel_data_longer_than_its_header_is_refused_before_decoding(no_decoding):
    """The auditor sent 400 MiB declared 64 x 64; pydicom decoded 34,133 frames before the shape check."""
    expected = SIDE * SIDE * 3
    with pytest.raises(UnreadableDicomError) as caught:
        read_dicom(instance(ExplicitVRLittleEndian, b"\x00" * (expected * 100)), name="huge")
    assert f"its Pixel Data has {expected * 100:,} bytes" in str(caught.value)
    assert f"call for {expected:,}" in str(caught.value)
    assert caught.value.comment == "pixel data longer than its header declares"


def test_encapsulated_pixel_data_far_larger_than_a_compressed_frame_is_refused(no_decoding):
    padding = b"\xff\xe1" + struct.pack(">H", 65535) + b"\x00" * 65533  # APP1 segments of nothing
    frame = jpeg(SIDE)
    frame = frame[:2] + padding * 20 + frame[2:]  # 1.3 MB before the frame header of a 12 KB picture
    with pytest.raises(UnreadableDicomError, match=r"its compressed frame has 1,31\d,\d+ bytes, more than the "):
        read_dicom(instance(JPEGBaseline8Bit, encapsulate([frame]), "YBR_FULL_422"), name="padded")


def test_too_many_fragments_are_refused(no_decoding):
    many = encapsulate([jpeg(SIDE)]) + b"\xfe\xff\x00\xe0\x02\x00\x00\x00\x00\x00" * 10_001  # 2-byte items
    with pytest.raises(UnreadableDicomError, match="more than 10,000 fragments"):
        read_dicom(instance(JPEGBaseline8Bit, many, "YBR_FULL_422"), name="fragments")


def test_a_declared_frame_count_of_zero_is_not_one():
    ds = instance(ExplicitVRLittleEndian, rgb(SIDE).tobytes())
    ds.NumberOfFrames = 0
    with pytest.raises(NotAPhotographError, match="has 0 frames"):
        read_dicom(ds, name="zero")


def test_a_newline_in_the_sop_instance_uid_cannot_forge_a_log_line(tmp_path, caplog):
    """Finding 6: SOP Instance UID '1.2.3\\nERROR forged: analysed OK' wrote a second line into the node's log."""
    ds = instance(ExplicitVRLittleEndian, rgb(SIDE).tobytes())
    ds.SOPInstanceUID = "1.2.3\nERROR forged: analysed OK"
    ds.Modality = "XC\r\nINFO forged"
    node = DicomNode(SyntheticClient(), NodeConfig(spool=tmp_path / "spool", port=0))
    from dermassist_client.dicom.source import describe

    with caplog.at_level(logging.INFO, logger="dermassist_client.dicom"):
        outcome = node.process(ds, name=f"{describe(ds)} from STORESCU")
    assert not outcome.ok
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("dermassist_client.dicom")]
    assert lines and all("\n" not in line and "\r" not in line for line in lines), lines
    assert any(r"'1.2.3\nERROR forged: analysed OK'" in line for line in lines), lines
    assert node.counts["failed"] == 1 and len(list((tmp_path / "spool" / "pending").iterdir())) == 0
