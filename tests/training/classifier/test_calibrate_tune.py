"""``training.classifier.calibrate.tune`` wiring, on logits and pooled features given by hand (no network runs):
which split each statistic is fitted on, and the OOD scale's quantile."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from preprocess.contract import CLASS_CODES
from training.classifier.data import CropSet

MEL, NV = CLASS_CODES.index("MEL"), CLASS_CODES.index("NV")
asked: list[str] = []  # what each logits_and_features call of the latest _tune was asked to log its progress as


def _set(labels: list[int], quality: list[tuple[float, float]] | None = None) -> CropSet:
    """A crop set whose crops are placeholders: the fake network below answers by the set, not by the pixels."""
    n = len(labels)
    return CropSet(np.zeros((n, 1, 1, 3), np.uint8), np.asarray(labels), 0,
                   quality=np.asarray(quality if quality is not None else [(100.0, 120.0)] * n))


def _tune(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sets: dict[str, tuple[CropSet, np.ndarray, np.ndarray]]):
    """Run tune() with logits_and_features answering each set's (logits, features) as given."""
    import training.classifier.calibrate as calibrate

    answers = {id(s.crops): (logits, features) for s, logits, features in sets.values()}
    asked.clear()
    monkeypatch.setattr(calibrate, "logits_and_features",
                        lambda model, crops, what="": asked.append(what) or answers[id(crops)])
    return calibrate.tune(None, sets["train"][0], sets["val"][0], sets["test"][0], tmp_path)  # type: ignore[arg-type]


def _unit_covariance_features() -> np.ndarray:
    """(1024, 512) training features of one class: +-s e_d for every dimension d. Their mean is 0 and their scatter
    2 s^2 I; over 1024 - 1 degrees of freedom with s^2 = 1023 / 2 the covariance is I (shrinkage keeps it: its mean
    variance is 1), so the Mahalanobis distance of x to the class is the plain norm |x|."""
    s = np.sqrt(1023 / 2)
    return np.concatenate([s * np.eye(512), -s * np.eye(512)])


def _along_first_axis(values: list[float]) -> np.ndarray:
    """Feature rows value * e_0 (512 features, as the network pools)."""
    rows = np.zeros((len(values), 512))
    rows[:, 0] = values
    return rows


