"""Site-validation figures on answers worked out by hand (no server)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from dermassist.evaluation.figures import classification_figures, ood_figures, review_lists, segmentation_figures, triage_figures
from tests.dermassist.evaluation.stand_ins import (
    BCC,
    MEL,
    NV,
    hand_answer,
    hand_sample,
    turned_jpeg,
)
from training.metrics import wilson_interval


def test_triage_figures_by_hand() -> None:
    labels = np.array([MEL, MEL, BCC, NV, NV, NV])
    refer = np.array([True, False, True, True, False, False])
    assessable = np.array([True, True, True, False, True, True])
    t = triage_figures(labels, refer, assessable)
    assert t["melanoma_sensitivity"] == 0.5 and t["malignant_sensitivity"] == pytest.approx(2 / 3)
    assert t["specificity"] == pytest.approx(2 / 3) and t["not_assessable"] == pytest.approx(1 / 6)
    assert (t["melanomas"], t["malignant"], t["benign"]) == (2, 3, 3)
    assert t["melanoma_sensitivity_ci95"] == wilson_interval(1, 2) and t["specificity_ci95"] == wilson_interval(2, 3)
    assert t["malignant_sensitivity_ci95"] == wilson_interval(2, 3)
    assert triage_figures(np.array([NV]), np.array([False]), np.array([True]))["melanoma_sensitivity_ci95"] is None


def test_classification_figures_carry_their_uncertainty() -> None:
    from dermassist.evaluation.figures import classification_figures

    labels = np.array([MEL, MEL, NV, NV])
    probs = np.eye(8)[[MEL, NV, NV, NV]]  # certain answers: a perfectly calibrated model would have ECE 0
    c = classification_figures(labels, probs)
    assert c["balanced_accuracy"] == 0.75 and c["ece_if_calibrated"] == {"median": 0.0, "p95": 0.0}
    low, high = c["balanced_accuracy_ci95"]  # MEL recall from Beta(3/2, 3/2), NV from Beta(5/2, 1/2): never certain
    assert 0.25 < low < 0.5 and 0.9 < high < 1.0 and c["ece"] == pytest.approx(0.25)
    # melanoma AUC, resampled within class: the two melanomas' P(MEL) come back (1, 1) (AUC 1), (0, 0) (tied with the
    # nevi: 1/2) or one of each (3/4), the nevi at 0 every time; the central 95% runs from 1/2 to 1
    assert c["melanoma_auc"] == 0.75 and c["melanoma_auc_ci95"] == (0.5, 1.0)
    # macro F1 over MEL and NV: the melanoma called NV resampled (0 to 2 of 2 right); all right gives 1
    low, high = c["macro_f1_ci95"]
    assert low < c["macro_f1"] < high == 1.0


def test_ood_figures_by_hand(tmp_path: Path) -> None:
    inside, outside = np.array([0.2, 0.5, 1.2]), np.array([0.4, 3.0])
    o = ood_figures(inside, outside, [tmp_path / "photo_000.png", tmp_path / "noise_001.png"], np.array([True, False]))
    # pairs (out > in): 0.4 beats 0.2 only; 3.0 beats all three -> 4 of 6
    assert o["auroc"] == pytest.approx(4 / 6) and o["share_at_or_above_1"] == 0.5
    assert o["in_distribution_share_at_or_above_1"] == pytest.approx(1 / 3)
    assert o["not_assessable_by_kind"] == {"noise": 1.0, "photo": 0.0}


def test_segmentation_figures_compare_the_served_mask_with_the_resized_truth(tmp_path: Path) -> None:
    truth = np.zeros((450, 600), np.uint8)
    truth[:, :300] = 255  # left half of the original
    cv2.imwrite(str(tmp_path / "m.png"), truth)
    cv2.imwrite(str(tmp_path / "i.jpg"), np.zeros((450, 600, 3), np.uint8))  # no EXIF orientation
    served = np.zeros((256, 256), np.uint8)
    served[:, :64] = 255  # left quarter on the mask grid: Jaccard 1/2, Dice 2/3
    figures = segmentation_figures([SimpleNamespace(mask_path=tmp_path / "m.png", image_path=tmp_path / "i.jpg"),
                                    SimpleNamespace(mask_path=None, image_path=tmp_path / "i.jpg")],
                                   [SimpleNamespace(mask=served), SimpleNamespace(mask=served)])
    assert figures["images"] == 1
    assert figures["jaccard"] == pytest.approx(0.5) and figures["dice"] == pytest.approx(2 / 3)
    assert figures["thresholded_jaccard"] == 0.0


def test_review_lists_name_the_missed_melanomas_lowest_score_first_and_the_unassessable() -> None:
    samples = [hand_sample(image_id, code) for image_id, code in zip("abcdef", ["MEL", "MEL", "MEL", "NV", "BKL", "MEL"])]
    results = [hand_answer("NV", False, 0.04), hand_answer("MEL", True, 0.9), hand_answer("BKL", False, 0.01),
               hand_answer("NV", False, 0.02, assessable=False, note="Image too blurred."), hand_answer("BKL", True, 0.3),
               hand_answer("NV", None, None)]  # an answer without triage outputs is not counted as a miss
    review = review_lists(samples, results)
    assert [e["image"] for e in review["melanomas_not_referred"]] == ["c", "a"]
    assert review["melanomas_not_referred"][0] == {"image": "c", "truth": "MEL", "predicted": "BKL", "probability": 0.7,
                                                   "refer_score": 0.01, "ood_score": 0.5, "note": ""}
    assert [(e["image"], e["truth"], e["note"]) for e in review["not_assessable"]] == [("d", "NV", "Image too blurred.")]


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_mask_is_compared_in_the_frame_the_service_answers_in(tmp_path: Path, orientation: int) -> None:
    from preprocess.decode import apply_orientation as to_displayed

    image = turned_jpeg(tmp_path / "i.jpg", (600, 400), orientation)  # the service answers for the turned image
    stored = np.zeros((400, 600), np.uint8)
    stored[:, :150] = 255  # the left quarter of the stored pixels
    shown = to_displayed(stored, orientation)
    cv2.imwrite(str(tmp_path / "stored.png"), stored)
    cv2.imwrite(str(tmp_path / "shown.png"), shown)
    served = (cv2.resize(shown, (256, 256), interpolation=cv2.INTER_AREA) >= 128).astype(np.uint8) * 255
    # a mask in either frame is compared in the displayed one; turned by 180 degrees both frames have one size, and
    # a mask of that size is taken as drawn on the stored pixels
    for mask in ("stored.png", "shown.png") if orientation in (6, 8) else ("stored.png",):
        figures = segmentation_figures([SimpleNamespace(mask_path=tmp_path / mask, image_path=image)],
                                       [SimpleNamespace(mask=served)])
        assert figures["dice"] == 1.0 and figures["jaccard"] == 1.0, mask


def test_the_ground_truth_is_put_on_the_mask_grid_as_the_segmenter_was_trained_on_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One rule (``training.images.seg_mask``) for the segmenter's training targets and the evaluation's truth."""
    import training.images
    from dermassist.evaluation.figures import truth_mask
    from training.images import seg_mask

    rng = np.random.default_rng(3)
    mask = np.zeros((450, 600), np.uint8)
    mask[100:330, 150:480] = 255
    mask[rng.random(mask.shape) < 0.3] = 0  # ragged edges: grid cells near the >= 128 cut
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    cv2.imwrite(str(tmp_path / "i.jpg"), np.zeros((450, 600, 3), np.uint8))
    truth = truth_mask(tmp_path / "m.png", tmp_path / "i.jpg")
    assert truth.dtype == np.uint8 and np.array_equal(truth, seg_mask(mask).astype(np.uint8))
    assert 0 < truth.sum() < truth.size
    monkeypatch.setattr(training.images, "seg_mask", lambda m: np.full((2, 2), 1.0, np.float32))  # the one rule used
    assert truth_mask(tmp_path / "m.png", tmp_path / "i.jpg").tolist() == [[1, 1], [1, 1]]


def test_the_ece_before_calibration_is_of_the_same_answers_undivided() -> None:
    """With the served temperature the report gives the ECE the classifier's raw softmax scores on these very images,
    as metrics.json's ece_before_calibration, beside the served ECE; without it, none."""
    from training.calibration import softmax
    from training.metrics import expected_calibration_error

    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, (40, 8))
    labels = rng.integers(0, 8, 40)
    served = softmax(logits, 0.7).astype(np.float32)
    figures = classification_figures(labels, served, 0.7)
    assert figures["ece_before_calibration"] == pytest.approx(expected_calibration_error(labels, softmax(logits)),
                                                              abs=1e-6)
    assert figures["ece_before_calibration"] != pytest.approx(figures["ece"])
    assert classification_figures(labels, served)["ece_before_calibration"] is None
