"""The release folder: float16 weights, the manifest, its checks, and metrics.json from it."""
from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from training.pipeline import REAL_RECIPE, Recipe, metrics_from_release
from training.release import (
    CLASSIFIER_WEIGHTS,
    SEGMENTER_WEIGHTS,
    ReleaseError,
    load_weights,
    read_release,
    save_weights,
    update_release,
)


def test_weights_are_stored_as_float16_except_what_is_kept(tmp_path: Path) -> None:
    arrays = {"w": np.linspace(0, 1, 7, dtype=np.float32), "n": np.array([3], np.int64),
              "precision": np.eye(3, dtype=np.float32) * 1.0001}
    save_weights(tmp_path / "x.npz", arrays, keep=("precision",))
    back = load_weights(tmp_path / "x.npz")
    assert back["w"].dtype == np.float16 and back["n"].dtype == np.int64 and back["precision"].dtype == np.float32
    np.testing.assert_allclose(back["w"], arrays["w"], atol=5e-4)
    with pytest.raises(ReleaseError, match="cannot be read"):
        load_weights(tmp_path / "missing.npz")


def test_manifest_merges_sections_and_names_what_is_missing(tmp_path: Path) -> None:
    update_release(tmp_path, {"segmenter": {"threshold": 0.4}})
    update_release(tmp_path, {"classifier": {"temperature": 1.5}})
    assert json.loads((tmp_path / "release.json").read_text()) == {"segmenter": {"threshold": 0.4},
                                                                    "classifier": {"temperature": 1.5}}
    assert stat.S_IMODE((tmp_path / "release.json").stat().st_mode) == 0o644  # not the temporary file's 0600
    (tmp_path / "release.json").chmod(0o640)
    update_release(tmp_path, {"classifier": {"temperature": 1.5}})
    assert stat.S_IMODE((tmp_path / "release.json").stat().st_mode) == 0o640
    with pytest.raises(ReleaseError, match=r"incomplete: sections \['triage', 'quality'\] and files \['segmenter.npz', "
                                           r"'classifier.npz'\] are missing"):
        read_release(tmp_path)
    with pytest.raises(ReleaseError, match="cannot be read"):
        read_release(tmp_path / "nowhere")


def test_shipped_release_is_complete_and_small() -> None:
    from training.release import RELEASE_DIR

    release = read_release(RELEASE_DIR)
    size = sum((RELEASE_DIR / f).stat().st_size for f in (SEGMENTER_WEIGHTS, CLASSIFIER_WEIGHTS))
    assert size <= 40 * 1024 * 1024
    assert Recipe.from_dict(release["recipe"]) == REAL_RECIPE  # the recorded recipe is the one the code ships
    assert (RELEASE_DIR / "MODEL_CARD.md").is_file()
    splits = json.loads((RELEASE_DIR / release["data"]["splits"]["classifier"]).read_text())
    evaluation_only = {"ham10000_sample", "isic2019_sample"}
    for split in ("train", "val", "test"):
        assert not any(part in row["image"] for row in splits[split] for part in evaluation_only)
    assert not any("Validation" in row["image"] for row in splits["train"])  # nor the classifier (--train-only)
    seg_splits = json.loads((RELEASE_DIR / release["data"]["splits"]["segmenter"]).read_text())
    assert not any("Validation" in row["image"] for row in seg_splits["train"])  # ISIC 2017 validation never trained on


def test_shipped_model_card_is_the_one_its_release_renders() -> None:
    from training.model_card import render_model_card
    from training.release import MODEL_CARD as CARD
    from training.release import RELEASE_DIR

    card = (RELEASE_DIR / CARD).read_text()
    assert card == render_model_card(read_release(RELEASE_DIR)), "MODEL_CARD.md is stale: re-render it from release.json"
    test = read_release(RELEASE_DIR)["evaluation"]["classification_test"]
    assert f"{test['balanced_accuracy']:.3f}" in card  # the card carries the served figures


