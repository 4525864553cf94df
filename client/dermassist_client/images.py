"""Turn what callers hold (a path, bytes, a numpy array, a PIL image) into encoded image bytes."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import stat
import struct
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageCms, PngImagePlugin, UnidentifiedImageError

from .classes import MAX_IMAGE_PIXELS
from .colour_profile import declared_profile
from .errors import InvalidImageError
from .extras import install_command
from .files import mode_kind
from .metadata import jpeg_without_metadata, minimal_exif, png_without_metadata

logger = logging.getLogger(__name__)

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, Image.Image]

SUPPORTED = "JPEG, PNG, BMP or TIFF"
#: The largest image file read: no accepted picture of at most MAX_IMAGE_PIXELS is larger (50 megapixels of four 32-bit
#: samples, uncompressed, is 800 MB), and a request carries 256 MiB by default. A larger file is refused by its size,
#: before it is read into memory.
MAX_FILE_BYTES = 1 << 30
#: zlib level of the PNG an array or a PIL image is sent as. PNG is lossless at every level, so the server decodes the
#: same pixels; level 1 took 20 ms for a 600x450 picture where PIL's default 6 took 91 ms, for 12% more bytes.
PNG_COMPRESS_LEVEL = 1
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
_WARNINGS_LOCK = threading.Lock()  # around catch_warnings, which swaps the process's filter list
# As the server: a PNG whose ICC profile or text chunk decompresses to over Pillow's 1 MB default is a valid image
# (never lowered if the application set more).
_PNG_CHUNK_LIMIT = 16 * 2**20  # preprocess.decode's, held equal by tests/client/test_units.py
PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, _PNG_CHUNK_LIMIT)
_HEIF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"heim": "HEIC", b"heis": "HEIC", b"mif1": "HEIF",
                b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}


@dataclass(frozen=True)
class EncodedImage:
    """Encoded bytes ready for the ``IMAGE`` tensor, with the original size if it could be read."""

    data: bytes
    size: tuple[int, int] | None
    source: str


def is_dicom(head: bytes) -> bool:
    """Whether bytes starting a file are a DICOM Part 10 file ('DICM' at byte 128)."""
    return head[128:132] == b"DICM"


_DICOM_VRS = frozenset({"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD", "OF", "OL",
                        "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US",
                        "UT", "UV"})


def is_bare_dicom(head: bytes) -> bool:
    """Whether bytes starting a file look like a DICOM data set written without the Part 10 header (no preamble,
    'DICM' or file meta: some exports write this): a little-endian tag of group 0002 or 0008 first, then an explicit
    VR, or an implicit length that fits."""
    if len(head) < 8 or int.from_bytes(head[0:2], "little") not in (0x0002, 0x0008):
        return False
    vr = head[4:6].decode("latin-1")
    return vr in _DICOM_VRS or int.from_bytes(head[4:8], "little") < 1024


def other_format(data: bytes) -> str | None:
    """Name a format that is not accepted but is often sent by mistake (WebP, GIF, HEIC, ...), as the server names
    it (a copy: the thin client imports nothing of the server; a test holds the two equal)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return _HEIF_BRANDS[data[8:12]]
    if data.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "JPEG 2000"
    if is_dicom(data):
        return "DICOM"
    if data.startswith(b"%PDF"):
        return "PDF"
    return None


def is_bmp(data: bytes) -> bool:
    """As the server: "BM", then a known info header's size 14 bytes in."""
    return data[:2] == b"BM" and len(data) >= 18 and int.from_bytes(data[14:18], "little") in _BMP_INFO_HEADER_SIZES


