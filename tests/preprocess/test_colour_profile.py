"""Embedded ICC colour profiles: a Display P3 or Adobe RGB picture is decoded to the sRGB colours it shows."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from preprocess.colour_profile import SRGB_PROBE, srgb_converter, to_srgb
from preprocess.decode import decode, decode_image, read_header
from preprocess.errors import ColourProfileError, InvalidImageError
from preprocess.prepare import prepare_image
from tests.support import icc
from tests.support.images import pil_bytes, synthetic_lesion

RGB = synthetic_lesion(120, 160)
BUILT_IN_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def saved(rgb: np.ndarray, fmt: str, profile: bytes | None = None, **options) -> bytes:
    """``rgb`` encoded as ``fmt`` by Pillow, with ``profile`` embedded when given."""
    if profile is not None:
        options["icc_profile"] = profile
    return pil_bytes(Image.fromarray(rgb), fmt, **options)


def p3_to_srgb_by_hand(p3: np.ndarray) -> np.ndarray:
    """Display P3 code values -> sRGB code values by the published primaries (linearise, matrix, encode)."""
    matrix = np.linalg.solve(icc.rgb_to_xyz_matrix(icc.SRGB_PRIMARIES), icc.rgb_to_xyz_matrix(icc.DISPLAY_P3_PRIMARIES))
    return icc.srgb_encode(icc.srgb_decode(p3) @ matrix.T)


def test_display_p3_colours_are_converted_as_computed_by_hand() -> None:
    p3 = np.array([[[200, 60, 60], [60, 160, 90], [70, 90, 200], [128, 128, 128], [250, 220, 180], [30, 20, 10]]],
                  np.uint8)
    out = decode_image(saved(np.repeat(np.repeat(p3, 40, 0), 40, 1), "PNG", icc.display_p3()))[0, ::40]
    expected = p3_to_srgb_by_hand(p3)[0]
    assert np.abs(out.astype(float) - expected).max() <= 1.0
    assert np.abs(out.astype(int) - p3[0]).max() >= 20  # the P3 red is far redder in sRGB: the conversion matters
    np.testing.assert_array_equal(out[3], [128, 128, 128])  # a grey stays that grey (same white, same tone curve)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_a_display_p3_picture_decodes_to_its_srgb_original(fmt: str) -> None:
    p3 = icc.srgb_to_display_p3(RGB)
    tagged = decode_image(saved(p3, fmt, icc.display_p3()))
    untagged = decode_image(saved(p3, fmt))
    assert np.abs(tagged.astype(int) - RGB).max() <= 2  # the two roundings of 8-bit values, nothing more
    assert np.abs(untagged.astype(int) - RGB).mean() > 3 * np.abs(tagged.astype(int) - RGB).mean() + 1


def test_an_adobe_rgb_jpeg_decodes_to_srgb() -> None:
    to_adobe = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.ImageCmsProfile(io.BytesIO(icc.adobe_rgb())),
                                       "RGB", "RGB", renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    adobe = np.asarray(ImageCms.applyTransform(Image.fromarray(RGB), to_adobe))
    tagged = decode_image(saved(adobe, "JPEG", icc.adobe_rgb(), quality=100, subsampling=0))
    plain = decode_image(saved(adobe, "JPEG", quality=100, subsampling=0))
    np.testing.assert_array_equal(tagged, to_srgb(plain, icc.adobe_rgb(), "test"))
    assert np.abs(tagged.astype(int) - RGB).mean() < 1.5
    assert np.abs(plain.astype(int) - RGB).mean() > 3


@pytest.mark.parametrize("profile", [BUILT_IN_SRGB, icc.srgb()], ids=["built-in sRGB", "sRGB from its primaries"])
def test_an_srgb_profile_leaves_the_pixels_bit_identical(profile: bytes) -> None:
    np.testing.assert_array_equal(decode_image(saved(RGB, "PNG", profile)), RGB)
    assert srgb_converter(profile, "test") is None


def test_a_profile_of_another_colour_space_leaves_the_pixels() -> None:
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    np.testing.assert_array_equal(decode_image(saved(RGB, "PNG", lab)), RGB)


def test_the_probe_spans_the_cube() -> None:
    colours = SRGB_PROBE.reshape(-1, 3)
    assert len(np.unique(colours, axis=0)) == 216 and colours.min() == 0 and colours.max() == 255


def test_a_large_tagged_jpeg_decoded_reduced_is_converted_too() -> None:
    big = np.ascontiguousarray(np.repeat(np.repeat(RGB, 10, 0), 10, 1))  # 1200x1600: decoded at half scale
    p3 = icc.srgb_to_display_p3(big)
    reduced = decode(saved(p3, "JPEG", icc.display_p3(), quality=95), allow_reduced=True)
    assert reduced.reduction == 2
    plain = decode(saved(p3, "JPEG", quality=95), allow_reduced=True)
    np.testing.assert_array_equal(reduced.rgb, to_srgb(plain.rgb, icc.display_p3(), "test"))
    assert not np.array_equal(reduced.rgb, plain.rgb)


def test_the_header_returns_the_embedded_profile() -> None:
    assert read_header(saved(RGB, "PNG", icc.display_p3()), "PNG") == ((160, 120), icc.display_p3())
    assert read_header(saved(RGB, "PNG"), "PNG") == ((160, 120), None)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_an_unreadable_profile_is_refused_by_name(fmt: str) -> None:
    data = saved(RGB, fmt, b"this is not an ICC profile" * 8)
    with pytest.raises(ColourProfileError, match=r"ICC colour profile of 208 bytes that cannot be read.*re-save"):
        decode_image(data)
    with pytest.raises(InvalidImageError, match=f"{fmt} input of {len(data)} bytes"):
        prepare_image(data)


def test_a_transform_is_built_once_per_profile() -> None:
    from preprocess import colour_profile

    colour_profile._converter.cache_clear()
    for _ in range(3):
        decode_image(saved(RGB, "PNG", icc.display_p3()))
    info = colour_profile._converter.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def dcf_exif(colour_space: int | None = 0xFFFF, interop: str | None = "R03") -> Image.Exif:
    """EXIF as a camera writes it: ColorSpace (uncalibrated for Adobe RGB) and DCF's interoperability index."""
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    if colour_space is not None:
        ifd[0xA001] = colour_space
    if interop is not None:
        ifd[0xA005] = {1: interop}
    return exif