def test_ood_statistics_come_from_training_and_the_scale_is_the_98th_validation_percentile(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from training.classifier.calibrate import OOD_VALIDATION_QUANTILE

    # training: one class (NV) with mean 0 and covariance I: the distance of x e_0 is |x|
    train = _set([NV] * 1024)
    val = _set([MEL] * 51 + [NV] * 50)
    test = _set([MEL, NV, NV, MEL])
    tuned = _tune(monkeypatch, tmp_path, {
        "train": (train, np.zeros((1024, 8)), _unit_covariance_features()),
        "val": (val, np.zeros((101, 8)), _along_first_axis(list(range(101)))),
        "test": (test, np.zeros((4, 8)), _along_first_axis([98, 99, 97, 0])),
    })
    # validation distances 0, 1, ..., 100: the 98th percentile is 98 (the model card's "1.0 = the validation
    # 98th percentile"); the training distances (all s = 22.6) would give 22.6 and the 95th percentile 95
    assert OOD_VALIDATION_QUANTILE == 0.98
    assert tuned.calibration.ood_scale == pytest.approx(98.0) and tuned.figures["ood"]["scale"] == pytest.approx(98.0)
    np.testing.assert_allclose(tuned.calibration.ood_means, np.zeros((1, 512)), atol=1e-6)
    np.testing.assert_allclose(tuned.calibration.ood_precision, np.eye(512), atol=1e-6)
    assert tuned.figures["ood"]["classes"] == 1 and tuned.figures["ood"]["train_images"] == 1024
    assert tuned.figures["val"]["ood_limit_quantile"] == 0.98
    # test distances 98, 99, 97, 0 over 98: 1.0 and 1.01 are at or above 1, 0.99 and 0 are not -> 2 of 4
    assert tuned.figures["test"]["ood_share_at_or_above_1"] == 0.5


def test_temperature_is_fitted_on_validation_and_quality_limits_on_training(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from training.calibration import fit_temperature

    logits = np.zeros((4, 8))
    logits[:, MEL] = 2.0
    # validation: 3 of 4 melanomas, every row MEL logit 2, the other 7 at 0. With u = exp(2 / T):
    # NLL = -(3/4) log(u / (u + 7)) - (1/4) log(1 / (u + 7)) = -(3/4) log u + log(u + 7), least where
    # -3 / (4u) + 1 / (u + 7) = 0, u = 21: T = 2 / ln 21 = 0.6569. Training rows are all melanomas: its NLL falls
    # towards T = 0, so a temperature fitted there would sit at the lower bound 0.05.
    train = _set([MEL] * 1024, quality=[(100.0, 50.0)] * 1024)
    val = _set([MEL, MEL, MEL, NV])
    test = _set([MEL, NV])
    train_logits = np.tile(logits[:1], (1024, 1))
    tuned = _tune(monkeypatch, tmp_path, {"train": (train, train_logits, _unit_covariance_features()),
                                          "val": (val, logits, _along_first_axis([0, 1, 2, 3])),
                                          "test": (test, logits[:2], _along_first_axis([0, 1]))})
    assert tuned.calibration.temperature == pytest.approx(2.0 / np.log(21.0), rel=1e-6)
    assert fit_temperature(train_logits, train.labels) < 0.06  # the training split's fit, for contrast
    # training quality: sharpness 100, brightness 50 everywhere -> min sharpness 100 / 2, brightness limits
    # 50 * (1 - 0.35) and 50 + (255 - 50) * 0.35
    assert tuned.quality.min_sharpness == pytest.approx(50.0)
    assert tuned.quality.min_brightness == pytest.approx(32.5) and tuned.quality.max_brightness == pytest.approx(121.75)
    # validation quality: (100, 120) everywhere: sharp, and under the 121.75 limit: none turned away
    assert tuned.figures["quality"]["val_images"] == 4
    assert tuned.figures["quality"]["val_rejected"] == {"blurred": 0.0, "dark": 0.0, "bright": 0.0, "any": 0.0}
    assert (tmp_path / "classifier_reliability.png").is_file()  # the --name default's prefix (site audit 12)
    assert not (tmp_path / "reliability.png").exists()


def test_the_lowest_validation_melanoma_scores_are_recorded_and_the_threshold_is_one_of_them(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The model card says how far one image moves the REFER threshold from these (ML review, finding 4)."""
    from training.classifier.calibrate import lowest_melanoma_scores

    # by hand: melanomas (index 0 and 2) score 0.9 and 0.2, the nevus's 0.05 is left out
    assert lowest_melanoma_scores([MEL, NV, MEL], np.array([0.9, 0.05, 0.2])) == [0.2, 0.9]
    assert lowest_melanoma_scores([MEL] * 7, np.arange(7.0)[::-1], count=3) == [0.0, 1.0, 2.0]
    logits = np.zeros((5, 8))
    logits[:4, MEL] = [3.0, 1.0, 2.0, 0.5]  # four melanomas, the last the lowest score
    val, train, test = _set([MEL] * 4 + [NV]), _set([MEL] * 1024), _set([MEL, NV])
    tuned = _tune(monkeypatch, tmp_path, {"train": (train, np.zeros((1024, 8)), _unit_covariance_features()),
                                          "val": (val, logits, _along_first_axis([0, 1, 2, 3, 4])),
                                          "test": (test, logits[:2], _along_first_axis([0, 1]))})
    lowest = tuned.figures["val"]["lowest_melanoma_scores"]
    assert len(lowest) == 4 and lowest == sorted(lowest)
    # with 4 melanomas the finite-sample rule takes the lowest melanoma score: the one of MEL logit 0.5
    assert tuned.triage.refer_threshold == pytest.approx(lowest[0])


def test_tuning_says_which_of_its_steps_it_is_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """`dermassist release --retune` tuned for about 2 min without a line."""
    import logging

    train, val, test = _set([MEL] * 1024), _set([MEL, MEL, MEL, NV]), _set([MEL, NV])
    logits = np.zeros((4, 8))
    with caplog.at_level(logging.INFO, logger="training.classifier.calibrate"):
        _tune(monkeypatch, tmp_path, {"train": (train, np.zeros((1024, 8)), _unit_covariance_features()),
                                      "val": (val, logits, _along_first_axis([0, 1, 2, 3])),
                                      "test": (test, logits[:2], _along_first_axis([0, 1]))})
    assert asked == ["tuning step 1 of 4: features of the train crops", "tuning step 2 of 4: features of the val crops",
                     "tuning step 3 of 4: features of the test crops"]  # each logs its own tenths
    assert caplog.records[0].getMessage() == ("tuning step 4 of 4: temperature on validation, OOD statistics, REFER "
                                              "threshold, quality limits")


def test_features_log_each_tenth_of_the_crops_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import torch

    from training.classifier.calibrate import logits_and_features
    from training.classifier.train import build_resnet18

    torch.manual_seed(0)
    crops = np.zeros((5, 224, 224, 3), np.uint8)
    with caplog.at_level(logging.INFO, logger="training.classifier.calibrate"):
        logits, features = logits_and_features(build_resnet18(None), crops, batch_size=2, what="features of the val crops")
    assert logits.shape == (5, 8) and features.shape == (5, 512)
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "features of the val crops: 2 of 5 crops", "features of the val crops: 4 of 5 crops",
        "features of the val crops: 5 of 5 crops"]


def test_the_reliability_diagram_carries_the_runs_name_so_a_second_run_keeps_the_first_ones(tmp_path: Path) -> None:
    """Site audit 12: a run with --name sitev2 in the --out of a `classifier` run overwrote its reliability.png."""
    from training.classifier.calibrate import reliability_path, run_name

    out = tmp_path / "runs"
    assert reliability_path(out, "sitev2") == out / "sitev2_reliability.png"
    assert reliability_path(out) == out / "classifier_reliability.png"
    # the stage passes its staging folder (training.run_folder: .<name>.staging): the name comes from it
    assert reliability_path(out / ".sitev2.staging") == out / ".sitev2.staging" / "sitev2_reliability.png"
    assert run_name(out / ".staging") == "classifier" and run_name(out / ".a.staging", "b") == "b"
