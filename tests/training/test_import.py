"""``dermassist import``: clear errors for missing files, wrong architectures and class counts."""
from __future__ import annotations

import logging
import tempfile
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
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The release's REFER threshold and OOD statistics belong to its own classifier: with an imported one every
    image came back out of distribution, and `dermassist models` reported the release's figures for it."""
    from dermassist.base.repository import IMPORTED, RELEASE_STAMP, file_sha256, tuned_file
    from preprocess.contract import CROP_MODEL, DEFAULT_REFER_THRESHOLD, TRIAGE_MODEL
    from preprocess.params import read_tuned
    from preprocess.triage import OOD_UNCHECKED
    from training.release import RELEASE_DIR, read_release

    release, version = read_release(RELEASE_DIR)["name"], read_release(RELEASE_DIR)["version"]
    repo = tmp_path / "repo"
    assert main(["models", "--repository", str(repo), "--reports", str(tmp_path / "reports")]) == 0  # the release
    assert read_tuned(str(tuned_file(repo, TRIAGE_MODEL).parent))["ood_limit"] == 1.0
    state = _state_dict(tmp_path, "resnet18", 8)
    monkeypatch.chdir(state.parent)  # the file named as typed, relative to the shell's folder
    with caplog.at_level(logging.WARNING):
        assert main(["import", "--torch", state.name, "--repository", str(repo)]) == 0
    assert "served uncalibrated" in caplog.text and "out-of-distribution check is off" in caplog.text
    triage = read_tuned(str(tuned_file(repo, TRIAGE_MODEL).parent))
    assert triage["ood_limit"] == OOD_UNCHECKED and triage["refer_threshold"] == DEFAULT_REFER_THRESHOLD
    assert read_tuned(str(tuned_file(repo, CROP_MODEL).parent))["colour_constancy"] == 0.0
    # the origin says which file it was, not only its name as typed (upgrade audit, L2), and no folder of the server's
    origin = f"torch {state.name} (sha256:{file_sha256(state)[:16]})"
    assert (repo / RELEASE_STAMP).read_text() == f"{IMPORTED} segmenter of release {release} version {version}; {origin}\n"
    model = repo / "lesion_classifier" / "1" / "model.pt"
    before = model.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(["models", "--repository", str(repo), "--reports", str(tmp_path / "after")]) == 0
    assert "brought with `dermassist import`" in caplog.text and model.stat().st_mtime_ns == before
    assert not (tmp_path / "after" / "metrics.json").exists()  # no release figures for models that are not its
    from dermassist.base.repository import ORIGINS_FILE, seal_problems, served_release

    assert (repo / ORIGINS_FILE).is_file() and seal_problems(repo) == []  # the import sealed what it wrote
    assert main(["models", "--repository", str(repo), "--reports", str(tmp_path / "again"), "--force"]) == 0
    # the release served again: no record of the import's origins is left to mislead (upgrade audit, L3)
    assert not (repo / ORIGINS_FILE).exists() and served_release(repo) == f"{release} version {version}"
    assert seal_problems(repo) == []


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


