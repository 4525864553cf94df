"""Shades-of-grey colour balance: the estimate and the gains worked by hand, invariance to a camera's white balance."""
from __future__ import annotations

import numpy as np
import pytest

from preprocess.colour import MAX_GAIN, apply_gains, shades_of_grey_gains
from preprocess.errors import InvalidTensorError


def _flat(r: int, g: int, b: int, shape: tuple[int, int] = (40, 60)) -> np.ndarray:
    image = np.empty((*shape, 3), np.uint8)
    image[:] = (r, g, b)
    return image


def test_gains_of_a_flat_colour_make_it_grey_at_its_geometric_mean_level() -> None:
    # light = (200, 100, 50) / 255 for any p; its geometric mean is 100 / 255, so the gains are (0.5, 1, 2)
    gains = shades_of_grey_gains(_flat(200, 100, 50), 6)
    np.testing.assert_allclose(gains, [0.5, 1.0, 2.0], rtol=1e-5)
    assert np.all(apply_gains(_flat(200, 100, 50), gains) == 100)


def test_the_estimate_is_the_minkowski_p_mean() -> None:
    # red: half the pixels 255 and half 0, so its p-mean is 0.5 ** (1/p); green and blue 51 everywhere (0.2)
    image = _flat(255, 51, 51)
    image[:, 30:, 0] = 0
    for p in (1, 6):
        red = 0.5 ** (1 / p)
        grey = (red * 0.2 * 0.2) ** (1 / 3)
        np.testing.assert_allclose(shades_of_grey_gains(image, p), [grey / red, grey / 0.2, grey / 0.2], rtol=1e-5)


def test_a_change_of_white_balance_is_balanced_away_and_exposure_kept() -> None:
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal((180, 130, 110), 10, (300, 400, 3)), 0, 255).astype(np.uint8)  # skin
    image[100:200, 150:250] = (90, 40, 30)  # a brown lesion
    reference = shades_of_grey_gains(image, 6)
    for cast in ((1.12, 1.0, 0.88), (0.88, 1.0, 1.12), (0.8, 1.1, 1.15), (1.1, 1.1, 1.1)):
        cast = np.array(cast, np.float32)
        shifted = apply_gains(image, cast)
        assert np.abs(shifted.astype(int) - image).mean() > 5  # the cast itself is no rounding
        # a cast of gains c comes back balanced as the original times their geometric mean (1.1 for a plain x1.1)
        level = np.exp(np.log(cast).mean())
        balanced = apply_gains(shifted, shades_of_grey_gains(shifted, 6))
        expected = apply_gains(image, reference * level)
        assert np.abs(balanced.astype(int) - expected).max() <= 2, cast  # rounding only


@pytest.mark.parametrize("image", [_flat(90, 90, 90), _flat(0, 0, 0), _flat(255, 0, 0)])
def test_grey_black_and_one_colour_images_are_left_as_they_are(image: np.ndarray) -> None:
    np.testing.assert_array_equal(shades_of_grey_gains(image, 6), np.ones(3, np.float32))


def test_gains_are_bounded() -> None:
    gains = shades_of_grey_gains(_flat(250, 250, 10), 6)  # unbounded, blue would be scaled 8.5 times
    assert gains[2] == pytest.approx(MAX_GAIN) and gains.min() >= 1 / MAX_GAIN


def test_a_large_image_is_estimated_from_a_strided_sample() -> None:
    image = np.random.default_rng(1).integers(0, 256, (1536, 2048, 3), dtype=np.uint8)
    whole = image.reshape(-1, 3).astype(np.float64) / 255
    light = np.power(np.mean(whole ** 6, axis=0), 1 / 6)
    np.testing.assert_allclose(shades_of_grey_gains(image, 6), np.exp(np.log(light).mean()) / light, rtol=2e-3)


def test_bad_inputs_are_refused_by_name() -> None:
    with pytest.raises(InvalidTensorError, match="RGB uint8"):
        shades_of_grey_gains(np.zeros((10, 10, 3), np.float32), 6)
    with pytest.raises(InvalidTensorError, match="RGB uint8"):
        apply_gains(np.zeros((10, 10), np.uint8), np.ones(3))
    with pytest.raises(InvalidTensorError, match="at least 1"):
        shades_of_grey_gains(_flat(1, 2, 3), 0.5)
    for gains in ([1.0, 1.0], [1.0, -1.0, 1.0], [1.0, np.nan, 1.0]):
        with pytest.raises(InvalidTensorError, match="three positive finite"):
            apply_gains(_flat(1, 2, 3), np.array(gains))


