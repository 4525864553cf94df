"""Image-quality measures of the ``prepare`` step: sharpness, under- and over-exposure, each >= 1.0 when acceptable.

Both are read off the segmenter input (256x256 RGB in [0, 1]) that ``prepare`` makes anyway:
sharpness is the variance of its Laplacian (grey levels 0..255), exposure its mean grey level.
The limits are fitted on the real training images and travel with the release as an artifact
(``QualityLimits``); the defaults here apply only when no artifact exists.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .errors import InvalidTensorError

_GREY = np.array([0.299, 0.587, 0.114], np.float32) * np.float32(255.0)


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


def quality_batch(seg_inputs: np.ndarray, limits: QualityLimits) -> np.ndarray:
    """QUALITY (N, 3) float32 for a batch of segmenter inputs (N, H, W, 3)."""
    out = np.empty((len(seg_inputs), 3), np.float32)
    for row, seg in enumerate(seg_inputs):
        out[row] = scaled_quality(*raw_quality(seg), limits)
    return out
