"""Segmentation and classification metrics on arrays whose answers are known by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from preprocess.contract import CLASS_CODES
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


def test_a_jaccard_of_exactly_065_counts() -> None:
    """ISIC's rule zeroes an image BELOW 0.65: 13 of 20 pixels found, none extra, is exactly 0.65 and is kept."""
    truth = np.zeros((1, 4, 5), np.float32)
    truth[0] = 1.0  # 20 pixels
    found = truth.copy()
    found[0].flat[13:] = 0.0  # 13 of them
    m = segmentation_metrics(truth, found)
    assert m["jaccard"] == pytest.approx(0.65) and m["thresholded_jaccard"] == pytest.approx(0.65)


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
    expected = np.zeros((8, 8), int)  # rows truth, columns prediction
    expected[0, 0], expected[0, 1], expected[1, 1], expected[1, 4], expected[4, 4] = 1, 1, 2, 1, 3
    assert np.array_equal(np.array(m["confusion_matrix"]), expected)


def test_roc_auc_counts_ordered_pairs_and_ties_by_hand() -> None:
    from training.metrics import roc_auc

    # positives 0.9, 0.4; negatives 0.8, 0.4, 0.1: pairs (pos > neg) = 3 + 1 + 0.5 (tie 0.4/0.4) = 4.5 of 6
    assert roc_auc([1, 0, 1, 0, 0], [0.9, 0.8, 0.4, 0.4, 0.1]) == pytest.approx(4.5 / 6)
    assert roc_auc([1, 1, 0], [0.9, 0.8, 0.1]) == 1.0
    assert roc_auc([0, 0], [0.2, 0.3]) is None


def test_melanoma_auc_reads_the_mel_column() -> None:
    from training.metrics import melanoma_auc

    probs = np.zeros((4, 8))
    probs[:, 3] = [0.9, 0.2, 0.7, 0.1]  # MEL is index 3
    assert melanoma_auc([3, 4, 3, 0], probs) == 1.0
    assert melanoma_auc([4, 3, 3, 0], probs) == pytest.approx(0.5)  # pos 0.2, 0.7 vs neg 0.9, 0.1: 2 of 4 pairs


def test_expected_calibration_error_by_hand() -> None:
    from training.metrics import expected_calibration_error, reliability

    # two samples at confidence 0.9 (one right) and two at 0.6 (both right), 15 bins:
    # |0.5 - 0.9| * 2/4 + |1.0 - 0.6| * 2/4 = 0.2 + 0.2
    probs = np.full((4, 8), 0.0)
    probs[0, 1], probs[0, 0] = 0.9, 0.1
    probs[1, 1], probs[1, 0] = 0.9, 0.1
    probs[2, 2], probs[2, 0] = 0.6, 0.4
    probs[3, 2], probs[3, 0] = 0.6, 0.4
    truth = [1, 0, 2, 2]
    assert expected_calibration_error(truth, probs) == pytest.approx(0.4)
    r = reliability(truth, probs)
    assert sum(r["count"]) == 4 and r["accuracy"][13] == 0.5 and r["confidence"][8] == pytest.approx(0.6)
    perfect = np.eye(8)[[0, 1, 2]]
    assert expected_calibration_error([0, 1, 2], perfect) == 0.0


def test_the_ece_weights_each_bin_by_its_images() -> None:
    """Bins of unequal size and gap (figures audit, finding 2): the weighted ECE, not the plain mean over bins
    (0.35) or the largest gap (0.6)."""
    from training.metrics import expected_calibration_error

    # three at confidence 0.9, all right (gap 0.1); one at 0.6, wrong (gap 0.6): 3/4 * 0.1 + 1/4 * 0.6 = 0.225
    probs = np.zeros((4, 8))
    probs[:3, 1], probs[:3, 0] = 0.9, 0.1
    probs[3, 2], probs[3, 0] = 0.6, 0.4
    assert expected_calibration_error([1, 1, 1, 0], probs) == pytest.approx(0.225)


