"""resize_antialiased: INTER_AREA-like shrinking without OpenCV's slow non-integer area path."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from preprocess.decode import decode
from preprocess.errors import InvalidTensorError
from preprocess.resize import resize_antialiased


@pytest.mark.parametrize("size", [(256, 256), (224, 224), (512, 384)])
def test_shrinking_a_photograph_stays_within_a_grey_level_of_area_averaging(ham_jpeg, size) -> None:
    rgb = decode(ham_jpeg).rgb
    out = resize_antialiased(rgb, *size)
    area = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    assert out.shape == (size[1], size[0], 3) and out.dtype == np.uint8
    assert np.abs(out.astype(np.float32) - area).mean() < 1.0


def test_fine_stripes_average_to_grey_instead_of_aliasing() -> None:
    stripes = np.zeros((450, 600, 3), np.uint8)
    stripes[:, ::2] = 255
    plain = cv2.resize(stripes, (256, 256), interpolation=cv2.INTER_LINEAR) / 255.0
    assert np.abs(plain - 0.5).max() > 0.4  # what the test guards against
    assert np.abs(resize_antialiased(stripes, 256, 256) / 255.0 - 0.5).max() < 0.1  # INTER_AREA: 0.07


def test_enlarging_is_bilinear_and_a_bad_target_is_refused() -> None:
    small = np.random.default_rng(0).integers(0, 255, (100, 80, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_antialiased(small, 224, 224),
                                  cv2.resize(small, (224, 224), interpolation=cv2.INTER_LINEAR))
    with pytest.raises(InvalidTensorError, match="at least 1x1"):
        resize_antialiased(small, 0, 10)