def test_a_camera_jpeg_declaring_adobe_rgb_in_exif_is_converted_as_computed_by_hand() -> None:
    adobe = np.array([[[200, 60, 60], [60, 160, 90], [70, 90, 200], [128, 128, 128]]], np.uint8)
    out = decode_image(saved(np.repeat(np.repeat(adobe, 40, 0), 40, 1), "JPEG", quality=100, subsampling=0,
                             exif=dcf_exif()))[20, 20::40]
    matrix = np.linalg.solve(icc.rgb_to_xyz_matrix(icc.SRGB_PRIMARIES), icc.rgb_to_xyz_matrix(icc.ADOBE_RGB_PRIMARIES))
    expected = icc.srgb_encode((adobe[0] / 255.0) ** icc.ADOBE_RGB_GAMMA @ matrix.T)
    assert np.abs(out.astype(float) - expected).max() <= 2.0  # JPEG quality 100 moves a flat patch by a level
    assert np.abs(out.astype(int) - adobe[0]).max() >= 20


@pytest.mark.parametrize("exif", [dcf_exif(interop=None), dcf_exif(colour_space=1), dcf_exif(interop="R98"),
                                  dcf_exif(colour_space=None)],
                         ids=["uncalibrated, no index", "sRGB with R03", "uncalibrated R98", "index only"])
def test_exif_that_declares_no_adobe_rgb_leaves_the_pixels(exif: Image.Exif) -> None:
    data = saved(RGB, "JPEG", quality=95, exif=exif)
    np.testing.assert_array_equal(decode_image(data), decode_image(saved(RGB, "JPEG", quality=95)))


def test_an_embedded_profile_wins_over_the_exif_declaration() -> None:
    p3 = icc.srgb_to_display_p3(RGB)
    jpeg = saved(p3, "JPEG", icc.display_p3(), quality=95, exif=dcf_exif())
    assert read_header(jpeg, "JPEG")[1] == icc.display_p3()
    plain = decode_image(saved(p3, "JPEG", quality=95))
    np.testing.assert_array_equal(decode_image(jpeg), to_srgb(plain, icc.display_p3(), "test"))
    assert read_header(saved(p3, "JPEG", quality=95, exif=dcf_exif()), "JPEG")[1] == icc.adobe_rgb()