def test_referral_figures_by_hand() -> None:
    from training.metrics import ReferralFigures, referral_figures

    ak, bcc, mel, nv, bkl = (CLASS_CODES.index(c) for c in ("AK", "BCC", "MEL", "NV", "BKL"))
    # referred: MEL yes, MEL no, BCC yes, AK no, NV yes, BKL no -> melanoma 1/2, malignant 2/4, benign left 1/2
    figures = referral_figures([mel, mel, bcc, ak, nv, bkl], [True, False, True, False, True, False])
    assert figures == ReferralFigures(melanoma_sensitivity=0.5, malignant_sensitivity=0.5, specificity=0.5,
                                      melanomas=2, malignant=4, benign=2)
    none_malignant = referral_figures([nv, bkl], [False, True])
    assert none_malignant.melanoma_sensitivity is None and none_malignant.malignant_sensitivity is None
    assert none_malignant.specificity == 0.5 and none_malignant.benign == 2


def test_an_scc_not_referred_lowers_malignant_sensitivity() -> None:
    """SCC is malignant as MEL, BCC and AK are (figures audit, finding 3: dropping it passed every test)."""
    from training.metrics import referral_figures

    scc, mel, nv = (CLASS_CODES.index(c) for c in ("SCC", "MEL", "NV"))
    figures = referral_figures([scc, scc, mel, nv], [False, True, True, False])
    assert figures.malignant == 3 and figures.malignant_sensitivity == pytest.approx(2 / 3)
    assert figures.benign == 1 and figures.specificity == 1.0


def test_wilson_interval_by_hand() -> None:
    from training.metrics import wilson_interval

    # 5 of 10, z = 1.96: centre (0.5 + 3.8416/20) / 1.38416 = 0.5, half 1.96 sqrt(0.025 + 0.009604) / 1.38416 = 0.26341
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    # 10 of 10: centre (1 + 0.19208) / 1.38416 = 0.861230, half 1.96 sqrt(0.009604) / 1.38416 = 0.138770
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(0.72246, abs=1e-5) and high == 1.0
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match="successes must lie in"):
        wilson_interval(11, 10)


def _beta_15_05_quantile(p: float) -> float:
    """Quantile of Beta(3/2, 1/2), the Jeffreys posterior of 1 right of 1, by bisection on its CDF worked out by hand:
    density (2/pi) sqrt(x / (1 - x)); with x = sin(t)^2 the integral is (2/pi) (t - sin(t) cos(t))."""
    def cdf(x: float) -> float:
        t = math.asin(math.sqrt(x))
        return 2 / math.pi * (t - math.sin(t) * math.cos(t))

    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return low


def test_balanced_accuracy_interval_by_hand() -> None:
    from training.metrics import balanced_accuracy_interval

    # one class, 1 of 1 right: the interval is the central 95% of Beta(3/2, 1/2), about (0.1467, 0.9996)
    expected = (_beta_15_05_quantile(0.025), _beta_15_05_quantile(0.975))
    assert expected == pytest.approx((0.1467, 0.9996), abs=1e-4)
    assert balanced_accuracy_interval([0], [0]) == pytest.approx(expected, abs=0.015)
    # 0 of 1 right: Beta(1/2, 3/2), the mirror image
    assert balanced_accuracy_interval([0], [1]) == pytest.approx((1 - expected[1], 1 - expected[0]), abs=0.015)
    assert balanced_accuracy_interval([], []) is None


def test_balanced_accuracy_interval_keeps_its_width_when_every_class_is_all_right_or_all_wrong() -> None:
    from training.metrics import balanced_accuracy_interval

    # 10 images, all right: the old class bootstrap gave (1.0, 1.0); five right of five per class still leaves doubt
    low, high = balanced_accuracy_interval([0, 1] * 5, [0, 1] * 5)
    assert 0.6 < low < 0.85 and high == 1.0  # it ends at the observed 1.0, as Jeffreys' interval does at n of n
    # class 0 always right, class 1 always wrong: not the single point 0.5 either
    low, high = balanced_accuracy_interval([0, 0, 0, 1, 1], [0, 0, 0, 0, 0])
    assert low < 0.45 and 0.55 < high and low < 0.5 < high
    # more images, narrower interval
    wide = np.subtract(*balanced_accuracy_interval([0, 1] * 5, [0, 1] * 5)[::-1])
    narrow = np.subtract(*balanced_accuracy_interval([0, 1] * 50, [0, 1] * 50)[::-1])
    assert narrow < wide / 3


