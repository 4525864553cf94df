"""Values tuned after training: temperature, operating point, Mahalanobis OOD, quality limits (by hand)."""
from __future__ import annotations

import numpy as np
import pytest

from training.calibration import (
    before_temperature,
    choose_threshold,
    fit_mahalanobis,
    fit_quality_limits,
    fit_temperature,
    nll,
    operating_point,
    quality_rejections,
    quantile_scale,
    softmax,
)
from training.errors import TrainingError

MEL, NV, BCC = 3, 4, 1


def test_temperature_minimises_nll_and_undoes_a_known_sharpening() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 8))
    labels = np.array([rng.choice(8, p=p) for p in softmax(true_logits)])
    t = fit_temperature(true_logits * 3.0, labels)  # logits three times too sharp
    assert t == pytest.approx(3.0, rel=0.1)
    assert nll(true_logits * 3.0, labels, t) < nll(true_logits * 3.0, labels, 1.0)
    with pytest.raises(TrainingError, match="empty validation set"):
        fit_temperature(np.zeros((0, 8)), [])


def test_threshold_keeps_the_sensitivity_on_the_next_melanoma() -> None:
    mel = list(np.linspace(0.5, 0.95, 39))
    labels = [MEL] * 39 + [NV] * 10
    scores = mel + [0.1] * 5 + [0.6] * 5
    point = choose_threshold(labels, scores, 0.95)
    # 39 melanomas: k = floor(40 * 0.05) = 2, the second-lowest; a new one falls below it with probability 2/40
    assert point.threshold == pytest.approx(mel[1])
    assert point.melanoma_sensitivity == pytest.approx(38 / 39) and point.specificity == pytest.approx(0.5)
    # 24 melanomas (the release's validation): k = floor(25 * 0.05) = 1, the lowest, not the second-lowest that
    # the plain 95% of these 24 would allow (a new melanoma would fall below that with probability 2/25 = 0.08)
    assert choose_threshold([MEL] * 24 + [NV], mel[:24] + [0.1]).threshold == pytest.approx(mel[0])
    safer = choose_threshold(labels, scores, 0.95, safety=0.5)
    assert safer.threshold == pytest.approx(point.threshold * 0.5) and safer.melanoma_sensitivity == 1.0
    with pytest.raises(TrainingError, match="no melanoma"):
        choose_threshold([NV, NV], [0.1, 0.2])


def test_too_few_melanomas_take_the_lowest_and_say_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="training.calibration"):
        point = choose_threshold([MEL] * 10 + [NV], [0.3, *np.linspace(0.4, 0.9, 9), 0.2], 0.95)
    assert point.threshold == pytest.approx(0.3) and "at least 19 are needed" in caplog.text


def test_operating_point_counts_malignant_and_benign() -> None:
    point = operating_point([MEL, BCC, NV, NV], [0.9, 0.2, 0.5, 0.1], 0.4)
    assert point.melanoma_sensitivity == 1.0 and point.malignant_sensitivity == 0.5 and point.specificity == 0.5
    assert (point.melanomas, point.malignant, point.benign) == (1, 2, 2)


def test_mahalanobis_by_hand_and_the_scale() -> None:
    features = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [12.0, 0.0]])
    # class means (1, 0) and (11, 0); the pooled within-class covariance diag(2, 0) is singular without shrinkage
    with pytest.raises(TrainingError, match="covariance of 4 images is singular"):
        fit_mahalanobis(features, [0, 0, 1, 1], shrinkage=0.0)
    shrunk = fit_mahalanobis(features, [0, 0, 1, 1], shrinkage=0.5)
    np.testing.assert_allclose(shrunk.means, [[1.0, 0.0], [11.0, 0.0]])
    # cov = 0.5 * diag(2, 0) + 0.5 * I * (2 / 2) = diag(1.5, 0.5): distance of (1, 1) to (1, 0) is sqrt(1 / 0.5)
    assert shrunk.distances(np.array([[1.0, 1.0]]))[0] == pytest.approx(np.sqrt(2.0))
    assert quantile_scale(np.arange(101.0), 0.95) == pytest.approx(95.0)
    # mean variance 4, not 1 (where shrinking towards the identity would agree): points 0, 4 and 12, 16 make
    # cov = diag(8, 0) (4 + 4 over 4 - 2), shrunk by 0.5 towards I * 8 / 2 = 4: diag(6, 2); (2, 1) is at sqrt(1 / 2)
    wide = fit_mahalanobis(np.array([[0.0, 0.0], [4.0, 0.0], [12.0, 0.0], [16.0, 0.0]]), [0, 0, 1, 1], shrinkage=0.5)
    assert wide.distances(np.array([[2.0, 1.0]]))[0] == pytest.approx(np.sqrt(0.5))


def test_quality_limits_pass_every_training_image() -> None:
    rng = np.random.default_rng(1)
    sharp, bright = rng.uniform(20, 800, 500), rng.uniform(80, 210, 500)
    limits = fit_quality_limits(sharp, bright)
    assert limits.min_sharpness == pytest.approx(np.percentile(sharp, 1) / 2)
    # brightness: the 0.5 and 99.5 percentiles widened by 35% of the room to black and to white, by hand
    ramp = fit_quality_limits(np.full(201, 100.0), np.linspace(50.0, 250.0, 201))  # percentiles 51 and 249
    assert ramp.min_brightness == pytest.approx(51.0 * 0.65) and ramp.max_brightness == pytest.approx(249.0 + 6 * 0.35)
    assert limits.min_brightness < bright.min() and limits.max_brightness > bright.max()



