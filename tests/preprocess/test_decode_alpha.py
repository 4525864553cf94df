"""Images with transparency decode to what a viewer shows over black, not to the colours a transparent area hides."""
from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from preprocess.decode import composite_on_black, decode, decode_image, parse_header, sniff_format
from tests.support import icc
from tests.support.images import pil_bytes, synthetic_lesion

RGB = synthetic_lesion(120, 160)
HALF = np.full(RGB.shape[:2], 255, np.uint8)
HALF[:, 80:] = 0  # the right half fully transparent, its colours kept underneath
BLENDED = np.full(RGB.shape[:2], 255, np.uint8)
BLENDED[:, 60:100] = 128
BLENDED[:, 100:] = 0
GREY = RGB[..., 1].copy()


def over_black(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """What the picture shows over black, by hand: each value times alpha / 255, rounded to the nearest level."""
    return np.round(rgb.astype(np.float64) * (alpha[..., None] / 255.0)).astype(np.uint8)


def png(rgba: np.ndarray, **options: object) -> bytes:
    return pil_bytes(Image.fromarray(rgba), "PNG", **options)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def raw_png(samples: np.ndarray, colour_type: int, depth: int, *chunks: bytes) -> bytes:
    """A PNG written sample by sample (any colour type and bit depth Pillow cannot write), extra chunks before IDAT."""
    height, width = samples.shape[:2]
    if depth == 16:
        rows = [row.astype(">u2").tobytes() for row in samples]
    elif depth == 8:
        rows = [row.astype(np.uint8).tobytes() for row in samples]
    else:  # 1, 2 or 4 bits: packed from the most significant bit
        bits = np.unpackbits(samples.astype(np.uint8)[..., None], axis=-1)[..., 8 - depth:]
        rows = [np.packbits(row.ravel()).tobytes() for row in bits]
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    body = zlib.compress(b"".join(b"\x00" + row for row in rows))
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + b"".join(chunks) + _chunk(b"IDAT", body)
            + _chunk(b"IEND", b""))


def tiff(samples: np.ndarray, **options: Any) -> bytes:
    import tifffile

    out = io.BytesIO()
    tifffile.imwrite(out, samples, **options)
    return out.getvalue()


def bmp_with_alpha(rgba: np.ndarray) -> bytes:
    """A 32-bit BMP with a BITMAPV5HEADER whose bit fields include an alpha mask."""
    height, width = rgba.shape[:2]
    pixels = np.ascontiguousarray(rgba[::-1][..., [2, 1, 0, 3]]).tobytes()
    info = struct.pack("<IiiHHIIiiII", 124, width, height, 1, 32, 3, len(pixels), 2835, 2835, 0, 0)
    info += struct.pack("<IIII", 0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000) + b"BGRs" + bytes(48)
    info += struct.pack("<IIII", 4, 0, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 14 + len(info)) + info + pixels


def test_a_half_transparent_rgba_png_decodes_black_where_transparent() -> None:
    """The audit's case: the right half is transparent, the colours under it kept; a viewer shows it black."""
    out = decode_image(png(np.dstack([RGB, HALF])))
    assert (out[:, 80:] == 0).all()
    np.testing.assert_array_equal(out[:, :80], RGB[:, :80])
    np.testing.assert_array_equal(out, decode_image(png(over_black(RGB, HALF))))  # as if painted black


def test_a_partly_transparent_pixel_is_blended_with_black() -> None:
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[...] = (200, 100, 51, 255)
    rgba[10, 20] = (200, 100, 51, 128)  # 128/255 of each: 100.39, 50.20, 25.60
    rgba[10, 21] = (200, 100, 51, 1)  # 0.78, 0.39, 0.20
    out = decode_image(png(rgba))
    assert out[10, 20].tolist() == [100, 50, 26]
    assert out[10, 21].tolist() == [1, 0, 0]
    assert out[0, 0].tolist() == [200, 100, 51]


def test_the_compositing_rounds_every_value_and_alpha_to_the_nearest_level() -> None:
    values, alphas = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    rgb = np.repeat(values[..., None], 3, axis=2).astype(np.uint8)
    out = composite_on_black(rgb, alphas.astype(np.uint8))
    np.testing.assert_array_equal(out, over_black(rgb, alphas.astype(np.uint8)))
    opaque = np.full(values.shape, 255, np.uint8)
    assert composite_on_black(rgb, opaque) is rgb  # fully opaque: the very array, no work