def test_ece_noise_floor_by_hand() -> None:
    from training.metrics import ece_noise_floor

    one_hot = np.eye(8)[[0, 3, 5]]
    assert ece_noise_floor(one_hot) == {"median": 0.0, "p95": 0.0}  # certain and right in every draw
    # one image at 0.5 / 0.5: the draw is right (accuracy 1) or wrong (0), either way |accuracy - 0.5| = 0.5
    half = np.zeros((1, 8))
    half[0, :2] = 0.5
    assert ece_noise_floor(half) == {"median": 0.5, "p95": 0.5}
    # many images at 0.9 for class 0: the bin's accuracy is close to 0.9, so the floor shrinks with the count
    sure = np.tile(np.r_[0.9, 0.1, np.zeros(6)], (2000, 1))
    assert ece_noise_floor(sure)["p95"] < 0.02 < ece_noise_floor(sure[:20])["median"]


def test_melanoma_auc_ranks_by_p_mel_not_by_the_top_probability() -> None:
    from training.metrics import melanoma_auc

    mel, nv, bcc = (CLASS_CODES.index(c) for c in ("MEL", "NV", "BCC"))
    probs = np.zeros((4, 8))
    probs[0, [mel, bcc]] = 0.4, 0.6  # melanoma, top probability 0.6
    probs[1, [mel, bcc]] = 0.3, 0.7  # melanoma, top probability 0.7
    probs[2, [mel, nv]] = 0.2, 0.8  # nevus, top probability 0.8
    probs[3, [mel, nv]] = 0.1, 0.9  # nevus, top probability 0.9
    # P(MEL) 0.4, 0.3 above 0.2, 0.1: 4 of 4 pairs -> 1.0; ranking by the top probability would give 0 of 4
    assert melanoma_auc([mel, mel, nv, nv], probs) == 1.0


def test_melanoma_auc_ranks_by_p_mel_not_by_the_refer_score() -> None:
    """A melanoma whose mass is mostly BCC ranks above a nevus by REFER_SCORE (0.9 against 0.4) but below it by P(MEL)
    (0.3 against 0.4): the AUC is P(MEL)'s, 0 (figures audit, finding 3)."""
    from training.metrics import melanoma_auc

    mel, nv, bcc = (CLASS_CODES.index(c) for c in ("MEL", "NV", "BCC"))
    probs = np.zeros((2, 8))
    probs[0, [mel, bcc, nv]] = 0.3, 0.6, 0.1
    probs[1, [mel, nv]] = 0.4, 0.6
    assert melanoma_auc([mel, nv], probs) == 0.0


def test_truth_is_binarised_at_one_half_whatever_the_prediction_threshold() -> None:
    truth = np.array([[[0.4, 1.0]]])  # a soft truth (a resized mask): pixel 0 is background at 0.5
    pred = np.array([[[0.35, 0.9]]])
    # threshold 0.3: truth {1}, prediction {0, 1}: intersection 1, dice 2 * 1 / (1 + 2), jaccard 1 / 2
    m = segmentation_metrics(truth, pred, threshold=0.3)
    assert m["dice"] == pytest.approx(2 / 3) and m["jaccard"] == pytest.approx(0.5)


def test_an_empty_truth_with_a_predicted_lesion_scores_zero() -> None:
    empty, lesion = np.zeros((1, 4, 4), np.float32), np.zeros((1, 4, 4), np.float32)
    lesion[0, :2, :2] = 1.0
    # only BOTH masks empty count as a perfect match: 0 overlap of 4 predicted (or 4 true) pixels is dice 0
    assert segmentation_metrics(empty, lesion) == {"dice": 0.0, "jaccard": 0.0, "thresholded_jaccard": 0.0}
    assert segmentation_metrics(lesion, empty) == {"dice": 0.0, "jaccard": 0.0, "thresholded_jaccard": 0.0}