def test_a_text_file_named_keras_is_said_not_to_be_a_keras_file(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """It said "File not found: filepath=..." of a file that was there."""
    from training.importer import check_keras_file

    text = tmp_path / "x.keras"
    text.write_text("just some notes\n")
    with caplog.at_level(logging.ERROR):
        assert main(["import", "--keras", str(text), "--repository", str(tmp_path / "repo")]) == 2
    assert "x.keras cannot be loaded: it is not a Keras file" in caplog.text
    assert not (tmp_path / "repo").exists()  # refused before a repository is made for it
    with pytest.raises(ImportModelError, match=r"x.keras cannot be loaded: it is not a Keras file \(a .keras file is a "
                                               r"zip archive\); expected a full model saved with model.save"):
        check_keras_file(text)
    legacy = tmp_path / "old.keras"
    legacy.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(ImportModelError, match=r"it is an HDF5 file \(the legacy .h5 format\)"):
        check_keras_file(legacy)


WEIGHTS_ONLY_REFUSAL = (
    "Weights only load failed. This file can still be loaded, to do so you have two options, \x1b[1mdo those steps only "
    "if you trust the source of the checkpoint\x1b[0m. \n\t(1) In PyTorch 2.6, we changed the default value of the "
    "`weights_only` argument ...\n\tWeightsUnpickler error: Unsupported global: GLOBAL torchvision.models.resnet.ResNet "
    "was not an allowed global by default. Please use `torch.serialization.add_safe_globals(...)`"
)


def test_a_whole_pickled_model_gets_a_short_message_without_escape_codes() -> None:
    import pickle

    from training.importer import load_failure

    message = load_failure(Path("whole.pt"), pickle.UnpicklingError(WEIGHTS_ONLY_REFUSAL))
    assert "\x1b" not in message and "weights_only" not in message and len(message) < 400
    assert "whole.pt holds a pickled torchvision.models.resnet.ResNet object" in message
    assert "torch.save(model.state_dict(), 'resnet18.pt')" in message
    other = load_failure(Path("cut.pt"), RuntimeError("PytorchStreamReader failed reading zip archive\nmore"))
    assert other == ("PyTorch file cut.pt cannot be loaded (PytorchStreamReader failed reading zip archive); expected "
                     "torch.save(model.state_dict())")
    junk = load_failure(Path("junk.pt"), pickle.UnpicklingError(
        "Weights only load failed. In PyTorch 2.6, we changed ...\nPlease file an issue ...: WeightsUnpickler error: "
        "\n\nUnsupported operand 110\n\nCheck the documentation of torch.load"))
    assert junk == "PyTorch file junk.pt cannot be loaded (Unsupported operand 110); expected torch.save(model.state_dict())"


def test_checkpoints_and_data_parallel_state_dicts_are_recognised() -> None:
    """Both got "is not a torchvision ResNet18 state_dict (no 'fc.weight')"."""
    from training.importer import resnet_state

    weights = {"conv1.weight": 1, "fc.weight": 2, "fc.bias": 3}
    assert resnet_state(Path("plain.pt"), weights) == (weights, "")
    state, note = resnet_state(Path("ddp.pt"), {f"module.{k}": v for k, v in weights.items()})
    assert state == weights and "'module.' prefix" in note and "stripped" in note
    with pytest.raises(ImportModelError, match=r"ckpt.pt is a training checkpoint \(keys 'state_dict', 'epoch'\), not a "
                                               r"state_dict; its weights are under 'state_dict': save them alone with "
                                               r"torch.save\(checkpoint\['state_dict'\], 'resnet18.pt'\)"):
        resnet_state(Path("ckpt.pt"), {"state_dict": weights, "epoch": 3})
    with pytest.raises(ImportModelError, match=r"no 'fc.weight' among its keys 'head.weight'"):
        resnet_state(Path("other.pt"), {"head.weight": 1})
    with pytest.raises(ImportModelError, match="holds a list, not a state_dict"):
        resnet_state(Path("list.pt"), [1, 2])


SAVE_VARIANTS = (
    "import sys; from dermassist.base.frameworks import import_torch; torch = import_torch(); import torchvision; "
    "m = torchvision.models.resnet18(num_classes=8); d = sys.argv[1]; "
    "torch.save(m, d + '/whole.pt'); torch.save({'state_dict': m.state_dict(), 'epoch': 3}, d + '/ckpt.pt'); "
    "torch.save({'module.' + k: v for k, v in m.state_dict().items()}, d + '/ddp.pt')"
)


@pytest.mark.slow
def test_whole_models_checkpoints_and_ddp_state_dicts_through_the_import(tmp_path: Path) -> None:
    from dermassist.base.repository import stage_repository

    proc = run_python("-c", SAVE_VARIANTS, str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    repo = stage_repository(tmp_path / "repo")
    with pytest.raises(ImportModelError, match="holds a pickled torchvision.models.resnet.ResNet object") as whole:
        run_import("torch", tmp_path / "whole.pt", repo)
    assert "\x1b" not in str(whole.value)
    with pytest.raises(ImportModelError, match=r"its weights are under 'state_dict'"):
        run_import("torch", tmp_path / "ckpt.pt", repo)
    assert "'module.' prefix DataParallel gives every key was stripped" in run_import("torch", tmp_path / "ddp.pt", repo)
    assert (repo / "lesion_classifier" / "1" / "model.pt").is_file()


@pytest.mark.slow
def test_a_segmenter_ending_in_logits_is_refused(tmp_path: Path) -> None:
    """A Conv2D without activation passed parity and was served, thresholded as if it gave probabilities."""
    path = tmp_path / "logits.keras"
    proc = run_python("-c", (
        "import sys, numpy as np, keras; i = keras.Input((256, 256, 3)); c = keras.layers.Conv2D(1, 1); o = c(i); "
        "c.set_weights([np.full((1, 1, 3, 1), -2.0, np.float32), np.array([1.0], np.float32)]); "
        "keras.Model(i, o).save(sys.argv[1])"
    ), str(path))
    assert proc.returncode == 0, proc.stderr
    repo = tmp_path / "repo"
    with pytest.raises(ImportModelError, match=r"segmenter outputs must be sigmoid probabilities in \[0, 1\].*add a sigmoid"):
        run_import("keras", path, repo)
    assert not (repo / "lesion_segmenter" / "1" / "model.savedmodel").exists()


def test_a_classifier_trained_on_other_crops_than_its_segmenter_is_served_is_refused_and_its_colour_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`dermassist import` put a classifier trained on crops cut at 0.45 behind a segmenter served at 0.55 without a
    word, and dropped the colour balance it trained on; its run's classifier_metrics.json says both."""
    import json

    from dermassist.base.repository import tuned_file
    from preprocess.contract import CROP_MODEL
    from preprocess.params import read_tuned

    repo = tmp_path / "repo"
    assert main(["models", "--repository", str(repo), "--reports", str(tmp_path / "reports")]) == 0  # the release
    served = read_tuned(str(tuned_file(repo, CROP_MODEL).parent))["threshold"]
    run = tmp_path / "run"
    run.mkdir()
    state = _state_dict(run, "resnet18", 8)
    (run / "classifier_metrics.json").write_text(json.dumps({"crop_threshold": served + 0.15, "colour_constancy": 6.0}))
    model = repo / "lesion_classifier" / "1" / "model.pt"
    before = model.stat().st_mtime_ns
    with caplog.at_level(logging.ERROR):
        assert main(["import", "--torch", str(state), "--repository", str(repo)]) == 2
    assert f"trained on crops cut at mask threshold {served + 0.15:g}" in caplog.text and f"served at {served:g}" in caplog.text
    assert model.stat().st_mtime_ns == before  # refused before anything was replaced
    (run / "classifier_metrics.json").write_text(json.dumps({"crop_threshold": served, "colour_constancy": 6.0}))
    assert main(["import", "--torch", str(state), "--repository", str(repo)]) == 0
    crop = read_tuned(str(tuned_file(repo, CROP_MODEL).parent))
    assert crop["threshold"] == served and crop["colour_constancy"] == 6.0


def test_the_segmenters_tuned_threshold_is_read_from_its_runs_metrics(tmp_path: Path) -> None:
    """`dermassist import --keras` served the default 0.35 though the run beside the file had tuned 0.45."""
    import json

    from training.importer import tuned_mask_threshold

    keras = tmp_path / "segmenter.keras"
    assert tuned_mask_threshold(keras) is None  # no run beside it: the default is served, with a warning
    (tmp_path / "segmenter_metrics.json").write_text(json.dumps({"threshold": 0.45, "default_threshold": 0.35}))
    assert tuned_mask_threshold(keras) == 0.45
    (tmp_path / "segmenter_metrics.json").write_text(json.dumps({"threshold": 1.5}))
    with pytest.raises(ImportModelError, match=r"mask threshold 1.5; expected a number in \(0, 1\)"):
        tuned_mask_threshold(keras)
    (tmp_path / "segmenter_metrics.json").write_text("{not json")
    with pytest.raises(ImportModelError, match="cannot be read"):
        tuned_mask_threshold(keras)


SAVE_SIGMOID_SEGMENTER = (
    "import sys, keras; i = keras.Input((256, 256, 3)); "
    "keras.Model(i, keras.layers.Conv2D(1, 1, activation='sigmoid')(i)).save(sys.argv[1])"
)


@pytest.mark.slow
def test_a_refused_classifier_leaves_the_repository_as_it_was_segmenter_included(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """`import --keras A --torch B` exported A, then refused B, and served A beside the release's classifier."""
    from dermassist.base.repository import RELEASE_STAMP, stage_repository

    temporary = tmp_path / "tmp"  # where the repository's copy is made: none may stay behind
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))

    assert run_python("-c", SAVE_VARIANTS, str(tmp_path)).returncode == 0
    keras = tmp_path / "segmenter.keras"
    proc = run_python("-c", SAVE_SIGMOID_SEGMENTER, str(keras))
    assert proc.returncode == 0, proc.stderr
    repo = stage_repository(tmp_path / "repo")
    (repo / RELEASE_STAMP).write_text("the release")
    before = {p.relative_to(repo): p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    with caplog.at_level(logging.INFO):
        code = main(["import", "--keras", str(keras), "--torch", str(tmp_path / "ckpt.pt"), "--repository", str(repo)])
    assert code == 2 and "its weights are under 'state_dict'" in caplog.text
    assert "segmenter.keras ->" in caplog.text and "put back as it was" in caplog.text  # the first export did run
    assert {p.relative_to(repo): p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before
    assert not [p for p in temporary.iterdir() if p.name.startswith("dermassist-repo-before-")]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_named_runs_classifier_is_checked_against_its_own_runs_metrics(tmp_path: Path) -> None:
    """NAME_resnet18.pt was checked against classifier_metrics.json, another run's, beside it."""
    import json

    from training.importer import classifier_metrics_file, trained_crops

    assert classifier_metrics_file(tmp_path / "sitev2_resnet18.pt") == tmp_path / "sitev2_metrics.json"
    assert classifier_metrics_file(tmp_path / "mine.pt") == tmp_path / "classifier_metrics.json"
    (tmp_path / "classifier_metrics.json").write_text(json.dumps({"crop_threshold": 0.5}))
    (tmp_path / "sitev2_metrics.json").write_text(json.dumps({"crop_threshold": 0.35, "crops_with_mask": {"train": 9}}))
    assert trained_crops(tmp_path / "sitev2_resnet18.pt") == (0.35, 0.0)
    assert trained_crops(tmp_path / "classifier_resnet18.pt") == (0.5, 0.0)


@pytest.mark.parametrize(("metrics", "why"), [({"full_image": True}, "--full-image"),
                                              ({"crops_with_mask": {"train": 0, "val": 0}}, "no training image had a mask")])
def test_a_classifier_trained_on_whole_pictures_is_refused(tmp_path: Path, metrics: dict, why: str) -> None:
    import json

    from training.importer import trained_crops

    (tmp_path / "classifier_metrics.json").write_text(json.dumps({"crop_threshold": 0.35, **metrics}))
    with pytest.raises(ImportModelError, match=rf"trained on whole pictures \({why}: classifier_metrics.json\), but the "
                                               "served pipeline classifies the lesion crop"):
        trained_crops(tmp_path / "classifier_resnet18.pt")


def test_the_best_epoch_of_an_interrupted_run_is_refused_naming_the_finished_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An interrupted run's weights were imported without a word, though the note beside them says it did not finish."""
    import json
    import zipfile

    from training.importer import unfinished_run_problem

    weights, keras = tmp_path / "sitev2_interrupted_resnet18.pt", tmp_path / "segmenter_interrupted.keras"
    weights.write_bytes(b"weights")
    with zipfile.ZipFile(keras, "w") as archive:
        archive.writestr("config.json", "{}")
    assert unfinished_run_problem(weights) is None  # no note beside it: nothing says it is unfinished
    note = {"finished": False, "interrupted_after_epoch": 3, "epochs": 4, "saved_epoch": 2}
    (tmp_path / "sitev2_interrupted.json").write_text(json.dumps(note))
    (tmp_path / "segmenter_interrupted.json").write_text(json.dumps(note))
    assert "finish the run (rerun its command with --resume) and import sitev2_resnet18.pt" in unfinished_run_problem(weights)
    assert "import segmenter.keras" in unfinished_run_problem(keras)
    assert unfinished_run_problem(tmp_path / "sitev2_resnet18.pt") is None
    repo = tmp_path / "repo"
    with caplog.at_level(logging.ERROR):
        assert main(["import", "--torch", str(weights), "--keras", str(keras), "--repository", str(repo)]) == 2
    assert "best epoch (2) of a run interrupted after epoch 3 of 4" in caplog.text and "segmenter_interrupted.json" in caplog.text
    assert not repo.exists()  # refused before a repository was made


def test_a_segmenter_alone_at_another_threshold_than_the_served_classifier_trained_at_is_warned_of(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing a segmenter alone moved the release's classifier, trained on crops cut at 0.30, to 0.50 crops without
    a word; it is the first step of training on a site's folder, so it is told, with the classifier to train next."""
    import json
    import zipfile

    from training.export.steps import served_classifier_crop_threshold

    repo = tmp_path / "repo"
    assert main(["models", "--repository", str(repo), "--reports", str(tmp_path / "reports")]) == 0  # the release
    trained = served_classifier_crop_threshold(repo)
    assert trained is not None and 0 < trained < 1
    keras = tmp_path / "run" / "segmenter.keras"
    keras.parent.mkdir()
    with zipfile.ZipFile(keras, "w") as archive:  # not loaded: the export is replaced by a recorder
        archive.writestr("config.json", "{}")
    (keras.parent / "segmenter_metrics.json").write_text(json.dumps({"threshold": round(trained + 0.2, 2)}))
    from dermassist.commands import import_models
    from training.export import steps

    seen: list[str] = []
    monkeypatch.setattr(import_models, "_export", lambda jobs, *rest: seen.extend(kind for kind, _ in jobs))
    with caplog.at_level(logging.WARNING):
        assert main(["import", "--keras", str(keras), "--repository", str(repo)]) == 0
    assert seen == ["keras"]  # a step of the site route: the segmenter first, its classifier trained after it
    assert (f"was trained on crops cut at mask threshold {trained:g} (its calibration.json), but the imported segmenter "
            f"is served at {round(trained + 0.2, 2):g}: until it is replaced") in caplog.text
    assert f"--crop-threshold {round(trained + 0.2, 2):g} --repository {repo}" in caplog.text
    assert steps.served_classifier_crop_threshold(repo) == trained


def test_a_refused_import_leaves_no_repository_it_made_and_one_model_alone_is_told_unservable(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A refused import into a new path left a repository of configs behind; one model imported into a new folder
    made a repository that cannot be served, and evaluate then advised `make models`, which writes elsewhere."""
    import json

    from dermassist.base.errors import RepositoryError
    from dermassist.base.repository import require_artifacts

    run = tmp_path / "run"
    run.mkdir()
    state = _state_dict(run, "resnet18", 8)
    (run / "classifier_metrics.json").write_text(json.dumps({"crop_threshold": 0.9}))  # not the default segmenter's
    new, empty = tmp_path / "new", tmp_path / "empty"
    empty.mkdir()
    for repo in (new, empty):
        assert main(["import", "--torch", str(state), "--repository", str(repo)]) == 2
    assert not new.exists() and empty.is_dir() and not any(empty.iterdir())
    (run / "classifier_metrics.json").unlink()
    with caplog.at_level(logging.WARNING):
        assert main(["import", "--torch", str(state), "--repository", str(new)]) == 0
    assert f"model repository {new} has no segmenter yet, so it cannot be served: import one there (--keras)" in caplog.text
    with pytest.raises(RepositoryError, match=rf"put models there: `dermassist models --repository {new}`"):
        require_artifacts(new, RepositoryError)


def test_a_resnet_of_another_depth_is_named_by_its_blocks_and_a_truncated_file_by_its_first_sentence() -> None:
    """A ResNet34 got 500 characters of unexpected keys; a truncated file's reason was cut mid-sentence."""
    from training.importer import load_failure, resnet_blocks

    state = {f"layer{s}.{b}.conv1.weight": 0 for s, n in zip((1, 2, 3, 4), (3, 4, 6, 3)) for b in range(n)}
    assert resnet_blocks({**state, "fc.weight": 0, "conv1.weight": 0}) == (3, 4, 6, 3)
    assert resnet_blocks({"layer1.1.bn1.bias": 0, "layer4.0.conv2.weight": 0}) == (2, 0, 0, 1)
    miniz = RuntimeError("PytorchStreamReader failed reading zip archive: failed finding central directory. This is an "
                         "internal miniz error. If you are seeing this error, there is a high likelihood that your "
                         "checkpoint file is corrupted or truncated.")
    assert load_failure(Path("x.pt"), miniz) == ("PyTorch file x.pt cannot be loaded (PytorchStreamReader failed "
                                                 "reading zip archive: failed finding central directory); expected "
                                                 "torch.save(model.state_dict())")
    long = RuntimeError("word " * 60)
    assert load_failure(Path("x.pt"), long).endswith("word ...); expected torch.save(model.state_dict())")


def test_a_finished_run_named_like_an_interrupted_one_is_read_by_its_own_metrics(tmp_path: Path) -> None:
    import json

    from training.importer import classifier_metrics_file, unfinished_run_problem

    weights = tmp_path / "site_interrupted_resnet18.pt"  # `--name site_interrupted`, finished
    (tmp_path / "site_interrupted_metrics.json").write_text(json.dumps({"crop_threshold": 0.3}))
    assert classifier_metrics_file(weights) == tmp_path / "site_interrupted_metrics.json"
    assert unfinished_run_problem(weights) is None