def sniff_format(data: bytes) -> str | None:
    """The image format named by the leading magic bytes, or None."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return "BMP" if is_bmp(data) else None


#: What PIL raises on a header, page or EXIF block it cannot read: OSError (UnidentifiedImageError, truncated data),
#: SyntaxError, TypeError and ValueError (its TIFF and PNG readers on malformed tags or chunks, e.g. TypeError
#: "Missing dimensions" of a broken TIFF page), KeyError and IndexError (a tag value its tables do not hold, e.g. a
#: TIFF page's unknown compression), ZeroDivisionError and OverflowError (zero or huge rationals and sizes), EOFError
#: (a seek past the last page), struct.error (a short EXIF block) and DecompressionBombError (a header declaring far
#: too many pixels). A bug of ours raises something else.
PIL_READ_ERRORS: tuple[type[Exception], ...] = (OSError, SyntaxError, TypeError, ValueError, KeyError, IndexError,
                                                ZeroDivisionError, OverflowError, EOFError, struct.error,
                                                Image.DecompressionBombError)

_ORIENTATION_TAG = 0x0112
TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}  # the EXIF orientations that swap width and height
# Image.Transpose came in Pillow 9.1; 9.0 has the same members on Image itself.
_TRANSPOSE = getattr(Image, "Transpose", Image)
# The transposition that shows a picture stored with each EXIF orientation as a viewer shows it.
_TURNS = {2: _TRANSPOSE.FLIP_LEFT_RIGHT, 3: _TRANSPOSE.ROTATE_180, 4: _TRANSPOSE.FLIP_TOP_BOTTOM,
          5: _TRANSPOSE.TRANSPOSE, 6: _TRANSPOSE.ROTATE_270, 7: _TRANSPOSE.TRANSVERSE, 8: _TRANSPOSE.ROTATE_90}
# What only PIL's PNG reader puts in a picture's info (XMP from an iTXt chunk, ImageMagick's EXIF text chunk): a
# picture made in memory from a PNG keeps them.
_PNG_ONLY_INFO = ("XML:com.adobe.xmp", "Raw profile type exif")
_EXIF_PREFIX = b"Exif\x00\x00"  # PIL's PNG reader puts it before an eXIf chunk's data in info["exif"]


def _reads_as(image: Image.Image) -> str:
    """The format by whose rule the server reads the EXIF of a picture like ``image``: its own ("JPEG" for a
    phone's multi-picture JPEG, which PIL names "MPO"); for one made or changed in memory (PIL gives it no format,
    but it keeps the info of the file it came from) "PNG" when that info holds what only PIL's PNG reader sets,
    else "JPEG"."""
    if image.format is None:
        return "PNG" if any(key in image.info for key in _PNG_ONLY_INFO) else "JPEG"
    return "JPEG" if image.format == "MPO" else str(image.format)


def _server_exif(image: Image.Image, reads_as: str, png_exif: bytes | None) -> Image.Exif | None:
    """The EXIF by which the server's decoder turns (and, for a JPEG, colours) a picture read as ``reads_as``.

    A JPEG's EXIF as PIL reads it (an XMP orientation included); a PNG's eXIf chunk only (``png_exif``), neither
    the EXIF ImageMagick writes in a text chunk ("Raw profile type exif") nor XMP, which PIL also reads; none for a
    TIFF (PIL's reader turns it as it loads it, and reports the turned size) or a BMP. A PIL image of another format
    (a WebP, say: it is sent as PNG, so the client sets its frame) by PIL's reading, as a viewer turns it.
    """
    if reads_as == "PNG":
        if not png_exif:
            return None
        exif = Image.Exif()
        exif.load(png_exif)
        return exif
    return None if reads_as in ("TIFF", "BMP") else image.getexif()


def _orientation(exif: Image.Exif | None) -> int:
    """The EXIF orientation, 1-8, as the server takes it: 1 when absent or not one of those."""
    raw = exif.get(_ORIENTATION_TAG, 1) if exif is not None else 1
    return raw if isinstance(raw, int) and 1 <= raw <= 8 else 1


def read_header(data: bytes) -> tuple[str, tuple[int, int]] | None:
    """PIL's name for the format and the (width, height) as displayed, from the header alone; None when PIL
    cannot read it.

    An EXIF orientation that turns the picture by 90 degrees swaps the stored sides, as the server's
    decoder does, so the size matches the frame the server's BBOX and MASK are in.
    """
    try:
        with _quiet_bomb_warning(), Image.open(io.BytesIO(data)) as im:
            to_full_size_page(im)
            width, height = im.size
            # The server's rule, which exif_orientation follows for a PIL image. PIL's TIFF reader reports the
            # turned size already; for JPEG (and a phone's "MPO") and PNG it reports the stored one. A PNG's eXIf
            # chunk is found without PIL, whose getexif() decodes every pixel of a PNG to look for one after them.
            exif = (_server_exif(im, _reads_as(im), _png_chunk(data, b"eXIf"))
                    if im.format in ("JPEG", "MPO", "PNG") else None)
            turned = _orientation(exif) in TRANSPOSING_ORIENTATIONS
            name = str(im.format)
    except PIL_READ_ERRORS as e:  # an unreadable header just means "format and size unknown"
        logger.debug("format and size of a %d-byte image left unknown: PIL cannot read its header (%s: %s)",
                     len(data), type(e).__name__, e)
        return None
    return name, ((height, width) if turned else (width, height))


def without_metadata(data: bytes) -> bytes:
    """``data`` as the server is sent it: a JPEG or PNG without the metadata the server does not read (GPS position,
    serial numbers, descriptions, comments: ``metadata``), keeping its orientation and colour marks; anything else,
    or a picture whose header PIL cannot read, as it came."""
    fmt = sniff_format(data)
    if fmt not in ("JPEG", "PNG"):
        return data
    try:
        with _quiet_bomb_warning(), Image.open(io.BytesIO(data)) as im:
            exif = _server_exif(im, "PNG" if fmt == "PNG" else "JPEG", _png_chunk(data, b"eXIf"))
            orientation = _orientation(exif)
            adobe_rgb_marked = exif is not None and declared_profile(exif) is not None
    except PIL_READ_ERRORS:
        return data
    exif_kept = minimal_exif(orientation, adobe_rgb_marked)
    return jpeg_without_metadata(data, exif_kept) if fmt == "JPEG" else png_without_metadata(data, exif_kept)


def _png_chunk(data: bytes, name: bytes) -> bytes | None:
    """The data of a PNG's first chunk named ``name`` (before or after the pixel data), from the chunk lengths and
    names alone (no pixel is decoded), or None; as the server finds it."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        if kind == name:
            return data[pos + 8:pos + 8 + length]
        if kind == b"IEND":
            return None
        pos += 12 + length
    return None


def png_has_exif(data: bytes) -> bool:
    """Whether a PNG holds an eXIf chunk, from its chunk lengths and names alone (no pixel is decoded)."""
    return _png_chunk(data, b"eXIf") is not None


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8; 1: not turned) by which the server turns the picture of a PIL image.

    The rule of the server's decoder, which ``read_header`` follows for encoded bytes: a JPEG turns by its EXIF or
    XMP orientation, a PNG by its eXIf chunk only (not by XMP nor ImageMagick's "Raw profile type exif" text, which
    ``ImageOps.exif_transpose`` also follows), a TIFF is turned by PIL as it loads, a BMP never. A picture made or
    changed in memory follows the rule of the file its info came from (``_reads_as``). Loads the image (a PNG's
    eXIf chunk may follow its pixels); EXIF that cannot be read turns nothing.
    """
    image.load()
    stored = image.info.get("exif")
    png_exif = stored if isinstance(stored, bytes) and stored.startswith(_EXIF_PREFIX) else None
    try:
        return _orientation(_server_exif(image, _reads_as(image), png_exif))
    except PIL_READ_ERRORS as e:
        logger.debug("EXIF of a %dx%d PIL image cannot be read, so it is not turned: %s", *image.size, e)
        return 1


def turned(image: Image.Image, orientation: int) -> Image.Image:
    """``image`` as a viewer shows a picture stored with EXIF ``orientation`` (1-8): the image itself for 1 (or
    another value), else a turned copy, which keeps the image's info."""
    method = _TURNS.get(orientation)
    return image if method is None else image.transpose(method)


