"""Decode and validate encoded images: always RGB uint8, never a silent partial decode."""
from __future__ import annotations

import io
import re
import struct
import warnings
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
import simplejpeg
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from .colour_profile import declared_profile, to_srgb
from .contract import MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE, REDUCED_DECODE_MIN_SIDE
from .errors import (
    EmptyImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    MultiPictureImageError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedFormatError,
)

_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
)
# A BMP is "BM" and, 14 bytes in, the size of one of its known info headers: text that starts with "BM" is no BMP.
_BMP_INFO_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
# Pillow refuses a PNG whose ICC profile or text chunk decompresses to over 1 MB (its bomb guard); real profiles reach a
# few MB. 16 MB per chunk keeps the guard (Pillow's 64 MB total for text chunks stays) without refusing them.
_PNG_CHUNK_LIMIT = 16 * 2**20
PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, _PNG_CHUNK_LIMIT)
# IMREAD_COLOR_RGB has libjpeg write RGB directly: no BGR->RGB pass over the decoded pixels.
_RGB = cv2.IMREAD_COLOR_RGB
_REDUCED_FLAGS = (
    (8, cv2.IMREAD_REDUCED_COLOR_8 | _RGB),
    (4, cv2.IMREAD_REDUCED_COLOR_4 | _RGB),
    (2, cv2.IMREAD_REDUCED_COLOR_2 | _RGB),
)
SUPPORTED = "JPEG, PNG, BMP or TIFF"
# Why a TIFF that is whole may still be unreadable: OpenCV and PIL read integer samples only.
_TIFF_SAMPLES = ("; or its samples are not 8- or 16-bit integers, or its layout is one the decoder does not read (tiles of "
                 "16 or 48 pixels, LZMA compression): re-save it as 8-bit RGB")
# JPEG and PNG are turned here by the header's EXIF orientation, which is also what sets the size the header reports:
# OpenCV's own reading misses some valid tags (an orientation stored as LONG) and turns before a reduced decode is
# trimmed. OpenCV's TIFF reader turns by the TIFF tag itself, which this flag does not stop.
_OWN_ORIENTATION = cv2.IMREAD_IGNORE_ORIENTATION


# What PIL raises on a header or page it cannot read: OSError (truncated data), SyntaxError, TypeError and ValueError
# (its TIFF and PNG readers on malformed tags or chunks, e.g. TypeError "Missing dimensions" of a broken TIFF page),
# KeyError and IndexError (a tag value its tables do not hold), ZeroDivisionError and OverflowError (zero or huge
# rationals and sizes), EOFError (a seek past the last page) and struct.error (a short block). The client keeps a
# tested copy (dermassist_client.images.PIL_READ_ERRORS, with DecompressionBombError, which parse_header names apart).
PIL_READ_ERRORS: tuple[type[Exception], ...] = (OSError, SyntaxError, TypeError, ValueError, KeyError, IndexError,
                                                ZeroDivisionError, OverflowError, EOFError, struct.error)


_HEIF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"heim": "HEIC", b"heis": "HEIC", b"mif1": "HEIF",
                b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}


def other_format(data: bytes) -> str | None:
    """Name a file format that is not accepted but is often sent by mistake (WebP, GIF, HEIC, ...), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return _HEIF_BRANDS[data[8:12]]
    if data.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "JPEG 2000"
    if data[128:132] == b"DICM":
        return "DICOM"
    if data.startswith(b"%PDF"):
        return "PDF"
    return None


def is_bmp(data: bytes) -> bool:
    """Whether the bytes begin as a BMP does: "BM", then a known info header's size 14 bytes in."""
    return data[:2] == b"BM" and len(data) >= 18 and int.from_bytes(data[14:18], "little") in _BMP_INFO_HEADER_SIZES


