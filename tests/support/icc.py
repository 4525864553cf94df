"""Colour-management test helpers: Display P3 and sRGB profiles, and sRGB's tone curve by its formula.

No profile file ships with the test machine, so profiles are written from the standards' primaries
(``preprocess.icc_profiles``, which also writes the Adobe RGB profile the service uses).
"""
from __future__ import annotations

import numpy as np

from preprocess.icc_profiles import (  # noqa: F401 - re-exported for the tests
    ADOBE_RGB_GAMMA,
    ADOBE_RGB_PRIMARIES,
    D65,
    DISPLAY_P3_PRIMARIES,
    SRGB_CURVE,
    SRGB_PRIMARIES,
    adobe_rgb,
    curve_tag,
    matrix_trc_profile,
    rgb_to_xyz_matrix,
)
from preprocess.matrix_shaper import srgb_encode


def display_p3() -> bytes:
    """Display P3 (a phone camera's colour space): DCI-P3 primaries, D65 white, sRGB's tone curve."""
    return matrix_trc_profile("Display P3 (test)", DISPLAY_P3_PRIMARIES)


def srgb() -> bytes:
    """sRGB written from its primaries and tone curve (not Pillow's built-in profile)."""
    return matrix_trc_profile("sRGB (test)", SRGB_PRIMARIES)


def srgb_decode(values: np.ndarray) -> np.ndarray:
    """sRGB's tone curve, 8-bit code values -> linear light in [0, 1]."""
    v = np.asarray(values, np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_to_display_p3(rgb: np.ndarray) -> np.ndarray:
    """The Display P3 code values of sRGB ``rgb`` (uint8), by the published matrices (rounded to uint8)."""
    to_p3 = np.linalg.solve(rgb_to_xyz_matrix(DISPLAY_P3_PRIMARIES), rgb_to_xyz_matrix(SRGB_PRIMARIES))
    linear = srgb_decode(rgb) @ to_p3.T
    return np.clip(np.round(srgb_encode(linear)), 0, 255).astype(np.uint8)
