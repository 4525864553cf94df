"""Tiny training runs of both models, each in its own process, exported through the serving exports."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from dermassist.base.cpu import native_bfloat16, precision_name
from preprocess.contract import CLASS_CODES

from .conftest import run_python

SEG_KEYS = {"dice", "jaccard", "thresholded_jaccard"}
CLS_KEYS = {"accuracy", "macro_precision", "macro_recall", "macro_f1", "balanced_accuracy", "per_class_recall"}


@pytest.mark.slow
def test_tiny_segmenter_learns_exports_and_reimports(synthetic_set: Path, tmp_path: Path) -> None:
    out, repo = tmp_path / "seg", tmp_path / "repo"
    proc = run_python("-m", "training.segmenter.stage", "--data", str(synthetic_set / "isic2018"), "--out", str(out),
                      "--repository", str(repo), "--width", "0.0625", "--epochs", "3", "--batch-size", "8",
                      "--max-train-images", "40", "--lr", "5e-3", "--mixed-precision",
                      "--predict-masks", str(synthetic_set / "ham10000"), "--predict-out", str(tmp_path / "pred"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "segmenter_metrics.json").read_text())
    assert SEG_KEYS <= set(report["val"]) and SEG_KEYS <= set(report["val_at_default"])
    assert report["default_threshold"] == 0.35 and 0.0 < report["threshold"] < 1.0
    assert report["precision"] == precision_name(native_bfloat16())  # bfloat16 asked for, float32 without AVX-512
    loss = report["history"]["loss"]
    assert loss[-1] < loss[0], loss
    # quality on the held-out test split (validation chose the checkpoint and the threshold); tiny schedule: a low bar
    assert report["test"] and all(t["images"] > 0 and t["dice"] > 0.3 for t in report["test"].values()), report["test"]
    assert report["export"]["max_abs_diff"] <= 1e-5
    assert (repo / "lesion_segmenter" / "1" / "model.savedmodel" / "saved_model.pb").is_file()
    assert (repo / "lesion_crop" / "config.pbtxt").is_file()  # a new --repository path became a servable repository
    crop = json.loads((repo / "lesion_crop" / "1" / "tuned.json").read_text())
    assert crop["values"]["threshold"] == report["threshold"] and crop["figures"]["val"] == report["val"]
    assert out.name in crop["sources"]["threshold"]
    assert (out / "segmenter_curves.png").stat().st_size > 1000
    assert json.loads((out / "segmenter_split.json").read_text())["train"]
    predicted = sorted((tmp_path / "pred").glob("ISIC_*.png"))
    assert len(predicted) == 160
    assert report["predicted_masks"] == {"folder": str(tmp_path / "pred"), "count": 160}
    assert cv2.imread(str(predicted[0]), cv2.IMREAD_GRAYSCALE).shape == (256, 256)

    repo2 = tmp_path / "repo2"
    proc = run_python("-m", "dermassist.cli", "import", "--keras", str(out / "segmenter.keras"), "--repository", str(repo2))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (repo2 / "lesion_segmenter" / "1" / "model.savedmodel" / "saved_model.pb").is_file()


@pytest.mark.slow
def test_tiny_classifier_learns_and_exports(synthetic_set: Path, tmp_path: Path) -> None:
    out, repo = tmp_path / "cls", tmp_path / "repo"
    release = tmp_path / "release"
    args = ("-m", "training.classifier.stage", "--data", str(synthetic_set / "ham10000"), "--out", str(out),
            "--epochs", "3", "--low-res-epochs", "3", "--low-res", "64", "--batch-size", "16", "--lr", "3e-3")
    proc = run_python(*args, "--repository", str(repo), "--release", str(release))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "classifier_metrics.json").read_text())
    assert CLS_KEYS <= set(report["test"])
    assert set(report["test"]["per_class_recall"]) == set(CLASS_CODES)
    assert report["precision"] == precision_name(native_bfloat16())  # bfloat16 by default, float32 without AVX-512
    loss = report["history"]["loss"]
    assert loss[-1] < loss[0], loss
    # Learning shows on the augmented, label-smoothed training batches (0.31 -> 0.38 -> 0.46 here, with the
    # synthetic lens borders filled by prepare); the 26-image test split of a three-epoch, 64 px run sits at
    # chance and is only checked for shape above.
    accuracy, val_accuracy = report["history"]["accuracy"], report["history"]["val_accuracy"]
    assert accuracy[-1] > accuracy[0] + 0.1 and accuracy[-1] > accuracy[1], accuracy
    assert len(val_accuracy) == 3 and len(report["history"]["val_balanced_accuracy"]) == 3
    assert (repo / "lesion_classifier" / "1" / "model.pt").is_file()
    assert (repo / "lesion_classifier" / "labels.txt").read_text().split() == list(CLASS_CODES)
    tuned = report["tuned"]
    assert tuned["temperature"] > 0
    triage = json.loads((repo / "triage" / "1" / "tuned.json").read_text())["values"]
    assert triage["refer_threshold"] == pytest.approx(tuned["val"]["operating_point"]["threshold"])
    quality = json.loads((repo / "prepare" / "1" / "tuned.json").read_text())["values"]
    assert 0 < quality["min_brightness"] < quality["max_brightness"] < 255 and quality["min_sharpness"] > 0
    assert (out / "classifier_confusion.png").stat().st_size > 1000
    split = json.loads((out / "classifier_split.json").read_text())
    lesions = [{r["lesion_id"] for r in split[k]} for k in ("train", "val", "test")]
    assert not (lesions[0] & lesions[1] or lesions[0] & lesions[2] or lesions[1] & lesions[2])
    # re-tuning the released (float16) weights on the same splits gives back what training tuned
    trained = json.loads((release / "release.json").read_text())
    proc = run_python(*args, "--release", str(release), "--retune")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    retuned = json.loads((release / "release.json").read_text())
    assert retuned["classifier"]["temperature"] == pytest.approx(trained["classifier"]["temperature"], rel=1e-6)
    assert retuned["triage"]["values"]["refer_threshold"] == pytest.approx(
        trained["triage"]["values"]["refer_threshold"], rel=1e-6)
    assert retuned["classifier"]["figures"]["test"] == trained["classifier"]["figures"]["test"]  # training's, kept
    proc = run_python(*args, "--release", str(release), "--retune", "--seed", "5")
    assert proc.returncode != 0 and "differ from those recorded" in proc.stderr