def test_a_single_two_dimensional_mask_is_one_image() -> None:
    truth = np.array([[1.0, 1.0], [0.0, 0.0]])
    pred = np.array([[1.0, 0.0], [0.0, 0.0]])
    # 2 true pixels, 1 predicted, 1 shared: dice 2 * 1 / 3, jaccard 1 / 2
    m = segmentation_metrics(truth, pred)
    assert m["dice"] == pytest.approx(2 / 3) and m["jaccard"] == pytest.approx(0.5)


def test_tune_threshold_breaks_a_thresholded_jaccard_tie_by_dice() -> None:
    table = {0.3: {"thresholded_jaccard": 0.0, "dice": 0.2}, 0.5: {"thresholded_jaccard": 0.0, "dice": 0.4},
             0.7: {"thresholded_jaccard": 0.0, "dice": 0.1}}
    best, _ = tune_threshold(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), (0.3, 0.5, 0.7), score=table.__getitem__)
    assert best == 0.5  # all three tie at 0: the higher dice decides
    table[0.7] = {"thresholded_jaccard": 0.7, "dice": 0.1}
    best, _ = tune_threshold(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), (0.3, 0.5, 0.7), score=table.__getitem__)
    assert best == 0.7  # thresholded jaccard comes first, whatever the dice


def test_a_true_class_never_predicted_still_counts_in_the_macro_averages() -> None:
    m = classification_metrics([0, 1], [0, 0])
    # class 0: recall 1, precision 1/2; class 1 (never predicted): recall 0, precision 0 -> both averaged over 2
    assert m["macro_recall"] == pytest.approx(0.5) and m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["macro_precision"] == pytest.approx(0.25) and m["per_class_recall"]["BCC"] == 0.0


def test_wilson_interval_at_zero_and_at_all_stays_inside_zero_one() -> None:
    from training.metrics import wilson_interval

    # at p = 0 the centre equals the half width exactly (both z^2 / 2n / (1 + z^2 / n)), at p = 1 centre + half = 1;
    # floating point lands a hair outside ([-2.8e-17, ...] and [..., 1 + 2e-16] for n = 5) unless clamped
    for n in (5, 10, 19):
        none_right, all_right = wilson_interval(0, n), wilson_interval(n, n)
        assert none_right is not None and all_right is not None
        assert none_right[0] == 0.0 and all_right[1] == 1.0


def test_balanced_accuracy_interval_takes_half_the_missing_level_from_each_tail() -> None:
    from training.metrics import balanced_accuracy_interval

    # one class of 2 images, 1 right: the recall is drawn from Beta(3/2, 3/2), density (8/pi) sqrt(x (1 - x)); with
    # x = sin(t)^2 its CDF is (2/pi) (t - sin(4t) / 4). A 60% interval cuts 20% from each tail: CDF 0.2 and 0.8
    def cdf(x: float) -> float:
        t = math.asin(math.sqrt(x))
        return 2 / math.pi * (t - math.sin(4 * t) / 4)

    low, high = balanced_accuracy_interval([0, 0], [0, 1], level=0.6)
    assert cdf(low) == pytest.approx(0.2, abs=0.01) and cdf(high) == pytest.approx(0.8, abs=0.01)
    assert low + high == pytest.approx(1.0, abs=0.01)  # the posterior is symmetric about 1/2


def test_ece_noise_floor_p95_is_the_95th_percentile() -> None:
    from training.metrics import ece_noise_floor

    # one image at 0.93 for class 0: the drawn label is class 0 (probability 0.93, ECE |1 - 0.93| = 0.07) or not
    # (probability 0.07, ECE 0.93). 93% of draws give 0.07: the median is 0.07, the 95th percentile 0.93 (a 90th
    # would be 0.07); 10,000 draws put the share of 0.07 within 0.93 +- 0.008 (3 sd)
    sure = np.zeros((1, 8))
    sure[0, :2] = 0.93, 0.07
    floor = ece_noise_floor(sure, draws=10_000)
    assert floor["median"] == pytest.approx(0.07) and floor["p95"] == pytest.approx(0.93)


