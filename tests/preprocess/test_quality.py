"""Image-quality measures: sharpness and exposure scores on images whose answer is known."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from preprocess.errors import InvalidTensorError
from preprocess.prepare import prepare_image
from preprocess.quality import MIN_COLOUR, QualityLimits, colour_score, quality_batch, raw_quality, scaled_quality
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
    assert quality_batch(image.seg_input[None], limits).shape == (1, 4)
    assert blurred[3] >= 1.0 and dark[3] < base[3]  # a darker picture has less colour spread, still enough


def test_colour_is_the_mean_channel_spread_over_its_minimum_by_hand() -> None:
    seg = np.zeros((8, 8, 3), np.float32)
    seg[..., 0] = 30 / 255  # red 30 levels above green and blue on half the pixels: mean spread 15 levels
    seg[4:, :, 0] = 0
    assert colour_score(seg) == pytest.approx(15 / MIN_COLOUR, rel=1e-5)


def test_a_greyscale_picture_has_no_colour_and_the_real_one_has() -> None:
    image = prepare_image((HAM_IMAGES / "ISIC_0024311.jpg").read_bytes())
    grey = np.repeat(cv2.cvtColor(image.seg_input, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    assert colour_score(grey) == 0.0 and colour_score(image.seg_input) > 2.0
    _, encoded = cv2.imencode(".jpg", cv2.cvtColor((grey * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    resaved = prepare_image(encoded.tobytes()).seg_input  # greyscale saved as a colour JPEG: chroma noise only
    assert colour_score(resaved) < 1.0


def test_limits_validate_themselves() -> None:
    with pytest.raises(InvalidTensorError, match="0 < min < max < 255"):
        QualityLimits(min_brightness=200.0, max_brightness=100.0)
    with pytest.raises(InvalidTensorError, match="min_sharpness must be positive"):
        QualityLimits(min_sharpness=0.0)
    with pytest.raises(InvalidTensorError, match="0 < min < max < 255"):  # 255 would divide the headroom by zero
        QualityLimits(max_brightness=255.0)
    with pytest.raises(InvalidTensorError, match="0 < min < max < 255"):
        QualityLimits(min_brightness=0.0)
