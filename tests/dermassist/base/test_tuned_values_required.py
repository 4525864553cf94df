"""An exported release's steps need their tuned values: without one, serve refuses and `dermassist models` exports the
release again, instead of serving the contract's defaults in silence (REFER at 0.20 for the release's 0.066)."""
from __future__ import annotations

import logging
from pathlib import Path

from dermassist.base.repository import (
    IMPORTED,
    RELEASE_STAMP,
    TUNED_STEPS,
    missing_tuned_values,
    stage_repository,
    tuned_file,
)
from dermassist.cli import main
from preprocess.contract import TRIAGE_MODEL
from preprocess.params import tuned_artifact


def _release_repository(root: Path) -> Path:
    repository = stage_repository(root / "repository")
    for model in TUNED_STEPS:
        tuned_file(repository, model).write_text(tuned_artifact({}, {}, "test"))
    (repository / RELEASE_STAMP).write_text("0dbd7230a247abfd")
    return repository


def test_only_an_exported_releases_missing_tuned_values_are_missing(tmp_path: Path) -> None:
    repository = _release_repository(tmp_path)
    assert missing_tuned_values(repository) == []
    tuned_file(repository, TRIAGE_MODEL).unlink()
    assert missing_tuned_values(repository) == [tuned_file(repository, TRIAGE_MODEL)]
    (repository / RELEASE_STAMP).write_text(f"{IMPORTED} torch my_model.pt\n")  # imported: defaults are its own
    assert missing_tuned_values(repository) == []
    (repository / RELEASE_STAMP).unlink()  # tests' and synthetic repositories
    assert missing_tuned_values(repository) == []


def test_serve_refuses_a_release_without_its_triage_values_before_starting_anything(tmp_path: Path, caplog) -> None:
    repository = _release_repository(tmp_path)
    tuned_file(repository, TRIAGE_MODEL).unlink()
    with caplog.at_level(logging.ERROR, logger="dermassist"):
        code = main(["serve", "--repository", str(repository)])
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert code == 2
    assert f"lacks {tuned_file(repository, TRIAGE_MODEL)}" in message
    assert f"dermassist models --repository {repository} --force" in message