def test_metric_input_errors_are_training_errors_that_say_what_came() -> None:
    """They were bare ValueErrors: `dermassist` commands, which report the DermAssistError family, crashed on them."""
    from training.errors import TrainingError
    from training.metrics import wilson_interval

    z = np.zeros((2, 8, 8), np.float32)
    cases = [(lambda: segmentation_metrics(z, np.zeros((2, 4, 4), np.float32)),
              r"shapes differ: \(2, 8, 8\) vs \(2, 4, 4\); .*resize the predictions"),
             (lambda: classification_metrics([0, 1], [0]), r"got \(2,\) and \(1,\); pass the predictions of the same images"),
             (lambda: classification_metrics([], []), r"non-empty label arrays"),
             (lambda: wilson_interval(11, 10), r"successes must lie in \[0, 10\] .*got 11")]
    for call, message in cases:
        with pytest.raises(TrainingError, match=message) as caught:
            call()
        assert isinstance(caught.value, ValueError)  # still caught where a ValueError is


def test_the_balanced_accuracy_interval_always_holds_the_observed_balanced_accuracy() -> None:
    """Eight classes of one image each, all wrong: the observed balanced accuracy is 0, and the central 95% of the
    mean of their Jeffreys draws starts above it (each Beta(1/2, 3/2) draw is above 0): a report read "0.104
    (0.11-0.37)" on a site's small set."""
    from training.metrics import balanced_accuracy_interval

    truth, pred = np.arange(8), np.full(8, 9)
    before = np.quantile(np.random.default_rng(0).beta(0.5, 1.5, size=(8, 20000)).mean(axis=0), 0.025)
    assert before > 0.02  # what the interval started at before it was widened
    low, high = balanced_accuracy_interval(truth, pred)
    assert low == 0.0 and 0.3 < high < 0.6


def test_macro_figures_average_over_the_classes_in_truth_or_predictions_by_hand() -> None:
    """Three true classes (MEL, NV, BCC, two images each), one BCC predicted as DF, a class the set lacks: the macro
    figures averaged over the truth's classes alone ignored DF's precision of 0 (finding 2 of the ML audit)."""
    mel, nv, bcc, df = (CLASS_CODES.index(c) for c in ("MEL", "NV", "BCC", "DF"))
    truth = [mel, mel, nv, nv, bcc, bcc]
    pred = [mel, nv, nv, nv, bcc, df]
    m = classification_metrics(truth, pred)
    # MEL: 1 right of 2, predicted once -> precision 1, recall 1/2, F1 2/3
    # NV: 2 right of 2, predicted 3 times -> precision 2/3, recall 1, F1 2 (2/3) / (5/3) = 4/5
    # BCC: 1 right of 2, predicted once -> precision 1, recall 1/2, F1 2/3
    # DF: no image, predicted once -> precision 0, recall 0, F1 0
    # over the 4 classes in truth or prediction: precision (1 + 2/3 + 1 + 0) / 4 = 2/3, recall (1/2 + 1 + 1/2 + 0) / 4
    # = 1/2, F1 (2/3 + 4/5 + 2/3 + 0) / 4 = (32/15) / 4 = 8/15 (over the 3 true classes it was 32/45 = 0.711)
    assert m["macro_precision"] == pytest.approx(2 / 3)
    assert m["macro_recall"] == pytest.approx(1 / 2)
    assert m["macro_f1"] == pytest.approx(8 / 15)
    # balanced accuracy stays the mean recall over the classes present in the truth: (1/2 + 1 + 1/2) / 3
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    assert m["per_class_f1"]["DF"] == 0.0 and m["per_class_recall"]["DF"] is None
    assert m["per_class_f1"]["VASC"] is None  # in neither truth nor predictions