def _palette(opacities: list[int]) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A palette PNG of 16 colours whose tRNS gives each entry its opacity; its RGB and alpha by hand."""
    indexed = Image.fromarray(RGB).quantize(16)
    rgb = np.asarray(indexed.convert("RGB"))
    alpha = np.asarray(opacities, np.uint8)[np.asarray(indexed)]
    return pil_bytes(indexed, "PNG", transparency=bytes(opacities)), rgb, alpha


def test_a_palette_png_with_transparent_entries_is_shown_over_black() -> None:
    data, rgb, alpha = _palette([255] * 8 + [0] * 4 + [128] * 4)
    assert (alpha == 0).any() and (alpha == 128).any()
    np.testing.assert_array_equal(decode_image(data), over_black(rgb, alpha))


@pytest.mark.parametrize("depth", [8, 16])
def test_a_grey_and_alpha_png_is_shown_over_black(depth: int) -> None:
    scale = 257 if depth == 16 else 1
    data = raw_png(np.dstack([GREY, BLENDED]).astype(np.uint16) * scale, 4, depth)
    expected = over_black(np.dstack([GREY] * 3), BLENDED)
    np.testing.assert_array_equal(decode_image(data), expected)


@pytest.mark.parametrize("depth", [1, 2, 8, 16])
def test_a_grey_png_whose_trns_makes_a_level_transparent_shows_it_black(depth: int) -> None:
    levels = (GREY >> (8 - depth)) if depth < 8 else GREY.astype(np.uint16) * (257 if depth == 16 else 1)
    key = int(levels[60, 40])
    data = raw_png(levels, 0, depth, _chunk(b"tRNS", struct.pack(">H", key)))
    shown = np.asarray(Image.fromarray((levels * (255 // (2**depth - 1)) if depth < 8 else levels >> (depth - 8))
                                       .astype(np.uint8)).convert("RGB"))
    expected = np.where((levels == key)[..., None], 0, shown)
    assert 0 < (levels == key).sum() < levels.size
    np.testing.assert_array_equal(decode_image(data), expected)


@pytest.mark.parametrize("depth", [8, 16])
def test_an_rgb_png_whose_trns_makes_a_colour_transparent_shows_it_black(depth: int) -> None:
    scale = 257 if depth == 16 else 1
    key = RGB[60, 40]
    data = raw_png(RGB.astype(np.uint16) * scale, 2, depth, _chunk(b"tRNS", struct.pack(">HHH", *(int(v) * scale for v in key))))
    expected = np.where((RGB == key).all(axis=-1, keepdims=True), 0, RGB)
    np.testing.assert_array_equal(decode_image(data), expected)


@pytest.mark.parametrize("fmt", ["contiguous", "planar", "16-bit"])
def test_an_rgb_tiff_with_unassociated_alpha_is_shown_over_black(fmt: str) -> None:
    """libtiff multiplies the alpha in as OpenCV reads it: the decoder leaves that as it is (never twice)."""
    rgba = np.dstack([RGB, BLENDED])
    if fmt == "planar":
        data = tiff(np.moveaxis(rgba, 2, 0), photometric="rgb", planarconfig="separate", extrasamples=[2])
    else:
        data = tiff(rgba.astype(np.uint16) * 257 if fmt == "16-bit" else rgba, photometric="rgb", extrasamples=[2])
    np.testing.assert_array_equal(decode_image(data), over_black(RGB, BLENDED))


def test_a_tiff_with_associated_alpha_shows_its_stored_colours() -> None:
    """Associated (premultiplied) alpha: the stored colours are those over black already."""
    stored = over_black(RGB, BLENDED)
    np.testing.assert_array_equal(decode_image(tiff(np.dstack([stored, BLENDED]), photometric="rgb", extrasamples=[1])),
                                  stored)


def test_a_grey_and_alpha_tiff_is_shown_over_black_on_its_full_size_page() -> None:
    import tifffile

    out = io.BytesIO()
    with tifffile.TiffWriter(out) as writer:
        writer.write(np.zeros((30, 40), np.uint8), photometric="minisblack", subfiletype=1)  # a preview first
        writer.write(np.dstack([GREY, BLENDED]), photometric="minisblack", extrasamples=[2])
    data = out.getvalue()
    assert parse_header(data, "TIFF").page == 1
    np.testing.assert_array_equal(decode_image(data), over_black(np.dstack([GREY] * 3), BLENDED))


def test_a_grey_and_alpha_tiff_turned_by_its_orientation_tag_keeps_its_alpha_in_place() -> None:
    data = tiff(np.dstack([GREY, HALF]), photometric="minisblack", extrasamples=[2], extratags=[(274, 3, 1, 6, True)])
    out = decode_image(data)
    expected = np.rot90(over_black(np.dstack([GREY] * 3), HALF), -1)
    np.testing.assert_array_equal(out, expected)


def test_a_bmp_with_an_alpha_mask_is_shown_over_black() -> None:
    np.testing.assert_array_equal(decode_image(bmp_with_alpha(np.dstack([RGB, BLENDED]))), over_black(RGB, BLENDED))


def test_a_bmp_whose_alpha_is_all_zero_is_shown_opaque_as_browsers_do() -> None:
    """Many writers leave a 32-bit BMP's alpha at zero: browsers then show the picture opaque, not black."""
    np.testing.assert_array_equal(decode_image(bmp_with_alpha(np.dstack([RGB, np.zeros_like(HALF)]))), RGB)