def sniff_format(data: bytes) -> str:
    """Return the image format named by the leading magic bytes, or raise NotAnImageError."""
    if len(data) == 0:
        raise EmptyImageError(f"image is empty (0 bytes); send the encoded bytes of a {SUPPORTED} file")
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    if is_bmp(data):
        return "BMP"
    other = other_format(data)
    if other == "DICOM":
        raise UnsupportedFormatError(
            f"input of {len(data)} bytes is a DICOM file, not an encoded image; send its pixel data as "
            f"{SUPPORTED}, or analyse it with dermassist-client, which reads DICOM files"
        )
    if other is not None:
        article = "an" if other[0] in "AEIOU" else "a"
        raise UnsupportedFormatError(
            f"input of {len(data)} bytes is {article} {other} file, which is not accepted; expected {SUPPORTED}: "
            "convert it (for example to PNG) before sending"
        )
    # the message reaches the audit trail: it says what the bytes look like, never what they hold
    head = data[:16]
    text = head.isascii() and all(c.isprintable() or c in "\r\n\t" for c in head.decode("ascii"))
    looks = "starts with text" if text else "has no known image signature"
    raise NotAnImageError(
        f"input of {len(data)} bytes is not an image (it {looks}); expected {SUPPORTED}"
    )


_ORIENTATION_TAG = 0x0112
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}


@dataclass(frozen=True)
class Header:
    """What the header alone says about an image: enough to refuse it before decoding any pixel."""

    size: tuple[int, int]  # (width, height) as displayed: EXIF orientation applied
    profile: bytes | None  # the ICC colour profile (embedded, or the Adobe RGB a JPEG's EXIF declares)
    orientation: int = 1  # the EXIF orientation ``decode`` applies itself (JPEG and PNG); 1 for the rest
    page: int = 0  # the TIFF page holding the full-size picture (a reduced-resolution preview may come first)
    alpha: bool = False  # it carries transparency that the colour decode alone would drop (see ``has_alpha``)


def read_header(data: bytes, fmt: str) -> tuple[tuple[int, int], bytes | None]:
    """The displayed (width, height) and the ICC colour profile (or None), from the header alone.

    EXIF orientations that rotate by 90 degrees swap the stored sides, as the decoder does. The profile is the
    embedded one, or for a JPEG without one the Adobe RGB its EXIF may declare.
    """
    header = parse_header(data, fmt)
    return header.size, header.profile


