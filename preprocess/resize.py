"""Anti-aliased resizing shared by every step that shrinks an image."""
from __future__ import annotations

import cv2
import numpy as np

from .errors import InvalidTensorError


def resize_antialiased(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to (height, width); a shrink is anti-aliased like INTER_AREA at a fraction of its cost.

    OpenCV's area resize takes a slow path for non-integer ratios (600x450 -> 256x256: 1.2 ms,
    700x700 -> 224x224: 1.6 ms on one core). Bilinear to twice the target, then an exact 2x2 box
    average (OpenCV's fast integer-ratio path) stays within about half a grey level of it on
    photographs for 0.3-0.5 ms. Enlargements are plain bilinear.
    """
    if width < 1 or height < 1:
        raise InvalidTensorError(f"resize target must be at least 1x1 pixels, got {width}x{height}")
    if image.shape[0] <= height and image.shape[1] <= width:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    double = cv2.resize(image, (2 * width, 2 * height), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(double, (width, height), interpolation=cv2.INTER_AREA)
