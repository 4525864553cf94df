"""``dermassist import``: clear errors for missing files, wrong architectures and class counts."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dermassist.cli import main
from training.errors import ImportModelError
from training.importer import run_import

from .conftest import run_python

SAVE_RESNET = (
    "import sys; from dermassist.base.frameworks import import_torch; torch = import_torch(); import torchvision; "
    "torch.save(getattr(torchvision.models, sys.argv[1])(num_classes=int(sys.argv[2])).state_dict(), sys.argv[3])"
)


def _state_dict(tmp_path: Path, arch: str, classes: int) -> Path:
    path = tmp_path / f"{arch}_{classes}.pt"
    proc = run_python("-c", SAVE_RESNET, arch, str(classes), str(path))
    assert proc.returncode == 0, proc.stderr
    return path


def test_missing_files_and_nothing_to_import(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        assert main(["import", "--torch", str(tmp_path / "absent.pt")]) == 2
    assert "absent.pt does not exist" in caplog.text
    (tmp_path / "model.h5").write_bytes(b"x")
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main(["import", "--keras", str(tmp_path / "model.h5")]) == 2
    assert "must end in .keras" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main(["import"]) == 2
    assert "nothing to import" in caplog.text


@pytest.mark.slow
def test_torch_class_count_architecture_and_success(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with pytest.raises(ImportModelError, match="1000-class fc layer.*needs 8 classes"):
        run_import("torch", _state_dict(tmp_path, "resnet18", 1000), repo)
    with pytest.raises(ImportModelError, match="not a torchvision ResNet18"):
        run_import("torch", _state_dict(tmp_path, "resnet34", 8), repo)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ImportModelError, match="cannot be loaded"):
        run_import("torch", garbage, repo)
    assert not (repo / "lesion_classifier" / "1" / "model.pt").exists()
    message = run_import("torch", _state_dict(tmp_path, "resnet18", 8), repo)
    assert "model.pt" in message
    assert (repo / "lesion_classifier" / "1" / "model.pt").is_file()


@pytest.mark.slow
def test_an_imported_classifier_is_served_without_the_releases_tuned_values_and_models_leaves_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The release's REFER threshold and OOD statistics belong to its own classifier: with an imported one every
    image came back out of distribution, and `dermassist models` reported the release's figures for it."""
    from dermassist.base.repository import IMPORTED, RELEASE_STAMP, tuned_file
    from preprocess.contract import CROP_MODEL, DEFAULT_REFER_THRESHOLD, TRIAGE_MODEL
    from preprocess.params import read_tuned
    from preprocess.triage import OOD_UNCHECKED

    repo = tmp_path / "repo"
    assert main(["models", "--repository", str(repo), "--reports", str(tmp_path / "reports")]) == 0  # the release
    assert read_tuned(str(tuned_file(repo, TRIAGE_MODEL).parent))["ood_limit"] == 1.0
    state = _state_dict(tmp_path, "resnet18", 8)
    with caplog.at_level(logging.WARNING):
        assert main(["import", "--torch", str(state), "--repository", str(repo)]) == 0
    assert "served uncalibrated" in caplog.text and "out-of-distribution check is off" in caplog.text
    triage = read_tuned(str(tuned_file(repo, TRIAGE_MODEL).parent))
    assert triage["ood_limit"] == OOD_UNCHECKED and triage["refer_threshold"] == DEFAULT_REFER_THRESHOLD
    assert read_tuned(str(tuned_file(repo, CROP_MODEL).parent))["colour_constancy"] == 0.0
    assert (repo / RELEASE_STAMP).read_text().startswith(f"{IMPORTED} torch {state}")
    model = repo / "lesion_classifier" / "1" / "model.pt"
    before = model.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(["models", "--repository", str(repo), "--reports", str(tmp_path / "after")]) == 0
    assert "brought with `dermassist import`" in caplog.text and model.stat().st_mtime_ns == before
    assert not (tmp_path / "after" / "metrics.json").exists()  # no release figures for models that are not its


@pytest.mark.slow
def test_keras_wrong_output_shape_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "two_channel.keras"
    proc = run_python("-c", (
        "import sys, keras; i = keras.Input((256, 256, 3)); "
        "keras.Model(i, keras.layers.Conv2D(2, 1, activation='sigmoid')(i)).save(sys.argv[1])"
    ), str(path))
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(ImportModelError, match=r"must map \(256, 256, 3\) to \(256, 256, 1\)"):
        run_import("keras", path, tmp_path / "repo")
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK not really")
    with pytest.raises(ImportModelError, match="cannot be loaded"):
        run_import("keras", bad, tmp_path / "repo")
