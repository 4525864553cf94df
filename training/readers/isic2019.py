"""Reader for ISIC 2019: ``ISIC_2019_Training_Input/`` and the one-hot ground truth CSV."""
from __future__ import annotations

import logging
from pathlib import Path

from preprocess.contract import CLASSES

from ..errors import DuplicateImageError, MissingFolderError, UnknownLabelError
from ..records import Dataset, Sample
from .common import (
    ImageIndex,
    canonical_columns,
    hot_columns,
    image_key,
    keep_label,
    list_images,
    nfc,
    read_csv,
    require_dir,
    warn_left_out,
)

logger = logging.getLogger(__name__)

ISIC2019_GROUND_TRUTH = "ISIC_2019_Training_GroundTruth.csv"
ISIC2019_IMAGES = "ISIC_2019_Training_Input"
ISIC2019_METADATA = "ISIC_2019_Training_Metadata.csv"
COLUMN_TO_INDEX = {c.isic2019_column: c.index for c in CLASSES}
UNK = "UNK"


def read_isic2019_labels(path: Path) -> tuple[dict[str, int], tuple[str, ...], tuple[str, ...]]:
    """(image -> class index, the image names of the UNK rows skipped, image ids listed again with the same class) from the
    one-hot CSV. A class column the CSV lacks (a site with fewer classes) counts as 0 for every row. Column names are
    read in any case and with spaces around them (``Image``, `` mel``); image names in Unicode normal form C
    (``common.nfc``)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFolderError(f"ISIC 2019 ground truth {path} does not exist; expected {ISIC2019_GROUND_TRUTH}")
    labels: dict[str, tuple[int, int]] = {}
    repeated: list[str] = []
    unknown: list[str] = []
    header, rows = canonical_columns(path, *read_csv(path), ("image", *COLUMN_TO_INDEX, UNK))
    columns = [c for c in header if c in COLUMN_TO_INDEX or c == UNK]
    ignored = [c for c in header if c != "image" and c not in columns]
    if "image" not in header or not set(columns) & set(COLUMN_TO_INDEX):
        raise UnknownLabelError(
            f"{path.name}: columns {header} do not match the contract; expected an image column and class "
            f"columns among {','.join(COLUMN_TO_INDEX)},{UNK} (a class the site does not have may be left out; "
            "other columns are ignored): restore the column names"
        )
    if ignored:
        logger.info("%s: columns %s are not classes of the contract and are ignored", path.name, ignored)
    absent = [c for c in COLUMN_TO_INDEX if c not in columns]
    if absent:
        logger.info("%s: no column for %s: counted as 0 for every row", path.name, ",".join(absent))
    for line, row in rows:
        hot = hot_columns(row, columns, path, line)
        if hot == [UNK]:
            unknown.append(nfc(row["image"].strip()))
            continue
        if len(hot) != 1:
            hint = f" (columns {ignored} are not classes and were ignored)" if ignored and not hot else ""
            raise UnknownLabelError(
                f"{path.name} line {line} ({row['image']}): expected exactly one class set to 1, got {hot or 'none'}"
                f"{hint}: fix the row or remove it"
            )
        image_id = nfc(row["image"].strip())
        if not keep_label(labels, image_id, COLUMN_TO_INDEX[hot[0]], line, path.name):
            repeated.append(image_id)
    return {image_id: label for image_id, (label, _) in labels.items()}, tuple(unknown), tuple(repeated)


def _lesion_ids(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    header, rows = canonical_columns(path, *read_csv(path), ("image", "lesion_id"))
    missing = [name for name in ("image", "lesion_id") if name not in header]
    if missing:  # read as no lesion ids: pictures of one lesion could then be split apart, so it is said
        logger.warning("%s: no %s column (columns %s): its lesion ids are not read, and each image counts as its own "
                       "lesion; name the columns image and lesion_id", path, " or ".join(missing), header)
        return {}
    return {nfc(r["image"].strip()): r["lesion_id"].strip() for _, r in rows
            if r.get("image") and (r.get("lesion_id") or "").strip()}


def read_isic2019(root: Path) -> Dataset:
    """Read ISIC 2019; UNK rows are skipped and counted, absent images counted, images on disk without a row counted
    and named, lesion ids used if known. A row names its image by its file name, with or without the extension
    (``P001.jpg`` or ``P001``), or by its path from ``root`` (``ISIC_2019_Training_Input/P001.jpg``); names match in
    any Unicode form (``common.ImageIndex``)."""
    root = Path(root)
    labels, unknown, repeated = read_isic2019_labels(root / ISIC2019_GROUND_TRUTH)
    images = list_images(require_dir(root / ISIC2019_IMAGES, "ISIC 2019 image"), any_name=True)
    index = ImageIndex(images, root)
    lesions = _lesion_ids(root / ISIC2019_METADATA)
    samples = []
    missing = []
    near: dict[str, str] = {}
    labelled: dict[str, str] = {}  # image id -> the name its row gave it
    for listed in sorted(labels):
        path = index.find(listed)
        if path is None:
            missing.append(listed)
            if (hint := index.near_miss(listed)) is not None:
                near[listed] = hint
            continue
        image_id = image_key(path)
        if image_id in labelled:
            raise DuplicateImageError(f"{ISIC2019_GROUND_TRUTH}: {path.name} is listed twice (as {labelled[image_id]} and "
                                      f"as {listed}); expected one row per image: remove one")
        labelled[image_id] = listed
        samples.append(Sample(image_id, path, None, labels[listed], lesions.get(listed) or lesions.get(image_id),
                              "isic2019"))
    unknown_paths = {path for listed in unknown if (path := index.find(listed)) is not None}
    unlabelled = tuple(p for image_id, p in sorted(images.items()) if image_id not in labelled and p not in unknown_paths)
    if unknown:
        logger.info("%s: skipped %d UNK row(s)", root, len(unknown))
    warn_left_out(logger, root, ISIC2019_GROUND_TRUTH, index, missing, near, unlabelled)
    if repeated:
        logger.warning("%s: %d image(s) listed again with the same class were read once", root, len(repeated))
    return Dataset("isic2019", root, tuple(samples), missing_images=tuple(missing), skipped_unknown=len(unknown),
                   unknown_images=tuple(sorted(unknown_paths - {s.image_path for s in samples})),
                   duplicate_rows=repeated, unlabelled_images=unlabelled, near_misses=near,
                   missing_labels={listed: labels[listed] for listed in missing})