def test_every_shipped_report_the_card_points_to_lists_its_images() -> None:
    import csv

    from training.release import MODEL_CARD as CARD
    from training.release import RELEASE_DIR

    assert "`images.csv` beside it holds every image's answer" in (RELEASE_DIR / CARD).read_text()
    reports = read_release(RELEASE_DIR)["evaluation"]["reports"]
    for name, figures in reports.items():
        folder = RELEASE_DIR / "reports" / name
        with open(folder / "images.csv", newline="") as f:
            # an image on disk that no label row names is listed too, as not evaluated (PH2's IMD146 has no diagnosis)
            rows = [r for r in csv.DictReader(f) if r["set"] == "evaluated" and not r["status"].startswith("not evaluated")]
        assert len(rows) == figures["images"], name
        review = f"Melanomas REFER did not refer: {sum(r['truth'] == 'MEL' and r['refer'] == 'False' for r in rows) or 'none'}."
        assert review in (folder / "report.md").read_text(), name


def test_metrics_json_keys_from_a_release() -> None:
    from training.release import RELEASE_DIR

    release = read_release(RELEASE_DIR)
    metrics = metrics_from_release(release)
    served = release["evaluation"]  # the released figures are the served ensemble's, where it was evaluated
    assert metrics["segmentation"]["val"] == served["segmentation_val"]
    test = metrics["classification"]["test"]
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "balanced_accuracy", "melanoma_auc", "ece"):
        assert test[key] == served["classification_test"][key], key
    before = served["classification_test"].get("ece_before_calibration")  # the served answers' own, same images
    assert test["ece_before_calibration"] == (
        release["classifier"]["figures"]["calibration"]["test"]["ece_before"] if before is None else before)
    evaluated_before = {**release, "evaluation": {**served, "classification_test": {
        **{k: v for k, v in served["classification_test"].items() if k != "ece_before_calibration"}}}}
    assert (metrics_from_release(evaluated_before)["classification"]["test"]["ece_before_calibration"]
            == release["classifier"]["figures"]["calibration"]["test"]["ece_before"])
    measured = {**release, "evaluation": {**served, "classification_test": {**served["classification_test"],
                                                                            "ece_before_calibration": 0.0}}}
    assert metrics_from_release(measured)["classification"]["test"]["ece_before_calibration"] == 0.0
    assert set(test["per_class_recall"]) == {"AK", "BCC", "DF", "MEL", "NV", "BKL", "SCC", "VASC"}
    assert metrics["classification"]["temperature"] == release["classifier"]["temperature"]
    assert metrics["triage"]["threshold"] == release["triage"]["values"]["refer_threshold"]
    assert metrics["triage"]["test"] == served["triage_test"] and metrics["ood"]["test"] == served["ood_test"]
    for key in ("melanoma_sensitivity", "malignant_sensitivity", "specificity"):
        assert key in metrics["triage"]["test"], key
    assert "auroc" in metrics["ood"]["test"]
    assert metrics["dataset"]["splits"]["classifier"].startswith("splits/")


def test_metrics_json_names_each_evaluated_set_its_size_and_split_manifest(tmp_path: Path) -> None:
    """ARCHITECTURE: metrics.json gives, for each real set evaluated, its name, size and split manifest."""
    from training.pipeline import write_metrics
    from training.release import RELEASE_DIR

    sets = write_metrics(RELEASE_DIR, tmp_path)["evaluation"]["sets"]
    assert json.loads((tmp_path / "metrics.json").read_text())["evaluation"]["sets"] == sets
    assert set(sets) == {"isic2018_task3_test", "ph2_test", "ham10000_sample", "isic2019_sample", "isic2017_validation"}
    assert sets["isic2018_task3_test"] == {"name": "isic2018_task3_test", "images": 159, "data": "isic2018_task3",
                                           "split": "test", "split_manifest": "splits/classifier_split.json"}
    assert sets["isic2017_validation"]["split_manifest"] == "splits/segmenter_split.json"
    assert sets["ham10000_sample"]["split"] is None and sets["ham10000_sample"]["split_manifest"] == ""
    assert all(s["images"] > 0 for s in sets.values())


