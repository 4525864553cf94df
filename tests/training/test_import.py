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
