"""Reader for the ISIC 2016, 2017 and 2018 lesion segmentation folders (images + binary masks)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from preprocess.contract import CLASS_CODES

from ..errors import MaskMismatchError, MissingFolderError, UnknownLabelError
from ..records import Dataset, Sample
from .common import list_images, list_masks, pair_masks, read_csv

logger = logging.getLogger(__name__)

SPLIT_NAMES = {"Training": "train", "Validation": "val", "Test": "test"}


@dataclass(frozen=True)
class SegLayout:
    """Folder naming of one challenge year: format strings taking the split word."""

    name: str
    images: str
    masks: str
    mask_suffix: str
    labels_csv: str | None = None


LAYOUTS = (
    SegLayout("isic2018", "ISIC2018_Task1-2_{}_Input", "ISIC2018_Task1_{}_GroundTruth", "_segmentation.png"),
    SegLayout(
        "isic2017",
        "ISIC-2017_{}_Data",
        "ISIC-2017_{}_Part1_GroundTruth",
        "_segmentation.png",
        "ISIC-2017_{}_Part3_GroundTruth.csv",
    ),
    SegLayout("isic2016", "ISBI2016_ISIC_Part1_{}_Data", "ISBI2016_ISIC_Part1_{}_GroundTruth", "_Segmentation.png"),
)


def detect_segmentation_layout(root: Path) -> SegLayout | None:
    """The layout whose Training (or any split's) image folder exists under ``root``, else None."""
    for layout in LAYOUTS:
        if any((root / layout.images.format(word)).is_dir() for word in SPLIT_NAMES):
            return layout
    return None


PART3_COLUMNS = ("image_id", "melanoma", "seborrheic_keratosis")


def _part3_labels(path: Path) -> dict[str, int]:
    """ISIC 2017 Part 3 labels: melanoma -> MEL, seborrheic keratosis -> BKL, otherwise NV."""
    mel, bkl, nv = (CLASS_CODES.index(c) for c in ("MEL", "BKL", "NV"))
    header, rows = read_csv(path)
    missing = [c for c in PART3_COLUMNS if c not in header]
    if missing:
        raise UnknownLabelError(
            f"{path}: columns {missing} are missing; expected {','.join(PART3_COLUMNS)} (the official ISIC 2017 Part 3 "
            f"ground truth), got {header}: restore the column names"
        )
    out: dict[str, int] = {}
    for line, row in rows:
        flags = {}
        for column in PART3_COLUMNS[1:]:
            try:
                flags[column] = float(row[column] or 0) >= 0.5
            except ValueError as e:
                raise UnknownLabelError(
                    f"{path} line {line} ({row['image_id']}): column {column} holds {row[column]!r}; expected a number, "
                    "1 or 0 (empty counts as 0): fix the row or remove it"
                ) from e
        out[row["image_id"].strip()] = mel if flags["melanoma"] else bkl if flags["seborrheic_keratosis"] else nv
    return out


def read_isic_segmentation(root: Path) -> Dataset:
    """Read every split folder present (Training/Validation/Test); each image must have a same-size mask."""
    root = Path(root)
    layout = detect_segmentation_layout(root)
    if layout is None:
        raise MissingFolderError(
            f"{root} has no ISIC segmentation image folder; expected e.g. "
            f"{LAYOUTS[0].images.format('Training')}/ or {LAYOUTS[1].images.format('Training')}/"
        )
    splits: dict[str, tuple[Sample, ...]] = {}
    unlabelled: list[Path] = []
    for word, split in SPLIT_NAMES.items():
        image_dir = root / layout.images.format(word)
        if not image_dir.is_dir():
            continue
        mask_dir = root / layout.masks.format(word)
        if not mask_dir.is_dir():
            raise MaskMismatchError(
                f"images folder {image_dir.name} has no mask folder; expected {mask_dir} beside it"
            )
        images = list_images(image_dir)
        masks = pair_masks(images, list_masks(mask_dir, layout.mask_suffix), str(image_dir), strict=True)
        labels: dict[str, int] = {}
        if layout.labels_csv and (root / layout.labels_csv.format(word)).is_file():
            labels = _part3_labels(root / layout.labels_csv.format(word))
            lonely = sorted(set(images) - set(labels))
            unlabelled += [images[i] for i in lonely]
            if lonely:
                logger.warning("%s: %d image(s) have no row in %s: segmentation only, no diagnosis, e.g. %s", root,
                               len(lonely), layout.labels_csv.format(word), lonely[0])
        samples = tuple(
            Sample(image_id, images[image_id], masks[image_id], labels.get(image_id), source=layout.name)
            for image_id in sorted(images)
        )
        if samples:
            splits[split] = samples
    all_samples = tuple(s for v in splits.values() for s in v)
    dataset = Dataset(layout.name, root, all_samples, splits=splits, unlabelled_images=tuple(unlabelled))
    logger.info("read %s: %s", layout.name, {k: len(v) for k, v in splits.items()})
    return dataset
