"""Reader for ISIC 2019: ``ISIC_2019_Training_Input/`` and the one-hot ground truth CSV."""
from __future__ import annotations

import csv
import logging
from pathlib import Path

from preprocess.contract import CLASSES

from ..errors import MissingFolderError, UnknownLabelError
from ..records import Dataset, Sample
from .common import CSV_ENCODING, hot_columns, keep_label, list_images, require_dir

logger = logging.getLogger(__name__)

ISIC2019_GROUND_TRUTH = "ISIC_2019_Training_GroundTruth.csv"
ISIC2019_IMAGES = "ISIC_2019_Training_Input"
ISIC2019_METADATA = "ISIC_2019_Training_Metadata.csv"
COLUMN_TO_INDEX = {c.isic2019_column: c.index for c in CLASSES}
UNK = "UNK"


def read_isic2019_labels(path: Path) -> tuple[dict[str, int], int, tuple[str, ...]]:
    """(image -> class index, number of UNK rows skipped, image ids listed again with the same class) from the
    one-hot CSV. A class column the CSV lacks (a site with fewer classes) counts as 0 for every row."""
    path = Path(path)
    if not path.is_file():
        raise MissingFolderError(f"ISIC 2019 ground truth {path} does not exist; expected {ISIC2019_GROUND_TRUTH}")
    labels: dict[str, tuple[int, int]] = {}
    repeated: list[str] = []
    unknown = 0
    with path.open(newline="", encoding=CSV_ENCODING) as f:
        reader = csv.DictReader(f)
        columns = [c for c in (reader.fieldnames or []) if c != "image"]
        extra = sorted(set(columns) - set(COLUMN_TO_INDEX) - {UNK})
        if extra or "image" not in (reader.fieldnames or []) or not set(columns) & set(COLUMN_TO_INDEX):
            raise UnknownLabelError(
                f"{path.name}: columns {reader.fieldnames} do not match the contract; expected image and class "
                f"columns among {','.join(COLUMN_TO_INDEX)},{UNK} (unexpected {extra or 'none'}; "
                "a class the site does not have may be left out)"
            )
        absent = [c for c in COLUMN_TO_INDEX if c not in columns]
        if absent:
            logger.info("%s: no column for %s: counted as 0 for every row", path.name, ",".join(absent))
        for line, row in enumerate(reader, start=2):
            hot = hot_columns(row, columns, path, line)
            if hot == [UNK]:
                unknown += 1
                continue
            if len(hot) != 1:
                raise UnknownLabelError(
                    f"{path.name} line {line} ({row['image']}): expected exactly one class set to 1, got {hot or 'none'}"
                )
            image_id = row["image"].strip()
            if not keep_label(labels, image_id, COLUMN_TO_INDEX[hot[0]], line, path.name):
                repeated.append(image_id)
    return {image_id: label for image_id, (label, _) in labels.items()}, unknown, tuple(repeated)


def _lesion_ids(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    with path.open(newline="", encoding=CSV_ENCODING) as f:
        return {r["image"]: r["lesion_id"] for r in csv.DictReader(f) if r.get("lesion_id")}


def read_isic2019(root: Path) -> Dataset:
    """Read ISIC 2019; UNK rows are skipped and counted, absent images counted, lesion ids used if known."""
    root = Path(root)
    labels, unknown, repeated = read_isic2019_labels(root / ISIC2019_GROUND_TRUTH)
    images = list_images(require_dir(root / ISIC2019_IMAGES, "ISIC 2019 image"), any_name=True)
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
    if repeated:
        logger.warning("%s: %d image(s) listed again with the same class were read once", root, len(repeated))
    return Dataset("isic2019", root, tuple(samples), missing_images=tuple(missing), skipped_unknown=unknown,
                   duplicate_rows=repeated)
