"""Decoding and validation of every accepted format and every refused input."""
from __future__ import annotations

import io
import re
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from preprocess.contract import MAX_IMAGE_PIXELS
from preprocess.decode import (
    check_size,
    decode,
    decode_image,
    decode_jpeg_strict,
    jpeg_frame,
    read_header,
    sniff_format,
    without_stray_header_bytes,
)
from preprocess.errors import (
    EmptyImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageError,
    MultiPictureImageError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedFormatError,
)
from preprocess.prepare import prepare_image
from tests.support.images import (
    MISTAKEN_FORMATS,
    encode,
    pil_bytes,
    png_bomb,
    synthetic_lesion,
    tiff_whose_second_page_has_an_unknown_compression,
    tiff_with_a_broken_full_size_page,
    with_orientation,
)

RGB = synthetic_lesion(120, 160)


@pytest.mark.parametrize("fmt", [".png", ".bmp", ".tiff"])
def test_lossless_formats_round_trip_exactly(fmt: str) -> None:
    out = decode_image(encode(RGB, fmt))
    assert out.dtype == np.uint8 and out.shape == RGB.shape
    np.testing.assert_array_equal(out, RGB)


def test_jpeg_decodes_to_rgb_not_bgr() -> None:
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 220
    out = decode_image(encode(red, ".jpg"))
    assert out[..., 0].mean() > 200 and out[..., 2].mean() < 30


@pytest.mark.parametrize("orientation,expected_shape",
                         [(1, (120, 160, 3)), (3, (120, 160, 3)), (6, (160, 120, 3)), (8, (160, 120, 3))])
def test_jpeg_exif_orientation_is_applied(orientation: int, expected_shape: tuple[int, int, int]) -> None:
    marked = RGB.copy()
    marked[:20, :20] = (255, 255, 255)  # a white corner shows where the top-left went
    out = decode(with_orientation(marked, orientation))
    assert out.rgb.shape == expected_shape
    assert out.original_size == expected_shape[:2]
    corners = {"tl": out.rgb[:10, :10], "tr": out.rgb[:10, -10:], "bl": out.rgb[-10:, :10], "br": out.rgb[-10:, -10:]}
    bright = max(corners, key=lambda k: corners[k].mean())
    assert bright == {1: "tl", 3: "br", 6: "tr", 8: "bl"}[orientation]


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_png_and_tiff_exif_orientation_is_applied_and_sets_the_original_size(fmt: str) -> None:
    marked = RGB.copy()
    marked[:20, :20] = (255, 255, 255)
    out = decode(with_orientation(marked, 6, fmt))
    assert out.rgb.shape == (160, 120, 3) and out.original_size == (160, 120)
    assert out.rgb[:10, -10:].mean() > 250  # the top-left corner turned to the top right


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF"])
def test_the_header_size_is_the_decoded_size_of_a_turned_picture(fmt: str) -> None:
    data = with_orientation(RGB, 6, fmt)
    height, width = decode(data).rgb.shape[:2]
    assert read_header(data, fmt)[0] == (width, height) == (120, 160)


def test_a_large_turned_png_keeps_its_aspect_in_the_work_image() -> None:
    big = cv2.resize(RGB, (2400, 1800), interpolation=cv2.INTER_LINEAR)
    prepared = prepare_image(with_orientation(big, 6, "PNG"))
    assert prepared.original_size == (2400, 1800)
    assert prepared.work_image.shape[:2] == (1024, 768)  # portrait, as displayed; not squashed to landscape


