"""A matrix/TRC (matrix-shaper) ICC profile's conversion to sRGB as three table look-ups and one 3x3 matrix.

LittleCMS converts 8-bit RGB at about 40 ns a pixel on the serving CPUs (35 ms for a 12-megapixel phone picture
decoded at a quarter). The profiles phones and cameras embed (Display P3, Adobe RGB, ProPhoto) are matrix-shaper
profiles, whose conversion is: each channel through its tone curve to linear light, a 3x3 matrix to linear sRGB, and
sRGB's tone curve back. With OpenCV tables that is about a third of the time. ``colour_profile`` uses it only for a
profile whose result it has checked against LittleCMS's.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

from .icc_profiles import SRGB_CURVE

_TRC_TAGS = (b"rTRC", b"gTRC", b"bTRC")
_PARAMETER_COUNTS = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}  # ICC parametricCurveType function types
_CODES = np.arange(256, dtype=np.float64) / 255.0
#: linear light is quantised to this many steps before sRGB's tone curve is looked up (under 0.1 level near black)
ENCODE_STEPS = 65535


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """sRGB's tone curve (IEC 61966-2-1, ``SRGB_CURVE`` inverted): linear light in [0, 1] -> code values in [0, 255]
    (float)."""
    g, a, b, c, d = SRGB_CURVE
    v = np.clip(linear, 0.0, 1.0)
    return 255.0 * np.where(v <= c * d, v / c, (np.power(v, 1 / g) - b) / a)


_SRGB_ENCODE = np.round(srgb_encode(np.arange(ENCODE_STEPS + 1) / ENCODE_STEPS)).astype(np.uint8)


def _tags(profile: bytes) -> dict[bytes, bytes]:
    """The profile's tags by signature (ICC tag table after the 128-byte header)."""
    (count,) = struct.unpack_from(">I", profile, 128)
    tags = {}
    for i in range(count):
        signature, offset, size = struct.unpack_from(">4sII", profile, 132 + 12 * i)
        tags[signature] = profile[offset:offset + size]
    return tags


def parametric_curve(function: int, params: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    """ICC parametricCurveType ``function`` (0-4) with its parameters (g, a, b, c, d, e, f) at ``x`` in [0, 1]."""
    g, a, b, c, d, e, f = (tuple(params) + (0.0,) * 7)[:7]
    power = np.power(np.maximum(a * x + b, 0.0), g)
    if function == 0:
        return np.power(x, g)
    if function in (1, 2):
        offset = c if function == 2 else 0.0
        return np.where(x >= -b / a, power + offset, offset)
    if function == 3:
        return np.where(x >= d, power, c * x)
    return np.where(x >= d, power + e, c * x + f)


def tone_curve(tag: bytes) -> np.ndarray | None:
    """The 256 linear values of one curveType or parametricCurveType tag, or None for another or a broken tag."""
    try:
        kind = tag[:4]
        if kind == b"curv":
            (count,) = struct.unpack_from(">I", tag, 8)
            if count == 0:
                return _CODES.copy()
            if count == 1:
                return np.power(_CODES, struct.unpack_from(">H", tag, 12)[0] / 256.0)
            table = np.frombuffer(tag, ">u2", count, 12).astype(np.float64) / 65535.0
            return np.interp(_CODES, np.linspace(0.0, 1.0, count), table)
        if kind == b"para":
            (function,) = struct.unpack_from(">H", tag, 8)
            if function not in _PARAMETER_COUNTS:
                return None
            params = tuple(v / 65536.0 for v in struct.unpack_from(f">{_PARAMETER_COUNTS[function]}i", tag, 12))
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.clip(parametric_curve(function, params, _CODES), 0.0, 1.0)
    except (struct.error, ValueError, ZeroDivisionError):
        return None
    return None


@dataclass(frozen=True, eq=False)
class MatrixShaper:
    """Tone curves to linear light, a matrix to linear sRGB, sRGB's tone curve: uint8 RGB in, uint8 sRGB out."""

    curves: np.ndarray  # (256, 1, 3) float32: each channel's code value -> linear light
    matrix: np.ndarray  # (3, 3) float32: the profile's linear RGB -> linear sRGB

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """Convert an (H, W, 3) uint8 image."""
        linear = cv2.transform(cv2.LUT(rgb, self.curves), self.matrix)
        steps = linear * np.float32(ENCODE_STEPS) + np.float32(0.5)
        np.clip(steps, 0, ENCODE_STEPS, out=steps)
        return _SRGB_ENCODE[steps.astype(np.uint16)]


def matrix_shaper(profile: bytes, colorants: np.ndarray, srgb_colorants: np.ndarray) -> MatrixShaper | None:
    """The conversion of a matrix-shaper ``profile`` (its D50 colorants as XYZ columns), or None without its curves.

    ``srgb_colorants`` are the destination sRGB profile's, so that the matrix maps to the same sRGB LittleCMS does.
    """
    try:
        tags = _tags(profile)
    except struct.error:
        return None
    curves = [tone_curve(tags[t]) if t in tags else None for t in _TRC_TAGS]
    if any(c is None for c in curves):
        return None
    try:
        matrix = np.linalg.solve(np.asarray(srgb_colorants, np.float64), np.asarray(colorants, np.float64))
    except np.linalg.LinAlgError:
        return None
    stacked = np.stack([c for c in curves if c is not None], axis=-1)[:, None, :]
    return MatrixShaper(np.ascontiguousarray(stacked, np.float32), matrix.astype(np.float32))
