"""Embedded ICC colour profiles: pixels of a Display P3, Adobe RGB or other tagged image are converted to sRGB.

The models were trained on sRGB pictures (none of the training images carries a profile). A phone stores Display
P3 and many cameras can store Adobe RGB; read as sRGB their colours come out duller, and a colour shift of that size
changes the served diagnosis (RUNS.md, "Camera colour"). A colour-managed viewer shows such a picture correctly, so
the service does as the viewer does: the embedded profile's colours are converted to sRGB (LittleCMS, relative
colorimetric; a matrix-shaper profile's by tables checked against LittleCMS). A profile that is sRGB in effect leaves
the pixels untouched, bit for bit.
"""
from __future__ import annotations

import functools
import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageCms

from .errors import ColourProfileError
from .icc_profiles import adobe_rgb
from .matrix_shaper import matrix_shaper

_INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC
# No one-pixel cache (a transform may be shared by threads) and the finer precalculated table (also faster).
_FLAGS = ImageCms.Flags.NOCACHE | ImageCms.Flags.HIGHRESPRECALC


def _cube(levels: int) -> np.ndarray:
    grid = np.linspace(0, 255, levels).round().astype(np.uint8)
    return np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(1, -1, 3)


#: 216 colours spanning the cube: a profile that maps each within one level of itself is sRGB in effect
SRGB_PROBE = _cube(6)
#: 4,096 colours on which the table conversion must agree with LittleCMS's before it is used
AGREEMENT_PROBE = _cube(16)
TOLERANCE = 1  # levels

Converter = Callable[[np.ndarray], np.ndarray]


def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _colorants(profile: ImageCms.ImageCmsProfile) -> np.ndarray | None:
    """The D50 XYZ of the red, green and blue colorants as columns, or None for a profile without them."""
    p = profile.profile
    columns = (p.red_colorant, p.green_colorant, p.blue_colorant)
    if any(c is None for c in columns):
        return None
    return np.array([c[0] for c in columns if c is not None], np.float64).T


def _with_lcms(transform: ImageCms.ImageCmsTransform) -> Converter:
    def convert(rgb: np.ndarray) -> np.ndarray:
        return np.array(ImageCms.applyTransform(Image.fromarray(rgb), transform), dtype=np.uint8)
    return convert


def _farthest(got: np.ndarray, expected: np.ndarray) -> int:
    return int(np.abs(got.astype(np.int16) - expected).max())


@functools.lru_cache(maxsize=16)
def _converter(profile: bytes) -> Converter | None:
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    if source.profile.xcolor_space.strip() != "RGB":
        return None
    srgb = _srgb()
    lcms = _with_lcms(ImageCms.buildTransform(source, srgb, "RGB", "RGB", renderingIntent=_INTENT, flags=_FLAGS))
    if _farthest(lcms(SRGB_PROBE), SRGB_PROBE) <= TOLERANCE:
        return None
    colorants, srgb_colorants = _colorants(source), _colorants(srgb)
    if source.profile.is_matrix_shaper and colorants is not None and srgb_colorants is not None:
        tables = matrix_shaper(profile, colorants, srgb_colorants)
        if tables is not None and _farthest(tables(AGREEMENT_PROBE), lcms(AGREEMENT_PROBE)) <= TOLERANCE:
            return tables
    return lcms


def srgb_converter(profile: bytes, what: str) -> Converter | None:
    """The profile -> sRGB conversion, or None when the profile is sRGB in effect or describes no RGB colours.

    LittleCMS's, or for a matrix-shaper profile the same conversion by tables (``matrix_shaper``, three times
    faster) once it agrees with LittleCMS's within a level on 4,096 colours. A grey or CMYK profile does not describe
    RGB pixels (the decoder already made RGB of those): None. Cached per profile. Raises ColourProfileError, naming
    ``what``, when the profile cannot be read.
    """
    try:
        return _converter(bytes(profile))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as e:
        raise ColourProfileError(
            f"{what} embeds an ICC colour profile of {len(profile)} bytes that cannot be read ({e}); its colours "
            "cannot be interpreted: re-save the image as sRGB, or without a colour profile"
        ) from e


_EXIF_IFD, _COLOR_SPACE, _INTEROP_IFD, _INTEROP_INDEX = 0x8769, 0xA001, 0xA005, 0x0001
_UNCALIBRATED = 0xFFFF
_DCF_OPTION_FILE = "R03"  # DCF's interoperability index of an Adobe RGB file


def declared_profile(exif: Image.Exif) -> bytes | None:
    """The profile a JPEG declares in EXIF without embedding one, or None.

    A camera set to Adobe RGB writes the DCF option file: ColorSpace "uncalibrated" and the interoperability index
    R03, often with no ICC profile; those pixels are Adobe RGB (1998). Anything else declares nothing usable.
    """
    try:
        if exif.get_ifd(_EXIF_IFD).get(_COLOR_SPACE) != _UNCALIBRATED:
            return None
        index = exif.get_ifd(_INTEROP_IFD).get(_INTEROP_INDEX)
    except (KeyError, ValueError, TypeError, OSError, SyntaxError):
        return None
    return adobe_rgb() if isinstance(index, str) and index.strip("\0 ") == _DCF_OPTION_FILE else None


def to_srgb(rgb: np.ndarray, profile: bytes | None, what: str) -> np.ndarray:
    """``rgb`` (H, W, 3 uint8, in the colours of ``profile``) in sRGB; the same array when no conversion is due."""
    if not profile:
        return rgb
    convert = srgb_converter(profile, what)
    return rgb if convert is None else convert(np.ascontiguousarray(rgb))
