"""`dermassist release`: which sets its evaluation runs on (the data it is given, not the shared sets' names), which
reports it keeps, and what its console shows of a stage's output."""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from dermassist.commands.release import log_skipped, release_sets, remove_stale_reports, report_name
from training.pipeline import SYNTHETIC_RECIPE, run_stage, shown_on_console
from training.release import RELEASE_DIR, read_manifest


def _synthetic_release(folder: Path) -> dict:
    """A release manifest of the synthetic recipe (isic2018 for the segmenter, ham10000 for the classifier) with
    both split manifests in ``folder``."""
    (folder / "splits").mkdir(parents=True)
    for name in ("segmenter_split.json", "classifier_split.json"):
        (folder / "splits" / name).write_text("{}")
    recipe = {k: list(v) if isinstance(v, tuple) else v for k, v in SYNTHETIC_RECIPE.__dict__.items()}
    return {"recipe": recipe, "data": {"splits": {"segmenter": "splits/segmenter_split.json",
                                                  "classifier": "splits/classifier_split.json"}}}


def test_a_release_of_a_sites_own_data_is_evaluated_on_that_data_and_names_its_reports_after_it(tmp_path: Path) -> None:
    """It wrote isic2017_validation for isic2018 data, then failed on --data .../isic2018_task3, a folder never given."""
    data = tmp_path / "syn"
    for name in ("isic2018", "ham10000"):
        (data / name).mkdir(parents=True)
    release = _synthetic_release(tmp_path / "rel")
    sets, skipped = release_sets(release, tmp_path / "rel", data)
    assert sets == {
        "isic2018_validation": {"data": data / "isic2018", "split_manifest": tmp_path / "rel/splits/segmenter_split.json",
                                "split": "val"},
        "ham10000_test": {"data": data / "ham10000", "split_manifest": tmp_path / "rel/splits/classifier_split.json",
                          "split": "test"},
    }
    assert skipped == {name: f"--data {data} holds no {name}/ (an evaluation-only sample of the shared data)"
                       for name in ("ham10000_sample", "isic2019_sample")}