def as_displayed(image: Image.Image) -> Image.Image:
    """``image`` turned as the server turns the picture (``exif_orientation``): the frame its BBOX and MASK are in."""
    return turned(image, exif_orientation(image))


def colour_profile(image: Image.Image) -> bytes | None:
    """The ICC profile the colours of a PIL image are in, as the server takes a file's: the embedded one, else, for
    a JPEG (or a picture made in memory from one), the Adobe RGB (1998) its EXIF declares by DCF's R03 marks
    (``colour_profile.declared_profile``); None for sRGB."""
    embedded = image.info.get("icc_profile")
    if embedded:
        return bytes(embedded)
    if _reads_as(image) != "JPEG":
        return None
    try:
        return declared_profile(image.getexif())
    except PIL_READ_ERRORS as e:
        logger.debug("EXIF of a %dx%d PIL image cannot be read, so it declares no colour space: %s", *image.size, e)
        return None


_NEW_SUBFILE_TYPE = 254  # TIFF tag; bit 0 set: a reduced-resolution copy (a thumbnail or preview) of another page


#: The most pages of a TIFF read, as the server reads them (preprocess.decode.MAX_TIFF_PAGES; it refuses a TIFF of
#: more): walking every page's directory of a TIFF of 100,000 tiny pages took 49 s before anything was sent.
MAX_TIFF_PAGES = 16


