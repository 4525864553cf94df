"""Segmentation and classification metrics on arrays whose answers are known by hand."""
from __future__ import annotations

import numpy as np
import pytest

from training.metrics import classification_metrics, segmentation_metrics, tune_threshold


def _square(size: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    m[x0:x1, x0:x1] = 1
    return m


def test_dice_and_jaccard_of_overlapping_squares() -> None:
    truth = np.zeros((1, 10, 10), np.float32)
    truth[0, :, :4] = 1  # 40 px
    pred = np.zeros((1, 10, 10), np.float32)
    pred[0, :, 2:6] = 0.9  # 40 px, 20 overlap
    m = segmentation_metrics(truth, pred, threshold=0.5)
    assert m["dice"] == pytest.approx(0.5)
    assert m["jaccard"] == pytest.approx(1 / 3)
    assert m["thresholded_jaccard"] == 0.0


def test_thresholded_jaccard_zeroes_images_below_065() -> None:
    truth = np.stack([_square(10, 0, 10), _square(10, 0, 10)])
    good = _square(10, 0, 10)
    good[0, :] = 0  # jaccard 0.9
    bad = _square(10, 0, 5)  # jaccard 0.25
    m = segmentation_metrics(truth, np.stack([good, bad]))
    assert m["jaccard"] == pytest.approx((0.9 + 0.25) / 2)
    assert m["thresholded_jaccard"] == pytest.approx(0.9 / 2)


def test_threshold_changes_the_mask_and_tuning_finds_it() -> None:
    truth = _square(20, 5, 15)[None]
    prob = np.where(truth > 0, 0.6, 0.3).astype(np.float32)
    assert segmentation_metrics(truth, prob, 0.5)["dice"] == pytest.approx(1.0)
    assert segmentation_metrics(truth, prob, 0.25)["dice"] < 0.5
    best, scores = tune_threshold(truth, prob)
    assert 0.3 < best <= 0.6 and scores[best]["thresholded_jaccard"] == pytest.approx(1.0)


def test_empty_truth_and_prediction_score_one_and_shapes_checked() -> None:
    z = np.zeros((2, 8, 8, 1), np.float32)
    assert segmentation_metrics(z, z)["dice"] == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        segmentation_metrics(z, np.zeros((2, 4, 4), np.float32))


def test_classification_metrics_known_confusion() -> None:
    truth = [0, 0, 1, 1, 1, 4, 4, 4]
    pred = [0, 1, 1, 1, 4, 4, 4, 4]
    m = classification_metrics(truth, pred)
    assert m["accuracy"] == pytest.approx(6 / 8)
    # recalls: c0 1/2, c1 2/3, c4 3/3 ; precisions: c0 1/1, c1 2/3, c4 3/4
    assert m["macro_recall"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert m["balanced_accuracy"] == m["macro_recall"]
    assert m["macro_precision"] == pytest.approx((1 + 2 / 3 + 0.75) / 3)
    f1 = [2 * 1 * 0.5 / 1.5, 2 / 3, 2 * 0.75 / 1.75]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert m["per_class_recall"]["AK"] == 0.5 and m["per_class_recall"]["SCC"] is None
    assert m["confusion_matrix"][0][1] == 1 and sum(map(sum, m["confusion_matrix"])) == 8