def parse_header(data: bytes, fmt: str) -> Header:
    """Read the header of an image whose signature says ``fmt``; refuse what cannot be decoded safely."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                pictures, page = full_size_pictures(im) if fmt in ("TIFF", "PNG") else (1, 0)
                if page:
                    im.seek(page)
                width, height = int(im.size[0]), int(im.size[1])
                # PIL's TIFF reader reports the turned size already (OpenCV turns a TIFF itself). A PNG turns by its
                # eXIf chunk only, not by the EXIF ImageMagick writes in a text chunk ("Raw profile type exif"),
                # which PIL also reads; the chunk is found without PIL, whose getexif() decodes every pixel of a PNG
                exif = im.getexif() if fmt == "JPEG" else _png_exif(data) if fmt == "PNG" else None
                raw = exif.get(_ORIENTATION_TAG, 1) if exif is not None else 1
                orientation = raw if isinstance(raw, int) and 1 <= raw <= 8 else 1
                profile = im.info.get("icc_profile") or None
                if profile is None and fmt == "JPEG" and exif is not None:
                    profile = declared_profile(exif)
                alpha = has_alpha(im, fmt)
    except Image.DecompressionBombError as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        count = int(found.group(1)) if found else 0
        declared = f"{count:,} pixels ({count / 1e6:.1f} megapixels)" if found else "far too many pixels"
        raise ImageTooLargeError(
            f"{fmt} header declares {declared}; at most {MAX_IMAGE_PIXELS:,} pixels "
            f"({MAX_IMAGE_PIXELS / 1e6:.0f} megapixels) are accepted: downscale it before sending"
        ) from e
    except UnidentifiedImageError as e:
        samples = _TIFF_SAMPLES if fmt == "TIFF" else ""
        raise TruncatedImageError(
            f"{fmt} header of a {len(data)}-byte input cannot be read; the file is truncated or corrupt{samples}"
        ) from e
    except PIL_READ_ERRORS as e:
        raise TruncatedImageError(
            f"{fmt} header of a {len(data)}-byte input cannot be read ({type(e).__name__}: {e}); the file is truncated "
            "or corrupt"
        ) from e
    if fmt == "TIFF" and pictures > MAX_TIFF_PAGES:
        raise MultiPictureImageError(
            f"TIFF input of {len(data)} bytes holds more than {MAX_TIFF_PAGES} pages; DermAssist analyses one picture "
            "per image (a TIFF may add a preview or thumbnail page) and reads no further: send each picture as its own "
            "image"
        )
    if pictures > 1:
        held = "more than one full-size picture (pages)" if fmt == "TIFF" else f"{pictures} full-size pictures " \
                                                                                "(animation frames)"
        raise MultiPictureImageError(
            f"{fmt} input of {len(data)} bytes holds {held}; DermAssist analyses one picture per image and will not "
            "guess which: send each as its own image"
        )
    size = (height, width) if orientation in _TRANSPOSING_ORIENTATIONS else (width, height)
    return Header(size, profile, orientation, page, alpha)


def has_alpha(im: Image.Image, fmt: str) -> bool:
    """Whether an open picture (at its full-size page) carries transparency that the colour decode would drop.

    A PNG with an alpha channel (RGBA, grey + alpha) or a tRNS chunk (palette, grey or RGB), a BMP with an alpha
    mask. A TIFF only with grey + alpha: OpenCV reads an RGB TIFF with alpha through libtiff, which already gives the
    colours over black (an associated alpha's stored colours are that already; an unassociated one is multiplied in).
    """
    if fmt == "PNG":
        return im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    if fmt == "BMP":
        return im.mode == "RGBA"
    return fmt == "TIFF" and im.mode == "LA"


def _png_chunk(data: bytes, name: bytes) -> bytes | None:
    """The data of a PNG's first chunk named ``name`` (before or after the pixel data), found by walking the chunk
    headers (no pixel is decoded), or None."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        if kind == name:
            return data[pos + 8:pos + 8 + length]
        if kind == b"IEND":
            return None
        pos += 12 + length
    return None


def _png_exif(data: bytes) -> Image.Exif | None:
    """The EXIF of a PNG's eXIf chunk (before or after the pixel data)."""
    chunk = _png_chunk(data, b"eXIf")
    if chunk is None:
        return None
    exif = Image.Exif()
    exif.load(chunk)
    return exif


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """An image (H, W[, C]) stored as the file holds it, turned as a viewer shows it for an EXIF orientation of 1-8
    (a mask drawn on the stored pixels turns the same way); any other value leaves it as it is."""
    turned = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(turned[orientation](pixels)) if orientation in turned else pixels


_NEW_SUBFILE_TYPE = 254  # TIFF tag; bit 0 set: a reduced-resolution copy (a thumbnail or preview) of another page


#: The most pages of a TIFF read: a dermoscope or scanner writes one picture, perhaps beside a preview or thumbnail
#: page. PIL reads every page's directory it is asked to walk, and walking them all grows faster than their number
#: (100,000 tiny pages in an 11 MB file took 53 s of CPU), so a TIFF of more pages is refused after this many.
MAX_TIFF_PAGES = 16


def full_size_pictures(im: Image.Image) -> tuple[int, int]:
    """How many full-size pictures an open TIFF or PNG holds, and the index of the first: an animated PNG's frames
    (the count its header declares); TIFF pages not marked as reduced-resolution copies (a thumbnail or preview page
    is allowed, first or after), walked only until a second one (2: two or more); ``MAX_TIFF_PAGES`` + 1 for a TIFF of
    more pages than that, whatever they are. Leaves the image at its first page."""
    if im.format != "TIFF":
        return max(int(getattr(im, "n_frames", 1)), 1), 0
    full: list[int] = []
    index = 0
    while len(full) < 2:
        try:
            im.seek(index)
        except EOFError:  # past the last page
            break
        if index == MAX_TIFF_PAGES:
            im.seek(0)
            return MAX_TIFF_PAGES + 1, 0
        if not int(getattr(im, "tag_v2", {}).get(_NEW_SUBFILE_TYPE, 0)) & 1:
            full.append(index)
        index += 1
    im.seek(0)
    return len(full), (full[0] if full else 0)


def check_size(width: int, height: int) -> None:
    """Reject images too small to segment or too large to decode safely."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height:,} pixels ({width * height / 1e6:.1f} megapixels); at most "
            f"{MAX_IMAGE_PIXELS:,} pixels ({MAX_IMAGE_PIXELS / 1e6:.0f} megapixels) are accepted: downscale it before sending"
        )
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ImageTooSmallError(
            f"image is {width}x{height} pixels; each side must be at least {MIN_IMAGE_SIDE} pixels"
        )


_JPEG_EOI = b"\xff\xd9"
_JPEG_SOS = 0xDA


def _jpeg_marker_alone(marker: int) -> bool:
    """Whether a JPEG marker stands without a length field (RSTn, TEM)."""
    return marker == 0x01 or 0xD0 <= marker <= 0xD7
_PNG_IEND = b"IEND\xaeB`\x82"  # the IEND chunk's type and its fixed CRC


def _jpeg_complete(data: bytes) -> bool:
    """Whether the main image's scan data is followed by its end-of-image marker.

    The marker segments are walked from SOI to the first start-of-scan, so an EXIF thumbnail (inside
    APP1, with its own end marker) cannot pass for the main image's end; bytes after the end marker
    (a phone's trailer, padding, a second MPF picture) are allowed. A stream whose segments cannot be
    walked falls back to looking for the end marker at the end of the file.
    """
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return _JPEG_EOI in data[-64:].rstrip(b"\x00")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif marker == _JPEG_SOS:
            return data.rfind(_JPEG_EOI, pos) != -1
        elif _jpeg_marker_alone(marker):
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return False


def _png_complete(data: bytes) -> bool:
    """Whether the PNG holds its IEND chunk; bytes appended after it are allowed."""
    return data.rfind(_PNG_IEND) != -1


def _reduction(width: int, height: int, fmt: str) -> tuple[int, int]:
    """(factor, imread flag): the largest JPEG shrink-on-load keeping REDUCED_DECODE_MIN_SIDE."""
    if fmt == "JPEG":
        for factor, flag in _REDUCED_FLAGS:
            if max(width, height) // factor >= REDUCED_DECODE_MIN_SIDE:
                return factor, flag
    return 1, _RGB


@dataclass(frozen=True)
class DecodedImage:
    """A decoded RGB image and the size of the original it came from."""

    rgb: np.ndarray  # uint8 (H, W, 3); smaller than the original when decoded reduced
    original_size: tuple[int, int]  # (height, width) of the original, EXIF orientation applied
    reduction: int = 1  # original pixels per decoded pixel (1, 2, 4 or 8)


def decode_image(data: bytes) -> np.ndarray:
    """Decode one encoded image to a full-resolution RGB uint8 array (H, W, 3), validating it first."""
    return decode(data).rgb


_TIFF_DEFLATE, _TIFF_LZW = (8, 32946), 5  # TIFF Compression tag (259) values: Adobe and old deflate, LZW
_INFLATE_STEP = 1 << 20


def _inflate_problem(chunk: bytes, limit: int) -> str | None:
    """What is wrong with one deflate stream (its check value, a cut, more bytes than ``limit``), read 1 MiB at a
    time and dropped; None when it inflates whole."""
    stream = zlib.decompressobj()
    total, pending = 0, chunk
    try:
        while not stream.eof:
            out = stream.decompress(pending, _INFLATE_STEP)
            total += len(out)
            if total > limit:
                return f"it inflates past the {limit:,} bytes a picture of its size can hold"
            pending = stream.unconsumed_tail
            if not pending and not out:
                return "its compressed data ends before its end"
    except zlib.error as e:
        return f"zlib: {e}"
    return None


def tiff_damage(data: bytes, page: int, limit: int) -> str | None:
    """Why the compressed pixel data of a TIFF's page ``page`` is damaged, or None: libtiff only warns of a corrupt
    strip, and OpenCV then answers with what it could decode (a picture half noise). Deflate strips or tiles are
    inflated and their check values compared (each at most ``limit`` bytes); an LZW page is decoded by PIL, whose
    decoder reports its errors. JPEG-in-TIFF, PackBits and uncompressed data carry no check of their own."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(data)) as im:
            if page:
                im.seek(page)
            tags = getattr(im, "tag_v2", {})  # a TiffImageFile's
            compression = int(tags.get(259, 1))
            offsets, counts = tags.get(273) or tags.get(324) or (), tags.get(279) or tags.get(325) or ()
            if compression in _TIFF_DEFLATE:
                for index, (offset, count) in enumerate(zip(offsets, counts)):
                    problem = _inflate_problem(data[int(offset):int(offset) + int(count)], limit)
                    if problem is not None:
                        return f"{'tile' if 324 in tags else 'strip'} {index}: {problem}"
            elif compression == _TIFF_LZW:
                try:
                    im.load()
                except OSError as e:
                    return f"its LZW data cannot be decoded ({e})"
    return None


def decode(data: bytes, *, allow_reduced: bool = False) -> DecodedImage:
    """Decode one encoded image to RGB uint8, validating it first.

    EXIF orientation is applied (JPEG, PNG and TIFF), and ``original_size`` is that of the turned image;
    16-bit, grayscale and palette images become 8-bit RGB; an image with transparency is shown over black, as a
    dermoscope's field-of-view border is (``composite_on_black``: transparent pixels black, partly transparent ones
    blended, opaque ones unchanged), and the colours of an embedded ICC profile become sRGB (``colour_profile``).
    A JPEG whose scan data is damaged (cut short, bytes overwritten, a second picture spliced in) is refused, not
    decoded half grey. With ``allow_reduced`` a large JPEG is decoded at 1/2, 1/4 or 1/8 scale as long as its
    long side stays at least ``REDUCED_DECODE_MIN_SIDE``;
    the decoded image is then trimmed to ``original // factor`` per side so that it never maps beyond the original.
    """
    data = bytes(data)
    fmt = sniff_format(data)
    header = parse_header(data, fmt)
    width, height = header.size
    check_size(width, height)
    if (fmt == "JPEG" and not _jpeg_complete(data)) or (fmt == "PNG" and not _png_complete(data)):
        raise TruncatedImageError(
            f"{fmt} input of {len(data)} bytes ({width}x{height}) ends before its end marker; the file is truncated"
        )
    described = f"{fmt} input of {len(data)} bytes ({width}x{height})"
    damage = tiff_damage(data, header.page, width * height * 8) if fmt == "TIFF" else None
    if damage is not None:
        raise TruncatedImageError(f"{described}: its compressed pixel data is damaged ({damage}), which would leave part "
                                  "of the picture noise; the file was cut or overwritten: send the original again")
    frame = jpeg_frame(data) if fmt == "JPEG" else None
    scalable = allow_reduced and (fmt != "JPEG" or jpeg_is_scalable(frame))
    factor, flag = _reduction(width, height, fmt) if scalable else (1, _RGB)
    rgb = decode_jpeg_strict(data, described, factor, frame) if fmt == "JPEG" else None  # checked as it is decoded
    if rgb is None:
        buffer = np.frombuffer(data, dtype=np.uint8)
        rgb = (_decode_over_black(data, buffer, fmt, header.page, described) if header.alpha  # never a JPEG
               else _decode_colour(buffer, flag, header.page))
    if rgb is None:
        samples = _TIFF_SAMPLES if fmt == "TIFF" else ""
        raise TruncatedImageError(f"{described} could not be decoded; the file is truncated or corrupt{samples}")
    rgb = to_srgb(rgb, header.profile, described)
    if factor > 1:  # trimmed in the stored frame, where the partial blocks of a reduced decode lie: right and bottom
        stored = (width, height) if header.orientation not in _TRANSPOSING_ORIENTATIONS else (height, width)
        rgb = rgb[: stored[1] // factor, : stored[0] // factor]
    rgb = np.ascontiguousarray(apply_orientation(rgb, header.orientation))  # one copy at most: the turn or the trim
    if factor == 1:  # the decoded size is the original's (a TIFF the decoder turned by its own tag included)
        return DecodedImage(rgb, (int(rgb.shape[0]), int(rgb.shape[1])), 1)
    return DecodedImage(rgb, (height, width), factor)


def _decode_colour(buffer: np.ndarray, flag: int, page: int) -> np.ndarray | None:
    """The stored picture's colour channels as OpenCV decodes them with ``flag`` (at a TIFF's ``page``), or None."""
    if page:
        found, pages = cv2.imdecodemulti(buffer, flag, range=(page, page + 1))
        return pages[0] if found and pages else None
    return cv2.imdecode(buffer, flag | _OWN_ORIENTATION)


def composite_on_black(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) as shown over black by its straight (not premultiplied) alpha, uint8 (H, W).

    Each value is multiplied by alpha / 255 and rounded to the nearest level: transparent pixels become black,
    opaque ones keep their values bit for bit (a fully opaque image is returned as it is). The thin client flattens
    a PIL image by the same formula (a test holds the two equal).
    """
    if alpha.min() == 255:
        return rgb
    return ((rgb.astype(np.uint16) * alpha[..., None] + 127) // 255).astype(np.uint8)


def _decode_over_black(data: bytes, buffer: np.ndarray, fmt: str, page: int, described: str) -> np.ndarray | None:
    """The colours over black of an image whose header says it carries transparency (``has_alpha``), in the stored
    frame and at the depth the colour decode gives (None when OpenCV cannot decode it).

    One decode of every channel where OpenCV reads the alpha (PNG, BMP): its colours are those of the colour decode
    (16-bit samples keep their top 8 bits, as there). A grey PNG's tRNS level is matched on the stored samples; a
    TIFF's grey + alpha, whose alpha OpenCV drops, takes PIL's alpha.
    """
    if fmt != "TIFF":
        raw: np.ndarray | None = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)  # leaves EXIF orientation to us
        if raw is None:
            return None
        eight = raw if raw.dtype == np.uint8 else (raw >> 8).astype(np.uint8)
        if raw.ndim == 3 and raw.shape[2] == 4:
            rgb, alpha = cv2.cvtColor(eight, cv2.COLOR_BGRA2RGB), eight[..., 3]
            if fmt == "BMP" and not alpha.any():  # a BMP whose alpha was left all zero is shown opaque, as browsers do
                return rgb
            return composite_on_black(rgb, alpha)
        key = _grey_key(data) if fmt == "PNG" and raw.ndim == 2 else None
        if key is not None:
            return composite_on_black(cv2.cvtColor(eight, cv2.COLOR_GRAY2RGB), np.where(raw == key, 0, 255).astype(np.uint8))
    colour = _decode_colour(buffer, _RGB, page)
    return None if colour is None else composite_on_black(colour, _pil_alpha(data, page, colour.shape[:2], described))


def _grey_key(data: bytes) -> int | None:
    """The grey level a greyscale PNG's tRNS chunk makes transparent, as the decoder gives it (1-, 2- and 4-bit
    levels expanded to 8 bits, 16-bit ones kept), or None for a PNG of another kind."""
    if len(data) < 26 or data[25] != 0:  # IHDR, always first: bit depth at byte 24, colour type (0: grey) at 25
        return None
    chunk = _png_chunk(data, b"tRNS")
    if chunk is None or len(chunk) < 2:
        return None
    depth, level = data[24], int.from_bytes(chunk[:2], "big")
    return level * (255 // (2**depth - 1)) if depth < 8 else level


def _pil_alpha(data: bytes, page: int, shape: tuple[int, ...], described: str) -> np.ndarray:
    """The alpha channel, uint8 (H, W), as PIL reads it at ``page``; it must cover the ``shape`` decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                if page:
                    im.seek(page)
                alpha = np.asarray((im if im.mode in ("LA", "RGBA") else im.convert("RGBA")).getchannel("A"))
    except PIL_READ_ERRORS as e:
        raise TruncatedImageError(
            f"{described} has transparency that cannot be read ({e}); the file is corrupt: re-save it as 8-bit RGB"
        ) from e
    if alpha.shape != tuple(shape):
        raise TruncatedImageError(
            f"{described}: its transparency covers {alpha.shape[1]}x{alpha.shape[0]} pixels, its colours "
            f"{shape[1]}x{shape[0]}; re-save it as 8-bit RGB"
        )
    return alpha


_LOSSLESS_FRAMES = (0xC3, 0xC7, 0xCB, 0xCF)  # JPEG start-of-frame markers of lossless coding
_NOT_FRAMES = (0xC4, 0xC8, 0xCC)  # DHT, JPG and DAC share the start-of-frame range
_STRAY_BYTES = re.compile(r"extraneous bytes before marker 0x([0-9a-fA-F]{2})")


def _jpeg_header_segments(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """The marker segments of a JPEG after its SOI, up to its first scan, as (start, end) offsets, the stray and fill
    bytes between them (which decoders skip) left out; and the offset the first scan starts at (or where the walk
    could go no further)."""
    segments, pos = [], 2
    while pos + 1 < len(data):
        marker = data[pos + 1]
        if data[pos] != 0xFF or marker == 0x00:  # a stray byte (0xFF00 is a stuffed byte, not a marker)
            pos += 1 if data[pos] != 0xFF else 2
        elif marker == 0xFF:  # a fill byte before a marker
            pos += 1
        elif _jpeg_marker_alone(marker):
            segments.append((pos, pos + 2))
            pos += 2
        elif marker == _JPEG_SOS or pos + 4 > len(data):  # the first scan: the rest is kept as it is
            break
        else:
            end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
            segments.append((pos, end))
            pos = end
    return segments, pos


def without_stray_header_bytes(data: bytes) -> bytes:
    """The JPEG without the stray bytes between its header segments (up to its first scan), which decoders skip."""
    segments, scan = _jpeg_header_segments(data)
    return data[:2] + b"".join(data[start:end] for start, end in segments) + data[scan:]


@dataclass(frozen=True)
class JpegFrame:
    """What a JPEG's start-of-frame segment says of its picture."""

    marker: int  # SOF0-SOF15: the coding (baseline, progressive, lossless, arithmetic...)
    height: int  # 0 when a DNL segment after the first scan gives it
    width: int
    components: int  # 1 grey, 3 YCbCr or RGB, 4 CMYK or YCCK (printing inks)

    @property
    def lossless(self) -> bool:
        """Lossless coding (SOF3, 7, 11, 15): libjpeg-turbo decodes it only at full size (asked to scale one, it
        writes the full-size picture into the smaller buffer)."""
        return self.marker in _LOSSLESS_FRAMES


def jpeg_frame(data: bytes) -> JpegFrame | None:
    """The JPEG's first start-of-frame segment, read from the header segments; None when there is none to read."""
    for start, end in _jpeg_header_segments(data)[0]:
        marker = data[start + 1]
        if 0xC0 <= marker <= 0xCF and marker not in _NOT_FRAMES and end - start >= 10 and end <= len(data):
            return JpegFrame(marker, int.from_bytes(data[start + 5:start + 7], "big"),
                             int.from_bytes(data[start + 7:start + 9], "big"), data[start + 9])
    return None


def jpeg_is_scalable(frame: JpegFrame | None) -> bool:
    """Whether libjpeg-turbo may decode a JPEG of this frame (``jpeg_frame``) reduced: it was read and is not
    lossless."""
    return frame is not None and not frame.lossless


def decode_jpeg_strict(data: bytes, described: str, factor: int, frame: JpegFrame | None) -> np.ndarray | None:
    """A JPEG decoded to RGB at 1/``factor`` scale by libjpeg-turbo's strict mode, which refuses a compressed scan it
    can only decode by guessing (cut short or overwritten: OpenCV decodes such a file without a word, the missing part
    grey); the pixels are OpenCV's to the bit (the same libjpeg-turbo and settings). ``frame`` is the JPEG's
    ``jpeg_frame``, read once by the caller. A lossless JPEG is decoded at full size only (``factor`` must be 1:
    ``jpeg_is_scalable``). A CMYK or YCCK JPEG (libjpeg-turbo does not turn printing inks into RGB) is only checked,
    at 1/8 scale where it can be (every coded block read, most of the inverse DCT skipped), and None comes back:
    OpenCV decodes it next. Stray bytes between header segments are skipped by every decoder and leave the picture
    whole, so they pass: the file is read again without them (None when they cannot be taken out); stray bytes
    before a restart or end marker mean the coded blocks did not fit: refused.
    """
    if factor != 1 and not jpeg_is_scalable(frame):  # a lossless one: libjpeg-turbo would write past its buffer
        raise ValueError(f"{described} is lossless or its frame was not found: it cannot be decoded reduced; asked "
                         f"for 1/{factor}")
    if frame is None:  # the header walk reads it as libjpeg does: libjpeg refuses a scan with no frame before it
        raise TruncatedImageError(_not_decodable(described, "no frame header (start-of-frame segment) before its scan"))
    inks = frame.components == 4  # CMYK or YCCK: only checked, at 1/8 where it can be
    scale = (1 if frame.lossless else 8) if inks else factor
    try:  # simplejpeg scales only down to the least size it is given
        out = simplejpeg.decode_jpeg(data, colorspace="CMYK" if inks else "RGB", min_factor=scale, strict=True,
                                     min_height=-(-frame.height // scale), min_width=-(-frame.width // scale))
    except (ValueError, RuntimeError) as e:
        stray = _STRAY_BYTES.search(str(e))
        if stray is not None and not 0xD0 <= int(stray.group(1), 16) <= 0xD9:
            cleaned = without_stray_header_bytes(data)
            # the header walk skips those bytes too: the frame read is the cleaned file's
            return None if cleaned == data else decode_jpeg_strict(cleaned, described, factor, frame)
        raise TruncatedImageError(_not_decodable(described, str(e))) from e
    return None if inks else np.asarray(out)


def _not_decodable(described: str, why: str) -> str:
    """The refusal of a JPEG the strict decode cannot read in full, with ``why`` (libjpeg's words, or the header's)."""
    return (f"{described} cannot be decoded in full ({why}): its compressed data is damaged (cut short or overwritten, "
            "which would leave part of the picture missing) or uses a JPEG variant DermAssist does not read; send the "
            "original file again, or re-save it as an 8-bit JPEG or PNG")
