"""A step's settings read outside Triton (the reference pipeline, ``gpu-check``): what ``preprocess`` refuses in a
repository's files is a RepositoryError naming them, so the command line says it instead of printing a traceback."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dermassist.base.errors import DermAssistError, RepositoryError
from dermassist.base.repository import (
    TORCHSCRIPT_FILENAME,
    classifier_artifact,
    model_parameters,
    read_model_config,
    stage_repository,
    step_settings,
    tuned_file,
)
from dermassist.cli import main
from preprocess.contract import CROP_MODEL, TRIAGE_MODEL
from preprocess.crop import CropParams
from preprocess.params import tuned_artifact
from preprocess.triage import TriageParams


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The source repository's configs and adapters, without artifacts."""
    return stage_repository(tmp_path_factory.mktemp("staged") / "repository")


def test_step_settings_are_typed_as_the_class_asked_for(staged: Path, tmp_path: Path) -> None:
    repository = stage_repository(tmp_path / "repository")
    tuned_file(repository, TRIAGE_MODEL).write_text(tuned_artifact({"refer_threshold": 0.066}, {}, "test"))
    settings = step_settings(repository, TRIAGE_MODEL, TriageParams)
    assert isinstance(settings, TriageParams) and settings.refer_threshold == 0.066
    assert step_settings(staged, CROP_MODEL, CropParams) == CropParams()


@pytest.mark.parametrize(("values", "said"), [({"refer_treshold": 0.066}, "'refer_treshold'"),
                                               ({"refer_threshold": "high"}, "refer_threshold must be a float"),
                                               ({"refer_threshold": 1.5}, "refer_threshold must lie in")])
def test_a_tuned_file_preprocess_refuses_is_a_repository_error_naming_it(tmp_path: Path, values: dict,
                                                                         said: str) -> None:
    repository = stage_repository(tmp_path / "repository")
    path = tuned_file(repository, TRIAGE_MODEL)
    path.write_text(tuned_artifact(values, {}, "test"))
    with pytest.raises(RepositoryError) as caught:
        step_settings(repository, TRIAGE_MODEL, TriageParams)
    message = str(caught.value)
    assert str(path) in message and said in message and "export the version again" in message
    assert message.count("export") == 1  # the fix once (preprocess's message gives it), and the step named once
    assert message.count(f"{TRIAGE_MODEL}:") <= 1
    assert isinstance(caught.value, DermAssistError)


def test_a_broken_tuned_file_is_a_repository_error(tmp_path: Path) -> None:
    repository = stage_repository(tmp_path / "repository")
    tuned_file(repository, CROP_MODEL).write_text("{not json")
    with pytest.raises(RepositoryError, match="is not a tuned-values artifact"):
        step_settings(repository, CROP_MODEL, CropParams)


def test_gpu_check_says_what_is_wrong_with_a_misspelt_tuned_value(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Before, the InvalidTensorError went past the command line's handler: a traceback, not a message."""
    repository = stage_repository(tmp_path / "repository")
    classifier_artifact(repository).write_bytes(b"")  # the threshold is read before the classifier is loaded
    assert classifier_artifact(repository).name == TORCHSCRIPT_FILENAME
    tuned_file(repository, TRIAGE_MODEL).write_text(tuned_artifact({"refer_treshold": 0.066}, {}, "test"))
    crops = tmp_path / "crops.npz"
    crops.write_bytes(b"")
    with caplog.at_level(logging.ERROR, logger="dermassist"):
        code = main(["gpu-check", "--crops", str(crops), "--repository", str(repository), "--device", "cpu"])
    assert code == 2
    assert "'refer_treshold'" in caplog.text and str(tuned_file(repository, TRIAGE_MODEL)) in caplog.text


def test_an_unreadable_config_says_how_to_fix_it(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.pbtxt").write_text("name: [unclosed")
    with pytest.raises(RepositoryError, match=r"broken/config\.pbtxt: .*; expected a ModelConfig in protobuf text "
                                              r"format: fix the file, or copy it again from "):
        model_parameters(tmp_path, "broken")
    assert read_model_config(stage_repository(tmp_path / "r") / TRIAGE_MODEL / "config.pbtxt").name == TRIAGE_MODEL


def test_a_tuned_file_without_its_values_key_is_a_repository_error_naming_it(tmp_path: Path) -> None:
    repository = stage_repository(tmp_path / "repository")
    path = tuned_file(repository, TRIAGE_MODEL)
    path.write_text('{"value": {"refer_threshold": 0.066}, "figures": {}}')
    with pytest.raises(RepositoryError) as caught:
        step_settings(repository, TRIAGE_MODEL, TriageParams)
    message = str(caught.value)
    assert str(path) in message and "no 'values' key" in message
    assert "export the version again (`dermassist models`)" in message