def test_the_audits_hand_case_gives_the_union_macro_f1() -> None:
    # truth MEL, MEL, NV, NV; predicted MEL, NV, NV, DF: MEL F1 2/3 (P 1, R 1/2), NV F1 1/2 (P 1/2, R 1/2), DF 0
    # -> (2/3 + 1/2 + 0) / 3 = 7/18 = 0.389; macro precision (1 + 1/2 + 0) / 3 = 1/2 (0.75 over the true classes)
    mel, nv, df = (CLASS_CODES.index(c) for c in ("MEL", "NV", "DF"))
    m = classification_metrics([mel, mel, nv, nv], [mel, nv, nv, df])
    assert m["macro_f1"] == pytest.approx(7 / 18) and m["macro_precision"] == pytest.approx(1 / 2)


def test_macro_figures_match_scikit_learns_macro_average() -> None:
    from sklearn import metrics  # a dev dependency (pyproject.toml): the reference, so never skipped

    rng = np.random.default_rng(3)
    for _ in range(20):
        truth, pred = rng.integers(0, 5, size=30), rng.integers(0, 8, size=30)
        m = classification_metrics(truth, pred)
        assert m["macro_f1"] == pytest.approx(metrics.f1_score(truth, pred, average="macro", zero_division=0))
        assert m["macro_precision"] == pytest.approx(metrics.precision_score(truth, pred, average="macro",
                                                                             zero_division=0))
        assert m["macro_recall"] == pytest.approx(metrics.recall_score(truth, pred, average="macro", zero_division=0))


def test_a_perfectly_separated_melanoma_auc_has_the_interval_one_to_one() -> None:
    from training.metrics import macro_f1_interval, melanoma_auc_interval

    mel, nv = CLASS_CODES.index("MEL"), CLASS_CODES.index("NV")
    truth = np.array([mel] * 3 + [nv] * 4)
    probs = np.zeros((7, 8))
    probs[:3, mel], probs[3:, mel] = 0.9, 0.1  # every melanoma above every nevus, in every resample
    probs[:, nv] = 1 - probs[:, mel]
    assert melanoma_auc_interval(truth, probs, draws=200) == (1.0, 1.0)
    assert macro_f1_interval(truth, truth, draws=200) == (1.0, 1.0)  # all right in every resample


def test_the_stratified_bootstrap_interval_of_a_two_melanoma_auc_by_hand() -> None:
    """Melanomas scoring 0.9 and 0.1, one nevus at 0.5. Resampled within class, the nevus stays; the two melanomas come
    back as (0.9, 0.9) with probability 1/4 (AUC 1), (0.1, 0.1) with 1/4 (AUC 0), one of each with 1/2 (AUC 1/2): the
    central 95% runs from 0 to 1, and about half the draws are 1/2."""
    from training.metrics import melanoma_auc, melanoma_auc_interval, stratified_bootstrap_interval

    mel, nv = CLASS_CODES.index("MEL"), CLASS_CODES.index("NV")
    truth = np.array([mel, mel, nv])
    probs = np.zeros((3, 8))
    probs[:, mel] = 0.9, 0.1, 0.5
    assert melanoma_auc_interval(truth, probs) == (0.0, 1.0)
    halves = []
    stratified_bootstrap_interval(truth, lambda i: halves.append(melanoma_auc(truth[i], probs[i]) == 0.5) or 0.0)
    assert np.mean(halves) == pytest.approx(0.5, abs=0.05)  # 2000 draws: 3 sd = 0.034
    assert melanoma_auc_interval(np.array([nv, nv]), probs[:2]) is None  # no melanoma: no AUC, no interval


def test_the_bootstrap_is_seeded_and_keeps_each_class_size() -> None:
    from training.metrics import macro_f1_interval, stratified_bootstrap_interval

    truth, pred = np.array([0, 0, 0, 1, 1, 4, 4, 4, 4]), np.array([0, 1, 0, 1, 4, 4, 4, 0, 4])
    assert macro_f1_interval(truth, pred) == macro_f1_interval(truth, pred)
    sizes = set()
    stratified_bootstrap_interval(truth, lambda i: sizes.add(tuple(np.bincount(truth[i], minlength=5))) or 0.0, draws=50)
    assert sizes == {(3, 2, 0, 0, 4)}
    with pytest.raises(ValueError, match="expected 0 < level < 1"):
        stratified_bootstrap_interval(truth, lambda i: 0.0, level=95)


