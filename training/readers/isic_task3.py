"""Reader for ISIC 2018 Task 3 (lesion diagnosis): ``ISIC2018_Task3_<Split>_Input/`` and the one-hot CSVs."""
from __future__ import annotations

import logging
from pathlib import Path

from preprocess.contract import CLASS_CODES

from ..errors import MissingFolderError, MissingImageError, UnknownLabelError
from ..records import Dataset, Sample
from .common import canonical_columns, hot_columns, keep_label, list_images, read_csv

logger = logging.getLogger(__name__)

TASK3_SPLITS = ("Training", "Validation", "Test")
TASK3_INPUT = "ISIC2018_Task3_{}_Input"
TASK3_GROUND_TRUTH = "ISIC2018_Task3_{}_GroundTruth"
# Task 3 column -> contract class code (AKIEC is actinic keratosis / intraepithelial carcinoma: AK).
TASK3_COLUMNS = {"MEL": "MEL", "NV": "NV", "BCC": "BCC", "AKIEC": "AK", "BKL": "BKL", "DF": "DF", "VASC": "VASC"}


def ground_truth_csv(root: Path, split: str) -> Path | None:
    """The ground-truth CSV of one split: in its ``..._GroundTruth/`` folder or beside the input folder."""
    name = TASK3_GROUND_TRUTH.format(split)
    for path in (root / name / f"{name}.csv", root / f"{name}.csv"):
        if path.is_file():
            return path
    return None


def detect_task3(root: Path) -> bool:
    """True when ``root`` holds at least one ISIC 2018 Task 3 input folder."""
    return any((Path(root) / TASK3_INPUT.format(split)).is_dir() for split in TASK3_SPLITS)


def read_task3_labels(path: Path) -> dict[str, int]:
    """image id -> contract class index from one Task 3 one-hot CSV (exactly one class per row)."""
    labels: dict[str, tuple[int, int]] = {}
    header, rows = canonical_columns(Path(path), *read_csv(Path(path)), ("image", *TASK3_COLUMNS))
    missing = [c for c in ("image", *TASK3_COLUMNS) if c not in header]
    if missing:
        raise UnknownLabelError(
            f"{path}: columns {missing} are missing; expected image,{','.join(TASK3_COLUMNS)} "
            f"(the official Task 3 ground truth), got {header}"
        )
    for line, row in rows:
        hot = hot_columns(row, TASK3_COLUMNS, path, line)
        if len(hot) != 1:
            raise UnknownLabelError(
                f"{path} line {line} ({row['image']}): expected exactly one of {','.join(TASK3_COLUMNS)} set to 1, "
                f"got {hot or 'none'}: fix the row or remove it"
            )
        keep_label(labels, row["image"].strip(), CLASS_CODES.index(TASK3_COLUMNS[hot[0]]), line, str(path))
    return {image_id: label for image_id, (label, _) in labels.items()}


def read_isic_task3(root: Path) -> Dataset:
    """Read every Task 3 split present; each needs its ground truth, and every listed image must exist.

    Images on disk that no ground truth lists are counted and named (``unlabelled_images``) and left out. The official
    split folders are pooled: the project makes its own stratified splits (no lesion ids are published).
    """
    root = Path(root)
    samples: list[Sample] = []
    unlabelled: list[Path] = []
    for split in TASK3_SPLITS:
        folder = root / TASK3_INPUT.format(split)
        if not folder.is_dir():
            continue
        csv_path = ground_truth_csv(root, split)
        if csv_path is None:
            name = TASK3_GROUND_TRUTH.format(split)
            raise MissingFolderError(
                f"{folder.name} has no ground truth; expected {name}/{name}.csv or {name}.csv in {root}"
            )
        labels = read_task3_labels(csv_path)
        images = list_images(folder)
        absent = sorted(set(labels) - set(images))
        if absent:
            raise MissingImageError(
                f"{csv_path.name} lists {len(absent)} image(s) absent from {folder}, e.g. {absent[0]}.jpg; "
                "copy the missing images there or remove their rows from the ground truth"
            )
        unlabelled += [images[i] for i in sorted(set(images) - set(labels))]
        samples += [Sample(i, images[i], None, labels[i], source="isic2018_task3") for i in sorted(labels)]
    if unlabelled:
        logger.warning("%s: %d image(s) have no ground-truth row and were left out, e.g. %s", root, len(unlabelled),
                       unlabelled[0].name)
    return Dataset("isic2018_task3", root, tuple(samples), unlabelled_images=tuple(unlabelled))