def to_full_size_page(im: Image.Image) -> None:
    """Move an open multi-page TIFF to its first page that is not a reduced-resolution copy, reading its pages as the
    server does (preprocess.decode.full_size_pictures: up to a second such page, at most ``MAX_TIFF_PAGES``), so a
    page PIL cannot read fails here as it would there; with none, to its first page."""
    if im.format != "TIFF":
        return
    full: list[int] = []
    for index in range(MAX_TIFF_PAGES):
        try:
            im.seek(index)
        except EOFError:  # past the last page
            break
        if not int(getattr(im, "tag_v2", {}).get(_NEW_SUBFILE_TYPE, 0)) & 1:
            full.append(index)
            if len(full) == 2:
                break
    im.seek(full[0] if full else 0)


_SAMPLE_FORMATS = {1: "unsigned integer", 2: "signed integer", 3: "floating point", 4: "undefined", 5: "complex integer",
                   6: "complex floating point"}  # TIFF's SampleFormat (tag 339)


def tiff_pixel_format(data: bytes) -> str | None:
    """The pixel format of a TIFF whose first page PIL cannot open, in words (``32-bit floating point, 3 samples``),
    from its tags; None when ``data`` is no TIFF or its first directory cannot be read."""
    from PIL import TiffImagePlugin

    if data[:4] not in (b"II*\0", b"MM\0*"):
        return None
    try:
        directory = TiffImagePlugin.ImageFileDirectory_v2(data[:8])
        stream = io.BytesIO(data)
        stream.seek(directory.next)
        directory.load(stream)
        bits = directory.get(258, (1,))
        kind = _SAMPLE_FORMATS.get(int((directory.get(339) or (1,))[0]), "an unknown kind of number")
        samples = int(directory.get(277, 1))
    except Exception as e:  # noqa: BLE001 - a directory PIL cannot read: nothing to say beyond "cannot be read"
        logger.debug("the TIFF directory cannot be read: %s", e)
        return None
    return f"{int(bits[0])}-bit {kind}, {samples} sample{'s' if samples != 1 else ''} a pixel"


def header_problem(data: bytes) -> str:
    """Why PIL cannot read the header of a file whose signature is a supported format, in words for a user."""
    try:
        with _quiet_bomb_warning(), Image.open(io.BytesIO(data)):
            return "its header cannot be read"
    except Image.DecompressionBombError as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found.group(1)) / 1e6:.1f} megapixels" if found else "far too many pixels"
        return f"it declares {size}, far more than DermAssist analyses: downscale it before sending"
    except UnidentifiedImageError:
        pixel_format = tiff_pixel_format(data)
        if pixel_format is not None:
            return f"its pixels are {pixel_format}, which DermAssist does not read: re-save it as 8- or 16-bit RGB"
        return "its header cannot be read: the file is truncated or corrupt"
    except Exception as e:  # noqa: BLE001 - whatever PIL says is the reason given
        return f"its header cannot be read ({e}); the file is truncated or corrupt, or re-save it as 8-bit RGB"


