"""Reader for the HAM10000 layout: metadata CSV, images in one or more folders, optional masks."""
from __future__ import annotations

import logging
from pathlib import Path

from preprocess.contract import CLASS_CODES, CLASSES

from ..errors import MissingFolderError, UnknownLabelError
from ..records import Dataset
from .common import (
    ImageIndex,
    LabelRow,
    Rows,
    canonical_columns,
    labelled_dataset,
    list_images,
    list_masks,
    pair_masks,
    read_csv,
    separator_hint,
)
from .diagnoses import UnknownValues, likely_classes, normal_word, unknown_values_phrase
from .isic2019 import COLUMN_TO_INDEX, ISIC2019_GROUND_TRUTH, ISIC2019_IMAGES, read_isic2019_labels
from .labels_csv import LABELS_CSV

logger = logging.getLogger(__name__)

HAM_METADATA = "HAM10000_metadata.csv"
HAM_IMAGE_PREFIX = "HAM10000_images"
HAM_MASKS = "HAM10000_segmentations_lesion_tschandl"
HAM_MASK_SUFFIX = "_segmentation.png"
HAM_COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
#: What the reader needs: the image and its diagnosis. ``lesion_id`` (the lesion an image shows) is read where present:
#: evaluation does not need it; a training split does (LESION_WHY).
HAM_REQUIRED = ("image_id", "dx")
LESION_WHY = ("a training split keeps each lesion's images in one split (HAM10000 holds several pictures of many "
              "lesions): without lesion ids, pictures of one lesion can land in both training and test and make the test "
              "figures optimistic")
DX_TO_INDEX = {c.ham_dx: c.index for c in CLASSES if c.ham_dx is not None}
AK = CLASS_CODES.index("AK")  # HAM10000's akiec (actinic keratosis and intraepithelial carcinoma) is counted as AK
SCC = CLASS_CODES.index("SCC")  # what ISIC 2019 calls the akiec images that are invasive squamous cell carcinoma


def dx_to_label(dx: str, where: str) -> int:
    """Map a HAM10000 ``dx`` code (any case) to its contract class index (akiec -> AK)."""
    try:
        return DX_TO_INDEX[normal_word(dx)]
    except KeyError:
        raise UnknownLabelError(f"{where}: dx {dx!r} is not a HAM10000 diagnosis code ({_dx_hint(dx)}); expected one of "
                                f"{', '.join(DX_TO_INDEX)} (any case): fix the metadata row") from None


def _dx_hint(value: str) -> str:
    """What an unknown dx value likely means, for ``unknown_dx_message``."""
    if not value.strip():
        return "empty: fill in the diagnosis or remove the row"
    named = [f"{CLASSES[i].ham_dx} ({CLASSES[i].name})" if CLASSES[i].ham_dx else
             f"{CLASSES[i].code} ({CLASSES[i].name}), not a class of this layout" for i in likely_classes(value)]
    if not named:
        return "no HAM10000 code found"
    return ("likely " if len(named) == 1 else "could be ") + " or ".join(named)


def unknown_dx_message(unknown: UnknownValues, where: str = HAM_METADATA) -> str:
    """The error for dx values that are no HAM10000 code: each with its rows and the code it likely means, and for a
    class the layout lacks (SCC) where such images can be labelled instead."""
    found = unknown.found()
    lacking = {CLASSES[i] for v in found for i in likely_classes(v)[:1] if CLASSES[i].ham_dx is None}
    message = (f"{where}: {len(found)} dx value(s) in {unknown.rows} row(s) are not HAM10000 diagnosis codes: "
               f"{unknown_values_phrase(found, _dx_hint)}; expected one of {', '.join(DX_TO_INDEX)} (any case)")
    for c in sorted(lacking, key=lambda c: c.index):
        message += (f". The HAM10000 layout has no {c.code} ({c.name}): its {CLASSES[AK].ham_dx} is counted as "
                    f"{CLASSES[AK].code} ({CLASSES[AK].name}), or told apart from {c.code} by an {ISIC2019_GROUND_TRUTH} "
                    f"beside it for the images that file lists; {c.code} is labelled by the ISIC 2019 layout "
                    f"({ISIC2019_GROUND_TRUTH}: an image column and one-hot class columns {','.join(COLUMN_TO_INDEX)}, "
                    f"images in {ISIC2019_IMAGES}/) or a {LABELS_CSV} folder (a diagnosis column reading {c.code})")
    fix = "put each image's HAM10000 code in its dx cell"
    if len(lacking) < len(found):
        fix += f" (a {LABELS_CSV} folder reads class names too)"
    if lacking:
        fix += f", and move the images of {', '.join(c.code for c in lacking)} to a layout that labels them"
    return f"{message}: {fix}, then run again"


