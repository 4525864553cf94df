"""Image-quality measures: sharpness and exposure scores on images whose answer is known."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from preprocess.errors import InvalidTensorError
from preprocess.prepare import prepare_image
from preprocess.quality import QualityLimits, quality_batch, raw_quality, scaled_quality
from tests.conftest import HAM_IMAGES


def test_scores_are_one_at_the_limits_by_hand() -> None:
    limits = QualityLimits(min_sharpness=10.0, min_brightness=60.0, max_brightness=225.0)
    assert scaled_quality(10.0, 60.0, limits) == pytest.approx((1.0, 1.0, 195.0 / 30.0))
    assert scaled_quality(5.0, 240.0, limits) == pytest.approx((0.5, 4.0, 0.5))


def test_flat_grey_has_no_sharpness_and_its_grey_level() -> None:
    sharpness, brightness = raw_quality(np.full((256, 256, 3), 0.5, np.float32))
    assert sharpness == pytest.approx(0.0, abs=1e-6) and brightness == pytest.approx(127.5, abs=1e-3)


def test_blur_darkness_and_overexposure_lower_the_right_score() -> None:
    image = prepare_image((HAM_IMAGES / "ISIC_0024311.jpg").read_bytes())
    limits = QualityLimits()
    base = quality_batch(image.seg_input[None], limits)[0]
    blurred = quality_batch(cv2.GaussianBlur(image.seg_input, (0, 0), 4)[None], limits)[0]
    dark = quality_batch((image.seg_input * 0.2)[None], limits)[0]
    bright = quality_batch(np.clip(image.seg_input * 2.5, 0, 1)[None], limits)[0]
    assert (base >= 1.0).all()
    assert blurred[0] < 1.0 <= blurred[1]
    assert dark[1] < 1.0 and bright[2] < 1.0
    assert quality_batch(image.seg_input[None], limits).shape == (1, 3)


def test_limits_validate_themselves() -> None:
    with pytest.raises(InvalidTensorError, match="0 < min < max < 255"):
        QualityLimits(min_brightness=200.0, max_brightness=100.0)
    with pytest.raises(InvalidTensorError, match="min_sharpness must be positive"):
        QualityLimits(min_sharpness=0.0)