@pytest.mark.slow
def test_models_command_exports_the_release_with_its_tuned_values(tmp_path: Path) -> None:
    import subprocess
    import sys

    from dermassist.base.paths import PROJECT_ROOT
    from dermassist.base.repository import classifier_artifact, segmenter_artifact, stage_repository
    from training.release import RELEASE_DIR, classifier_colour_constancy

    repo = stage_repository(tmp_path / "repo")
    done = subprocess.run([sys.executable, "-m", "dermassist.cli", "models", "--repository", str(repo),
                           "--reports", str(tmp_path / "reports")], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (segmenter_artifact(repo) / "saved_model.pb").is_file() and classifier_artifact(repo).is_file()
    release = read_release(RELEASE_DIR)
    tuned = {m: json.loads((repo / m / "1" / "tuned.json").read_text())["values"]
             for m in ("lesion_crop", "triage", "prepare")}
    assert tuned["lesion_crop"]["threshold"] == release["segmenter"]["threshold"]
    assert tuned["lesion_crop"]["colour_constancy"] == classifier_colour_constancy(release)
    assert tuned["triage"] == release["triage"]["values"] and tuned["prepare"] == release["quality"]["values"]
    calibration = json.loads((classifier_artifact(repo).parent / "calibration.json").read_text())
    assert calibration["temperature"] == pytest.approx(release["classifier"]["temperature"])
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert metrics["segmentation"]["threshold"] == release["segmenter"]["threshold"]
    again = subprocess.run([sys.executable, "-m", "dermassist.cli", "models", "--repository", str(repo),
                            "--reports", str(tmp_path / "reports")], capture_output=True, text=True, cwd=PROJECT_ROOT,
                           timeout=300)
    assert again.returncode == 0 and "already serves release" in again.stderr
    (repo / "triage" / "1" / "tuned.json").unlink()  # a release without its REFER threshold is not current
    healed = subprocess.run([sys.executable, "-m", "dermassist.cli", "models", "--repository", str(repo),
                             "--reports", str(tmp_path / "reports")], capture_output=True, text=True, cwd=PROJECT_ROOT,
                            timeout=600)
    assert healed.returncode == 0 and "already serves release" not in healed.stderr, healed.stderr[-3000:]
    assert json.loads((repo / "triage" / "1" / "tuned.json").read_text())["values"] == release["triage"]["values"]
    misspelt = {"refer_treshold" if k == "refer_threshold" else k: v for k, v in release["triage"]["values"].items()}
    (repo / "triage" / "1" / "tuned.json").write_text(json.dumps({"values": misspelt}))  # nor is one with a bad key
    mended = subprocess.run([sys.executable, "-m", "dermassist.cli", "models", "--repository", str(repo),
                             "--reports", str(tmp_path / "reports")], capture_output=True, text=True, cwd=PROJECT_ROOT,
                            timeout=600)
    assert mended.returncode == 0 and "already serves release" not in mended.stderr, mended.stderr[-3000:]
    assert json.loads((repo / "triage" / "1" / "tuned.json").read_text())["values"] == release["triage"]["values"]
    from dermassist.base.repository import seal_problems

    assert seal_problems(repo) == []  # the export sealed its files
    with classifier_artifact(repo).open("r+b") as weights:  # damaged in place, its size unchanged
        weights.seek(1 << 20)
        weights.write(b"\0" * (1 << 20))
    assert seal_problems(repo) == ["lesion_classifier/1/model.pt has changed"]
    restored = subprocess.run([sys.executable, "-m", "dermassist.cli", "models", "--repository", str(repo),
                               "--reports", str(tmp_path / "reports")], capture_output=True, text=True, cwd=PROJECT_ROOT,
                              timeout=600)
    assert restored.returncode == 0 and "already serves release" not in restored.stderr, restored.stderr[-3000:]
    assert seal_problems(repo) == []


def test_retune_predicts_the_masks_again_when_the_builds_are_gone(tmp_path: Path, shared_data: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    import training.pipeline as pipeline
    from training.release import RELEASE_DIR

    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(pipeline, "run_stage", lambda module, args, log: calls.append((module, args)) or 0.0)
    runs = tmp_path / "runs"
    config = pipeline.BuildConfig(data=shared_data, out=RELEASE_DIR, runs=runs)
    with caplog.at_level(logging.INFO, logger="training.pipeline"):
        pipeline.retune_release(config)
    steps = [r.getMessage().split(":")[0] for r in caplog.records if r.getMessage().startswith("re-tune step")]
    assert steps == ["re-tune step 1 of 2", "re-tune step 2 of 2"]  # said before each silent stage, not after
    assert "the release's segmenter predicts them" in caplog.text and "isic2018_task3, ph2" in caplog.text
    (predict, predict_args), (classify, classify_args) = calls
    masks = str(config.runs / "predicted_masks")
    assert predict == "training.segmenter.predict" and classify == "training.classifier.stage"
    assert predict_args == ["--release", str(config.out), "--out", masks,
                            "--data", str(config.data / "isic2018_task3"), str(config.data / "ph2")]
    assert classify_args[-1] == "--retune" and classify_args[classify_args.index("--predicted-masks") + 1] == masks
    release = read_release(RELEASE_DIR)
    assert float(classify_args[classify_args.index("--crop-threshold") + 1]) == release["segmenter"]["threshold"]
    split = runs / "classifier" / "classifier_split.json"  # the release's recorded splits, where the stage reads them
    assert split.read_bytes() == (RELEASE_DIR / release["data"]["splits"]["classifier"]).read_bytes()

    calls.clear()  # the masks predicted are recorded as the release segmenter's: a second re-tune uses them
    record = json.loads((runs / "predicted_masks" / pipeline.MASKS_RECORD).read_text())
    assert record["segmenter_sha256"] == pipeline.file_sha256(RELEASE_DIR / "segmenter.npz")
    pipeline.retune_release(config)
    assert [module for module, _ in calls] == ["training.classifier.stage"]


def test_retune_refuses_masks_another_segmenter_wrote_or_that_carry_no_record(tmp_path: Path, shared_data: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A runs folder holding another segmenter's masks re-tuned the release on crops its ensemble never cuts: the
    temperature went 0.760 -> 0.854 and the REFER threshold 0.066 -> 0.102, exit 0, no warning."""
    import training.pipeline as pipeline
    from training.errors import TrainingConfigError
    from training.release import RELEASE_DIR

    calls: list[str] = []
    monkeypatch.setattr(pipeline, "run_stage", lambda module, args, log: calls.append(module) or 0.0)
    masks = tmp_path / "runs" / "predicted_masks"
    masks.mkdir(parents=True)
    config = pipeline.BuildConfig(data=shared_data, out=RELEASE_DIR, runs=tmp_path / "runs")
    with pytest.raises(TrainingConfigError, match="carry no record of the segmenter that wrote them.*empty --runs"):
        pipeline.retune_release(config)
    other = tmp_path / "other.npz"
    other.write_bytes(b"another segmenter")
    pipeline.record_masks(masks, other)
    with pytest.raises(TrainingConfigError, match="were written by another segmenter"):
        pipeline.retune_release(config)
    assert calls == []  # nothing was tuned


@pytest.mark.slow
def test_the_released_segmenter_predicts_masks_that_match_ph2(tmp_path: Path, shared_data: Path) -> None:
    """The mask prediction command with the release's weights gives, on the PH2 images its split held out for test
    (30, none trained on), the Jaccard the build recorded for them."""
    import cv2

    from training.images import load_mask, original_size, seg_mask
    from training.metrics import segmentation_metrics
    from training.readers import read_dataset
    from training.release import RELEASE_DIR

    from .conftest import run_python

    proc = run_python("-m", "training.segmenter.predict", "--release", str(RELEASE_DIR), "--data",
                      str(shared_data / "ph2"), "--out", str(tmp_path / "masks"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    samples = read_dataset(shared_data / "ph2").samples
    assert sorted(p.stem for p in (tmp_path / "masks").glob("*.png")) == sorted(s.image_id for s in samples)
    release = read_release(RELEASE_DIR)
    split = json.loads((RELEASE_DIR / release["data"]["splits"]["segmenter"]).read_text())
    held_out = {row["image_id"] for row in split["test_ph2"]}
    tests = [s for s in samples if s.image_id in held_out]
    assert len(tests) == len(held_out) == release["segmenter"]["figures"]["test"]["ph2"]["images"]
    prob = np.stack([cv2.imread(str(tmp_path / "masks" / f"{s.image_id}.png"), cv2.IMREAD_GRAYSCALE) / 255.0
                     for s in tests])
    truth = np.stack([seg_mask(load_mask(s.mask_path, s.image_path, original_size(s.image_path))) for s in tests])
    figures = segmentation_metrics(truth.astype(np.float32), prob, release["segmenter"]["threshold"])
    recorded = release["segmenter"]["figures"]["test"]["ph2"]["jaccard"]
    # 0.005 apart here: the masks are stored as 8-bit PNGs, and prepare has filled the lens border since the build
    assert abs(figures["jaccard"] - recorded) < 0.015, (figures, recorded)


def test_weights_are_written_whole_or_not_at_all_and_a_cut_file_is_named(tmp_path: Path) -> None:
    from training.release import ReleaseError, load_weights, save_weights

    path = save_weights(tmp_path / "classifier.npz", {"w": np.ones((64, 64), np.float32)})
    assert list(tmp_path.iterdir()) == [path] and load_weights(path)["w"].dtype == np.float16
    path.write_bytes(path.read_bytes()[:200])  # what an interrupted in-place write left
    with pytest.raises(ReleaseError, match="classifier.npz cannot be read .*build it again"):
        load_weights(path)


def test_a_releases_tuned_values_are_all_there_typed_and_valid_or_named() -> None:
    """A hand-edited release.json served the contract's default threshold (0.20 for 0.066) without a word."""
    from preprocess.triage import TriageParams
    from training.release import ReleaseError, recorded_values

    good = {"refer_threshold": 0.066, "ood_limit": 1.0, "refer_when_not_assessable": True,
            "other_lesion_min_fraction": 0.02, "other_lesion_min_share": 0.25}
    assert recorded_values(TriageParams, good, "triage.values") == TriageParams(0.066, 1.0, True, 0.02, 0.25)
    cases = [({k: v for k, v in good.items() if k != "refer_threshold"}, "missing \\['refer_threshold'\\]"),
             ({**good, "refer_treshold": 0.1}, "unknown \\['refer_treshold'\\]"),
             ({**good, "refer_threshold": "0.066"}, "refer_threshold .* must be a finite number, got '0.066'"),
             ({**good, "ood_limit": float("nan")}, "ood_limit .* must be a finite number"),
             ({**good, "refer_when_not_assessable": "nope"}, "must be true or false, got 'nope'"),
             ({**good, "refer_threshold": 1.5}, "refer_threshold must lie in"),
             ({**good, "other_lesion_min_share": 0}, "other_lesion_min_share must lie in")]
    for values, message in cases:
        with pytest.raises(ReleaseError, match=message):
            recorded_values(TriageParams, values, "triage.values")


def test_a_bad_recipe_is_refused_before_anything_trains(tmp_path: Path) -> None:
    from dermassist.commands.release import read_recipe
    from training.errors import TrainingConfigError
    from training.pipeline import REAL_RECIPE, BuildConfig, Recipe
    from training.release import ReleaseError

    good = {"seg_data": "isic2017_seg_256", "seg_extra": ["ph2"], "cls_data": ["isic2018_task3"],
            "seg_args": ["--epochs", "1"], "cls_args": ["--epochs", "1"]}
    assert Recipe.from_dict(good).cls_args == ("--epochs", "1")
    with pytest.raises(ReleaseError, match="cls_args must be JSON lists of strings, got '--epochs 1'"):
        Recipe.from_dict({**good, "cls_args": "--epochs 1"})  # was split into characters
    with pytest.raises(TrainingConfigError, match="seg_args must be a list of strings"):
        Recipe.from_dict({**good, "seg_args": ["--epochs", 1]})
    with pytest.raises(ReleaseError, match="lacks 'cls_data'"):
        Recipe.from_dict({k: v for k, v in good.items() if k != "cls_data"})
    for content, message in ((None, "cannot be read"), ("{not json", "is not JSON"), ('{"name": 1}', "no 'recipe'")):
        path = tmp_path / "recipe.json"
        path.unlink(missing_ok=True)
        if content is not None:
            path.write_text(content)
        with pytest.raises(TrainingConfigError, match=message):
            read_recipe(path)
    a_file = tmp_path / "out.txt"
    a_file.write_text("x")
    from training.pipeline import SHARED_DATA

    with pytest.raises(TrainingConfigError, match="--out .*out.txt is a file"):
        BuildConfig(data=SHARED_DATA, out=a_file, runs=tmp_path / "runs", recipe=REAL_RECIPE)


def test_new_weights_take_the_served_figures_and_card_of_the_old_ones_with_them(tmp_path: Path) -> None:
    """A stage writing into a release left its old served figures, which `dermassist models` then reported."""
    from training.pipeline import metrics_from_release
    from training.release import MANIFEST, MODEL_CARD, RELEASE_DIR, read_manifest, update_release

    for name in (MANIFEST, MODEL_CARD):
        shutil.copy2(RELEASE_DIR / name, tmp_path / name)
    update_release(tmp_path, {"name": "renamed"})  # no new weights: figures kept
    assert "evaluation" in read_manifest(tmp_path) and (tmp_path / MODEL_CARD).is_file()
    segmenter = read_manifest(tmp_path)["segmenter"]
    update_release(tmp_path, {"segmenter": {**segmenter, "threshold": 0.45}}, new_weights=True)
    release = read_manifest(tmp_path)
    assert "evaluation" not in release and not (tmp_path / MODEL_CARD).exists()
    served = read_release(RELEASE_DIR)["evaluation"]["segmentation_val"]["jaccard"]
    assert metrics_from_release(release)["segmentation"]["val"]["jaccard"] != served  # the training-time figure now


def test_a_classifier_stage_cuts_its_crops_at_the_threshold_its_release_serves(tmp_path: Path) -> None:
    from training.classifier.stage import _check_release_threshold
    from training.errors import TrainingConfigError
    from training.release import MANIFEST, RELEASE_DIR

    served = read_release(RELEASE_DIR)["segmenter"]["threshold"]
    _check_release_threshold(RELEASE_DIR, served)
    _check_release_threshold(tmp_path, 0.2)  # a release not written yet: its segmenter comes with this threshold
    shutil.copy2(RELEASE_DIR / MANIFEST, tmp_path / MANIFEST)
    with pytest.raises(TrainingConfigError, match=f"--crop-threshold 0.2 differs from the threshold {served:g}"):
        _check_release_threshold(tmp_path, 0.2)


def test_a_stage_runs_again_when_its_data_changed(tmp_path: Path) -> None:
    """A relabelled CSV left both stages 'current': the release kept the old labels."""
    from training.pipeline import data_digest

    folder = tmp_path / "ham10000"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "ISIC_0000001.jpg").write_bytes(b"jpeg")
    labels = folder / "HAM10000_metadata.csv"
    labels.write_text("image_id,dx\nISIC_0000001,nv\n")
    before = data_digest([folder])
    assert data_digest([folder]) == before
    stamp = labels.stat().st_mtime_ns
    labels.write_text("image_id,dx\nISIC_0000001,me\n")  # same size, other label
    os.utime(labels, ns=(stamp, stamp))  # even with its old modification time
    relabelled = data_digest([folder])
    assert relabelled != before
    (folder / "images" / "ISIC_0000002.jpg").write_bytes(b"jpeg")
    assert data_digest([folder]) not in (before, relabelled)


def test_a_build_does_not_write_over_a_release_of_another_recipe(tmp_path: Path) -> None:
    from training.errors import TrainingConfigError
    from training.pipeline import REAL_RECIPE, SYNTHETIC_RECIPE, BuildConfig, _check_out
    from training.release import MANIFEST, RELEASE_DIR

    out = tmp_path / "release"
    out.mkdir()
    shutil.copy2(RELEASE_DIR / MANIFEST, out / MANIFEST)  # the shipped recipe
    data = tmp_path / "data"
    for name in ("isic2018", "ham10000", "isic2017_seg_256", "ph2", "isic2018_task3"):
        (data / name).mkdir(parents=True)
    _check_out(BuildConfig(data=data, out=out, runs=tmp_path / "runs", recipe=REAL_RECIPE))  # resumes its own
    other = BuildConfig(data=data, out=out, runs=tmp_path / "runs", recipe=SYNTHETIC_RECIPE)
    with pytest.raises(TrainingConfigError, match="holds a release of another recipe.*--force to replace it"):
        _check_out(other)
    _check_out(BuildConfig(data=data, out=out, runs=tmp_path / "runs", recipe=SYNTHETIC_RECIPE, force=True))


def test_only_the_shipped_recipe_names_its_release_the_real_data_release() -> None:
    from dataclasses import replace

    from training.pipeline import RELEASE_NAME, SYNTHETIC_RECIPE, release_name
    from training.release import RELEASE_DIR

    assert release_name(REAL_RECIPE) == RELEASE_NAME == read_release(RELEASE_DIR)["name"]
    assert release_name(SYNTHETIC_RECIPE) == "dermassist-synthetic"
    assert release_name(replace(REAL_RECIPE, cls_args=("--epochs", "1"))) == "dermassist-custom"


def test_retune_and_evaluate_only_use_the_recipe_their_release_recorded(tmp_path: Path) -> None:
    """A synthetic release re-tuned with the built-in real-data recipe looked for isic2017_seg_256."""
    import argparse

    from dermassist.commands.release import chosen_recipe
    from training.pipeline import SYNTHETIC_RECIPE
    from training.release import update_release

    update_release(tmp_path, {"recipe": {k: list(v) if isinstance(v, tuple) else v
                                         for k, v in SYNTHETIC_RECIPE.__dict__.items()}})
    args = argparse.Namespace(recipe=None, out=tmp_path, retune=True, evaluate_only=False)
    assert chosen_recipe(args) == SYNTHETIC_RECIPE
    assert chosen_recipe(argparse.Namespace(recipe=None, out=tmp_path, retune=False, evaluate_only=True)) == SYNTHETIC_RECIPE
    assert chosen_recipe(argparse.Namespace(recipe=None, out=tmp_path, retune=False, evaluate_only=False)) is None
    from training.release import RELEASE_DIR

    other = argparse.Namespace(recipe=str(RELEASE_DIR / "release.json"), out=tmp_path, retune=True, evaluate_only=False)
    assert chosen_recipe(other) == REAL_RECIPE  # --recipe wins


def test_the_recorded_recipe_is_read_from_the_manifest_the_release_module_names(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The command spelt "release.json" itself: a release whose manifest the release module names otherwise was not
    found, and --retune fell back to the built-in recipe."""
    import argparse

    import training.release
    from dermassist.commands.release import chosen_recipe
    from training.pipeline import SYNTHETIC_RECIPE
    from training.release import update_release

    monkeypatch.setattr(training.release, "MANIFEST", "manifest.json")
    update_release(tmp_path, {"recipe": {k: list(v) if isinstance(v, tuple) else v
                                         for k, v in SYNTHETIC_RECIPE.__dict__.items()}})
    assert (tmp_path / "manifest.json").is_file()
    assert chosen_recipe(argparse.Namespace(recipe=None, out=tmp_path, retune=True, evaluate_only=False)) == SYNTHETIC_RECIPE


def test_a_recipe_flag_given_last_without_its_value_gives_none() -> None:
    from training.release import recipe_flag

    assert recipe_flag(["--refer-safety"], "--refer-safety") is None
    assert recipe_flag(["--refer-safety", "0.9", "--refer-safety"], "--refer-safety") == "0.9"  # the last with a value
    assert recipe_flag(["--epochs", "3", "--refer-safety=0.8", "--refer-safety"], "--refer-safety") == "0.8"


def test_no_evaluation_only_image_is_in_any_split_of_the_shipped_release(shared_data: Path) -> None:
    """The model card says the evaluation-only samples share no image with any split: held here by image id (and, for
    the HAM10000 sample, by lesion id), not by the folder a split row names."""
    import csv

    from training.release import RELEASE_DIR

    release = read_release(RELEASE_DIR)
    with (shared_data / "ham10000_sample" / "HAM10000_metadata.csv").open(newline="") as f:
        ham = list(csv.DictReader(f))
    with (shared_data / "isic2019_sample" / "ISIC_2019_Training_GroundTruth.csv").open(newline="") as f:
        isic2019 = {row["image"] for row in csv.DictReader(f)}
    evaluation_only = {row["image_id"] for row in ham} | isic2019
    lesions = {row["lesion_id"] for row in ham}
    for model, relative in release["data"]["splits"].items():
        manifest = json.loads((RELEASE_DIR / relative).read_text())
        rows = [row for split in manifest.values() if isinstance(split, list) for row in split]
        assert rows and not {row["image_id"] for row in rows} & evaluation_only, model
        assert not {row.get("lesion_id") for row in rows} & lesions, model


def test_a_missing_data_folder_is_told_where_the_real_sets_are_only_when_they_are_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkout not beside shared/ was told "the real sets are in <a folder that does not exist>"."""
    import training.pipeline as pipeline
    from training.errors import TrainingConfigError

    monkeypatch.setattr(pipeline, "SHARED_DATA", tmp_path / "shared" / "data")
    with pytest.raises(TrainingConfigError, match="which is not there: pass --data /path/to/shared/data"):
        pipeline.BuildConfig(data=tmp_path, out=tmp_path / "out", runs=tmp_path / "runs")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    with pytest.raises(TrainingConfigError, match=f"the real sets are in {tmp_path / 'shared' / 'data'};"):
        pipeline.BuildConfig(data=tmp_path, out=tmp_path / "out", runs=tmp_path / "runs")


def test_a_release_built_before_the_second_lesion_limits_were_recorded_exports_as_it_served() -> None:
    """A site's release from before they were recorded was refused everywhere (its export, its card): absent, they
    are the defaults it was served with; any other missing value is still refused."""
    from preprocess.triage import TriageParams
    from training.classifier.stage import retuned_triage
    from training.release import TRIAGE_ADDED_LATER, ReleaseError, recorded_triage

    older = {"triage": {"values": {"refer_threshold": 0.066, "ood_limit": 1.0, "refer_when_not_assessable": True}}}
    assert recorded_triage(older) == TriageParams(0.066, 1.0, True)
    assert set(TRIAGE_ADDED_LATER) <= set(TriageParams().as_dict())
    own = {"triage": {"values": {**older["triage"]["values"], "other_lesion_min_fraction": 0.05,
                                 "other_lesion_min_share": 0.5}}}
    assert recorded_triage(own) == TriageParams(0.066, 1.0, True, 0.05, 0.5)  # recorded values win
    with pytest.raises(ReleaseError, match="missing \\['refer_threshold'\\]"):
        recorded_triage({"triage": {"values": {"ood_limit": 1.0, "refer_when_not_assessable": True}}})
    # a re-tune re-fits the threshold alone: the release's own limits stay
    refit = TriageParams(refer_threshold=0.05)
    assert retuned_triage(own, refit) == TriageParams(0.05, 1.0, True, 0.05, 0.5)
    assert retuned_triage({}, refit) == refit  # a release with no triage values yet takes the fit whole
