"""Classifier sources: split sources are split on their own, training-only sources add their official Training split."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from preprocess.contract import CLASS_CODES
from training.classifier.run import classification_splits, official_training, pooled_splits
from training.errors import EmptyDatasetError, TrainingConfigError
from training.readers import read_dataset
from training.records import Dataset


@pytest.fixture(scope="module")
def sources(shared_data: Path) -> dict[str, Dataset]:
    """The three labelled real sets the classifier may train on, read once."""
    return {name: read_dataset(shared_data / name) for name in ("isic2018_task3", "ph2", "isic2017_seg_256")}


def _ids(samples) -> set[str]:
    return {s.image_id for s in samples}


def _csv_ids(path: Path, column: str) -> set[str]:
    with path.open(newline="") as f:
        return {row[column] for row in csv.DictReader(f)}


def test_official_training_takes_every_labelled_isic2017_training_image_and_no_validation_one(
        shared_data: Path, sources: dict[str, Dataset]) -> None:
    root = shared_data / "isic2017_seg_256"
    (only,) = official_training(sources["isic2017_seg_256"]).items()
    split, train = only
    with (root / "ISIC-2017_Training_Part3_GroundTruth.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    validation = _csv_ids(root / "ISIC-2017_Validation_Part3_GroundTruth.csv", "image_id")
    assert split == "train" and _ids(train) == {r["image_id"] for r in rows} and not _ids(train) & validation
    counts = Counter(CLASS_CODES[s.label] for s in train)
    melanomas = sum(float(r["melanoma"]) >= 0.5 for r in rows)
    keratoses = sum(float(r["seborrheic_keratosis"]) >= 0.5 and float(r["melanoma"]) < 0.5 for r in rows)
    assert counts == {"MEL": melanomas, "BKL": keratoses, "NV": len(rows) - melanomas - keratoses}


@pytest.mark.parametrize("name", ["ph2", "isic2018_task3"])
def test_a_source_without_an_official_training_split_cannot_be_training_only(sources: dict[str, Dataset],
                                                                            name: str) -> None:
    with pytest.raises(EmptyDatasetError, match=f"{name[:4]}.*no labelled official Training split.*--data"):
        official_training(sources[name])


def test_training_only_sources_leave_validation_and_test_as_the_split_sources_alone_give(
        shared_data: Path, sources: dict[str, Dataset]) -> None:
    task3, ph2, isic2017 = sources.values()
    alone = pooled_splits((task3, ph2), seed=0)
    pooled = pooled_splits((task3, ph2), (isic2017,), seed=0)
    assert _ids(pooled["val"]) == _ids(alone["val"]) and _ids(pooled["test"]) == _ids(alone["test"])
    added = _ids(pooled["train"]) - _ids(alone["train"])
    assert _ids(alone["train"]) <= _ids(pooled["train"]) and added == _ids(isic2017.splits["train"])
    per_source = [classification_splits(d, 0) for d in (task3, ph2)]
    assert _ids(alone["test"]) == _ids(per_source[0]["test"]) | _ids(per_source[1]["test"])
    evaluation_only = (_csv_ids(shared_data / "ham10000_sample" / "HAM10000_metadata.csv", "image_id")
                       | _csv_ids(shared_data / "isic2019_sample" / "ISIC_2019_Training_GroundTruth.csv", "image"))
    assert not _ids(pooled["train"]) & evaluation_only


def test_one_dataset_cannot_be_both_split_and_training_only(sources: dict[str, Dataset]) -> None:
    isic2017 = sources["isic2017_seg_256"]
    with pytest.raises(TrainingConfigError, match="different dataset.*isic2017.*isic2017"):
        pooled_splits((isic2017,), (isic2017,), seed=0)
