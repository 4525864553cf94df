"""What a DICOM instance's Pixel Data holds, read before a single pixel is decoded.

The Rows and Columns of a DICOM header say nothing about an encapsulated frame: a JPEG, JPEG-LS or JPEG 2000
codestream carries its own size, and its decoder allocates what the codestream declares (2.7 KB of JPEG-LS can
declare 20000 x 20000 pixels: 1.2 GB). So before decoding, ``check_pixel_data`` reads each codestream's own header
(JPEG SOFn, JPEG-LS SOF55, JPEG 2000 SIZ; for RLE, which has none, the decoded length of each segment from its
run headers) and the byte length of native pixel data, and refuses an instance whose pixel data does not fit its
header, or exceeds what DermAssist analyses. A transfer syntax whose frame header cannot be read is refused rather
than decoded blind. Only numbers are read here: nothing is allocated beyond the received bytes.
"""
from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    JPEG2000MC,
    UID,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from ..metadata import ICC_TAG, STANDALONE_MARKERS, jpeg_without_metadata, marker_segments
from .errors import NotAPhotographError, UnreadableDicomError, UnsupportedTransferSyntaxError

#: At most this many fragments in one instance's encapsulated pixel data (a 150 MB frame in 64 KB fragments is 2,300).
MAX_FRAGMENTS = 10_000
#: A compressed frame may be at most this many times its decoded size (plus ``FRAME_SLACK_BYTES`` for its markers,
#: tables, ICC profile and EXIF); a larger one is not a compressed photograph of that size.
MAX_COMPRESSION_GROWTH = 2
FRAME_SLACK_BYTES = 1 << 20

_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_LS_SOF = frozenset({0xF7})  # SOF55
_JPEG = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1})
_LOSSY_JPEG = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit})  # 8-bit ones (checked): what the service decodes
_JPEG_LS = frozenset({JPEGLSLossless, JPEGLSNearLossless})
_JPEG_2000 = frozenset({JPEG2000Lossless, JPEG2000, JPEG2000MCLossless, JPEG2000MC, HTJ2KLossless, HTJ2KLosslessRPCL,
                        HTJ2K})
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_RLE_HEADER = 64


class FrameHeaderError(ValueError):
    """A codestream's header cannot be read (internal: ``check_pixel_data`` turns it into a DicomInputError)."""


@dataclass(frozen=True)
class FrameHeader:
    """What a codestream's own header declares: its size, components and bits per sample."""

    width: int
    height: int
    components: int
    precision: int


def _be16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 2], "big")


def jpeg_frame_header(data: bytes, sof_markers: frozenset[int] = _JPEG_SOF) -> FrameHeader:
    """The frame header (SOFn, or SOF55 for JPEG-LS) of a JPEG or JPEG-LS codestream, read from its markers only."""
    if data[:2] != b"\xff\xd8":
        raise FrameHeaderError(f"it does not start with a JPEG SOI marker (found {data[:2].hex() or 'nothing'})")
    pos = 2
    for marker, start, end in marker_segments(data):
        pos = end
        if marker in (0xDA, 0xD9):  # start of scan or end of image before any frame header
            raise FrameHeaderError("its scan starts before any frame header")
        if marker == 0xFF or marker in STANDALONE_MARKERS:
            continue
        length = end - start - 2
        if length < 2:
            raise FrameHeaderError(f"marker segment 0xFF{marker:02X} at byte {start} has length {length}")
        if marker in sof_markers:
            segment = data[start + 4:end]
            if len(segment) < 6:
                raise FrameHeaderError(f"its frame header 0xFF{marker:02X} is cut short")
            return FrameHeader(width=_be16(segment, 3), height=_be16(segment, 1), components=segment[5],
                               precision=segment[0])
    if pos + 4 <= len(data):  # the walk stopped where no marker starts
        raise FrameHeaderError(f"no marker at byte {pos} before its frame header")
    raise FrameHeaderError("it ends before its frame header")


def _jp2_codestream(data: bytes) -> bytes:
    """The contiguous codestream box (jp2c) of a JP2 file: some writers wrap a DICOM frame in one."""
    pos = 0
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if length == 1:
            if pos + 16 > len(data):
                break
            length, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif length == 0:
            length = len(data) - pos
        if length < header:
            break
        if kind == b"jp2c":
            return data[pos + header:pos + length]
        pos += length
    raise FrameHeaderError("its JP2 wrapper holds no codestream box (jp2c)")


def j2k_frame_header(data: bytes) -> FrameHeader:
    """The image size (SIZ marker) of a JPEG 2000 or HTJ2K codestream, bare or in a JP2 wrapper."""
    if data[:12] == _JP2_SIGNATURE:
        data = _jp2_codestream(data)
    if data[:4] != b"\xff\x4f\xff\x51":
        raise FrameHeaderError(f"it does not start with the SOC and SIZ markers (found {data[:4].hex() or 'nothing'})")
    if len(data) < 42:
        raise FrameHeaderError("its SIZ marker segment is cut short")
    x, y, x0, y0 = struct.unpack(">IIII", data[8:24])
    components = _be16(data, 40)
    sizes = data[42:42 + 3 * components:3]
    if components == 0 or len(sizes) != components or x <= x0 or y <= y0:
        raise FrameHeaderError(f"its SIZ marker segment is malformed ({x - x0} x {y - y0}, {components} components)")
    return FrameHeader(width=x - x0, height=y - y0, components=components,
                       precision=max((s & 0x7F) + 1 for s in sizes))


