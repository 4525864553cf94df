"""Embedded ICC colour profiles: pixels of a Display P3, Adobe RGB or other tagged image are converted to sRGB.

The models were trained on sRGB pictures (none of the training images carries a profile). A phone stores Display
P3 and many cameras can store Adobe RGB; read as sRGB their colours come out duller, and a colour shift of that size
changes the served diagnosis (RUNS.md, "Camera colour"). A colour-managed viewer shows such a picture correctly, so
the service does as the viewer does: the embedded profile's colours are converted to sRGB (LittleCMS, relative
colorimetric). A profile that is sRGB in effect leaves the pixels untouched, bit for bit.
"""
from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageCms

from .errors import ColourProfileError

_INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC
# No one-pixel cache (a transform may be shared by threads) and the finer precalculated table (also faster).
_FLAGS = ImageCms.Flags.NOCACHE | ImageCms.Flags.HIGHRESPRECALC
_GRID = np.linspace(0, 255, 6).round().astype(np.uint8)
#: 216 colours spanning the cube: a profile that maps each within one level of itself is sRGB in effect
SRGB_PROBE = np.stack(np.meshgrid(_GRID, _GRID, _GRID, indexing="ij"), axis=-1).reshape(1, -1, 3)
SRGB_TOLERANCE = 1


def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _apply(transform: ImageCms.ImageCmsTransform, rgb: np.ndarray) -> np.ndarray:
    return np.array(ImageCms.applyTransform(Image.fromarray(rgb), transform), dtype=np.uint8)


@functools.lru_cache(maxsize=16)
def _transform(profile: bytes) -> ImageCms.ImageCmsTransform | None:
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    if source.profile.xcolor_space.strip() != "RGB":
        return None
    transform = ImageCms.buildTransform(source, _srgb(), "RGB", "RGB", renderingIntent=_INTENT, flags=_FLAGS)
    moved = np.abs(_apply(transform, SRGB_PROBE).astype(np.int16) - SRGB_PROBE).max()
    return None if moved <= SRGB_TOLERANCE else transform


def srgb_transform(profile: bytes, what: str) -> ImageCms.ImageCmsTransform | None:
    """The profile -> sRGB transform, or None when the profile is sRGB in effect or describes no RGB colours.

    A grey or CMYK profile does not describe RGB pixels (the decoder already made RGB of those): None.
    Transforms are cached per profile. Raises ColourProfileError, naming ``what``, when the profile cannot be read.
    """
    try:
        return _transform(bytes(profile))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as e:
        raise ColourProfileError(
            f"{what} embeds an ICC colour profile of {len(profile)} bytes that cannot be read ({e}); its colours "
            "cannot be interpreted: re-save the image as sRGB, or without a colour profile"
        ) from e


def to_srgb(rgb: np.ndarray, profile: bytes | None, what: str) -> np.ndarray:
    """``rgb`` (H, W, 3 uint8, in the colours of ``profile``) in sRGB; the same array when no conversion is due."""
    if not profile:
        return rgb
    transform = srgb_transform(profile, what)
    return rgb if transform is None else _apply(transform, np.ascontiguousarray(rgb))
