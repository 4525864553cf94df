"""The colour space a camera JPEG declares in its EXIF without embedding a profile, as the server reads it.

A camera set to Adobe RGB often writes no ICC profile, only DCF's "option file" marks in EXIF: ColorSpace
"uncalibrated" and the interoperability index R03. The server reads such pixels as Adobe RGB (1998) and converts them
to sRGB; the client must do the same wherever it re-encodes or shows the picture. Copies of the server's
``preprocess.colour_profile.declared_profile`` and ``preprocess.icc_profiles.adobe_rgb`` (the thin client imports
nothing of the server; a test holds them equal).
"""
from __future__ import annotations

import base64

from PIL import Image

_EXIF_IFD, _COLOR_SPACE, _INTEROP_IFD, _INTEROP_INDEX = 0x8769, 0xA001, 0xA005, 0x0001
_UNCALIBRATED = 0xFFFF
_DCF_OPTION_FILE = "R03"  # DCF's interoperability index of an Adobe RGB file

# The server's Adobe RGB (1998) ICC v2 profile, byte for byte (500 bytes): its primaries, D65 white adapted to D50,
# gamma 563/256, as ``preprocess.icc_profiles.adobe_rgb()`` writes it.
_ADOBE_RGB = base64.b64decode(
    "AAAB9AAAAAACEAAAbW50clJHQiBYWVogB+oAAQABAAAAAAAAYWNzcAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAPbWAAEAAAAA0y0AAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAJZGVzYwAAAPAAAABrY3BydAAAAVwAAAAWd3RwdAAAAXQAAAAU"
    "clhZWgAAAYgAAAAUZ1hZWgAAAZwAAAAUYlhZWgAAAbAAAAAUclRSQwAAAcQAAAAQZ1RSQwAAAdQAAAAQYlRSQwAAAeQAAAAQZGVzYwAAAAAAAAAR"
    "QWRvYmUgUkdCICgxOTk4KQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAdGV4dAAAAABwdWJsaWMgZG9tYWluAAAAWFlaIAAAAAAAAPbWAAEAAAAA0y1YWVogAAAAAAAAnBgAAE+lAAAE/FhZWiAAAAAA"
    "AAA0jQAAoCwAAA+VWFlaIAAAAAAAACYxAAAQLwAAvptjdXJ2AAAAAAAAAAECMwAAY3VydgAAAAAAAAABAjMAAGN1cnYAAAAAAAAAAQIzAAA="
)


def adobe_rgb() -> bytes:
    """The Adobe RGB (1998) ICC profile the server converts a JPEG's EXIF-declared Adobe RGB colours with."""
    return _ADOBE_RGB


def declared_profile(exif: Image.Exif) -> bytes | None:
    """The profile a JPEG declares in EXIF without embedding one (Adobe RGB for DCF's R03 marks), or None.

    Anything but ColorSpace "uncalibrated" with the interoperability index R03 declares nothing usable, and EXIF
    that cannot be read declares nothing, as on the server.
    """
    try:
        if exif.get_ifd(_EXIF_IFD).get(_COLOR_SPACE) != _UNCALIBRATED:
            return None
        index = exif.get_ifd(_INTEROP_IFD).get(_INTEROP_INDEX)
    except (KeyError, ValueError, TypeError, OSError, SyntaxError):
        return None
    return adobe_rgb() if isinstance(index, str) and index.strip("\0 ") == _DCF_OPTION_FILE else None
