"""A repository's steps run on their tuned values or not at all: a released step without its tuned.json, or a
tuned.json naming a value no setting has, stops every launcher (serve, demo, bench: all start tritonserver through
TritonServer.start) before tritonserver runs, and `dermassist models` exports such a release again. Before, the steps
served the contract's defaults in silence (REFER at 0.20 for the release's 0.066)."""
from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from pathlib import Path

import pytest

from dermassist.base.errors import ConfigError
from dermassist.base.repository import (
    IMPORTED,
    RELEASE_STAMP,
    TUNED_STEPS,
    missing_artifacts,
    missing_tuned_values,
    stage_repository,
    tuned_file,
    tuned_value_problems,
)
from dermassist.base.server import TritonServer, check_temporary_folder, free_ports
from dermassist.base.server_config import ServerConfig
from dermassist.cli import main
from preprocess.contract import CROP_MODEL, TRIAGE_MODEL
from preprocess.params import tuned_artifact


def _release_repository(root: Path) -> Path:
    repository = stage_repository(root / "repository")
    for model in TUNED_STEPS:
        tuned_file(repository, model).write_text(tuned_artifact({}, {}, "test"))
    (repository / RELEASE_STAMP).write_text("0dbd7230a247abfd")
    for artifact in missing_artifacts(repository):  # stand-ins: serve refuses a repository without its models first
        artifact.touch()
    return repository


@pytest.fixture
def no_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tritonserver was launched for a repository whose steps lack their tuned values")

    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_only_an_exported_releases_missing_tuned_values_are_missing(tmp_path: Path) -> None:
    repository = _release_repository(tmp_path)
    assert missing_tuned_values(repository) == [] and tuned_value_problems(repository) == []
    tuned_file(repository, TRIAGE_MODEL).unlink()
    assert missing_tuned_values(repository) == [tuned_file(repository, TRIAGE_MODEL)]
    (repository / RELEASE_STAMP).write_text(f"{IMPORTED} torch my_model.pt\n")  # imported: defaults are its own
    assert missing_tuned_values(repository) == []
    (repository / RELEASE_STAMP).unlink()  # tests' and synthetic repositories
    assert missing_tuned_values(repository) == []


def test_a_misspelt_tuned_value_is_a_problem_in_any_repository(tmp_path: Path) -> None:
    repository = _release_repository(tmp_path)
    (repository / RELEASE_STAMP).unlink()
    tuned_file(repository, CROP_MODEL).write_text(tuned_artifact({"treshold": 0.45}, {}, "test"))
    (problem,) = tuned_value_problems(repository)
    assert problem.startswith(f"{tuned_file(repository, CROP_MODEL)}: tuned value(s) 'treshold' in tuned.json name no "
                              "setting of CropParams")


def test_an_out_of_range_tuned_value_is_a_problem_naming_the_step_the_file_and_the_fix(tmp_path: Path) -> None:
    """Audit finding 9: a bad value was found only when Triton failed to load the step."""
    repository = _release_repository(tmp_path)
    path = tuned_file(repository, TRIAGE_MODEL)
    path.write_text(tuned_artifact({"refer_threshold": 1.5}, {}, "test"))
    (problem,) = tuned_value_problems(repository)
    assert problem == (f"triage: refer_threshold must lie in (0, 1), got 1.5 (refer_threshold from {path}); fix the "
                       "value where it is set (a config parameter overrides the tuned file), or export the version "
                       "again (`dermassist models`)")


def _serve_refusal(repository: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> tuple[int, str]:
    """``dermassist serve`` on ``repository`` (free ports): its exit code and its one ERROR line."""
    http, grpc, metrics = free_ports(3)
    with caplog.at_level(logging.ERROR, logger="dermassist"):
        code = main(["serve", "--repository", str(repository), "--http-port", str(http), "--grpc-port", str(grpc),
                     "--metrics-port", str(metrics), "--audit-log", str(tmp_path / "audit.jsonl")])
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    return code, message


def test_serve_refuses_an_out_of_range_tuned_value_before_starting_anything(tmp_path: Path, caplog,
                                                                           no_launch: None) -> None:
    repository = _release_repository(tmp_path)
    tuned_file(repository, CROP_MODEL).write_text(tuned_artifact({"margin": 2.0}, {}, "test"))
    code, message = _serve_refusal(repository, tmp_path, caplog)
    assert code == 2
    assert f"lesion_crop: crop margin must lie in [0, 1] (fraction per side), got 2.0 (margin from " \
           f"{tuned_file(repository, CROP_MODEL)})" in message


def test_serve_refuses_a_release_without_its_triage_values_before_starting_anything(tmp_path: Path, caplog,
                                                                                   no_launch: None) -> None:
    repository = _release_repository(tmp_path)
    tuned_file(repository, TRIAGE_MODEL).unlink()
    code, message = _serve_refusal(repository, tmp_path, caplog)
    assert code == 2
    assert f"it lacks {tuned_file(repository, TRIAGE_MODEL)}" in message
    assert f"run `dermassist models --repository {repository}` to export the release again" in message


def test_every_launcher_refuses_through_tritonservers_start(tmp_path: Path, no_launch: None) -> None:
    """demo and bench start tritonserver as serve does: the refusal lives where all three pass."""
    repository = _release_repository(tmp_path)
    tuned_file(repository, TRIAGE_MODEL).write_text(json.dumps({"values": {"refer_treshold": 0.066}}))
    http, grpc, metrics = free_ports(3)
    config = ServerConfig(repository=repository, http_port=http, grpc_port=grpc, metrics_port=metrics)
    with pytest.raises(ConfigError, match=r"cannot give its steps their tuned values: .*'refer_treshold'"):
        TritonServer(config).start()


def test_a_temporary_folder_tritonserver_cannot_run_under_is_refused(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    spaced = tmp_path / "tmp space"
    spaced.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spaced))
    with pytest.raises(ConfigError, match=r"temporary folder .*tmp space has ' ' in its path.*set TMPDIR"):
        check_temporary_folder()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    check_temporary_folder()
