"""The model files checked against the seal their export wrote (upgrade audit, H3 and H2): a weights file with 4 MiB
zeroed (its size unchanged) had been served, ready, its canary passed, REFER flipped for a nevus, under the release's
name; and models copied over another release's with ``cp NEW/* OLD/`` (dot files skipped) had been served under the
old release's name."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dermassist.base.errors import ConfigError
from dermassist.base.repository import SEAL_FILE, artifact_files, require_servable, seal, seal_problems
from preprocess.contract import ENSEMBLE_NAME


def _repository(folder: Path, weights: bytes = b"\x80" * 4096) -> Path:
    """The files require_servable looks for, with stand-in contents."""
    (folder / ENSEMBLE_NAME / "1").mkdir(parents=True)
    (folder / ENSEMBLE_NAME / "config.pbtxt").write_text('name: "dermassist"\n')
    savedmodel = folder / "lesion_segmenter" / "1" / "model.savedmodel"
    (savedmodel / "variables").mkdir(parents=True)
    (savedmodel / "saved_model.pb").write_bytes(b"graph")
    (savedmodel / "variables" / "variables.data-00000-of-00001").write_bytes(b"\x01" * 2048)
    classifier = folder / "lesion_classifier"
    (classifier / "1").mkdir(parents=True)
    (classifier / "1" / "model.pt").write_bytes(weights)
    (classifier / "1" / "model.py").write_text("# the step's code: not an artifact\n")
    (classifier / "labels.txt").write_text("AK\nBCC\n")
    (folder / "triage" / "1").mkdir(parents=True)
    (folder / "triage" / "1" / "tuned.json").write_text('{"refer_threshold": 0.066}')
    return folder


def test_the_seal_lists_every_artifact_in_sha256sums_format_and_nothing_else(tmp_path: Path) -> None:
    import hashlib

    repository = _repository(tmp_path / "repo")
    seal(repository)
    lines = (repository / SEAL_FILE).read_text().splitlines()
    names = [line.split("  ", 1)[1] for line in lines]
    assert names == artifact_files(repository) == sorted(names)
    assert "lesion_classifier/1/model.py" not in names and "dermassist/config.pbtxt" not in names
    assert "lesion_classifier/1/model.pt" in names and "triage/1/tuned.json" in names
    assert "lesion_segmenter/1/model.savedmodel/variables/variables.data-00000-of-00001" in names
    weights = repository / "lesion_classifier" / "1" / "model.pt"
    assert f"{hashlib.sha256(weights.read_bytes()).hexdigest()}  lesion_classifier/1/model.pt" in lines
    assert seal_problems(repository) == []
    require_servable(repository, ConfigError)


def test_weights_damaged_in_place_are_refused_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    repository = _repository(tmp_path / "repo")
    seal(repository)
    weights = repository / "lesion_classifier" / "1" / "model.pt"
    with weights.open("r+b") as f:  # zeros over the middle: the size stays
        f.seek(1024)
        f.write(b"\0" * 1024)
    assert seal_problems(repository) == ["lesion_classifier/1/model.pt has changed"]
    with pytest.raises(ConfigError) as info:
        require_servable(repository, ConfigError)
    said = str(info.value)
    assert f"the model files of {repository} are not those written there ({SEAL_FILE})" in said
    assert "lesion_classifier/1/model.pt has changed" in said
    assert f"dermassist models --repository {repository} --force" in said and "its dot files included" in said


def test_models_copied_over_another_release_without_its_dot_files_are_refused(tmp_path: Path) -> None:
    old = _repository(tmp_path / "old")
    seal(old)
    new = _repository(tmp_path / "new", weights=b"\x42" * 4096)
    (new / "prepare" / "1").mkdir(parents=True)
    (new / "prepare" / "1" / "tuned.json").write_text("{}")
    seal(new)
    for child in new.iterdir():  # cp -a new/* old/: no dot file goes
        if not child.name.startswith("."):
            shutil.copytree(child, old / child.name, dirs_exist_ok=True)
    assert seal_problems(old) == ["prepare/1/tuned.json was not written with the others",
                                  "lesion_classifier/1/model.pt has changed"]
    (old / "triage" / "1" / "tuned.json").unlink()
    assert "triage/1/tuned.json is missing" in (seal_problems(old) or [])


def test_a_repository_without_a_seal_is_served_unchecked(tmp_path: Path) -> None:
    repository = _repository(tmp_path / "repo")
    assert seal_problems(repository) is None
    require_servable(repository, ConfigError)