def test_png_16_bit_is_scaled_to_8_bit() -> None:
    gray16 = np.full((50, 60), 40000, dtype=np.uint16)
    out = decode_image(encode(gray16, ".png"))
    assert out.shape == (50, 60, 3) and out.dtype == np.uint8
    assert abs(int(out[0, 0, 0]) - 40000 // 256) <= 1


def test_grayscale_rgba_and_palette_pngs_become_rgb() -> None:
    gray = pil_bytes(Image.fromarray(RGB[..., 0]), "PNG")
    rgba = pil_bytes(Image.fromarray(np.dstack([RGB, np.full(RGB.shape[:2], 128, np.uint8)])), "PNG")
    palette = pil_bytes(Image.fromarray(RGB).convert("P"), "PNG")
    for data in (gray, rgba, palette):
        out = decode_image(data)
        assert out.shape == RGB.shape and out.dtype == np.uint8
    half_over_black = np.round(RGB * (128 / 255)).astype(np.uint8)  # alpha 128 everywhere: blended with black
    np.testing.assert_array_equal(decode_image(rgba), half_over_black)
    assert np.abs(decode_image(palette).astype(int) - RGB.astype(int)).mean() < 12


def test_empty_input_is_refused() -> None:
    with pytest.raises(EmptyImageError, match="empty"):
        decode_image(b"")


def test_non_image_bytes_are_refused_with_the_formats_expected() -> None:
    with pytest.raises(NotAnImageError, match="JPEG, PNG, BMP or TIFF"):
        decode_image(b"%PDF-1.4 definitely not a picture")


@pytest.mark.parametrize("mode", ["opencv", "RGB", "RGBA", "P"])
def test_a_bmp_is_known_by_its_info_header_and_text_starting_with_bm_is_not(mode: str) -> None:
    rgb = np.full((36, 40, 3), (120, 60, 30), np.uint8)
    if mode == "opencv":
        data = cv2.imencode(".bmp", rgb)[1].tobytes()
    else:
        out = io.BytesIO()
        Image.fromarray(rgb).convert(mode).save(out, "BMP")
        data = out.getvalue()
    assert sniff_format(data) == "BMP" and decode_image(data).shape == (36, 40, 3)
    with pytest.raises(NotAnImageError, match=r"not an image \(it starts with text\)"):
        decode_image(b"BM, the initials on this referral letter")
    with pytest.raises(NotAnImageError, match="not an image"):  # too short to hold a BMP's headers
        decode_image(data[:17])


@pytest.mark.parametrize("data,looks", [(b"DOE^JOHN 19570312 M\r\nreferral letter", "starts with text"),
                                        (b"\x00\x01\x02\x03DOE^JOHN" * 3, "no known image signature")])
def test_the_refusal_of_non_image_bytes_never_quotes_them(data: bytes, looks: str) -> None:
    """The message reaches the audit trail, which must hold no patient data: it says what the bytes look like."""
    with pytest.raises(NotAnImageError) as info:
        decode_image(data)
    message = str(info.value)
    assert looks in message and f"{len(data)} bytes" in message
    assert "DOE" not in message and "44 4f 45" not in message and data[:4].hex() not in message


@pytest.mark.parametrize("fmt,keep",
                         [(".jpg", 0.5), (".jpg", 0.98), (".png", 0.5), (".png", 0.98), (".bmp", 0.5), (".tiff", 0.5)])
def test_truncated_files_are_refused(fmt: str, keep: float) -> None:
    data = encode(RGB, fmt)
    with pytest.raises(TruncatedImageError, match="truncated"):
        decode_image(data[: int(len(data) * keep)])


@pytest.mark.parametrize("fmt,trailer", [(".jpg", b"SEFH" + bytes(200) + b"SEFT"), (".jpg", bytes(5000)),
                                         (".png", b"appended by an editor")])
def test_bytes_after_the_end_marker_do_not_make_a_file_truncated(fmt: str, trailer: bytes) -> None:
    data = encode(RGB, fmt)
    np.testing.assert_array_equal(decode_image(data + trailer), decode_image(data))


def _with_thumbnail(jpeg: bytes) -> bytes:
    """The JPEG with an APP1 segment holding a small JPEG (with its own end marker), like an EXIF thumbnail."""
    payload = b"Exif\x00\x00" + encode(synthetic_lesion(40, 40), ".jpg")
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def test_truncated_jpeg_is_refused_even_when_its_thumbnail_is_complete() -> None:
    data = _with_thumbnail(encode(RGB, ".jpg"))
    np.testing.assert_array_equal(decode_image(data), decode_image(encode(RGB, ".jpg")))
    with pytest.raises(TruncatedImageError, match="truncated"):
        decode_image(data[: int(len(data) * 0.9)])


DICOM_FILE = MISTAKEN_FORMATS["DICOM"]
OTHER_FORMATS = {name: data for name, data in MISTAKEN_FORMATS.items() if name != "DICOM"}


@pytest.mark.parametrize("name", list(OTHER_FORMATS))
def test_formats_sent_by_mistake_are_named_in_the_refusal(name: str) -> None:
    with pytest.raises(UnsupportedFormatError, match=f"is an? {name} file, which is not accepted; expected JPEG, PNG"):
        decode_image(OTHER_FORMATS[name])


def test_dicom_file_is_refused_with_the_way_to_send_it() -> None:
    with pytest.raises(UnsupportedFormatError, match="DICOM file.*dermassist-client, which reads DICOM"):
        decode_image(DICOM_FILE)


def test_float_tiff_refusal_says_how_to_resave_it() -> None:
    data = pil_bytes(Image.fromarray(RGB[..., 0].astype(np.float32) / 255.0), "TIFF")
    with pytest.raises(TruncatedImageError, match="re-save it as 8-bit RGB"):
        decode_image(data)


def test_images_under_32_pixels_a_side_are_refused() -> None:
    with pytest.raises(ImageTooSmallError, match="at least 32"):
        decode_image(encode(synthetic_lesion(31, 200), ".png"))
    assert decode_image(encode(synthetic_lesion(32, 32), ".png")).shape == (32, 32, 3)


def test_png_bomb_is_refused_from_the_header_before_any_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*_args: object) -> None:
        raise AssertionError("the full decode must not start for an oversized image")

    monkeypatch.setattr(cv2, "imdecode", forbidden)
    bomb = png_bomb(30000)
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageTooLargeError, match=r"declares 900,000,000 pixels \(900.0 megapixels\)"):
        decode_image(bomb)


def test_our_own_50_megapixel_limit_refuses_a_bomb_under_pillows_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """64 megapixels is under Pillow's own bomb check (89 MP warns, 179 MP errors): the contract's limit must act."""
    def forbidden(*_args: object) -> None:
        raise AssertionError("the full decode must not start for an oversized image")

    monkeypatch.setattr(cv2, "imdecode", forbidden)
    expected = r"8000x8000 = 64,000,000 pixels \(64.0 megapixels\); at most 50,000,000 pixels \(50 megapixels\)"
    with pytest.raises(ImageTooLargeError, match=expected):
        decode_image(png_bomb(8000))