OPAQUE = np.full(RGB.shape[:2], 255, np.uint8)
BGR16 = RGB[..., ::-1].astype(np.uint16) * 257 + 7  # low bytes that differ from the high ones
OPAQUE_PAIRS = {  # an image with a fully opaque alpha, and the same picture without one
    "RGBA PNG": lambda: (png(np.dstack([RGB, OPAQUE])), png(RGB)),
    "16-bit RGBA PNG": lambda: (cv2.imencode(".png", np.dstack([BGR16, np.full(GREY.shape, 65535, np.uint16)]))[1].tobytes(),
                                cv2.imencode(".png", BGR16)[1].tobytes()),
    "grey and alpha PNG": lambda: (raw_png(np.dstack([GREY, OPAQUE]), 4, 8), raw_png(GREY, 0, 8)),
    "palette PNG with tRNS": lambda: (_palette([255] * 16)[0], pil_bytes(Image.fromarray(RGB).quantize(16), "PNG")),
    "BMP with alpha": lambda: (bmp_with_alpha(np.dstack([RGB, OPAQUE])), pil_bytes(Image.fromarray(RGB), "BMP")),
    "grey and alpha TIFF": lambda: (tiff(np.dstack([GREY, OPAQUE]), photometric="minisblack", extrasamples=[2]),
                                    tiff(GREY, photometric="minisblack")),
}


@pytest.mark.parametrize("kind", list(OPAQUE_PAIRS))
def test_an_opaque_image_with_alpha_decodes_bit_identical_to_the_one_without(kind: str) -> None:
    with_alpha, without = OPAQUE_PAIRS[kind]()
    assert parse_header(with_alpha, sniff_format(with_alpha)).alpha  # the alpha path is taken, and changes nothing
    np.testing.assert_array_equal(decode_image(with_alpha), decode_image(without))


@pytest.mark.parametrize("data,fmt,alpha", [
    (png(RGB), "PNG", False),
    (png(np.dstack([RGB, HALF])), "PNG", True),
    (pil_bytes(Image.fromarray(RGB), "JPEG"), "JPEG", False),
    (pil_bytes(Image.fromarray(np.dstack([RGB, HALF])), "TIFF"), "TIFF", False),  # libtiff composites it itself
    (tiff(np.dstack([GREY, HALF]), photometric="minisblack", extrasamples=[2]), "TIFF", True),
    (pil_bytes(Image.fromarray(RGB).convert("RGBA"), "BMP"), "BMP", False),  # 32-bit BI_RGB: the 4th byte is unused
])
def test_the_header_says_whether_the_alpha_path_is_needed(data: bytes, fmt: str, alpha: bool) -> None:
    assert parse_header(data, fmt).alpha is alpha


def test_the_transparency_turns_with_the_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    out = decode(png(np.dstack([RGB, HALF]), exif=exif))
    assert out.rgb.shape == (160, 120, 3) and out.original_size == (160, 120)
    np.testing.assert_array_equal(out.rgb, np.rot90(over_black(RGB, HALF), -1))


def test_transparency_is_applied_before_the_colour_profile_is_converted() -> None:
    """As the client flattens a PIL image (in its stored colours, the profile kept): the two give the same pixels."""
    p3 = icc.display_p3()
    with_alpha = png(np.dstack([RGB, BLENDED]), icc_profile=p3)
    flattened = png(over_black(RGB, BLENDED), icc_profile=p3)
    out = decode_image(with_alpha)
    np.testing.assert_array_equal(out, decode_image(flattened))
    assert (out[:, 100:] == 0).all()
