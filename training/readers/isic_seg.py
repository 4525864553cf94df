"""Reader for the ISIC 2016, 2017 and 2018 lesion segmentation folders (images + binary masks)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from preprocess.contract import CLASS_CODES

from ..errors import MaskMismatchError, MissingFolderError, UnknownLabelError
from ..records import Dataset, Sample
from .common import canonical_columns, image_stem, keep_label, list_images, list_masks, one_hot_set, pair_masks, read_csv

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
    """ISIC 2017 Part 3 labels: melanoma -> MEL, seborrheic keratosis -> BKL, neither -> NV. Both marked, a value other
    than 1 or 0, or an image listed twice with two diagnoses is refused (the first had been trained as MEL, the last row
    had won); an image id may carry its extension."""
    mel, bkl, nv = (CLASS_CODES.index(c) for c in ("MEL", "BKL", "NV"))
    header, rows = canonical_columns(path, *read_csv(path), PART3_COLUMNS)
    missing = [c for c in PART3_COLUMNS if c not in header]
    if missing:
        raise UnknownLabelError(
            f"{path}: columns {missing} are missing; expected {','.join(PART3_COLUMNS)} (the official ISIC 2017 Part 3 "
            f"ground truth), got {header}: restore the column names"
        )
    labels: dict[str, tuple[int, int]] = {}
    for line, row in rows:
        image_id = image_stem(row["image_id"])
        hot = [c for c in PART3_COLUMNS[1:] if one_hot_set(row[c], path, line, image_id, c)]
        if len(hot) > 1:
            raise UnknownLabelError(
                f"{path} line {line} ({image_id}): both melanoma and seborrheic_keratosis are 1; expected at most one "
                "(neither is a nevus): fix the row or remove it")
        keep_label(labels, image_id, mel if hot == ["melanoma"] else bkl if hot else nv, line, str(path))
    return {image_id: label for image_id, (label, _) in labels.items()}


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
            absent = sorted(set(labels) - set(images))
            if absent:
                logger.warning("%s: %s lists %d image(s) absent from %s, left out, e.g. %s", root,
                               layout.labels_csv.format(word), len(absent), image_dir.name, absent[0])
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
