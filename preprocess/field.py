"""The dermoscope's field of view: find the dark border around it and fill it with the skin colour next to it.

Many dermatoscopes photograph through a round lens, so the image holds a bright disc of skin inside
near-black corners or a black ring (common in the ISIC Archive and BCN20000 images, about 5% of the
ISIC 2018 Task 3 images here). The models see skin: left black, those pixels reach the classifier's
crop whenever the lesion lies near the edge of the disc, and the answer then changes with the lens,
not the lesion. The border is the near-black area connected to the image edge that holds at least two
corners; it is filled with the median colour of the field pixels along it. An image without such a
border is returned as it is (the same array).
"""
from __future__ import annotations

import cv2
import numpy as np

from .errors import InvalidTensorError

DARK_LEVEL = 40  # a pixel is near-black when its brightest channel (0..255) is below this
MIN_DARK_CORNERS = 2  # a field-of-view border holds at least this many image corners
MIN_BORDER_FRACTION = 0.01  # smaller dark borders are left alone
MAX_BORDER_FRACTION = 0.7  # a darker image than this is left to the exposure measure
RING_FRACTION = 0.02  # the fill colour is sampled this far (of the long side) inside the border
RING_STRIDE = 7  # every 7th ring pixel is enough for its median
GATE_STEP = 4  # the sampling step of the cheap first look for a border


_CORNERS = ([0, 0, -1, -1], [0, -1, 0, -1])
_BLACK = np.zeros(3, np.uint8)
_NEAR_BLACK = np.full(3, DARK_LEVEL - 1, np.uint8)


def _border_of(rgb: np.ndarray) -> np.ndarray | None:
    dark = cv2.inRange(np.ascontiguousarray(rgb), _BLACK, _NEAR_BLACK)
    count, labels = cv2.connectedComponents(dark, connectivity=8)
    on_edge = np.zeros(count, bool)
    on_edge[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    on_edge[0] = False  # label 0 is the pixels that are not dark
    border = on_edge[labels]
    if np.count_nonzero(border[_CORNERS]) < MIN_DARK_CORNERS:
        return None
    if not MIN_BORDER_FRACTION <= np.count_nonzero(border) / border.size <= MAX_BORDER_FRACTION:
        return None
    return border


def dark_border(rgb: np.ndarray) -> np.ndarray | None:
    """The field-of-view border of an RGB uint8 image (H, W, 3) as a boolean mask, or None when it has none.

    Four corner pixels decide most images; a copy at 1 / GATE_STEP of the size decides the rest, and only
    an image with a border there is measured at full resolution.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InvalidTensorError(f"dark_border needs an RGB uint8 image (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if np.count_nonzero(rgb[_CORNERS].max(axis=1) < DARK_LEVEL) < MIN_DARK_CORNERS:
        return None
    height, width = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, width // GATE_STEP), max(1, height // GATE_STEP)), interpolation=cv2.INTER_NEAREST)
    if _border_of(small) is None:
        return None
    return _border_of(rgb)


def fill_dark_border(rgb: np.ndarray) -> np.ndarray:
    """The image with its field-of-view border filled by the median colour just inside it; unchanged without one."""
    border = dark_border(rgb)
    if border is None:
        return rgb
    mask = border.view(np.uint8)
    side = 2 * max(2, int(RING_FRACTION * max(rgb.shape[:2]))) + 1
    grown = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_RECT, (side, side)))
    ring = rgb.reshape(-1, 3)[np.flatnonzero(grown > mask)[::RING_STRIDE]]
    if len(ring) == 0:
        return rgb
    height, width = mask.shape
    fill = cv2.merge([np.full((height, width), int(c), np.uint8) for c in np.median(ring, axis=0)])
    out = rgb.copy()
    cv2.copyTo(fill, mask, out)
    return out
