"""A picture's fingerprint: the same picture re-encoded, resized or renamed gets (nearly) the same one, another
picture a distant one. A difference hash of the grey picture at 17x16 (each pixel brighter than its left neighbour or
not: 256 bits), compared by how many bits differ.

Measured on the shared sets (the released classifier's 1,068 training and validation pictures against 414 it never
trained on): another lesion's picture is at least 25 bits away, a training picture three times upscaled and saved
again as JPEG quality 80 at most 5; SAME_PICTURE_BITS sits between."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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


def file_fingerprint(path: Path) -> str:
    """The fingerprint of the picture in an image file, decoded as the service decodes it; OSError or PreprocessError
    (the caller's to tell) when it cannot be read or decoded."""
    from .decode import decode_image

    return picture_fingerprint(decode_image(Path(path).read_bytes()))


def fingerprint_rows(fingerprints: Sequence[str]) -> np.ndarray:
    """Fingerprints as a (N, 32) uint8 matrix, a row each, for :func:`bits_apart`."""
    return np.frombuffer(b"".join(bytes.fromhex(f) for f in fingerprints), np.uint8).reshape(len(fingerprints), -1)


def bits_apart(rows: np.ndarray, fingerprint: str) -> np.ndarray:
    """How many bits each row of :func:`fingerprint_rows` differs from ``fingerprint`` in (N,)."""
    differ = np.asarray(rows ^ np.frombuffer(bytes.fromhex(fingerprint), np.uint8), np.uint8)
    return np.unpackbits(differ, axis=1).sum(axis=1)