def probe_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as displayed (see ``read_header``), or None when PIL cannot read the header."""
    header = read_header(data)
    return header[1] if header else None


def encode_image(image: ImageInput) -> EncodedImage:
    """Encode one image for the server.

    Paths are checked here (a file that is not an image never leaves the machine); bytes are sent as they are and
    the server validates them; arrays (HxWx3 uint8 RGB, or HxWx4 RGBA) and PIL images become PNG, with any
    transparency shown over black as the server shows it (``flatten_alpha``). A JPEG or PNG file or bytes go without
    the metadata the server does not read (``without_metadata``: no GPS position, serial number or description).
    """
    if isinstance(image, (str, os.PathLike)):
        given = os.fspath(image)
        if (b"\0" if isinstance(given, bytes) else "\0") in given:  # str or bytes alike
            raise InvalidImageError(f"image path {given!r} holds a NUL character, which no file name can; "
                                    "check how the path was built")
        return _from_path(Path(image))
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        return EncodedImage(without_metadata(data), probe_size(data), f"<{len(data)} bytes>")
    if isinstance(image, np.ndarray):
        return _from_array(image)
    if isinstance(image, Image.Image):
        return _from_pil(image, "<PIL image>")
    raise InvalidImageError(
        f"image must be a path, bytes, a numpy array or a PIL image, got {type(image).__name__}; "
        "pass one of those"
    )


def _read_file(path: Path) -> bytes:
    """The bytes of the image file at ``path``; InvalidImageError for a folder, a path that is no regular file (a pipe
    or a device is never read: /dev/zero would fill the memory), a file over ``MAX_FILE_BYTES``, or one not readable."""
    try:
        info = path.stat()
        mode, size = info.st_mode, info.st_size
        if stat.S_ISDIR(mode):
            raise InvalidImageError(f"{path} is a folder, not an image file; pass its images (e.g. `{path}/*.jpg`), "
                                    "or evaluate a labelled folder with `dermassist evaluate --data`")
        kind = mode_kind(mode)
        if kind is not None:
            raise InvalidImageError(f"{path} is {kind}, not an image file; expected a {SUPPORTED} file: save the "
                                    "picture to a file and pass that")
        if size > MAX_FILE_BYTES:
            raise InvalidImageError(f"{path} is {size:,} bytes; no image DermAssist accepts is over {MAX_FILE_BYTES:,} "
                                    f"bytes (at most {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels): check the file, or "
                                    "downscale the picture and save it as JPEG or PNG")
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # the file may have grown since it was looked at
    except OSError as e:
        raise InvalidImageError(f"cannot read image file {path}: {e.strerror or e}; check the path") from e
    if len(data) > MAX_FILE_BYTES:
        raise InvalidImageError(f"{path} grew past {MAX_FILE_BYTES:,} bytes while it was read; send it once it is "
                                "written whole")
    return data


def _from_path(path: Path) -> EncodedImage:
    data = _read_file(path)
    fmt = sniff_format(data)
    if fmt is None and is_dicom(data):
        raise InvalidImageError(
            f"{path} is a DICOM file, not an encoded image; analyse it with `dermassist-client analyze` or "
            f"dermassist_client.dicom.analysis.analyze_dicom(client, read_dicom(path)), which read DICOM "
            f"({install_command('dicom')})"
        )
    if fmt is None and is_bare_dicom(data):
        raise InvalidImageError(
            f"{path} looks like a DICOM data set written without its Part 10 header (no 'DICM' at byte 128, no file "
            "meta information), which DermAssist does not read: export it as a DICOM file (Part 10) instead, or, if its "
            f"pixel data is uncompressed, convert it with `dcmconv +F {path} fixed.dcm` (DCMTK) and analyse that"
        )
    other = other_format(data) if fmt is None else None
    header = read_header(data)
    if other is not None or (fmt is None and header is not None):
        name = other or (header[0] if header is not None else "")
        article = "an" if name[:1] in "AEIOU" else "a"
        raise InvalidImageError(
            f"{path} is {article} {name} file, which DermAssist does not accept; expected a {SUPPORTED} file: "
            "convert it (for example to PNG) first"
        )
    if fmt is not None and header is None:
        raise InvalidImageError(f"{path} is a {fmt} file, but {header_problem(data)}")
    if not data:
        raise InvalidImageError(f"{path} is empty (0 bytes); expected a {SUPPORTED} file")
    if fmt is None or header is None:
        raise InvalidImageError(
            f"{path} is not an image ({len(data)} bytes, first bytes {data[:8].hex(' ')}); expected a {SUPPORTED} file"
        )
    width, height = header[1]
    if width * height > MAX_IMAGE_PIXELS:  # the server's refusal, told before the file is sent
        raise InvalidImageError(
            f"{path} is {width}x{height} = {width * height:,} pixels ({width * height / 1e6:.1f} megapixels); at most "
            f"{MAX_IMAGE_PIXELS:,} pixels ({MAX_IMAGE_PIXELS / 1e6:.0f} megapixels) are accepted: downscale it before "
            "sending")
    return EncodedImage(without_metadata(data), header[1], str(path))


@contextlib.contextmanager
def _quiet_bomb_warning() -> Iterator[None]:
    """PIL's DecompressionBombWarning silenced: a header read here decodes no pixel, and a picture over the server's
    limit is refused in words of its own, not with a warning about a denial-of-service attack. One thread at a time:
    ``catch_warnings`` swaps the process's filter list."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _array_fix(array: np.ndarray) -> str:
    """How to turn ``array`` into an HxWx3 uint8 RGB image: the conversion its shape and dtype call for."""
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1):
        return "a grey picture: stack it to RGB, e.g. np.dstack([arr] * 3) (a grey picture gets no diagnosis)"
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        return "pass one colour picture, height x width x 3 (channels last)"
    if np.issubdtype(array.dtype, np.floating):
        return ("a float picture: if its values are in [0, 1], scale them, (arr * 255).round().astype(np.uint8); "
                "a plain astype(np.uint8) would send a black picture")
    if np.issubdtype(array.dtype, np.integer) and array.dtype.itemsize > 1:
        return ("a picture of more than 8 bits: if its values span 0-65535, use (arr >> 8).astype(np.uint8); "
                "if they are already 0-255, arr.astype(np.uint8)")
    return "convert it to 8-bit RGB, values 0-255"


