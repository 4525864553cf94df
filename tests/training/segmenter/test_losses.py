"""The segmenter's training loss and metric (Keras), on masks whose Dice is known by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest


def _pair() -> tuple[np.ndarray, np.ndarray]:
    """Two 4x4 images: the first, truth 4 px and prediction 4 px overlapping on 2; the second, both empty."""
    truth = np.zeros((2, 4, 4, 1), np.float32)
    pred = np.zeros((2, 4, 4, 1), np.float32)
    truth[0, 0, :4] = 1.0
    pred[0, 0, 2:4] = 1.0
    pred[0, 1, :2] = 1.0
    return truth, pred


def test_dice_is_per_image_with_the_smoothing_term_then_averaged() -> None:
    from training.segmenter.losses import SMOOTH, dice_coefficient

    truth, pred = _pair()
    # image 0: (2 x 2 + 1) / (4 + 4 + 1) = 5/9; image 1, empty pair: (0 + 1) / (0 + 1) = 1; mean 7/9
    assert SMOOTH == 1.0
    assert float(dice_coefficient(truth, pred)) == pytest.approx((5 / 9 + 1.0) / 2, abs=1e-6)
    assert float(dice_coefficient(truth[:1], truth[:1])) == pytest.approx(1.0, abs=1e-6)  # a perfect mask


def test_the_loss_is_binary_cross_entropy_plus_one_minus_dice() -> None:
    from training.segmenter.losses import bce_dice_loss

    truth, _ = _pair()
    pred = np.full_like(truth, 0.25)  # every pixel 0.25: BCE is -log(0.75) off the lesion, -log(0.25) on it
    on = truth.sum()
    bce = (on * -math.log(0.25) + (truth.size - on) * -math.log(0.75)) / truth.size
    # Dice, image 0: (2 x 0.25 x 4 + 1) / (4 + 16 x 0.25 + 1) = 3/9; image 1: (0 + 1) / (0 + 4 + 1) = 1/5
    dice = (3 / 9 + 1 / 5) / 2
    assert float(bce_dice_loss(truth, pred)) == pytest.approx(bce + 1.0 - dice, abs=1e-5)
