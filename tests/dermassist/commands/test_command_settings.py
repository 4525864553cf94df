"""``dermassist models``, ``experiments`` and ``import`` read their folders as the other commands do (audit finding 14):
a flag, else its DERMASSIST_* variable, else the default written once in the command's Settings class, which the help
shows; a bad value is refused before any work, naming the flag and the variable."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dermassist.base.errors import ConfigError
from dermassist.base.paths import PROJECT_ROOT, SHARED_DATA
from dermassist.base.repository import SOURCE_REPOSITORY
from dermassist.cli import build_parser, main
from dermassist.commands.experiments import ExperimentsConfig
from dermassist.commands.import_models import ImportConfig
from dermassist.commands.models import SYNTHETIC_RELEASE, ModelsConfig
from training.errors import ImportModelError, TrainingConfigError
from training.experiments import ExperimentSchedule
from training.release import RELEASE_DIR


def _help(capsys: pytest.CaptureFixture[str], command: str) -> str:
    """The help of ``dermassist COMMAND``, on one line (argparse wraps it at the terminal's width)."""
    with pytest.raises(SystemExit):
        build_parser([command, "--help"]).parse_args([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def _flags(argv: list[str]) -> dict:
    """What the command line gives ``resolve`` for ``argv`` (argparse's defaults are None: unset)."""
    return vars(build_parser(argv).parse_args(argv))


def _error(caplog: pytest.LogCaptureFixture, argv: list[str]) -> str:
    """The one error ``dermassist ARGV`` logged; it must exit 2, as a refused setting does."""
    with caplog.at_level(logging.ERROR, logger="dermassist"):
        assert main(argv) == 2
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    return message


# --- dermassist models ---------------------------------------------------------------------------------------------


def test_models_help_shows_each_default_once_and_where_synthetic_builds(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, "models")
    assert (f"(DERMASSIST_MODELS_RELEASE, default {RELEASE_DIR.relative_to(PROJECT_ROOT)} of the checkout DermAssist "
            "runs from)") in text
    assert (f"(DERMASSIST_MODELS_REPOSITORY, default {SOURCE_REPOSITORY.relative_to(PROJECT_ROOT)} of the checkout "
            "DermAssist runs from)") in text
    assert "(DERMASSIST_MODELS_REPORTS, default reports/latest of the checkout DermAssist runs from)" in text
    assert f"into {SYNTHETIC_RELEASE.relative_to(PROJECT_ROOT)} unless --release names another folder" in text
    assert "(DERMASSIST_MODELS_SYNTHETIC, default false)" in text


def test_models_takes_the_flag_then_the_variable_then_the_default(tmp_path: Path) -> None:
    assert ModelsConfig.resolve(_flags(["models"]), environ={}) == ModelsConfig(
        release=RELEASE_DIR, repository=SOURCE_REPOSITORY, reports=PROJECT_ROOT / "reports" / "latest")
    environ = {"DERMASSIST_MODELS_REPORTS": str(tmp_path / "env"), "DERMASSIST_MODELS_REPOSITORY": str(tmp_path / "r")}
    config = ModelsConfig.resolve(_flags(["models"]), environ=environ)
    assert (config.reports, config.repository, config.release) == (tmp_path / "env", tmp_path / "r", RELEASE_DIR)
    config = ModelsConfig.resolve(_flags(["models", "--reports", str(tmp_path / "flag")]), environ=environ)
    assert config.reports == tmp_path / "flag"


def test_a_synthetic_run_serves_the_release_it_builds_unless_another_is_named(tmp_path: Path) -> None:
    """The help said "default training/release" while --synthetic built and served data/runs/synthetic/release."""
    assert ModelsConfig.resolve(_flags(["models", "--synthetic"]), environ={}).release == SYNTHETIC_RELEASE
    assert ModelsConfig.resolve({}, environ={"DERMASSIST_MODELS_SYNTHETIC": "1"}).release == SYNTHETIC_RELEASE
    named = _flags(["models", "--synthetic", "--release", str(tmp_path / "rel")])
    assert ModelsConfig.resolve(named, environ={}).release == tmp_path / "rel"
    environ = {"DERMASSIST_MODELS_RELEASE": str(tmp_path / "env")}
    assert ModelsConfig.resolve(_flags(["models", "--synthetic"]), environ=environ).release == tmp_path / "env"


def test_models_refuses_a_bad_setting_naming_its_flag_and_variable(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"environment variable DERMASSIST_MODELS_SYNTHETIC must be of type bool, "
                                          r"got 'maybe'"):
        ModelsConfig.resolve({}, environ={"DERMASSIST_MODELS_SYNTHETIC": "maybe"})
    with pytest.raises(ConfigError, match=r"DERMASSIST_MODELS_REPORT \(did you mean DERMASSIST_MODELS_REPORTS\?\)"):
        ModelsConfig.resolve({}, environ={"DERMASSIST_MODELS_REPORT": "x"})
    env_file, flag_file = tmp_path / "env_release", tmp_path / "flag_release"
    env_file.write_text("")
    flag_file.write_text("")
    # the command itself reads the variable, and the flag over it: refused before anything is opened or exported
    monkeypatch.setenv("DERMASSIST_MODELS_RELEASE", str(env_file))
    assert _error(caplog, ["models"]) == (f"--release / DERMASSIST_MODELS_RELEASE {env_file} is a file; expected a "
                                          "folder (new or existing): pass another path")
    caplog.clear()
    assert _error(caplog, ["models", "--release", str(flag_file)]).startswith(
        f"--release / DERMASSIST_MODELS_RELEASE {flag_file} is a file")
    caplog.clear()
    monkeypatch.delenv("DERMASSIST_MODELS_RELEASE")
    assert _error(caplog, ["models", "--reports", str(env_file / "latest")]) == (
        f"--reports / DERMASSIST_MODELS_REPORTS {env_file / 'latest'} cannot be made: {env_file} is a file, not a "
        "folder; expected a folder (new or existing): pass another path")


def test_models_refuses_a_missing_release_or_a_reports_folder_it_cannot_write_before_exporting(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A wrong --release had first made the repository; an unwritable --reports failed with a traceback after the
    export."""
    repository = tmp_path / "repo"
    assert "release manifest" in _error(caplog, ["models", "--release", str(tmp_path / "none"), "--repository",
                                                 str(repository)])
    assert not repository.exists()
    caplog.clear()
    message = _error(caplog, ["models", "--reports", "/proc/1/reports", "--repository", str(repository)])
    assert message.startswith("--reports / DERMASSIST_MODELS_REPORTS /proc/1/reports cannot be written (")
    assert not repository.exists()


# --- dermassist experiments ----------------------------------------------------------------------------------------


def test_experiments_help_shows_the_data_default(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, "experiments")
    assert f"folder holding the real sets (DERMASSIST_EXPERIMENTS_DATA, default {SHARED_DATA})" in text
    assert "(DERMASSIST_EXPERIMENTS_OUT, default data/runs/experiments)" in text


def test_experiments_take_the_flag_then_the_variable_then_the_default(tmp_path: Path, shared_data: Path) -> None:
    env, flag = tmp_path / "env", tmp_path / "flag"
    env.mkdir()
    flag.mkdir()
    # the default is the shared sets beside the checkout (the fixture fails the test where they are not)
    assert ExperimentsConfig.resolve(_flags(["experiments"]), environ={}).data == SHARED_DATA == shared_data
    # the schedule's variables share the prefix: neither class refuses the other's
    environ = {"DERMASSIST_EXPERIMENTS_DATA": str(env), "DERMASSIST_EXPERIMENTS_SEG_EPOCHS": "3"}
    assert ExperimentsConfig.resolve(_flags(["experiments"]), environ=environ) == ExperimentsConfig(data=env)
    assert ExperimentSchedule.resolve(_flags(["experiments"]), environ=environ).seg_epochs == 3
    assert ExperimentsConfig.resolve(_flags(["experiments", "--data", str(flag)]), environ=environ).data == flag


def test_experiments_refuse_a_data_folder_that_is_not_there_before_training(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TrainingConfigError, match=r"DERMASSIST_EXPERIMENTS_DAT \(did you mean "
                                                  r"DERMASSIST_EXPERIMENTS_DATA\?\)"):
        ExperimentsConfig.resolve({}, environ={"DERMASSIST_EXPERIMENTS_DAT": str(tmp_path)})
    monkeypatch.setenv("DERMASSIST_EXPERIMENTS_DATA", str(tmp_path / "gone"))
    assert _error(caplog, ["experiments", "--out", str(tmp_path / "out")]) == (
        f"--data / DERMASSIST_EXPERIMENTS_DATA {tmp_path / 'gone'} does not exist; expected the folder holding the real "
        f"sets (the shared ones are {SHARED_DATA}): pass that folder")
    assert not (tmp_path / "out").exists()  # nothing was trained


# --- dermassist import ---------------------------------------------------------------------------------------------


def test_import_help_shows_the_repository_default(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("import", "export"):
        assert (f"model repository (DERMASSIST_IMPORT_REPOSITORY, default "
                f"{SOURCE_REPOSITORY.relative_to(PROJECT_ROOT)} of the checkout DermAssist runs from)") in _help(capsys, command)


def test_import_takes_the_flag_then_the_variable_then_the_default(tmp_path: Path) -> None:
    assert ImportConfig.resolve(_flags(["import"]), environ={}).repository == SOURCE_REPOSITORY
    environ = {"DERMASSIST_IMPORT_REPOSITORY": str(tmp_path / "env")}
    assert ImportConfig.resolve(_flags(["import"]), environ=environ).repository == tmp_path / "env"
    flags = _flags(["import", "--repository", str(tmp_path / "flag")])
    assert ImportConfig.resolve(flags, environ=environ).repository == tmp_path / "flag"


def test_import_refuses_a_repository_that_is_a_file_before_reading_the_models(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "repository"
    a_file.write_text("")
    with pytest.raises(ImportModelError, match=r"--repository / DERMASSIST_IMPORT_REPOSITORY .* is a file"):
        ImportConfig.resolve({}, environ={"DERMASSIST_IMPORT_REPOSITORY": str(a_file)})
    monkeypatch.setenv("DERMASSIST_IMPORT_REPOSITORY", str(a_file))
    assert _error(caplog, ["import", "--torch", str(tmp_path / "missing.pt")]) == (
        f"--repository / DERMASSIST_IMPORT_REPOSITORY {a_file} is a file; expected a model repository folder, or a "
        "path where nothing is yet to make a new one there: pass another path")
