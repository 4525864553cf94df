"""Image-quality measures of the ``prepare`` step: sharpness, under- and over-exposure and colour, each >= 1.0
when acceptable.

All are read off the segmenter input (256x256 RGB in [0, 1]) that ``prepare`` makes anyway:
sharpness is the variance of its Laplacian (grey levels 0..255), exposure its mean grey level.
Their limits are fitted on the real training images and travel with the release as an artifact
(``QualityLimits``); the defaults here apply only when no artifact exists.
Colour is the mean spread between a pixel's brightest and darkest channel (levels 0..255): 0 for a greyscale
picture, at most about 2 for one re-saved in colour, and at least 8 on every one of the 1,701 real dermoscopy
images of the shared sets (median 50). Its limit, ``MIN_COLOUR``, says what "no colour" is, not how a model was
tuned, so it is a constant here: the models judge colour photographs, and a greyscale one is not assessable.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .contract import QUALITY
from .errors import InvalidTensorError

_GREY = np.array([0.299, 0.587, 0.114], np.float32) * np.float32(255.0)
MIN_COLOUR = 3.0  # mean channel spread (levels) below which a picture has no colour to judge


@dataclass(frozen=True)
class QualityLimits:
    """Lowest acceptable sharpness (Laplacian variance) and the acceptable mean grey-level range."""

    min_sharpness: float = 10.0
    min_brightness: float = 60.0
    max_brightness: float = 225.0

    def __post_init__(self) -> None:
        if not self.min_sharpness > 0:
            raise InvalidTensorError(f"min_sharpness must be positive, got {self.min_sharpness}")
        if not 0 < self.min_brightness < self.max_brightness < 255:
            raise InvalidTensorError(
                f"brightness limits must satisfy 0 < min < max < 255, got {self.min_brightness}, {self.max_brightness}"
            )

    def as_dict(self) -> dict[str, float]:
        """JSON-ready fields."""
        return asdict(self)


def raw_quality(seg_input: np.ndarray) -> tuple[float, float]:
    """(Laplacian variance, mean grey level) of one segmenter input (H, W, 3) float in [0, 1]."""
    grey = np.ascontiguousarray(seg_input, dtype=np.float32) @ _GREY
    return float(cv2.Laplacian(grey, cv2.CV_32F).var()), float(grey.mean())


def scaled_quality(sharpness: float, brightness: float, limits: QualityLimits) -> tuple[float, float, float]:
    """(sharpness, under-exposure, over-exposure) scores, each >= 1.0 when acceptable.

    sharpness / its minimum; brightness / its minimum (below 1: too dark); (255 - brightness) /
    (255 - its maximum) (below 1: too bright).
    """
    return (sharpness / limits.min_sharpness, brightness / limits.min_brightness,
            (255.0 - brightness) / (255.0 - limits.max_brightness))


def colour_score(seg_input: np.ndarray) -> float:
    """Mean spread between each pixel's brightest and darkest channel (levels 0..255, every second pixel each
    way) over MIN_COLOUR: below 1.0 the picture is greyscale or nearly so."""
    red, green, blue = cv2.split(np.ascontiguousarray(np.asarray(seg_input, dtype=np.float32)[::2, ::2]))
    spread = cv2.subtract(cv2.max(cv2.max(red, green), blue), cv2.min(cv2.min(red, green), blue))
    return float(cv2.mean(spread)[0]) * 255.0 / MIN_COLOUR


def quality_batch(seg_inputs: np.ndarray, limits: QualityLimits) -> np.ndarray:
    """QUALITY (N, 4) float32 for a batch of segmenter inputs (N, H, W, 3): sharpness, under-exposure,
    over-exposure, colour."""
    out = np.empty((len(seg_inputs), *QUALITY.dims), np.float32)
    for row, seg in enumerate(seg_inputs):
        out[row] = (*scaled_quality(*raw_quality(seg), limits), colour_score(seg))
    return out
