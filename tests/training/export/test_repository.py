"""The repository an export writes into: a servable one or a new one, never a mistyped folder of bare artifacts; and a
classifier exported into one is trained on the crops its ``lesion_crop`` serves."""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from dermassist.base.repository import stage_repository, tuned_file
from dermassist.cli import main
from preprocess.contract import ALL_MODELS, CROP_MODEL, DEFAULT_THRESHOLD
from preprocess.crop import CropParams
from training.errors import ExportError, TrainingConfigError
from training.export.repository import check_repository, open_repository
from training.export.steps import write_crop_values

from ..conftest import run_python


def test_a_new_path_becomes_a_repository_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        repo = open_repository(tmp_path / "new_repo")
    assert all((repo / model / "config.pbtxt").is_file() for model in ALL_MODELS)
    assert f"model repository {repo} did not exist: made a new one" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert open_repository(repo) == repo  # a repository already: used as it is, silently
    assert "did not exist" not in caplog.text


def test_a_folder_that_is_not_a_repository_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    with pytest.raises(ExportError, match=r"notes is not a model repository: it lacks prepare/config.pbtxt, .*"
                                          r"dermassist/config.pbtxt.*pass the served repository"):
        open_repository(tmp_path / "notes")
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["todo.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrainingConfigError, match="is a file, not a folder"):
        check_repository(tmp_path / "file", TrainingConfigError)


def test_import_into_a_folder_that_is_not_a_repository_is_refused(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """`dermassist import --torch x.pt --repository nonexist_repo` exited 0 with a folder Triton cannot serve."""
    model = tmp_path / "x.pt"
    model.write_bytes(b"checked later, in the import's own process")
    half = tmp_path / "half"
    (half / "lesion_classifier" / "1").mkdir(parents=True)
    with caplog.at_level(logging.ERROR):
        assert main(["import", "--torch", str(model), "--repository", str(half)]) == 2
    assert f"{half} is not a model repository" in caplog.text
    assert not (half / ".release-stamp").exists() and not (half / "triage").exists()


def _stage(repo: Path, threshold: float) -> subprocess.CompletedProcess:
    return run_python("-m", "training.classifier.stage", "--data", str(repo.parent / "no_data_read"),
                      "--out", str(repo.parent / "out"), "--crop-threshold", str(threshold), "--repository", str(repo),
                      timeout=120)


def test_a_classifier_is_exported_only_where_its_crop_threshold_is_served(tmp_path: Path) -> None:
    """`train classifier --crop-threshold 0.35 --repository repo_a` served the classifier on crops cut at repo_a's 0.45."""
    from training.classifier.stage import _check_repository_threshold

    repo = stage_repository(tmp_path / "repo_a")
    _check_repository_threshold(repo, DEFAULT_THRESHOLD)  # no tuned.json: lesion_crop serves the contract default
    with pytest.raises(TrainingConfigError, match=r"the contract default"):
        _check_repository_threshold(repo, 0.3)
    write_crop_values(repo, CropParams(threshold=0.45), {}, "segmenter stage")
    _check_repository_threshold(repo, 0.45)
    with pytest.raises(TrainingConfigError, match=rf"--crop-threshold 0.35 differs from the threshold 0.45 the segmenter "
                                                   rf"of model repository {repo} is served with \({tuned_file(repo, CROP_MODEL)}"
                                                   r"\).*pass --crop-threshold 0.45, or first export the segmenter"):
        _check_repository_threshold(repo, 0.35)
    _check_repository_threshold(tmp_path / "not_yet", DEFAULT_THRESHOLD)  # a new repository: made at export
    with pytest.raises(TrainingConfigError, match="is not a model repository"):
        _check_repository_threshold(tmp_path, DEFAULT_THRESHOLD)


@pytest.mark.slow
def test_the_classifier_stage_refuses_before_it_reads_the_data(tmp_path: Path) -> None:
    repo = stage_repository(tmp_path / "repo_a")
    write_crop_values(repo, CropParams(threshold=0.45), {}, "segmenter stage")
    proc = _stage(repo, 0.35)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--crop-threshold 0.35 differs from the threshold 0.45" in proc.stderr and "Traceback" not in proc.stderr
    bare = tmp_path / "nonexist_repo"
    (bare / "lesion_classifier").mkdir(parents=True)
    proc = _stage(bare, DEFAULT_THRESHOLD)
    assert proc.returncode == 2 and f"{bare} is not a model repository" in proc.stderr, proc.stderr[-2000:]
    assert json.loads(tuned_file(repo, CROP_MODEL).read_text())["values"]["threshold"] == 0.45


def test_a_failed_change_puts_the_repository_back_and_a_good_one_stays(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from training.export.repository import restored_on_failure

    temporary = tmp_path / "tmp"  # where the copy is made: it must be gone after each change, failed or not
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    repo = tmp_path / "repo"
    (repo / "lesion_segmenter" / "1").mkdir(parents=True)
    (repo / "lesion_segmenter" / "1" / "weights").write_bytes(b"release")
    (repo / ".release-stamp").write_text("release")
    folder_inode = repo.stat().st_ino
    with pytest.raises(RuntimeError, match="second file refused"), restored_on_failure(repo):
        (repo / "lesion_segmenter" / "1" / "weights").write_bytes(b"imported")
        (repo / "lesion_classifier").mkdir()
        raise RuntimeError("second file refused")
    assert (repo / "lesion_segmenter" / "1" / "weights").read_bytes() == b"release"
    assert not (repo / "lesion_classifier").exists() and (repo / ".release-stamp").read_text() == "release"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo", "tmp"] and not any(temporary.iterdir())
    assert repo.stat().st_ino == folder_inode  # put back in place: a mounted repository cannot be renamed
    with restored_on_failure(repo):
        (repo / ".release-stamp").write_text("imported")
        assert len(list(temporary.iterdir())) == 1  # the copy is made there while the change runs
    assert (repo / ".release-stamp").read_text() == "imported"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo", "tmp"] and not any(temporary.iterdir())


def test_a_repository_that_cannot_be_copied_first_is_refused_before_any_change(tmp_path: Path) -> None:
    from training.export.repository import restored_on_failure

    (tmp_path / "not_a_folder").write_text("")
    ran = []
    with pytest.raises(ExportError, match=r"could not copy the repository before changing it .*then try again"):
        with restored_on_failure(tmp_path / "not_a_folder" / "repo"):
            ran.append(True)
    assert ran == []


def test_a_repository_that_cannot_be_put_back_keeps_its_copy_and_says_where(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import training.export.repository as module

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".release-stamp").write_text("release")

    def refuse(path: Path, saved: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(module, "_put_back", refuse)
    with pytest.raises(ExportError, match=r"the change failed \(second file refused\) and putting the repository "
                                          r"back failed too .*kept at (?P<kept>\S+): copy it back") as failed:
        with module.restored_on_failure(repo):
            raise RuntimeError("second file refused")
    kept = Path(str(failed.value).split("kept at ")[1].split(":")[0])
    assert (kept / ".release-stamp").read_text() == "release"  # the only good copy is not deleted
    shutil.rmtree(kept.parent)