def _from_array(array: np.ndarray) -> EncodedImage:
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise InvalidImageError(
            f"numpy image must be HxWx3 uint8 RGB (or HxWx4 RGBA), got shape {array.shape} dtype {array.dtype}; "
            f"{_array_fix(array)}"
        )
    return _from_pil(Image.fromarray(np.ascontiguousarray(array)), f"<array {array.shape[1]}x{array.shape[0]}>")


_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA")
_PREMULTIPLIED_MODES = ("RGBa", "La")  # colours stored already multiplied by their alpha


def composite_on_black(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) as shown over black by its straight alpha, uint8 (H, W): each value times alpha / 255,
    rounded to the nearest level (transparent pixels black, opaque ones unchanged). A copy of the server's
    ``preprocess.decode.composite_on_black`` (the thin client imports nothing of the server; a test holds the two
    equal)."""
    if alpha.min() == 255:
        return rgb
    return ((rgb.astype(np.uint16) * alpha[..., None] + 127) // 255).astype(np.uint8)


def flatten_alpha(image: Image.Image) -> Image.Image:
    """``image`` as shown over black when it carries transparency (an alpha channel, or a colour or level its
    ``transparency`` makes transparent), as the server shows an image with transparency: the pixels a viewer shows,
    never the colours a transparent area hides. Its other info (the colour profile) is kept; an image without
    transparency is returned as it is.

    Colour images become RGB; 16-bit greyscale stays 16-bit, its transparent level black.
    """
    info = {key: value for key, value in image.info.items() if key != "transparency"}
    trns = image.info.get("transparency")
    if image.mode in _PREMULTIPLIED_MODES:  # the stored colours are those over black already
        stored = np.asarray(image)
        flat = Image.fromarray(np.ascontiguousarray(stored[..., :3] if image.mode == "RGBa" else stored[..., 0]))
    elif image.mode in _SIXTEEN_BIT_MODES + ("1", "L") and isinstance(trns, int):
        levels = np.clip(np.asarray(image.convert("L") if image.mode == "1" else image), 0, 65535)
        key = 255 * trns if image.mode == "1" else trns  # PIL keeps a 1-bit picture's level as stored: 0 or 1
        kept = np.where(levels == key, 0, levels)
        flat = Image.fromarray(kept.astype(np.uint16 if image.mode in _SIXTEEN_BIT_MODES else np.uint8))
    elif image.mode in _ALPHA_MODES or trns is not None:
        rgba = np.asarray(image.convert("RGBA"))
        flat = Image.fromarray(composite_on_black(rgba[..., :3], rgba[..., 3]))
    else:
        return image
    flat.info.update(info)
    return flat


def _from_pil(image: Image.Image, source: str) -> EncodedImage:
    """A PIL image as PNG, as the server reads its file: turned by the server's orientation rule (``as_displayed``:
    the original's frame, which BBOX and MASK are in), any transparency shown over black (``flatten_alpha``), its
    colour profile kept (or, for a camera JPEG that declares Adobe RGB only in its EXIF, that profile embedded:
    ``colour_profile``), and 16-bit greyscale kept at 16 bits (converting it to RGB would clip every value over 255
    to white)."""
    if 0 in image.size:
        raise InvalidImageError(f"{source} is {image.size[0]}x{image.size[1]} pixels: an empty picture; send the "
                                "picture itself")
    if image.mode == "F":
        raise InvalidImageError(
            f"{source} is a floating-point PIL image (mode F), whose values have no defined 0-255 range; "
            "scale it to 8-bit RGB (mode RGB) first"
        )
    key = image.info.get("transparency")
    if isinstance(key, tuple) and max(key, default=0) > 255:
        raise InvalidImageError(
            f"{source} is a PIL image of a 16-bit picture whose transparent colour is {key}, which PIL keeps at 16 "
            "bits while it holds the pixels at 8: which pixels that colour hides cannot be told; send the file's path "
            "or bytes instead (the server reads its transparency as a viewer shows it)"
        )
    profile = colour_profile(image)  # before turning: a turned copy has no format, which the rule may need
    shown = flatten_alpha(as_displayed(image))
    if shown.mode in _SIXTEEN_BIT_MODES:
        encoded = Image.fromarray(np.clip(np.asarray(shown), 0, 65535).astype(np.uint16))
    else:
        encoded = shown.convert("RGB")
    # The profile goes with the colours: an embedded one as it came, one a JPEG declares only in its EXIF embedded,
    # as the PNG carries no EXIF (a 16-bit grey picture is never a JPEG's).
    with_profile = {"icc_profile": profile} if profile and encoded.mode == "RGB" else {}
    buffer = io.BytesIO()
    encoded.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL, **with_profile)
    return EncodedImage(buffer.getvalue(), shown.size, source)


def as_srgb(image: Image.Image) -> Image.Image:
    """``image`` as RGB in the colours the server analyses: any transparency over black (``flatten_alpha``), and
    the colours of its ICC profile converted to sRGB: the embedded one, or the Adobe RGB a camera JPEG declares in
    its EXIF (``colour_profile``). Not turned: see ``as_displayed``.

    For display (the demo's overlay): the pixels a browser is given carry no profile. A profile Pillow cannot use
    leaves the pixels as they are; the service names it when the image is analysed. A 16-bit greyscale picture is
    shown by its top 8 bits (``convert("RGB")`` alone clips every value over 255 to white).
    """
    profile = colour_profile(image)
    image = flatten_alpha(image)
    if image.mode in _SIXTEEN_BIT_MODES:
        eight = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        shown = Image.fromarray(eight)
        shown.info.update(image.info)
        image = shown
    rgb = image.convert("RGB")
    if not profile:
        return rgb
    try:
        converted = ImageCms.profileToProfile(rgb, io.BytesIO(profile), ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError) as e:
        logger.debug("colour profile of a %dx%d image not used for display: %s", *rgb.size, e)
        return rgb
    return rgb if converted is None else converted