def test_the_size_limits_are_inclusive_of_their_bounds() -> None:
    check_size(10_000, MAX_IMAGE_PIXELS // 10_000)  # exactly 50,000,000 pixels: accepted
    with pytest.raises(ImageTooLargeError):
        check_size(10_001, MAX_IMAGE_PIXELS // 10_000)
    check_size(32, 32)
    with pytest.raises(ImageTooSmallError):
        check_size(31, 5000)


def test_every_refusal_is_an_invalid_image_error() -> None:
    for bad in (b"", b"hello", encode(RGB, ".png")[:100], OTHER_FORMATS["WebP"], DICOM_FILE):
        with pytest.raises(InvalidImageError):
            decode_image(bad)


def test_large_jpeg_may_be_decoded_reduced_but_keeps_its_original_size() -> None:
    big = cv2.resize(RGB, (4000, 3000), interpolation=cv2.INTER_LINEAR)
    out = decode(encode(big, ".jpg"), allow_reduced=True)
    assert out.original_size == (3000, 4000)
    assert out.reduction == 4 and out.rgb.shape[:2] == (750, 1000)
    odd = decode(encode(cv2.resize(RGB, (2001, 1601)), ".jpg"), allow_reduced=True)
    assert odd.reduction == 2 and odd.rgb.shape[:2] == (800, 1000)  # floor, never past the original
    assert decode(encode(big, ".png"), allow_reduced=True).reduction == 1  # shrink-on-load is JPEG only


_OPENCV_REDUCED = {1: cv2.IMREAD_COLOR_RGB, 2: cv2.IMREAD_REDUCED_COLOR_2 | cv2.IMREAD_COLOR_RGB,
                   4: cv2.IMREAD_REDUCED_COLOR_4 | cv2.IMREAD_COLOR_RGB, 8: cv2.IMREAD_REDUCED_COLOR_8 | cv2.IMREAD_COLOR_RGB}


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("subsampling", [0, 1, 2])
@pytest.mark.parametrize("progressive", [False, True])
def test_the_one_pass_jpeg_decode_gives_opencvs_pixels_at_every_scale(mode: str, subsampling: int,
                                                                      progressive: bool) -> None:
    """The strict decode that checks the scan also gives the pixels: they must be OpenCV's (the decode before it), to
    the bit, at every shrink-on-load factor, odd sizes included."""
    from preprocess.decode import decode_jpeg_strict, jpeg_frame

    picture = Image.fromarray(cv2.resize(RGB, (803, 601))).convert(mode)
    data = pil_bytes(picture, "JPEG", quality=90, subsampling=subsampling, progressive=progressive)
    for factor, flag in _OPENCV_REDUCED.items():
        expected = cv2.imdecode(np.frombuffer(data, np.uint8), flag | cv2.IMREAD_IGNORE_ORIENTATION)
        np.testing.assert_array_equal(decode_jpeg_strict(data, "test JPEG", factor, jpeg_frame(data)), expected)


def test_a_large_lossless_jpeg_is_decoded_whole_never_reduced() -> None:
    """libjpeg-turbo cannot scale a lossless JPEG: asked to, it wrote the full-size picture past the smaller buffer
    and the process died (the prepare stub, with one request). Run in a child process, so a crash fails this test
    instead of ending the run."""
    import subprocess
    import sys

    script = """
import numpy as np
from preprocess.contract import WORK_MAX_SIDE
from preprocess.decode import decode, jpeg_frame, jpeg_is_scalable
from preprocess.prepare import prepare_image
from tests.support.images import encode, lossless_jpeg
data = lossless_jpeg(1200, 1000)
assert jpeg_frame(data).lossless and not jpeg_is_scalable(jpeg_frame(data))
assert jpeg_is_scalable(jpeg_frame(encode(np.zeros((64, 64, 3), np.uint8), ".jpg")))
out = decode(data, allow_reduced=True)
assert out.reduction == 1 and out.rgb.shape == (1000, 1200, 3) and out.original_size == (1000, 1200), out.rgb.shape
assert np.all(out.rgb == 128)
assert max(prepare_image(data).work_image.shape[:2]) == WORK_MAX_SIDE  # resized to the work size, as a PNG is
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr[-2000:])


def test_the_frame_is_read_from_the_header_and_a_rare_subsampling_decodes() -> None:
    """A luma sampled 1x4 (4:4:1) is valid JPEG that simplejpeg's header reader has no name for: it raised KeyError
    out of decode. The frame is read from the SOF segment; the pixels are OpenCV's as for any other JPEG."""
    from preprocess.decode import jpeg_frame

    data = bytearray(pil_bytes(Image.fromarray(RGB), "JPEG", quality=90, subsampling=2))
    frame = jpeg_frame(bytes(data))
    assert frame is not None and (frame.marker, frame.height, frame.width, frame.components) == (0xC0, 120, 160, 3)
    sof = data.index(b"\xff\xc0")
    data[sof + 11] = 0x14  # component 1 (luma): 1 horizontal, 4 vertical
    rare = bytes(data)
    out = decode(rare, allow_reduced=True)
    np.testing.assert_array_equal(out.rgb, cv2.imdecode(np.frombuffer(rare, np.uint8), cv2.IMREAD_COLOR_RGB))


@pytest.mark.parametrize("data", [tiff_with_a_broken_full_size_page(), tiff_whose_second_page_has_an_unknown_compression()],
                         ids=["page-without-width", "page-of-unknown-compression"])
def test_a_tiff_page_pil_cannot_read_is_an_invalid_image(data: bytes) -> None:
    """PIL raises TypeError ("Missing dimensions") or KeyError (an unknown compression) on such a page: they came out
    of decode as they were (found by fuzzing), not as the InvalidImageError a request gets its INVALID_ARGUMENT for."""
    with pytest.raises(TruncatedImageError, match=r"TIFF header of a \d+-byte input cannot be read \((TypeError|KeyError)"):
        decode(data, allow_reduced=True)


def test_a_cmyk_jpeg_is_checked_then_decoded_by_opencv() -> None:
    """libjpeg-turbo does not turn printing inks into RGB: a CMYK JPEG is checked strictly, then OpenCV decodes it."""
    data = pil_bytes(Image.fromarray(RGB).convert("CMYK"), "JPEG", quality=95)
    out = decode_image(data)
    assert out.shape == RGB.shape
    np.testing.assert_allclose(out.astype(np.float32), np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), atol=3)
    with pytest.raises(TruncatedImageError, match="cannot be decoded in full"):
        decode_image(data[: len(data) // 2] + data[-2:])  # the scan cut short, the end marker kept


def test_a_cmyk_jpegs_check_reads_it_at_an_eighth_of_its_size(monkeypatch) -> None:
    """The check reads every coded block but skips most of the inverse DCT: simplejpeg scales down only to the least
    size it is given, so the check passes one (without it, min_factor 8 decoded at full size)."""
    import importlib

    import simplejpeg

    module = importlib.import_module("preprocess.decode")  # the package's name ``decode`` is the function
    shapes: list[tuple[str, tuple[int, ...]]] = []
    real = simplejpeg.decode_jpeg

    def spy(data: bytes, *args: object, **kwargs: object) -> np.ndarray:
        out = real(data, *args, **kwargs)
        shapes.append((str(kwargs.get("colorspace")), out.shape))
        return out

    monkeypatch.setattr(module.simplejpeg, "decode_jpeg", spy)
    data = pil_bytes(Image.fromarray(RGB).convert("CMYK"), "JPEG", quality=95)
    assert decode_image(data).shape == RGB.shape
    assert shapes == [("CMYK", (120 // 8, 160 // 8, 4))]


def test_a_jpeg_whose_scan_has_no_frame_before_it_is_refused_by_name() -> None:
    data = encode(RGB)
    sof = data.index(b"\xff\xc0")
    no_frame = data[:sof] + data[sof + 2 + int.from_bytes(data[sof + 2:sof + 4], "big"):]
    assert jpeg_frame(no_frame) is None
    with pytest.raises(InvalidImageError, match="JPEG header of a .*cannot be read"):  # PIL's header reader first
        decode(no_frame, allow_reduced=True)
    with pytest.raises(TruncatedImageError, match=r"no frame header \(start-of-frame segment\) before its scan"):
        decode_jpeg_strict(no_frame, "test JPEG", 1, None)  # and the strict decode on its own


def test_a_file_of_several_pictures_is_refused_but_a_thumbnail_page_is_allowed(tmp_path) -> None:
    """A multi-page TIFF or an animated PNG: the service would otherwise answer for page 1 and say nothing."""
    import io

    import tifffile

    lesion, other = synthetic_lesion(), np.full((96, 128, 3), (200, 150, 130), np.uint8)
    for fmt, held in (("TIFF", "more than one full-size picture (pages)"), ("PNG", "2 full-size pictures (animation frames)")):
        buffer = io.BytesIO()
        Image.fromarray(other).save(buffer, fmt, save_all=True, append_images=[Image.fromarray(lesion)])
        with pytest.raises(MultiPictureImageError, match=rf"holds {re.escape(held)}; .*send each as its own"):
            decode(buffer.getvalue())
    scanner = tmp_path / "with_preview.tif"  # a full page, then a reduced-resolution preview (NewSubfileType 1)
    tifffile.imwrite(scanner, lesion, photometric="rgb", subfiletype=0)
    tifffile.imwrite(scanner, lesion[::4, ::4], photometric="rgb", subfiletype=1, append=True)
    assert np.array_equal(decode(scanner.read_bytes()).rgb, lesion)


def many_page_tiff(pages: int, thumbnails: bool = False) -> bytes:
    """A TIFF of ``pages`` small pages (reduced-resolution copies all when ``thumbnails``)."""
    import io

    buffer = io.BytesIO()
    page = Image.fromarray(np.full((8, 8, 3), 128, np.uint8))
    info = {254: 1} if thumbnails else {}
    page.save(buffer, "TIFF", save_all=True, append_images=[page] * (pages - 1), tiffinfo=info)
    return buffer.getvalue()


@pytest.mark.parametrize("thumbnails", [False, True])
def test_a_tiff_of_many_pages_is_refused_after_reading_a_few(monkeypatch: pytest.MonkeyPatch, thumbnails: bool) -> None:
    """100,000 tiny pages in 11 MB held a prepare instance 53 s (fuzz audit 1): PIL walked every page's directory
    (n_frames), then each page. Now the pages read stop at a second full-size one, or at MAX_TIFF_PAGES."""
    from PIL import TiffImagePlugin

    from preprocess.decode import MAX_TIFF_PAGES, parse_header

    data = many_page_tiff(400, thumbnails)
    seeks: list[int] = []
    real = TiffImagePlugin.TiffImageFile._seek

    def counted(self: Any, frame: int) -> None:
        seeks.append(frame)
        real(self, frame)

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "_seek", counted)
    expected = (rf"holds more than {MAX_TIFF_PAGES} pages;" if thumbnails
                else r"holds more than one full-size picture \(pages\);")
    with pytest.raises(MultiPictureImageError, match=expected):
        parse_header(data, "TIFF")
    assert max(seeks) <= MAX_TIFF_PAGES  # not the 399 of the last page


def test_the_pixel_limit_accepts_fifty_megapixels_and_refuses_one_more() -> None:
    check_size(10_000, 5_000)  # 50,000,000 pixels: the limit itself
    check_size(5_000, 10_000)
    with pytest.raises(ImageTooLargeError, match=r"at most 50,000,000 pixels \(50 megapixels\)"):
        check_size(739, 67_659)  # 739 x 67,659 = 50,000,001 pixels: one too many
    with pytest.raises(ImageTooLargeError):
        check_size(7_072, 7_071)  # 50,006,112 pixels


@pytest.mark.parametrize("width,reduction,shape", [(4096, 8, (5, 512)), (4095, 4, (10, 1023))])
def test_shrink_on_load_keeps_a_long_side_of_at_least_512(width: int, reduction: int, shape: tuple[int, int]) -> None:
    # 4096 // 8 = 512 is exactly the smallest long side allowed: 1/8; 4095 // 8 = 511 is under it, 4095 // 4 = 1023: 1/4.
    # The short side (40) plays no part: it is the long side that is kept. Rows: ceil(40 / factor), trimmed to 40 // f.
    data = encode(np.full((40, width, 3), 150, np.uint8), ".jpg")
    out = decode(data, allow_reduced=True)
    assert out.reduction == reduction and out.rgb.shape[:2] == shape and out.original_size == (40, width)


@pytest.mark.parametrize("orientation", [2, 4, 5, 7])
def test_every_exif_orientation_that_turns_the_picture_swaps_the_header_size(orientation: int) -> None:
    # 5 (transpose) and 7 (transverse) turn by 90 degrees like 6 and 8; 2 and 4 only mirror: the stored 160x120 stays
    data = with_orientation(RGB, orientation)
    expected = (120, 160) if orientation in (5, 7) else (160, 120)
    assert read_header(data, "JPEG")[0] == expected
    height, width = decode(data).rgb.shape[:2]
    assert (width, height) == expected


def _with_junk_after_app0(jpeg: bytes) -> bytes:
    """The JPEG with two stray bytes after its first (APP0) segment: its segments can no longer be walked."""
    end = 4 + int.from_bytes(jpeg[4:6], "big")
    return jpeg[:end] + b"\x00\x00" + jpeg[end:]


def test_a_jpeg_whose_segments_cannot_be_walked_is_judged_by_its_last_bytes() -> None:
    data = _with_junk_after_app0(encode(RGB, ".jpg"))
    np.testing.assert_array_equal(decode_image(data), decode_image(encode(RGB, ".jpg")))  # its end marker is there
    with pytest.raises(TruncatedImageError, match="ends before its end marker"):
        decode_image(data[: int(len(data) * 0.9)])  # the fallback finds no end marker in the last 64 bytes


def test_a_restart_marker_before_the_scan_is_stepped_over() -> None:
    # RSTn (0xFFD0..0xFFD7) carries no length: read as a segment, its "length" would be the next marker's bytes
    jpeg = encode(RGB, ".jpg")
    end = 4 + int.from_bytes(jpeg[4:6], "big")
    np.testing.assert_array_equal(decode_image(jpeg[:end] + b"\xff\xd0" + jpeg[end:]), decode_image(jpeg))


def test_a_riff_file_that_is_not_webp_is_not_called_webp() -> None:
    wav = b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + bytes(32)  # a RIFF container of sound, not WebP
    with pytest.raises(NotAnImageError, match="has no known image signature"):
        decode_image(wav)


def test_a_png_orientation_in_a_text_chunk_leaves_header_and_decoder_in_one_frame() -> None:
    """OpenCV turns a PNG by its eXIf chunk only: the header size (size check, the client's frame) follows it."""
    from tests.support.images import raw_profile_png

    data = raw_profile_png(RGB, 6)
    out = decode(data)
    assert out.rgb.shape[:2] == out.original_size == (120, 160)  # not turned
    assert read_header(data, "PNG")[0] == (160, 120)


def _scan_bounds(jpeg: bytes) -> tuple[int, int]:
    """Where the first scan's coded data starts and where its end marker is."""
    start = jpeg.index(b"\xff\xda")
    start += 2 + int.from_bytes(jpeg[start + 2:start + 4], "big")
    return start, jpeg.rindex(b"\xff\xd9")


def test_a_jpeg_whose_coded_data_is_damaged_is_refused_not_decoded_half_grey() -> None:
    """OpenCV decodes each of these without a word, the lost part grey; the service would answer for half a lesion."""
    jpeg = encode(synthetic_lesion(), ".jpg")
    start, end = _scan_bounds(jpeg)
    middle = (start + end) // 2
    spliced = jpeg[:middle] + encode(synthetic_lesion(seed=1), ".jpg")  # a cut-short picture, then a whole one
    overwritten = jpeg[:middle] + bytes(range(256)) * 4 + jpeg[middle + 1024:]
    sof = jpeg.index(b"\xff\xc0")
    taller = jpeg[:sof + 5] + (900).to_bytes(2, "big") + jpeg[sof + 7:]  # the header declares twice the rows coded
    for damaged in (jpeg[:middle] + b"\xff\xd9", spliced, overwritten, taller):
        assert cv2.imdecode(np.frombuffer(damaged, np.uint8), cv2.IMREAD_COLOR) is not None  # OpenCV alone accepts it
        with pytest.raises(TruncatedImageError, match="cannot be decoded in full .*send the original file again"):
            decode(damaged)
    assert decode(jpeg).rgb.shape == (450, 600, 3)


def test_stray_header_bytes_do_not_hide_a_damaged_scan_behind_them() -> None:
    """Stray bytes after APP0 are skipped by every decoder; the coded data after them is still checked in full."""
    jpeg = encode(synthetic_lesion(), ".jpg")
    start, end = _scan_bounds(jpeg)
    middle = (start + end) // 2
    for damaged in (jpeg[:middle] + b"\xff\xd9", jpeg[:middle] + bytes(range(256)) * 4 + jpeg[middle + 1024:]):
        with pytest.raises(TruncatedImageError, match="cannot be decoded in full"):
            decode(_with_junk_after_app0(damaged))
    assert without_stray_header_bytes(_with_junk_after_app0(jpeg)) == jpeg
    assert without_stray_header_bytes(jpeg) == jpeg
    np.testing.assert_array_equal(decode(_with_junk_after_app0(jpeg)).rgb, decode(jpeg).rgb)


def _orientation_exif(orientation: int, field_type: int) -> bytes:
    """A big-endian EXIF block whose only tag is the orientation, stored as SHORT (3) or LONG (4)."""
    import struct

    value = struct.pack(">HH", orientation, 0) if field_type == 3 else struct.pack(">I", orientation)
    return b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01" + struct.pack(">HHI", 0x0112, field_type, 1) + value + bytes(4)


def test_an_orientation_stored_as_long_turns_the_picture_as_one_stored_as_short() -> None:
    """OpenCV reads only a SHORT orientation; a viewer (and the client's header reader) honours both."""
    short, long_ = (pil_bytes(Image.fromarray(RGB), "JPEG", quality=95, exif=_orientation_exif(6, kind)) for kind in (3, 4))
    turned = decode(short)
    assert turned.rgb.shape == (160, 120, 3) and turned.original_size == (160, 120)
    np.testing.assert_array_equal(decode(long_).rgb, turned.rgb)
    assert read_header(long_, "JPEG")[0] == (120, 160)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_applied_as_pil_shows_it(orientation: int) -> None:
    from PIL import ImageOps

    from preprocess.decode import apply_orientation

    stored = np.random.default_rng(orientation).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    image = Image.fromarray(stored)
    image.getexif()[0x0112] = orientation
    np.testing.assert_array_equal(apply_orientation(stored, orientation), np.asarray(ImageOps.exif_transpose(image)))


def _best_shift(reference: np.ndarray, other: np.ndarray) -> tuple[int, int]:
    """The (dy, dx) of at most one pixel under which ``other`` matches ``reference`` best."""
    errors = {}
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            a = reference[max(0, dy):reference.shape[0] + min(0, dy), max(0, dx):reference.shape[1] + min(0, dx)]
            b = other[max(0, -dy):other.shape[0] + min(0, -dy), max(0, -dx):other.shape[1] + min(0, -dx)]
            errors[(dy, dx)] = float(np.abs(a.astype(np.int16) - b).mean())
    return min(errors, key=lambda k: errors[k])


@pytest.mark.parametrize("orientation", [3, 6])
def test_a_turned_jpeg_decoded_reduced_lines_up_with_the_upright_one(orientation: int) -> None:
    """The partial blocks of a reduced decode lie right and bottom of the STORED picture: trimmed there, then turned."""
    # 4093 x 3069: decoded at 1/4, one original pixel over whole blocks on each side
    upright = Image.fromarray(cv2.resize(synthetic_lesion(), (4093, 3069), interpolation=cv2.INTER_CUBIC))
    stored = upright.transpose(Image.Transpose.ROTATE_180 if orientation == 3 else Image.Transpose.ROTATE_90)
    reference = decode(pil_bytes(upright, "JPEG", quality=95), allow_reduced=True)
    turned = decode(pil_bytes(stored, "JPEG", quality=95, exif=_orientation_exif(orientation, 3)), allow_reduced=True)
    assert turned.reduction == reference.reduction == 4 and turned.original_size == reference.original_size == (3069, 4093)
    assert turned.rgb.shape == reference.rgb.shape
    assert _best_shift(reference.rgb, turned.rgb) == (0, 0)


def test_a_tiff_whose_preview_page_comes_first_is_read_from_its_full_size_page(tmp_path) -> None:
    import tifffile

    lesion = synthetic_lesion()
    scanner = tmp_path / "preview_first.tif"
    tifffile.imwrite(scanner, lesion[::4, ::4], photometric="rgb", subfiletype=1)
    tifffile.imwrite(scanner, lesion, photometric="rgb", subfiletype=0, append=True)
    data = scanner.read_bytes()
    assert read_header(data, "TIFF")[0] == (600, 450)
    np.testing.assert_array_equal(decode(data).rgb, lesion)


def test_a_bigtiff_is_read_like_a_tiff() -> None:
    data = pil_bytes(Image.fromarray(RGB), "TIFF", big_tiff=True)
    assert data[:4] == b"II+\x00"
    np.testing.assert_array_equal(decode(data).rgb, RGB)


def test_a_png_with_a_text_chunk_over_pillows_default_limit_is_read() -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "".join(chr(65 + i % 26) for i in range(3 * 2**20)), zip=True)  # 3 MB once inflated
    np.testing.assert_array_equal(decode(pil_bytes(Image.fromarray(RGB), "PNG", pnginfo=info)).rgb, RGB)


def test_a_png_header_is_read_without_decoding_its_pixels(monkeypatch) -> None:
    """PIL's getexif() on a PNG decodes every pixel to look for an eXIf chunk after the image data."""
    from PIL import PngImagePlugin

    data = with_orientation(RGB, 6, "PNG")

    def forbidden(self):
        raise AssertionError("the header read must not decode the pixels")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", forbidden)
    assert read_header(data, "PNG")[0] == (120, 160)


def test_a_refusal_near_the_pixel_limit_shows_the_count_that_decides_it() -> None:
    with pytest.raises(ImageTooLargeError, match=r"10000x5001 = 50,010,000 pixels .*at most 50,000,000 pixels"):
        check_size(10_000, 5_001)


def _header_segments(jpeg: bytes) -> tuple[list[bytes], bytes]:
    """The marker segments of a well-formed JPEG between its SOI and its first scan, and the rest from that scan on."""
    segments, pos = [], 2
    while jpeg[pos + 1] != 0xDA:
        end = pos + 2 + int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        segments.append(jpeg[pos:end])
        pos = end
    return segments, jpeg[pos:]


def test_a_huffman_table_before_the_frame_is_not_taken_for_the_frame() -> None:
    """DHT (0xC4) shares the start-of-frame range; a JPEG may define its tables before its frame."""
    from preprocess.decode import JpegFrame, jpeg_frame

    jpeg = encode(RGB, ".jpg")
    segments, rest = _header_segments(jpeg)
    tables = [s for s in segments if s[1] == 0xC4]
    assert tables and segments.index(tables[0]) > [s[1] for s in segments].index(0xC0)  # the encoder's order
    moved = jpeg[:2] + b"".join(tables + [s for s in segments if s[1] != 0xC4]) + rest
    assert moved.index(b"\xff\xc4") < moved.index(b"\xff\xc0")
    assert jpeg_frame(moved) == JpegFrame(0xC0, RGB.shape[0], RGB.shape[1], 3)
    np.testing.assert_array_equal(decode(moved, allow_reduced=True).rgb, decode(jpeg).rgb)


def test_only_a_frame_that_was_read_and_is_not_lossless_is_scalable() -> None:
    from preprocess.decode import JpegFrame, jpeg_is_scalable

    assert not jpeg_is_scalable(None)
    assert jpeg_is_scalable(JpegFrame(0xC0, 120, 160, 3)) and jpeg_is_scalable(JpegFrame(0xC2, 120, 160, 3))
    assert not jpeg_is_scalable(JpegFrame(0xC3, 120, 160, 3))


# ITU-T T.81 Table B.1: SOF3 lossless, SOF7 differential lossless (Huffman); SOF11 and SOF15 the same, arithmetic.
_LOSSLESS_SOF = (0xC3, 0xC7, 0xCB, 0xCF)
_LOSSY_SOF = (0xC0, 0xC1, 0xC2, 0xC5, 0xC6, 0xC9, 0xCA, 0xCD, 0xCE)


@pytest.mark.parametrize("marker", _LOSSLESS_SOF + _LOSSY_SOF)
def test_every_lossless_start_of_frame_is_read_as_lossless(marker: int) -> None:
    from preprocess.decode import jpeg_frame
    from tests.support.images import lossless_jpeg

    data = bytearray(lossless_jpeg(64, 48))
    sof = data.index(b"\xff\xc3")
    data[sof + 1] = marker
    frame = jpeg_frame(bytes(data))
    assert frame is not None and (frame.marker, frame.height, frame.width, frame.components) == (marker, 48, 64, 3)
    assert frame.lossless is (marker in _LOSSLESS_SOF)


def _run_in_child(script: str) -> None:
    """Run ``script`` in a child process (libjpeg-turbo asked to scale a lossless JPEG writes past its buffer: a crash
    there fails the test instead of ending the run); it must print "ok"."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr[-2000:])


def test_the_strict_decode_refuses_to_reduce_a_lossless_jpeg_or_one_whose_frame_was_not_read() -> None:
    _run_in_child("""
import pytest
from preprocess.decode import decode_jpeg_strict, jpeg_frame
from tests.support.images import lossless_jpeg
data = lossless_jpeg(1200, 1000)
for factor in (2, 4, 8):
    for frame in (jpeg_frame(data), None):
        with pytest.raises(ValueError, match=rf"cannot be decoded reduced; asked for 1/{factor}"):
            decode_jpeg_strict(data, "test JPEG", factor, frame)
print("ok")
""")


def test_a_lossless_cmyk_jpeg_is_checked_at_full_size_then_decoded_by_opencv() -> None:
    _run_in_child("""
import cv2
import numpy as np
from preprocess.decode import decode, decode_jpeg_strict, jpeg_frame
from tests.support.images import lossless_jpeg
data = lossless_jpeg(1200, 1000, components=4)
frame = jpeg_frame(data)
assert frame.lossless and frame.components == 4, frame
assert decode_jpeg_strict(data, "test JPEG", 1, frame) is None
out = decode(data, allow_reduced=True)
assert out.reduction == 1 and out.rgb.shape == (1000, 1200, 3), out.rgb.shape
expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
assert np.array_equal(out.rgb, expected)
print("ok")
""")


def test_stray_bytes_before_the_end_marker_are_refused_not_skipped() -> None:
    """Bytes between the last coded block and EOI mean the coded data did not fit the frame: not header padding."""
    jpeg = encode(RGB, ".jpg")
    end = jpeg.rindex(b"\xff\xd9")
    with pytest.raises(TruncatedImageError, match=r"cannot be decoded in full \(.*extraneous bytes before marker 0xd9"):
        decode(jpeg[:end] + bytes(range(1, 17)) + jpeg[end:])


def _orientation_exif_of_type(field_type: int) -> bytes:
    """A big-endian EXIF block whose only tag is an orientation of 6 stored as ASCII ("6", type 2) or as the RATIONAL
    6/1 (type 5, its 8 bytes after the IFD): types the orientation may not have."""
    import struct

    head = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01"
    if field_type == 2:
        return head + struct.pack(">HHI", 0x0112, 2, 2) + b"6\x00\x00\x00" + bytes(4)
    return head + struct.pack(">HHII", 0x0112, 5, 1, 8 + 2 + 12 + 4) + bytes(4) + struct.pack(">II", 6, 1)


@pytest.mark.parametrize("field_type", [2, 5], ids=["ascii", "rational"])
def test_an_orientation_of_the_wrong_type_is_ignored_not_refused(field_type: int) -> None:
    plain = pil_bytes(Image.fromarray(RGB), "JPEG", quality=95)
    data = pil_bytes(Image.fromarray(RGB), "JPEG", quality=95, exif=_orientation_exif_of_type(field_type))
    with Image.open(io.BytesIO(data)) as im:
        assert im.getexif().get(0x0112) == ("6" if field_type == 2 else 6)  # PIL reads the value that is there
    out = decode(data)
    assert out.rgb.shape == RGB.shape and out.original_size == RGB.shape[:2]
    np.testing.assert_array_equal(out.rgb, decode(plain).rgb)
    assert read_header(data, "JPEG")[0] == (RGB.shape[1], RGB.shape[0])


def test_a_tiff_layout_the_decoder_does_not_read_is_named_not_only_called_corrupt(tmp_path) -> None:
    """A valid TIFF of 16-pixel tiles was refused as 'truncated or corrupt' alone (fuzz audit 12.5)."""
    import tifffile

    path = tmp_path / "tiles16.tif"
    tifffile.imwrite(path, np.full((96, 128, 3), 120, np.uint8), photometric="rgb", tile=(16, 16))
    with pytest.raises(TruncatedImageError, match=r"its layout is one the decoder does not read \(tiles of 16 or 48"):
        decode(path.read_bytes())


@pytest.mark.parametrize("compression", ["deflate", "lzw"])
def test_a_tiff_whose_compressed_strips_were_overwritten_is_refused_and_a_whole_one_decodes(tmp_path,
                                                                                          compression) -> None:
    """2,000 bytes overwritten in a strip were decoded as noise and answered ASSESSABLE (fuzz audit 2): a deflate
    strip's check value and PIL's LZW decoder now tell it; the whole file still decodes exactly."""
    import tifffile

    from preprocess.decode import tiff_damage

    rgb = synthetic_lesion()
    whole = tmp_path / "whole.tif"
    if compression == "deflate":
        tifffile.imwrite(whole, rgb, photometric="rgb", compression="zlib", rowsperstrip=rgb.shape[0])
    else:
        Image.fromarray(rgb).save(whole, "TIFF", compression="tiff_lzw")
    data = whole.read_bytes()
    assert np.array_equal(decode(data).rgb, rgb) and tiff_damage(data, 0, rgb.size * 8) is None
    with Image.open(io.BytesIO(data)) as im:
        offset, count = int(im.tag_v2[273][0]), int(im.tag_v2[279][0])
    middle = offset + count // 2
    damaged = data[:middle] + b"\0" * min(400, count // 4) + data[middle + min(400, count // 4):]
    with pytest.raises(TruncatedImageError, match="its compressed pixel data is damaged"):
        decode(damaged)


def test_a_deflate_stream_past_its_picture_size_or_cut_short_is_named() -> None:
    import zlib

    from preprocess.decode import _inflate_problem

    stream = zlib.compress(b"\0" * 5_000_000)
    assert _inflate_problem(stream, 5_000_000) is None
    assert "inflates past the 1,000,000 bytes" in (_inflate_problem(stream, 1_000_000) or "")
    assert "ends before its end" in (_inflate_problem(stream[:-10], 5_000_000) or "")
