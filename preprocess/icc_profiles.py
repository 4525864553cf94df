"""Matrix/TRC ICC colour profiles written from a colour space's published primaries, white point and tone curve.

An ICC v2 display profile: Bradford-adapted (D50) colorants, a media white point of D50 and one tone curve shared by
the three channels. The service writes one for Adobe RGB (1998), the colour space a camera's JPEG may declare in its
EXIF without embedding a profile (``colour_profile.declared_profile``); the tests write Display P3 and sRGB with it.
"""
from __future__ import annotations

import functools
import struct
from collections.abc import Iterable

import numpy as np

from .errors import PreprocessError

D65 = (0.3127, 0.3290)
D50_XYZ = np.array([0.9642, 1.0, 0.8249])
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])

SRGB_PRIMARIES = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
DISPLAY_P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
ADOBE_RGB_PRIMARIES = ((0.640, 0.330), (0.210, 0.710), (0.150, 0.060))
#: sRGB's tone curve as an ICC parametric curve of type 3: g, a, b, c, d
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
ADOBE_RGB_GAMMA = 563 / 256  # 2.19921875, as the Adobe RGB (1998) specification writes it


def _xyz(xy: Chromaticity) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


Chromaticity = tuple[float, float]
Primaries = tuple[Chromaticity, Chromaticity, Chromaticity]


def rgb_to_xyz_matrix(primaries: Primaries, white: Chromaticity = D65) -> np.ndarray:
    """The linear RGB -> XYZ matrix (columns: the primaries' XYZ) whose (1, 1, 1) is ``white`` with Y = 1."""
    columns = np.stack([_xyz(p) for p in primaries], axis=1)
    return columns * np.linalg.solve(columns, _xyz(white))


def adapted_to_d50(matrix: np.ndarray, white: Chromaticity = D65) -> np.ndarray:
    """``matrix`` chromatically adapted from ``white`` to D50 with the Bradford transform, as ICC colorants are."""
    scale = (_BRADFORD @ D50_XYZ) / (_BRADFORD @ _xyz(white))
    return np.linalg.inv(_BRADFORD) @ np.diag(scale) @ _BRADFORD @ matrix


def _s15(values: Iterable[float]) -> bytes:
    return b"".join(struct.pack(">i", int(round(float(v) * 65536))) for v in values)


def _xyz_tag(xyz: Iterable[float]) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(xyz)


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text + b"\0" * (4 + 4 + 2 + 1 + 67)


def curve_tag(gamma: float | None = None, parametric: tuple[float, ...] | None = None, function: int = 3,
              table: np.ndarray | None = None) -> bytes:
    """A curveType tag (a gamma, or a table of values in [0, 1]) or a parametricCurveType tag of ``function``."""
    if table is not None:
        values = np.round(np.clip(table, 0, 1) * 65535).astype(">u2")
        return b"curv\0\0\0\0" + struct.pack(">I", len(values)) + values.tobytes()
    if parametric is not None:
        return b"para\0\0\0\0" + struct.pack(">H", function) + b"\0\0" + _s15(parametric)
    if gamma is None:
        raise PreprocessError("an ICC tone curve needs a gamma, parametric values or a table; none was given: pass one")
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, int(round(float(gamma) * 256))) + b"\0\0"


def matrix_trc_profile(description: str, primaries: Primaries, *, gamma: float | None = None,
                       parametric: tuple[float, ...] | None = SRGB_CURVE, white: Chromaticity = D65,
                       curve: bytes | None = None) -> bytes:
    """An ICC v2 RGB display profile: D50-adapted colorants of ``primaries`` and one tone curve for all channels
    (``curve``, a tag from ``curve_tag``; by default ``gamma`` or else the ``parametric`` sRGB curve)."""
    colorants = adapted_to_d50(rgb_to_xyz_matrix(primaries, white), white)
    curve = curve or curve_tag(gamma, None if gamma is not None else parametric)
    tags = [(b"desc", _desc_tag(description)), (b"cprt", b"text\0\0\0\0public domain\0"),
            (b"wtpt", _xyz_tag(D50_XYZ)), (b"rXYZ", _xyz_tag(colorants[:, 0])), (b"gXYZ", _xyz_tag(colorants[:, 1])),
            (b"bXYZ", _xyz_tag(colorants[:, 2])), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    table_size = 4 + 12 * len(tags)
    offset, table, data = 128 + table_size, b"", b""
    for signature, payload in tags:
        padded = payload + b"\0" * (-len(payload) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(payload))
        data += padded
    size = 128 + table_size + len(data)
    header = (struct.pack(">I", size) + b"\0\0\0\0" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + _s15(D50_XYZ) + b"\0" * 48)
    return header + struct.pack(">I", len(tags)) + table + data


@functools.cache
def adobe_rgb() -> bytes:
    """Adobe RGB (1998) (many cameras' wide colour option): its primaries, D65 white, gamma 563/256."""
    return matrix_trc_profile("Adobe RGB (1998)", ADOBE_RGB_PRIMARIES, gamma=ADOBE_RGB_GAMMA)
