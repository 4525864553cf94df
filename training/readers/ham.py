"""Reader for the HAM10000 layout: metadata CSV, images in one or more folders, optional masks."""
from __future__ import annotations

import logging
from pathlib import Path

from preprocess.contract import CLASS_CODES, CLASSES

from ..errors import MissingFolderError, UnknownLabelError
from ..records import Dataset, Sample
from .common import find_listed, keep_label, list_images, list_masks, near_miss, pair_masks, read_csv
from .isic2019 import ISIC2019_GROUND_TRUTH, read_isic2019_labels

logger = logging.getLogger(__name__)

HAM_METADATA = "HAM10000_metadata.csv"
HAM_IMAGE_PREFIX = "HAM10000_images"
HAM_MASKS = "HAM10000_segmentations_lesion_tschandl"
HAM_MASK_SUFFIX = "_segmentation.png"
HAM_COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
#: What the reader reads: the image, its diagnosis, and its lesion (a split keeps one lesion's images together).
HAM_REQUIRED = ("lesion_id", "image_id", "dx")
DX_TO_INDEX = {c.ham_dx: c.index for c in CLASSES if c.ham_dx is not None}


def dx_to_label(dx: str, where: str) -> int:
    """Map a HAM10000 ``dx`` code to its contract class index (akiec -> AK)."""
    try:
        return DX_TO_INDEX[dx.strip().lower()]
    except KeyError:
        raise UnknownLabelError(
            f"{where}: dx {dx!r} is not a HAM10000 diagnosis; expected one of {sorted(DX_TO_INDEX)}: "
            "fix the metadata row"
        ) from None


def read_ham_metadata(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a HAM10000 metadata CSV, after checking its columns; fully empty rows are skipped."""
    if not path.is_file():
        raise MissingFolderError(f"HAM10000 metadata {path} does not exist; expected {HAM_METADATA} in the folder")
    header, rows = read_csv(path)
    missing = [c for c in HAM_REQUIRED if c not in header]
    if missing:
        optional = [c for c in HAM_COLUMNS if c not in HAM_REQUIRED]
        raise UnknownLabelError(
            f"{path}: required column(s) {missing} are missing, got {header}; expected {', '.join(HAM_REQUIRED)} "
            "(image_id: the image file's name, with or without its extension; dx: the HAM10000 diagnosis code; "
            "lesion_id: the lesion it shows, so that a split keeps each lesion's images together: where unknown, leave "
            f"its cells empty and each image counts as its own lesion); {', '.join(optional)} and any other columns "
            "are optional and ignored: add the missing column(s)"
        )
    return rows


def isic2019_refinement(csv_path: Path) -> dict[str, int]:
    """image_id -> class index from an ISIC 2019 ground truth, to split HAM ``akiec`` into AK / SCC."""
    return read_isic2019_labels(csv_path)[0]


def read_ham(root: Path, isic2019_csv: Path | None = None) -> Dataset:
    """Read HAM10000: images listed in the metadata but absent on disk are counted, not fatal, and so are images on
    disk that no row lists. A row names its image with or without the extension (``P001.jpg`` or ``P001``).

    With ``isic2019_csv`` (or an ``ISIC_2019_Training_GroundTruth.csv`` in the folder) the ISIC 2019
    label replaces ``akiec``: it tells AK from SCC.
    """
    root = Path(root)
    rows = read_ham_metadata(root / HAM_METADATA)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(HAM_IMAGE_PREFIX))
    if not folders:
        raise MissingFolderError(
            f"{root} has {HAM_METADATA} but no image folder; expected {HAM_IMAGE_PREFIX}_part_1/ (and more)"
        )
    images = list_images(*folders, any_name=True)  # the metadata names the images
    masks: dict[str, Path] = {}
    if (root / HAM_MASKS).is_dir():
        masks = pair_masks(images, list_masks(root / HAM_MASKS, HAM_MASK_SUFFIX), HAM_MASKS, strict=False)
    if isic2019_csv is None and (root / ISIC2019_GROUND_TRUTH).is_file():
        isic2019_csv = root / ISIC2019_GROUND_TRUTH
    refine = isic2019_refinement(isic2019_csv) if isic2019_csv else {}
    ak = CLASS_CODES.index("AK")
    samples: list[Sample] = []
    missing: list[str] = []
    repeated: list[str] = []
    labels: dict[str, tuple[int, int]] = {}
    near: dict[str, str] = {}
    for line, row in rows:
        listed = row["image_id"].strip()
        path = find_listed(listed, images)
        image_id = path.stem if path is not None else listed
        label = dx_to_label(row["dx"], f"{HAM_METADATA} line {line} ({listed})")
        if label == ak and image_id in refine:
            label = refine[image_id]
        if not keep_label(labels, image_id, label, line, HAM_METADATA):
            repeated.append(image_id)
            continue
        if path is None:
            missing.append(image_id)
            if (hint := near_miss(listed, images)) is not None:
                near[listed] = hint
            continue
        samples.append(Sample(image_id, path, masks.get(image_id), label, row["lesion_id"].strip(), "ham10000"))
    unlabelled = tuple(p for image_id, p in sorted(images.items()) if image_id not in labels)
    if missing:
        logger.warning("%s: %d image(s) listed in %s are absent on disk, e.g. %s%s", root, len(missing), HAM_METADATA,
                       missing[0], f" ({near[missing[0]]})" if missing[0] in near else "")
    if unlabelled:
        logger.warning("%s: %d image(s) on disk have no row in %s and were left out, e.g. %s", root, len(unlabelled),
                       HAM_METADATA, unlabelled[0].name)
    if repeated:
        logger.warning("%s: %d image(s) listed again in %s with the same diagnosis were read once, e.g. %s", root,
                       len(repeated), HAM_METADATA, repeated[0])
    return Dataset("ham10000", root, tuple(samples), missing_images=tuple(missing), duplicate_rows=tuple(repeated),
                   unlabelled_images=unlabelled, near_misses=near)