def ham_labels(rows: Rows, where: str = HAM_METADATA) -> list[LabelRow]:
    """The label rows of a HAM10000 metadata (``read_ham_metadata``'s rows); every dx that is no HAM10000 code is
    named at once, with its rows and the code it likely means (``unknown_dx_message``)."""
    out: list[LabelRow] = []
    unknown = UnknownValues()
    for line, row in rows:
        label = DX_TO_INDEX.get(normal_word(row["dx"]))
        if label is None:
            unknown.add(row["dx"], line)
            continue
        out.append(LabelRow(line, row["image_id"], label, row.get("lesion_id", "")))
    if unknown:
        raise UnknownLabelError(unknown_dx_message(unknown, where))
    return out


def read_ham_metadata(path: Path) -> Rows:
    """(line number, row) of a HAM10000 metadata CSV, after checking its columns (any case: ``Image_ID`` is read as
    ``image_id``); fully empty rows are skipped. Without a ``lesion_id`` column each image counts as its own lesion,
    and a WARNING says why training wants it (LESION_WHY)."""
    if not path.is_file():
        raise MissingFolderError(f"HAM10000 metadata {path} does not exist; expected {HAM_METADATA} in the folder")
    header, rows = read_csv(path)
    header, rows = canonical_columns(path, header, rows, HAM_COLUMNS)
    missing = [c for c in HAM_REQUIRED if c not in header]
    if missing:
        optional = [c for c in HAM_COLUMNS if c not in HAM_REQUIRED]
        raise UnknownLabelError(
            f"{path}: required column(s) {missing} are missing, got {header}; expected {', '.join(HAM_REQUIRED)} "
            "(image_id: the image file's name, with or without its extension; dx: the HAM10000 diagnosis code; "
            "upper or lower case); "
            f"{', '.join(optional)} and any other columns are optional (lesion_id: the lesion each image shows, which "
            f"training needs: {LESION_WHY}){separator_hint(header)}: add the missing column(s)"
        )
    if "lesion_id" not in header:
        logger.warning("%s has no lesion_id column: each image counts as its own lesion. Evaluation does not need it, "
                       "but before training on this folder add it (the lesion each image shows; an empty cell: its own "
                       "lesion): %s", path, LESION_WHY)
    return rows


def isic2019_refinement(csv_path: Path) -> dict[str, int]:
    """image_id -> class index from an ISIC 2019 ground truth, to split HAM ``akiec`` into AK / SCC."""
    return read_isic2019_labels(csv_path)[0]


def refined(image_id: str, label: int, theirs: int | None, metadata: Path, isic2019_csv: Path | None) -> int:
    """``image_id``'s class: HAM's, with ``akiec`` (AK) made AK or SCC by the ISIC 2019 label ``theirs``. Any other
    disagreement is an UnknownLabelError naming both files: the two agree on every HAM10000 image, so one of them was
    edited (an ISIC 2019 row had turned an ``akiec`` image into MEL without a word)."""
    if theirs is None or theirs == label or (label == AK and theirs == SCC):
        return label if theirs is None else theirs
    raise UnknownLabelError(
        f"{image_id} is {CLASS_CODES[label]} in {metadata} but {CLASS_CODES[theirs]} in {isic2019_csv}; the ISIC 2019 "
        f"ground truth only tells an akiec image AK from SCC: fix the row that is wrong in one of them")


def read_ham(root: Path, isic2019_csv: Path | None = None) -> Dataset:
    """Read HAM10000: images listed in the metadata but absent on disk are counted, not fatal, and so are images on
    disk that no row lists. A row names its image by its file name, with or without the extension (``P001.jpg`` or
    ``P001``), or by its path from ``root`` (``HAM10000_images_part_1/P001.jpg``); names match in any Unicode form
    (``common.ImageIndex``).

    With ``isic2019_csv`` (or an ``ISIC_2019_Training_GroundTruth.csv`` in the folder) the ISIC 2019
    label replaces ``akiec``: it tells AK from SCC.
    """
    root = Path(root)
    rows = ham_labels(read_ham_metadata(root / HAM_METADATA))
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

    def relabel(image_id: str, label: int) -> int:
        return refined(image_id, label, refine.get(image_id), root / HAM_METADATA, isic2019_csv)

    return labelled_dataset("ham10000", root, rows, ImageIndex(images, root), HAM_METADATA, masks, relabel, logger)
