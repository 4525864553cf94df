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


@pytest.mark.parametrize("channel,grey_level", [(0, 0.299 * 255), (1, 0.587 * 255), (2, 0.114 * 255)])
def test_the_grey_level_weighs_red_green_and_blue_as_bt601(channel: int, grey_level: float) -> None:
    seg = np.zeros((4, 4, 3), np.float32)
    seg[..., channel] = 1.0  # pure red, green or blue: its grey level is that channel's BT.601 weight x 255
    assert raw_quality(seg) == (0.0, pytest.approx(grey_level, abs=1e-3))


def _checkerboard(mean_level: float, sharpness: float) -> np.ndarray:
    """A grey 8x8 checkerboard mean_level +- c levels whose Laplacian variance is ``sharpness``.

    With the 4-neighbour Laplacian every pixel's four neighbours hold the other colour (also at the reflected border),
    so each Laplacian value is -8 c s (s = +-1, half the pixels each): variance 64 c^2, hence c = sqrt(sharpness) / 8.
    """
    sign = np.indices((8, 8)).sum(axis=0) % 2 * 2 - 1
    levels = mean_level + np.sqrt(sharpness) / 8 * sign
    return np.repeat((levels / 255.0)[..., None], 3, axis=2).astype(np.float32)


def test_the_default_limits_score_one_exactly_at_sharpness_10_and_grey_levels_60_and_225() -> None:
    limits = QualityLimits()  # the defaults, used when a release ships no fitted limits
    at_limits = quality_batch(_checkerboard(60.0, 10.0)[None], limits)[0]
    assert at_limits[:2] == pytest.approx([1.0, 1.0], rel=1e-4)  # 10 / 10 and 60 / 60
    assert at_limits[2] == pytest.approx(195.0 / 30.0, rel=1e-4)  # (255 - 60) / (255 - 225)
    just_under = quality_batch(_checkerboard(59.0, 9.5)[None], limits)[0]
    assert just_under[0] < 1.0 and just_under[1] < 1.0  # 9.5 / 10 and 59 / 60
    bright = quality_batch(np.full((1, 8, 8, 3), 225.0 / 255.0, np.float32), limits)[0]
    assert bright[2] == pytest.approx(1.0, rel=1e-4)  # (255 - 225) / (255 - 225)
    too_bright = quality_batch(np.full((1, 8, 8, 3), 226.0 / 255.0, np.float32), limits)[0]
    assert too_bright[2] < 1.0  # 29 / 30


def test_a_colour_spread_of_three_levels_is_exactly_the_least_colour_accepted() -> None:
    seg = np.zeros((8, 8, 3), np.float32)
    seg[..., 0] = 3.0 / 255.0  # red 3 levels above green and blue everywhere: mean spread 3 levels, score 3 / 3
    assert colour_score(seg) == pytest.approx(1.0, rel=1e-5)
    seg[..., 0] = 2.9 / 255.0
    assert colour_score(seg) < 1.0


def test_the_colour_spread_is_read_on_every_second_pixel_each_way() -> None:
    seg = np.zeros((8, 8, 3), np.float32)
    seg[1::2, :, 0] = 30 / 255  # colour on the odd rows only: none of the pixels read (rows and columns 0, 2, 4, 6)
    seg[:, 1::2, 0] = 30 / 255  # and on the odd columns
    assert colour_score(seg) == 0.0
    seg[::2, ::2, 0] = 6 / 255  # every pixel read: a spread of 6 levels, twice the least accepted
    assert colour_score(seg) == pytest.approx(2.0, rel=1e-5)
