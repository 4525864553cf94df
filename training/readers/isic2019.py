"""Reader for ISIC 2019: ``ISIC_2019_Training_Input/`` and the one-hot ground truth CSV."""
from __future__ import annotations

import csv
import logging
from pathlib import Path

from preprocess.contract import CLASSES

from ..errors import MissingFolderError, UnknownLabelError
from ..records import Dataset, Sample
from .common import hot_columns, list_images, require_dir

logger = logging.getLogger(__name__)

ISIC2019_GROUND_TRUTH = "ISIC_2019_Training_GroundTruth.csv"
ISIC2019_IMAGES = "ISIC_2019_Training_Input"
ISIC2019_METADATA = "ISIC_2019_Training_Metadata.csv"
COLUMN_TO_INDEX = {c.isic2019_column: c.index for c in CLASSES}
UNK = "UNK"


def read_isic2019_labels(path: Path) -> tuple[dict[str, int], int]:
    """Return (image -> class index, number of UNK rows skipped) from the one-hot CSV."""
    path = Path(path)
    if not path.is_file():
        raise MissingFolderError(f"ISIC 2019 ground truth {path} does not exist; expected {ISIC2019_GROUND_TRUTH}")
    labels: dict[str, int] = {}
    unknown = 0
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = [c for c in (reader.fieldnames or []) if c != "image"]
        extra = sorted(set(columns) - set(COLUMN_TO_INDEX) - {UNK})
        if extra or not set(COLUMN_TO_INDEX) <= set(columns):
            raise UnknownLabelError(
                f"{path.name}: columns {columns} do not match the contract; expected image,"
                f"{','.join(COLUMN_TO_INDEX)},{UNK} (unexpected {extra})"
            )
        for line, row in enumerate(reader, start=2):
            hot = hot_columns(row, columns, path, line)
            if hot == [UNK]:
                unknown += 1
                continue
            if len(hot) != 1:
                raise UnknownLabelError(
                    f"{path.name} line {line} ({row['image']}): expected exactly one class set to 1, got {hot or 'none'}"
                )
            labels[row["image"].strip()] = COLUMN_TO_INDEX[hot[0]]
    return labels, unknown


def _lesion_ids(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        return {r["image"]: r["lesion_id"] for r in csv.DictReader(f) if r.get("lesion_id")}


def read_isic2019(root: Path) -> Dataset:
    """Read ISIC 2019; UNK rows are skipped and counted, absent images counted, lesion ids used if known."""
    root = Path(root)
    labels, unknown = read_isic2019_labels(root / ISIC2019_GROUND_TRUTH)
    images = list_images(require_dir(root / ISIC2019_IMAGES, "ISIC 2019 image"))
    lesions = _lesion_ids(root / ISIC2019_METADATA)
    samples = []
    missing = []
    for image_id in sorted(labels):
        if image_id not in images:
            missing.append(image_id)
            continue
        samples.append(Sample(image_id, images[image_id], None, labels[image_id], lesions.get(image_id), "isic2019"))
    if unknown:
        logger.info("%s: skipped %d UNK row(s)", root, unknown)
    if missing:
        logger.warning("%s: %d image(s) in the ground truth are absent on disk", root, len(missing))
    return Dataset("isic2019", root, tuple(samples), missing_images=tuple(missing), skipped_unknown=unknown)
