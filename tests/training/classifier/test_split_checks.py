"""What the classifier's data preparation says about data too small to split and classes it has no image of."""
from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import pytest

from training.classifier.run import prepare_data
from training.errors import EmptyDatasetError

HAM = "ham10000"
METADATA = "HAM10000_metadata.csv"


def _ham_subset(synthetic_set: Path, root: Path, keep) -> Path:
    """A HAM10000-layout copy of the synthetic set holding only the metadata rows ``keep`` accepts (and their images)."""
    source = synthetic_set / HAM
    with open(source / METADATA, newline="") as f:
        rows = [row for row in csv.DictReader(f) if keep(row)]
    folder = root / HAM
    (folder / "HAM10000_images_part_1").mkdir(parents=True)
    for row in rows:
        (image,) = source.glob(f"HAM10000_images_part_*/{row['image_id']}.jpg")
        shutil.copy(image, folder / "HAM10000_images_part_1" / image.name)
    with open(folder / METADATA, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


def test_data_too_small_to_split_says_how_much_it_holds_and_what_is_needed(tmp_path: Path, synthetic_set: Path) -> None:
    kept: list[dict] = []
    folder = _ham_subset(synthetic_set, tmp_path, lambda row: len(kept) < 4 and not kept.append(row))
    lesions = len({row["lesion_id"] for row in kept})
    with pytest.raises(EmptyDatasetError, match=rf"4 labelled images of {lesions} lesions are too few to split by lesion "
                                                 r"\(a class reaches validation and test only with at least 3 lesions"):
        prepare_data(folder, seed=0, full_image=True, progress=False)


def test_a_class_without_training_images_is_named(tmp_path: Path, synthetic_set: Path, caplog) -> None:
    folder = _ham_subset(synthetic_set, tmp_path, lambda row: row["dx"] != "vasc")
    with caplog.at_level(logging.WARNING, logger="training.classifier.data"):
        prepare_data(folder, seed=0, full_image=True, progress=False)
    warned = [r.getMessage() for r in caplog.records if "has no image of class" in r.getMessage()]
    assert any(m.startswith("the train split") and "VASC" in m for m in warned), warned
