"""A lossy JPEG instance's frame goes to the service as it came (an integration audit: pydicom's decoder filled damaged
coded data in without a word, and a YCbCr frame labelled RGB was decoded in the wrong colours; the service's strict
decoder refuses the first and reads the colour transform from the codestream). Only its EXIF goes, and the
instance's ICC profile comes with it."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dermassist_client.dicom.frames import jpeg_for_service
from dermassist_client.dicom.source import read_dicom
from tests.support import dicom_images as di
from tests.support import icc

PATIENT = di.Patient(patient_id="DA-UNIT-0077", patient_name="Frame^Test").with_study()


def _jpeg(**save: object) -> bytes:
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90, **save)
    return out.getvalue()


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def test_the_exif_goes_and_everything_else_stays_as_it_came() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90": the DICOM header, not the EXIF, says how the picture lies
    frame = _jpeg(exif=exif.tobytes(), icc_profile=icc.display_p3())
    sent = jpeg_for_service(frame, None)
    with Image.open(io.BytesIO(sent)) as im:
        assert "exif" not in im.info and im.info["icc_profile"] == icc.display_p3()
    assert len(frame) - len(sent) == len(exif.tobytes()) + 4  # the APP1 segment: marker, length, its bytes
    assert sent.endswith(frame[frame.index(b"\xff\xda"):])  # the scan as it came, damage and all
    assert np.array_equal(_pixels(sent), _pixels(frame))
    assert jpeg_for_service(_jpeg(), None) == _jpeg()  # nothing to change: the same bytes


@pytest.mark.parametrize("profile_bytes", [1000, 200_000], ids=["one-segment", "four-segments"])
def test_the_instances_icc_profile_is_carried_in_the_frame(profile_bytes: int) -> None:
    """The ICC's own APP2 chunks (65,519 bytes at most each), after the JFIF APP0, which must stay first."""
    profile = icc.display_p3()
    profile = (profile * (profile_bytes // len(profile) + 1))[:profile_bytes]  # only its bytes are compared
    frame = _jpeg()
    assert frame[2:4] == b"\xff\xe0"  # Pillow writes JFIF
    sent = jpeg_for_service(frame, profile)
    assert sent[2:4] == b"\xff\xe0" and sent[4 + int.from_bytes(frame[4:6], "big") - 2 + 2:][:2] == b"\xff\xe2"
    assert sent.count(b"ICC_PROFILE\x00") == -(-profile_bytes // 65503)
    with Image.open(io.BytesIO(sent)) as im:
        assert im.info["icc_profile"] == profile
    assert np.array_equal(_pixels(sent), _pixels(frame))


def test_a_frame_with_its_own_icc_profile_keeps_it() -> None:
    frame = _jpeg(icc_profile=icc.display_p3())
    assert jpeg_for_service(frame, b"another profile") == frame


def test_a_jpeg_instance_sends_its_frame_and_an_uncompressed_one_its_pixels(ham_jpeg: bytes) -> None:
    compressed = read_dicom(di.photograph(ham_jpeg, PATIENT))
    assert compressed.for_service() == ham_jpeg  # no EXIF, no ICC: as it came, without the pad to an even length
    mislabelled = di.photograph(ham_jpeg, PATIENT)
    mislabelled.PhotometricInterpretation = "RGB"  # a common gateway mislabel of a YCbCr frame: the bytes still go
    assert read_dicom(mislabelled).for_service() == ham_jpeg
    tagged = di.photograph(ham_jpeg, PATIENT)
    tagged.ICCProfile = icc.display_p3()
    with Image.open(io.BytesIO(read_dicom(tagged).for_service())) as im:
        assert im.info["icc_profile"] == icc.display_p3()
    native = read_dicom(di.photograph(ham_jpeg, PATIENT, compressed=False))
    assert native.jpeg is None and isinstance(native.for_service(), Image.Image)


def test_an_xmp_orientation_goes_too() -> None:
    """The service also turns a picture by an XMP tiff:Orientation: a 90-degree turn misregistered the SEG."""
    xmp = (b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf="
           b"'http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Description xmlns:tiff='http://ns.adobe.com/tiff/1.0/' "
           b"tiff:Orientation='6'/></rdf:RDF></x:xmpmeta>")
    plain = _jpeg()
    at = 4 + int.from_bytes(plain[4:6], "big")  # after the JFIF APP0
    frame = plain[:at] + b"\xff\xe1" + (len(xmp) + 2).to_bytes(2, "big") + xmp + plain[at:]
    assert jpeg_for_service(frame, None) == plain


def test_an_icc_profile_too_large_for_a_jpeg_sends_the_decoded_pixels(ham_jpeg: bytes) -> None:
    """A profile of more than 255 APP2 chunks (16.7 MB) raised a bare ValueError, a 'DermAssist fault'."""
    huge = di.photograph(ham_jpeg, PATIENT)
    huge.ICCProfile = icc.display_p3() * (256 * 65519 // len(icc.display_p3()) + 1)
    image = read_dicom(huge)
    with pytest.raises(ValueError, match="does not fit in a JPEG"):
        jpeg_for_service(image.jpeg, image.icc_profile)
    sent = image.for_service()
    assert isinstance(sent, Image.Image) and sent.info["icc_profile"] == image.icc_profile