def rle_decoded_lengths(data: bytes, limit: int) -> list[int]:
    """The decoded length of each segment of an RLE Lossless frame, from its run headers (nothing is decoded); a
    count stops once it passes ``limit``."""
    if len(data) < _RLE_HEADER:
        raise FrameHeaderError(f"its RLE header is cut short ({len(data)} of {_RLE_HEADER} bytes)")
    count, *offsets = struct.unpack("<16I", data[:_RLE_HEADER])
    if not 1 <= count <= 15:
        raise FrameHeaderError(f"its RLE header declares {count} segments, expected 1 to 15")
    bounds = [*offsets[:count], len(data)]
    if bounds[0] != _RLE_HEADER or any(a > b for a, b in itertools.pairwise(bounds)):
        raise FrameHeaderError(f"its RLE segment offsets {offsets[:count]} are not in order inside the frame")
    lengths = []
    for start, end in itertools.pairwise(bounds):
        decoded, pos = 0, start
        while pos < end and decoded <= limit:
            header = data[pos]
            if header < 128:  # a literal run of header + 1 bytes
                decoded += header + 1
                pos += header + 2
            elif header > 128:  # one byte repeated 257 - header times
                decoded += 257 - header
                pos += 2
            else:
                pos += 1
        lengths.append(decoded)
    return lengths


def _frame(ds: Dataset, subject: str, native_bytes: int) -> bytes:
    """The one frame of single-frame encapsulated pixel data, its fragments counted and its bytes bounded first."""
    limit = MAX_COMPRESSION_GROWTH * native_bytes + FRAME_SLACK_BYTES
    fragments: list[bytes] = []
    total = 0
    try:
        items = generate_fragments(ds.PixelData)
        next(items, None)  # the Basic Offset Table
        for fragment in itertools.islice(items, MAX_FRAGMENTS + 1):
            fragments.append(fragment)
            total += len(fragment)
    except ValueError as e:
        raise UnreadableDicomError(f"{subject}: its encapsulated pixel data cannot be parsed ({e}); the file is "
                                   "truncated or corrupt: send it again") from e
    if len(fragments) > MAX_FRAGMENTS:
        raise UnreadableDicomError(
            f"{subject}: its single frame comes in more than {MAX_FRAGMENTS:,} fragments; expected a few: the pixel "
            "data is malformed: send the image again as the modality stored it", comment="too many pixel fragments")
    if not fragments or total == 0:
        raise UnreadableDicomError(f"{subject}: its encapsulated pixel data holds no frame; the file is truncated or "
                                   "corrupt: send it again")
    if total > limit:
        raise UnreadableDicomError(
            f"{subject}: its compressed frame has {total:,} bytes, more than the {limit:,} a compressed "
            f"{ds.Columns} x {ds.Rows} colour photograph may have; the pixel data does not match its header: send "
            "the image again as the modality stored it", comment="pixel data larger than its header allows")
    return fragments[0] if len(fragments) == 1 else b"".join(fragments)


def _check_codestream(header: FrameHeader, rows: int, columns: int, samples: int, max_pixels: int, subject: str,
                      codec: str) -> None:
    """Refuse a frame whose own header differs from the DICOM header or exceeds ``max_pixels``."""
    if (header.height, header.width) != (rows, columns):
        pixels = header.width * header.height
        over = (f", and {pixels / 1e6:.1f} megapixels is more than the {max_pixels / 1e6:.0f} DermAssist analyses"
                if pixels > max_pixels else "")
        raise UnreadableDicomError(
            f"{subject}: its {codec} frame declares {header.width} x {header.height} pixels (width x height) but its "
            f"Rows and Columns say {columns} x {rows}{over}; refused before decoding: the header and the pixel data "
            "disagree: send the image again as the modality stored it",
            comment=f"frame is {header.width}x{header.height}, header says {columns}x{rows}")
    if header.components != samples or not 1 <= header.precision <= 8:
        raise NotAPhotographError(
            f"{subject}: its {codec} frame has {header.components} component(s) of {header.precision} bits; expected "
            f"{samples} of 8 bits from its Samples per Pixel and Bits Allocated: send the image as an 8-bit colour "
            "photograph", comment="frame is not 8-bit colour")


