"""The served temperature an evaluation reads from a repository's calibration.json (to give the ECE of its answers
before calibration): the recorded number, None without one, a RepositoryError naming the file for a bad one."""
from __future__ import annotations

import json

import pytest

from dermassist.base.errors import RepositoryError
from training.export.steps import calibration_file, served_temperature


def test_the_recorded_temperature_is_read_and_none_without_a_record(tmp_path) -> None:
    assert served_temperature(tmp_path) is None  # no classifier exported
    path = calibration_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"ood_scale": 21.4}))
    assert served_temperature(tmp_path) is None  # recorded none (an imported classifier's may hold no temperature)
    path.write_text(json.dumps({"temperature": 0.76}))
    assert served_temperature(tmp_path) == 0.76


@pytest.mark.parametrize("recorded", [0, -1.0, "0.76", True])
def test_an_unusable_temperature_is_a_repository_error_naming_the_file(tmp_path, recorded) -> None:
    path = calibration_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"temperature": recorded}))
    with pytest.raises(RepositoryError, match=rf"{path}: temperature must be a positive number, got .*; export the "
                                              r"release again"):
        served_temperature(tmp_path)


def test_the_trained_crop_threshold_is_recorded_replaced_and_dropped(tmp_path) -> None:
    from training.export.steps import record_trained_crop_threshold, served_classifier_crop_threshold

    path = calibration_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"temperature": 0.76}))
    record_trained_crop_threshold(tmp_path, 0.3)
    assert served_classifier_crop_threshold(tmp_path) == 0.3 and served_temperature(tmp_path) == 0.76
    record_trained_crop_threshold(tmp_path, None)  # an imported classifier without its run's metrics: not known
    assert served_classifier_crop_threshold(tmp_path) is None and json.loads(path.read_text()) == {"temperature": 0.76}
    path.write_text(json.dumps({"trained_crop_threshold": 1.5}))
    with pytest.raises(RepositoryError, match=r"trained_crop_threshold must be a number in \(0, 1\), got 1.5"):
        served_classifier_crop_threshold(tmp_path)
