"""A picture's fingerprint: the same picture re-encoded, resized or renamed gets (nearly) the same one, another
picture a distant one. A difference hash of the grey picture at 17x16 (each pixel brighter than its left neighbour or
not: 256 bits), compared by how many bits differ.

Measured on the shared sets (the released classifier's 1,068 training and validation pictures against 414 it never
trained on): another lesion's picture is at least 25 bits away, a training picture three times upscaled and saved
again as JPEG quality 80 at most 5; SAME_PICTURE_BITS sits between."""
from __future__ import annotations

import cv2
import numpy as np

from .errors import InvalidTensorError

FINGERPRINT_SIDE = 16
SAME_PICTURE_BITS = 12  # at most this many of the 256 bits differ: the same picture


def picture_fingerprint(rgb: np.ndarray) -> str:
    """The fingerprint of an RGB uint8 picture (H, W, 3) as 64 hex digits."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 1:
        raise InvalidTensorError(f"a fingerprint needs an RGB uint8 picture (H, W, 3), got {rgb.dtype} {rgb.shape}")
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (FINGERPRINT_SIDE + 1, FINGERPRINT_SIDE), interpolation=cv2.INTER_AREA).astype(np.int16)
    return np.packbits((small[:, 1:] > small[:, :-1]).ravel()).tobytes().hex()


def fingerprint_bits(a: str, b: str) -> int:
    """How many bits two fingerprints differ in."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