def check_pixel_data(ds: Dataset, transfer_syntax: UID, subject: str, max_pixels: int) -> bytes | None:
    """Refuse, before decoding, pixel data that does not fit ``ds``'s single-frame 8-bit Rows x Columns x Samples
    per Pixel header (native: its byte length; encapsulated: its fragments, bytes and codestream header). Returns the
    frame of a lossy JPEG (baseline or extended, 8-bit), which is sent to the service as it came (``for_service``),
    else None."""
    rows, columns, samples = int(ds.Rows), int(ds.Columns), int(ds.SamplesPerPixel)
    native_bytes = rows * columns * samples  # one frame of 8 bits per sample: checked by the caller
    if not transfer_syntax.is_encapsulated:
        length = len(ds.PixelData)
        if length > native_bytes + 1:  # one byte pads odd lengths; a shorter one is reported by the decoder
            raise UnreadableDicomError(
                f"{subject}: its Pixel Data has {length:,} bytes; its Rows, Columns and Samples per Pixel "
                f"({rows} x {columns} x {samples}, one frame of 8 bits) call for {native_bytes:,}; refused before "
                "decoding: the header and the pixel data disagree: send the image again as the modality stored it",
                comment="pixel data longer than its header declares")
        return None
    frame = _frame(ds, subject, native_bytes)
    try:
        if transfer_syntax in _JPEG:
            _check_codestream(jpeg_frame_header(frame), rows, columns, samples, max_pixels, subject, "JPEG")
            if transfer_syntax in _LOSSY_JPEG:
                return frame
        elif transfer_syntax in _JPEG_LS:
            _check_codestream(jpeg_frame_header(frame, _JPEG_LS_SOF), rows, columns, samples, max_pixels, subject,
                              "JPEG-LS")
        elif transfer_syntax in _JPEG_2000:
            _check_codestream(j2k_frame_header(frame), rows, columns, samples, max_pixels, subject, "JPEG 2000")
        elif transfer_syntax == RLELossless:
            _check_rle(frame, rows, columns, samples, subject)
        else:
            raise UnsupportedTransferSyntaxError(
                f"{subject}: pixel data is encoded with transfer syntax {transfer_syntax.name} ({transfer_syntax}), "
                "whose frame size DermAssist cannot read before decoding, so it is not decoded; send it uncompressed "
                "or as JPEG baseline", comment=f"unsupported transfer syntax {transfer_syntax}")
    except FrameHeaderError as e:
        raise UnreadableDicomError(
            f"{subject}: the header of its {transfer_syntax.name} frame cannot be read ({e}); refused before "
            "decoding: the file is truncated or corrupt: send it again", comment="unreadable frame header") from e
    return None


def _icc_segments(profile: bytes) -> bytes:
    """``profile`` as JPEG APP2 ICC_PROFILE segments (the ICC's own way of carrying a profile in a JPEG)."""
    chunk = 65519 - len(ICC_TAG) - 2  # a segment holds 65533 bytes after its length; the tag and 2 counters first
    parts = [profile[i:i + chunk] for i in range(0, len(profile), chunk)] or [b""]
    if len(parts) > 255:
        raise ValueError(f"an ICC profile of {len(profile):,} bytes does not fit in a JPEG")
    return b"".join(b"\xff\xe2" + (len(ICC_TAG) + 4 + len(part)).to_bytes(2, "big") + ICC_TAG
                    + bytes((n, len(parts))) + part for n, part in enumerate(parts, 1))


def jpeg_for_service(frame: bytes, icc_profile: bytes | None) -> bytes:
    """A DICOM instance's JPEG frame as the service is sent it: the codestream as it came (the service's strict
    decoder refuses damaged coded data, which a lenient decoder fills in silently, and reads the colour transform
    from the codestream itself), without the segments the client never sends (``metadata.jpeg_without_metadata``, so
    EXIF and XMP, whose orientation is not how the DICOM header says the picture lies, comments, IPTC and vendor text,
    between scans too), without the byte that pads it to an even length, and with the instance's ICC profile
    (0028,2000) when the frame carries none. The frame's header was read by ``check_pixel_data`` already."""
    sent = jpeg_without_metadata(frame[:-1] if frame.endswith(b"\xff\xd9\x00") else frame, None)  # the pad: not JPEG
    has_icc = any(marker == 0xE2 and sent[start + 4:start + 4 + len(ICC_TAG)] == ICC_TAG
                  for marker, start, _ in marker_segments(sent))
    if not icc_profile or has_icc:
        return sent
    at = 2 + 2 + int.from_bytes(sent[4:6], "big") if sent[2:4] == b"\xff\xe0" else 2  # after a JFIF APP0, first
    return sent[:at] + _icc_segments(icc_profile) + sent[at:]


def _check_rle(frame: bytes, rows: int, columns: int, samples: int, subject: str) -> None:
    """Refuse an RLE frame whose segments are not one per sample or decode to more than Rows x Columns (+ a row)."""
    limit = rows * columns + columns  # an encoder may pad a segment; more is not this frame's pixels
    lengths = rle_decoded_lengths(frame, limit)
    if len(lengths) != samples or max(lengths) > limit:
        raise UnreadableDicomError(
            f"{subject}: its RLE frame has {len(lengths)} segment(s) decoding to "
            f"{', '.join(f'{n:,}' if n <= limit else f'more than {limit:,}' for n in lengths)} bytes; its header "
            f"({columns} x {rows}, {samples} samples) calls for {samples} of {rows * columns:,}; refused before "
            "decoding: send the image again as the modality stored it", comment="RLE frame does not match its header")