def test_figures_recorded_with_the_old_macro_average_are_re_derived_from_their_confusion_matrix() -> None:
    """A release records its training-time figures with their confusion matrices; ``refreshed_figures`` re-derives
    every block that holds one, so a release built before the macro average changed reads as today's."""
    from training.metrics import MetricsInputError, metrics_from_confusion, refreshed_figures

    mel, nv, df = (CLASS_CODES.index(c) for c in ("MEL", "NV", "DF"))
    truth, pred = [mel, mel, nv, nv], [mel, nv, nv, df]
    current = classification_metrics(truth, pred)
    assert metrics_from_confusion(current["confusion_matrix"]) == current
    old = {**current, "macro_f1": 7 / 12, "macro_precision": 3 / 4,  # averaged over the true classes MEL and NV
           "images": ["a", "b", "c", "d"], "melanoma_auc": 0.5}
    recorded = {"test": old, "by_source": {"ph2": old}, "best_epoch": 7, "history": [{"loss": 1.0}]}
    refreshed = refreshed_figures(recorded)
    for block in (refreshed["test"], refreshed["by_source"]["ph2"]):
        assert block["macro_f1"] == pytest.approx(7 / 18) and block["macro_precision"] == pytest.approx(1 / 2)
        assert block["images"] == ["a", "b", "c", "d"] and block["melanoma_auc"] == 0.5  # other keys kept
    assert refreshed["best_epoch"] == 7 and refreshed["history"] == [{"loss": 1.0}]
    assert recorded["test"]["macro_precision"] == 0.75  # the record handed in is not changed
    assert refreshed_figures(refreshed) == refreshed  # today's figures come back as they are
    for bad in ([[1, 2], [3, 4]], np.zeros((8, 8), np.int64), np.full((8, 8), -1), np.full((8, 8), 0.5)):
        with pytest.raises(MetricsInputError, match="a confusion matrix must be 8x8 non-negative counts"):
            metrics_from_confusion(bad)


def test_the_shipped_releases_training_time_figures_agree_with_their_confusion_matrices() -> None:
    """`dermassist release --evaluate-only` re-derives them: none keeps the macro average of before."""
    import json

    from training.metrics import refreshed_figures
    from training.release import MANIFEST, RELEASE_DIR

    figures = json.loads((RELEASE_DIR / MANIFEST).read_text())["classifier"]["figures"]
    assert figures["test_by_source"]["ph2"]["confusion_matrix"]  # the blocks the check reads are there
    assert refreshed_figures(figures) == figures


def _solve(cdf, p: float) -> float:
    """The x in (0, 1) where an increasing ``cdf`` reaches ``p``, by bisection."""
    low, high = 0.0, 1.0
    for _ in range(80):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return (low + high) / 2


def test_jeffreys_interval_against_the_beta_cdfs_in_closed_form() -> None:
    """1 of 2: Beta(3/2, 3/2), CDF (2/pi)(asin(sqrt x) - (1 - 2x) sqrt(x(1 - x))); 0 of 1: Beta(1/2, 3/2), CDF
    (2/pi)(asin(sqrt x) + sqrt(x(1 - x))), its interval starting at 0 (Brown, Cai & DasGupta's convention)."""
    from training.metrics import jeffreys_interval

    half = lambda x: 2 / math.pi * (math.asin(math.sqrt(x)) - (1 - 2 * x) * math.sqrt(x * (1 - x)))  # noqa: E731
    none = lambda x: 2 / math.pi * (math.asin(math.sqrt(x)) + math.sqrt(x * (1 - x)))  # noqa: E731
    low, high = jeffreys_interval(1, 2)
    assert low == pytest.approx(_solve(half, 0.025), abs=1e-9) and high == pytest.approx(1 - low, abs=1e-9)
    assert jeffreys_interval(0, 1) == (0.0, pytest.approx(_solve(none, 0.975), abs=1e-9))
    assert jeffreys_interval(3, 3)[1] == 1.0 and jeffreys_interval(0, 0) is None