def test_a_part_is_balanced_by_the_gains_of_the_whole_or_left_alone() -> None:
    from preprocess.colour import balance_part

    whole = _flat(200, 100, 50)
    whole[:10, :10] = (90, 40, 30)
    whole[25:, 30:] = (230, 230, 245)  # a bright bluish label outside the part, which the whole's light sees
    part = np.ascontiguousarray(whole[:20, :20])
    assert balance_part(part, whole, 0) is part
    np.testing.assert_array_equal(balance_part(part, whole, 6), apply_gains(part, shades_of_grey_gains(whole, 6)))
    assert not np.array_equal(balance_part(part, whole, 6), apply_gains(part, shades_of_grey_gains(part, 6)))


def test_gains_are_clipped_to_four_and_a_quarter() -> None:
    # (250, 250, 10): geometric mean (250 x 250 x 10) ** (1/3) = 85.5, so blue would be scaled 8.55 times: 4 at most
    np.testing.assert_allclose(shades_of_grey_gains(_flat(250, 250, 10), 6), [85.5 / 250, 85.5 / 250, 4.0], rtol=1e-3)
    # (250, 10, 10): geometric mean 29.24, so red would be scaled 0.117 times: a quarter at least
    np.testing.assert_allclose(shades_of_grey_gains(_flat(250, 10, 10), 6), [0.25, 29.24 / 10, 29.24 / 10], rtol=1e-3)


def _faint_blue(lit_pixels: int) -> np.ndarray:
    """10 x 100 pixels of (200, 100, 0), the first ``lit_pixels`` with blue at level 1."""
    image = _flat(200, 100, 0, (10, 100))
    image.reshape(-1, 3)[:lit_pixels, 2] = 1
    return image


def test_a_channel_is_balanced_from_a_mean_level_of_one_thousandth() -> None:
    # p = 1: blue's mean is lit / 1000 / 255: 260 lit pixels give 1.02e-3 (balanced, clipped to 4), 250 give 0.98e-3
    np.testing.assert_allclose(shades_of_grey_gains(_faint_blue(260), 1), [0.25, 0.25, 4.0], rtol=1e-6)
    np.testing.assert_array_equal(shades_of_grey_gains(_faint_blue(250), 1), np.ones(3, np.float32))


def _dotted(height: int, width: int) -> np.ndarray:
    """Grey 100 with (200, 100, 50) on every pixel of an even row and an even column."""
    image = _flat(100, 100, 100, (height, width))
    image[::2, ::2] = (200, 100, 50)
    return image


def test_the_estimate_strides_by_the_root_of_the_pixels_per_16384() -> None:
    # 256 x 256 = 4 x 16384 pixels: a stride of 2 reads only the even rows and columns, all (200, 100, 50): gains
    # (0.5, 1, 2) as for that flat colour
    np.testing.assert_allclose(shades_of_grey_gains(_dotted(256, 256), 6), [0.5, 1.0, 2.0], rtol=1e-5)
    # 255 x 256 = 3.98 x 16384: stride int(1.996) = 1, every pixel read: the p-mean of the whole image
    image = _dotted(255, 256)
    whole = image.reshape(-1, 3).astype(np.float64) / 255
    light = np.power(np.mean(whole**6, axis=0), 1 / 6)
    np.testing.assert_allclose(shades_of_grey_gains(image, 6), np.exp(np.log(light).mean()) / light, rtol=1e-5)


def test_gains_are_applied_rounding_to_the_nearest_level() -> None:
    # 11 x 1.25 = 13.75 -> 14 (not truncated to 13); 250 x 1.25 = 312.5 -> 255; 9 x 1.25 = 11.25 -> 11
    out = apply_gains(_flat(11, 250, 9, (2, 2)), np.array([1.25, 1.25, 1.25]))
    assert out[0, 0].tolist() == [14, 255, 11]


def test_a_zero_gain_and_an_empty_image_are_refused() -> None:
    with pytest.raises(InvalidTensorError, match="three positive finite"):
        apply_gains(_flat(1, 2, 3), np.array([1.0, 0.0, 1.0]))
    with pytest.raises(InvalidTensorError, match="RGB uint8"):
        shades_of_grey_gains(np.zeros((0, 5, 3), np.uint8), 6)
