"""The experiment table's schedule: a value the stages would refuse is refused before anything trains."""
from __future__ import annotations

import pytest

from training.errors import TrainingConfigError
from training.experiments import ExperimentSchedule


def test_the_default_schedule_and_a_derived_low_res_count_are_accepted() -> None:
    assert ExperimentSchedule.resolve({}, environ={}) == ExperimentSchedule()
    assert ExperimentSchedule.resolve({"cls_epochs": 1}, environ={}).cls_low_res_epochs == 0


@pytest.mark.parametrize(("values", "message"), [
    ({"seg_epochs": 0}, r"--seg-epochs / DERMASSIST_EXPERIMENTS_SEG_EPOCHS must be >= 1, got 0"),
    ({"cls_epochs": -3}, r"--cls-epochs / DERMASSIST_EXPERIMENTS_CLS_EPOCHS must be >= 1, got -3"),
    ({"cls_low_res_epochs": 99}, r"DERMASSIST_EXPERIMENTS_CLS_LOW_RES_EPOCHS must lie in \[0, 40\] .*got 99; lower it"),
    ({"cls_low_res_epochs": -1}, r"CLS_LOW_RES_EPOCHS must lie in \[0, 40\] .*got -1"),
    ({"cls_ema": 5.0}, r"DERMASSIST_EXPERIMENTS_CLS_EMA must lie in \[0, 1\) .*got 5.0; pass e.g. 0.99"),
    ({"cls_ema": -0.1}, r"CLS_EMA must lie in \[0, 1\) .*got -0.1"),
])
def test_a_schedule_the_stages_would_refuse_is_refused_naming_the_setting(values: dict, message: str) -> None:
    with pytest.raises(TrainingConfigError, match=message):
        ExperimentSchedule(**values)


def test_a_bad_value_from_the_environment_is_refused_too() -> None:
    """DERMASSIST_EXPERIMENTS_* values were taken as they came: 99 low-resolution epochs of 40 reached the stage."""
    with pytest.raises(TrainingConfigError, match="CLS_LOW_RES_EPOCHS must lie in .*got 99"):
        ExperimentSchedule.resolve({}, environ={"DERMASSIST_EXPERIMENTS_CLS_LOW_RES_EPOCHS": "99"})
    with pytest.raises(TrainingConfigError, match="SEG_EPOCHS must be >= 1, got 0"):
        ExperimentSchedule.resolve({}, environ={"DERMASSIST_EXPERIMENTS_SEG_EPOCHS": "0"})
    with pytest.raises(TrainingConfigError, match="CLS_EMA must lie in .*got 5.0"):
        ExperimentSchedule.resolve({"cls_epochs": 10}, environ={"DERMASSIST_EXPERIMENTS_CLS_EMA": "5"})


def test_a_schedule_shorter_than_the_recipes_warm_up_is_refused_before_any_training(tmp_path, monkeypatch) -> None:
    """The real recipe warms the classifier up for 3 epochs: a 3-epoch schedule failed when the classifier stage
    started, after the segmenter had trained twice."""
    import training.experiments as experiments
    from training.pipeline import REAL_RECIPE

    started: list[str] = []
    monkeypatch.setattr(experiments, "run_stage", lambda module, *_: started.append(module))
    with pytest.raises(TrainingConfigError, match=r"--cls-epochs .* is 3, but the recipe warms up for 3 epochs"):
        experiments.run_experiments(tmp_path, tmp_path, REAL_RECIPE, ExperimentSchedule(cls_epochs=3, cls_low_res_epochs=2))
    with pytest.raises(TrainingConfigError, match=r"--seg-epochs .* is 2, but the recipe warms up for 2 epochs"):
        experiments.run_experiments(tmp_path, tmp_path, REAL_RECIPE, ExperimentSchedule(seg_epochs=2))
    assert started == []
    experiments.check_warmup(ExperimentSchedule(seg_epochs=3, cls_epochs=4, cls_low_res_epochs=3), REAL_RECIPE)  # 1 past each


def test_the_schedule_bounds_hold_at_their_edges() -> None:
    """Low-resolution epochs lie in [0, cls_epochs]; the weight-averaging decay in [0, 1)."""
    assert ExperimentSchedule(cls_epochs=4, cls_low_res_epochs=4).cls_low_res_epochs == 4
    assert ExperimentSchedule(cls_epochs=4, cls_low_res_epochs=0).cls_low_res_epochs == 0
    with pytest.raises(TrainingConfigError, match=r"CLS_LOW_RES_EPOCHS must lie in \[0, 4\] .*got 5"):
        ExperimentSchedule(cls_epochs=4, cls_low_res_epochs=5)
    assert ExperimentSchedule(cls_ema=0.0).cls_ema == 0.0
    assert ExperimentSchedule(cls_ema=0.999).cls_ema == 0.999
    with pytest.raises(TrainingConfigError, match=r"CLS_EMA must lie in \[0, 1\) .*got 1.0"):
        ExperimentSchedule(cls_ema=1.0)