def test_a_temperature_at_the_search_bound_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """Logits that say nothing of the labels (each row's answer right half the time) flatten forever: T runs to 20."""
    logits = np.array([[5.0, 0.0], [5.0, 0.0]] * 10)
    with caplog.at_level("WARNING"):
        temperature = fit_temperature(logits, [0, 1] * 10)
    assert temperature > 19.0 and "sits at the search bound" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        fit_temperature(np.array([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0]]), [0, 1, 1])
    assert "search bound" not in caplog.text


def test_softmax_and_nll_with_a_temperature_on_a_case_worked_by_hand() -> None:
    # softmax([0, 2] / 2) = [1, e] / (1 + e); the NLL of label 1 under softmax([0, ln 3]) = -ln(3/4) = ln(4/3)
    np.testing.assert_allclose(softmax(np.array([[0.0, 2.0]]), 2.0), [[1 / (1 + np.e), np.e / (1 + np.e)]])
    assert nll(np.array([[0.0, np.log(3.0)]]), [1], 1.0) == pytest.approx(np.log(4 / 3))
    # two rows are averaged: label 0 there has probability 1/4, so the mean is (ln(4/3) + ln 4) / 2
    assert nll(np.array([[0.0, np.log(3.0)]] * 2), [1, 0], 1.0) == pytest.approx((np.log(4 / 3) + np.log(4)) / 2)
    # a temperature of 2 halves the logits: softmax([0, ln 9] / 2) = softmax([0, ln 3])
    assert nll(np.array([[0.0, np.log(9.0)]]), [1], 2.0) == pytest.approx(np.log(4 / 3))


def test_the_probabilities_before_a_temperature_are_recovered_from_the_served_ones_by_hand() -> None:
    # served softmax([0, ln 3] / 0.5) = softmax([0, ln 9]) = [1/10, 9/10]; before: softmax([0, ln 3]) = [1/4, 3/4]
    np.testing.assert_allclose(before_temperature(np.array([[0.1, 0.9]], np.float32), 0.5), [[0.25, 0.75]], rtol=1e-6)
    logits = np.array([[2.0, 0.0, -1.0, 0.5], [-3.0, 4.0, 0.0, 0.0]])
    np.testing.assert_allclose(before_temperature(softmax(logits, 0.76), 0.76), softmax(logits), rtol=1e-9)
    assert np.isfinite(before_temperature(np.array([[0.0, 1.0]]), 0.76)).all()  # an underflowed 0 stays finite


def test_softmax_of_huge_logits_is_finite() -> None:
    # exp(1000) overflows: the row maximum must come off first; softmax([1000, 0]) = [1, e^-1000] = [1, 0]
    np.testing.assert_allclose(softmax(np.array([[1000.0, 0.0]])), [[1.0, 0.0]])
    assert nll(np.array([[1000.0, 0.0]]), [0], 1.0) == pytest.approx(0.0)


def test_threshold_rank_survives_rounding_of_one_minus_sensitivity() -> None:
    # 19 melanomas at sensitivity 0.9: k = floor(20 * 0.1) = 2, the second-lowest score. In floating point
    # 1 - 0.9 = 0.09999999999999998 and 20 times it is 1.9999999999999996: without the epsilon floor() gives 1
    mel = [0.1 * i for i in range(1, 20)]
    point = choose_threshold([MEL] * 19 + [NV], [*mel, 0.05], 0.9)
    assert point.threshold == pytest.approx(0.2)


def test_the_tuning_rules_default_to_the_recipes_values_written_once() -> None:
    """The OOD quantile's default was 0.95 here while the recipe used 0.98: a caller leaving it out got another scale."""
    from training.classifier.schedule import OOD_VALIDATION_QUANTILE, REFER_SENSITIVITY

    # 0, 1, ..., 100: the q quantile is 100 q exactly (linear interpolation lands on a point)
    assert quantile_scale(np.arange(101.0)) == pytest.approx(100 * OOD_VALIDATION_QUANTILE)
    # 39 melanomas scoring 0.01 ... 0.39: k = floor(40 x (1 - sensitivity)) = 2 at 0.95, so the second lowest
    assert REFER_SENSITIVITY == 0.95  # the hand case's premise
    mel = [0.01 * i for i in range(1, 40)]
    assert choose_threshold([MEL] * 39 + [NV], [*mel, 0.5]).threshold == pytest.approx(0.02)


def test_an_untunable_validation_set_is_named_with_what_it_holds_and_the_fix() -> None:
    """The errors said what was wrong, not what the set held nor how to mend it."""
    with pytest.raises(TrainingError, match=r"empty validation set \(0 images\); .*at least 3 of its lesions: add images "
                                            r"to the classifier's --data"):
        fit_temperature(np.zeros((0, 8)), [])
    with pytest.raises(TrainingError, match=r"holds no melanoma \(its 3 images by class: \{'BCC': 1, 'NV': 2\}\): .*at "
                                            r"least 3 melanoma lesions: add melanoma \(MEL\) images to the classifier's"):
        choose_threshold([NV, BCC, NV], [0.1, 0.2, 0.3])


def test_the_share_of_images_each_quality_limit_turns_away_by_hand() -> None:
    from preprocess.quality import QualityLimits

    limits = QualityLimits(min_sharpness=10.0, min_brightness=40.0, max_brightness=220.0)
    raw = np.array([[5.0, 100.0], [50.0, 30.0], [50.0, 230.0], [50.0, 100.0], [9.9, 20.0]])
    # blurred: rows 0 and 4; dark: rows 1 and 4; bright: row 2; any: rows 0, 1, 2 and 4 (4 of 5)
    assert quality_rejections(raw, limits) == {"blurred": 0.4, "dark": 0.4, "bright": 0.2, "any": 0.8}
    assert quality_rejections(np.zeros((0, 2)), limits)["any"] == 0.0