def test_a_set_without_its_folder_or_split_manifest_is_skipped_and_said_once(tmp_path: Path,
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    (data / "isic2018").mkdir(parents=True)
    release = _synthetic_release(tmp_path / "rel")
    del release["data"]["splits"]["segmenter"]
    sets, skipped = release_sets(release, tmp_path / "rel", data)
    assert sets == {}
    assert skipped["isic2018_validation"].startswith(f"release {tmp_path / 'rel'} records no segmenter split manifest")
    assert skipped["ham10000_test"] == f"--data {data} holds no ham10000/"
    with caplog.at_level(logging.INFO, logger="dermassist.commands.release"):
        log_skipped({**skipped, "cam_faithfulness and quality_check": "ham10000_test was skipped"})
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("WARNING", f"release evaluation: ham10000_test skipped: --data {data} holds no ham10000/") in lines
    assert ("INFO", f"release evaluation: ham10000_sample skipped: --data {data} holds no ham10000_sample/ "
                    "(an evaluation-only sample of the shared data)") in lines
    assert ("WARNING", "release evaluation: cam_faithfulness and quality_check skipped: ham10000_test was "
                       "skipped") in lines
    assert len(lines) == 5


def test_the_shipped_release_is_evaluated_on_the_sets_and_names_it_always_was(shared_data: Path) -> None:
    release = read_manifest(RELEASE_DIR)
    sets, skipped = release_sets(release, RELEASE_DIR, shared_data)
    cls_split, seg_split = RELEASE_DIR / "splits/classifier_split.json", RELEASE_DIR / "splits/segmenter_split.json"
    assert skipped == {}
    assert sets == {  # the runs evaluate_release hard-coded before it read them from the recipe, in the same order
        "isic2017_validation": dict(data=shared_data / "isic2017_seg_256", split_manifest=seg_split, split="val"),
        "isic2018_task3_test": dict(data=shared_data / "isic2018_task3", split_manifest=cls_split, split="test"),
        "ph2_test": dict(data=shared_data / "ph2", split_manifest=cls_split, split="test"),
        "ham10000_sample": dict(data=shared_data / "ham10000_sample"),
        "isic2019_sample": dict(data=shared_data / "isic2019_sample"),
    }
    assert list(sets) == list(release["evaluation"]["reports"])
    assert report_name("isic2017_seg_256", "validation") == "isic2017_validation"


def test_reports_an_earlier_evaluation_left_of_sets_not_evaluated_now_are_removed(tmp_path: Path) -> None:
    """The isic2017_validation report of isic2018 data stayed beside isic2018_validation, listed in metrics.json."""
    reports = tmp_path / "reports"
    for name in ("isic2017_validation", "isic2018_validation"):
        (reports / name).mkdir(parents=True)
        for file in ("report.json", "report.md", "images.csv"):
            (reports / name / file).write_text("x")
    (reports / "notes").mkdir()
    (reports / "notes" / "mine.txt").write_text("kept")
    remove_stale_reports(reports, {"isic2018_validation"})
    assert sorted(p.name for p in reports.iterdir()) == ["isic2018_validation", "notes"]
    assert (reports / "isic2018_validation" / "report.json").is_file() and (reports / "notes" / "mine.txt").is_file()


def test_the_console_shows_a_stages_warnings_once_and_hides_the_frameworks_noise(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every line with WARNING was hidden: the calibration's and the data's warnings reached only the stage's log."""
    warning = ("2026-12-04 23:38:34,287 WARNING training.calibration: 2 validation melanomas cannot guarantee a melanoma "
               "sensitivity of 0.95 on new images")
    noise = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
             "I0000 00:00:1796427465.265242   12376 port.cc:153] oneDNN custom operations are on. You may see slightly "
             "different numerical results",
             "WARNING:absl:Compiled the loaded model, but the compiled metrics have yet to be built."]
    info = "2026-12-04 23:38:35,000 INFO training.readers.ham: 3 of 80 images had no mask"
    (tmp_path / "says_stage.py").write_text("\n".join(f"print({line!r})" for line in [*noise, warning, info]) + "\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    run_stage("says_stage", [], tmp_path / "says.log")
    shown = capsys.readouterr().err.splitlines()
    assert shown.count(warning) == 1 and info in shown
    assert not any(line in shown for line in noise)
    assert (tmp_path / "says.log").read_text().splitlines() == [*noise, warning, info]  # the log keeps every line
    assert all(not shown_on_console(line) for line in noise) and shown_on_console(warning)


def test_a_failed_stage_names_its_last_line_without_repeating_its_output(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from training.errors import StageError

    lines = [f"2026-12-04 23:38:3{i},000 WARNING training.readers: warning {i}" for i in range(5)]
    lines.append("2026-12-04 23:38:40,000 ERROR training.classifier.stage: --out x is a file")
    (tmp_path / "fails_stage.py").write_text("\n".join(f"print({line!r})" for line in lines) + "\nraise SystemExit(2)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    with pytest.raises(StageError) as failed:
        run_stage("fails_stage", [], tmp_path / "fails.log")
    assert capsys.readouterr().err.splitlines() == lines
    assert str(failed.value) == (f"stage fails_stage exited with 2 (its last line: {lines[-1]}); its whole output is in "
                                 f"{tmp_path / 'fails.log'}")


def test_a_copy_of_the_shipped_release_keeps_its_reports_when_none_is_stale(tmp_path: Path) -> None:
    copy = tmp_path / "release"
    shutil.copytree(RELEASE_DIR / "reports", copy / "reports")
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    remove_stale_reports(copy / "reports", set(read_manifest(RELEASE_DIR)["evaluation"]["reports"]))
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == before


def test_an_evaluation_only_sample_the_recipe_trains_on_is_not_evaluated_as_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name in ("isic2018", "ham10000_sample"):
        (data / name).mkdir(parents=True)
    release = _synthetic_release(tmp_path / "rel")
    release["recipe"]["cls_data"] = ["ham10000_sample"]
    sets, skipped = release_sets(release, tmp_path / "rel", data)
    assert list(sets) == ["isic2018_validation", "ham10000_sample_test"]
    assert skipped["ham10000_sample"] == "the release's recipe trains on ham10000_sample, so it is no evaluation-only set"
