"""What of a picture's metadata leaves this machine: what the server reads of it, nothing more.

A camera's or an editor's JPEG carries EXIF (GPS position, the camera's serial number, a free-text description),
XMP, IPTC captions, comments and vendor segments; a PNG carries text chunks. The server reads none of that but how
the picture lies (EXIF Orientation), its colours (an ICC profile, EXIF's Adobe RGB mark, Adobe's colour transform)
and its pixels, so the client sends only those (privacy audit, M1): a JPEG keeps its coded data as it came (no
re-encoding: the server's strict decoder judges the codestream the camera wrote) with a minimal EXIF; a PNG keeps its
pixel and colour chunks. BMP holds no metadata; a TIFF is sent as it is (its tags are read by the server's decoder).
"""
from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

from PIL import Image

#: Markers with no length after them: TEM and RST0..7.
STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})
ICC_TAG = b"ICC_PROFILE\x00"
_APP0, _APP2, _APP14, _COM = 0xE0, 0xE2, 0xEE, 0xFE
_ORIENTATION, _EXIF_IFD, _COLOR_SPACE, _INTEROP_IFD, _INTEROP_INDEX = 0x0112, 0x8769, 0xA001, 0xA005, 0x0001
#: PNG chunks sent: the critical ones, transparency, colour, size and animation (the server reads the first frame).
PNG_KEPT = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP", b"sBIT",
                      b"bKGD", b"pHYs", b"acTL", b"fcTL", b"fdAT"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def marker_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of each fill byte, standalone marker and marker segment of a JPEG after its SOI, in order,
    up to and including its first SOS or EOI (which ends at its start + 2: the scan is not walked); it stops early
    where no marker starts or the data ends (the caller looks at the last end)."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # a fill byte before a marker
            end = pos + 1
        elif marker in STANDALONE_MARKERS or marker in (0xDA, 0xD9):
            end = pos + 2
        else:
            end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        yield marker, pos, end
        if marker in (0xDA, 0xD9):
            return
        pos = end


def sent_jpeg_segment(marker: int, segment: bytes) -> bool:
    """Whether a JPEG marker segment is sent: everything but the application segments and comments, of which JFIF
    and its extension (APP0 ``JFIF``, ``JFXX``), an ICC profile (APP2) and Adobe's colour transform (APP14) are
    kept (another APP0, ``AVI1`` and the like, may hold text: left out)."""
    if marker == _COM or (0xE0 <= marker <= 0xEF and marker not in (_APP0, _APP2, _APP14)):
        return False
    if marker == _APP0:
        return segment[4:9] in (b"JFIF\x00", b"JFXX\x00")
    return marker != _APP2 or segment[4:4 + len(ICC_TAG)] == ICC_TAG


def minimal_exif(orientation: int, adobe_rgb_marked: bool) -> bytes | None:
    """An EXIF block (``Exif\\0\\0`` and its TIFF structure) holding only what the server reads: the Orientation (when
    not 1) and Adobe RGB's mark (ColorSpace uncalibrated, interoperability index R03); None when neither is needed."""
    if orientation == 1 and not adobe_rgb_marked:
        return None
    exif = Image.Exif()
    if orientation != 1:
        exif[_ORIENTATION] = orientation
    if adobe_rgb_marked:
        ifd = exif.get_ifd(_EXIF_IFD)
        ifd[_COLOR_SPACE] = 0xFFFF
        ifd[_INTEROP_IFD] = {_INTEROP_INDEX: "R03"}
    return exif.tobytes()


def coded_data_end(data: bytes, pos: int) -> int:
    """Where a scan's entropy-coded data starting at ``pos`` ends: at the next marker that is neither a stuffed 0xFF
    (FF 00), a restart marker (RST0..7) nor a fill byte; the data's end when there is none."""
    while True:
        at = data.find(b"\xff", pos)
        if at < 0 or at + 1 >= len(data):
            return len(data)
        following = data[at + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            pos = at + 1
            continue
        return at


def jpeg_without_metadata(data: bytes, exif: bytes | None) -> bytes:
    """A JPEG's bytes as the server is sent them: its SOI, the segments ``sent_jpeg_segment`` keeps (before its first
    scan and between scans alike), ``exif`` (from :func:`minimal_exif`) as its APP1 after JFIF, its scans' coded data
    as it came, and its EOI; what follows the EOI (a trailer, a second picture) is left out, and stray bytes between
    segments, which decoders skip, too. Data that does not walk to an EOI (a truncated or damaged file) is returned as
    it came, for the server to judge."""
    if data[:2] != b"\xff\xd8":
        return data
    kept, pos = [data[:2]], 2
    while True:
        if pos >= len(data):
            return data
        if data[pos] != 0xFF:  # stray bytes before a marker: decoders skip them
            pos = data.find(b"\xff", pos)
            if pos < 0:
                return data
            continue
        if pos + 1 >= len(data):
            return data
        marker = data[pos + 1]
        if marker == 0xFF:  # a fill byte before a marker
            pos += 1
            continue
        if marker == 0x00:  # a stray FF 00 outside a scan: no marker, skipped as decoders skip it (review 20, M1)
            pos += 2
            continue
        if marker == 0xD9:
            kept.append(b"\xff\xd9")
            break
        if marker in STANDALONE_MARKERS:
            kept.append(data[pos:pos + 2])
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if pos + 4 > len(data) or end > len(data):
            return data
        if sent_jpeg_segment(marker, data[pos:end]):
            kept.append(data[pos:end])
        pos = end
        if marker == 0xDA:  # the scan's coded data follows its header
            scan_end = coded_data_end(data, pos)
            kept.append(data[pos:scan_end])
            pos = scan_end
    if exif is not None and len(exif) <= 65533:
        at = 2 if len(kept) > 1 and kept[1][:2] == b"\xff\xe0" else 1  # after a JFIF APP0, which must come first
        kept.insert(at, b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif)
    return b"".join(kept)


def png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk of a PNG after its signature; it stops where a chunk runs past the data."""
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        end = pos + 12 + length
        if end > len(data):
            return
        yield data[pos + 4:pos + 8], pos, end
        pos = end


def png_without_metadata(data: bytes, exif: bytes | None) -> bytes:
    """A PNG's bytes as the server is sent them: the chunks of ``PNG_KEPT`` and ``exif`` (from :func:`minimal_exif`,
    as an eXIf chunk before the first IDAT); text, time, EXIF and other chunks are left out. Data that does not walk
    as a PNG is returned as it came (the server refuses it)."""
    if not data.startswith(PNG_SIGNATURE):
        return data
    kept = [PNG_SIGNATURE]
    for name, start, end in png_chunks(data):
        if name == b"IDAT" and exif is not None:
            body = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif  # eXIf holds the TIFF structure alone
            kept.append(struct.pack(">I", len(body)) + b"eXIf" + body
                        + struct.pack(">I", zlib.crc32(b"eXIf" + body) & 0xFFFFFFFF))
            exif = None
        if name in PNG_KEPT:
            kept.append(data[start:end])
        if name == b"IEND":
            return b"".join(kept)
    return data  # no IEND: truncated or no PNG, sent as it came for the server to refuse
