"""Reader for a site's own folder: ``labels.csv`` (an image column and a diagnosis column), images anywhere under it.

The generic layout, for the folders a hospital has rather than a public dataset's: it is read only when no public
layout matches (``read_dataset`` tries those first). Diagnoses are the contract's (``preprocess.contract.CLASSES``):
a class code (``MEL``), a HAM10000 dx code (``mel``) or a class name (``Melanoma``), in any case.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from preprocess.contract import CLASSES

from ..errors import MissingFolderError, UnknownLabelError
from ..records import Dataset
from .common import ImageIndex, LabelRow, labelled_dataset, list_images, read_csv, separator_hint
from .diagnoses import WORD_TO_INDEX, UnknownValues, likely_classes, lines_phrase, normal_word, unknown_values_phrase

logger = logging.getLogger(__name__)

LABELS_CSV = "labels.csv"
#: The dataset name of the layout (evaluate tells the layout by it); a training run that pools several such folders
#: names each after its folder (``site_source_name``).
LAYOUT = "labels_csv"
#: The names an image column and a diagnosis column may have (any case); exactly one of each.
IMAGE_COLUMNS = ("image", "image_id", "file", "filename")
DIAGNOSIS_COLUMNS = ("diagnosis", "label", "dx", "class")
#: Optional: the lesion each image shows, so that a training split keeps one lesion's images together.
LESION_COLUMN = "lesion_id"
#: One line for messages: what the smallest such folder holds.
EXAMPLE = f"a {LABELS_CSV} whose first lines are `filename,diagnosis` and `P001.jpg,melanoma`"


def detect_labels_csv(root: Path) -> bool:
    """True when ``root`` holds a ``labels.csv`` (the generic layout, read when no public layout matches)."""
    return (Path(root) / LABELS_CSV).is_file()


def site_source_name(root: Path, parts: int = 1) -> str:
    """The name a pooled training run gives one of several ``labels.csv`` folders: ``labels_csv:<the last ``parts``
    parts of its path>`` (``labels_csv:clinic_a``, or ``labels_csv:clinic_b/2024`` where two folders end alike)."""
    resolved = Path(root).resolve()
    named = resolved.parts[1:] if resolved.anchor else resolved.parts  # the root ("/", "C:\\") names nothing
    return f"{LAYOUT}:{'/'.join(named[-parts:])}"


def _one_column(path: Path, header: Sequence[str], names: Sequence[str], what: str) -> str | None:
    """The single column of ``header`` named one of ``names`` (any case, spaces around ignored); None when there is
    none; an UnknownLabelError when several could be it (which one holds the values cannot be known)."""
    found = [c for c in header if c.strip().lower() in names]
    if len(found) > 1:
        raise UnknownLabelError(f"{path}: columns {found} could each be the {what} column; expected one column named "
                                f"{', '.join(names)}: rename or remove the others")
    return found[0] if found else None


def _diagnosis_hint(value: str) -> str:
    """What an unknown diagnosis value likely means, for the error listing them."""
    if not value.strip():
        return "empty: fill in the diagnosis or remove the row"
    named = [f"{CLASSES[i].code} ({CLASSES[i].name})" for i in likely_classes(value)]
    if not named:
        return "no class of the model found: label it with one of the classes, or remove the row"
    return f"likely {named[0]}" if len(named) == 1 else f"ambiguous: could be {' or '.join(named)}"


def accepted_values() -> str:
    """The diagnosis values the layout reads, for messages and the README: codes, HAM10000 codes and names."""
    return (f"a class code ({', '.join(c.code for c in CLASSES)}), a HAM10000 dx code "
            f"({', '.join(c.ham_dx for c in CLASSES if c.ham_dx)}) or a class name "
            f"({', '.join(c.name for c in CLASSES)}), in any case")


def read_labels_csv(root: Path) -> Dataset:
    """Read the generic layout: ``labels.csv`` names each image (its file name, with or without the extension, or its
    path from ``root``: ``common.ImageIndex``) and its diagnosis; the images lie anywhere under ``root``. Every
    diagnosis that names no class, or names one only ambiguously, is refused at once with its rows; images listed
    but absent, and images no row names, are counted as in the HAM10000 layout."""
    root = Path(root)
    path = root / LABELS_CSV
    if not path.is_file():
        raise MissingFolderError(f"label file {path} does not exist; expected {EXAMPLE}")
    header, rows = read_csv(path)
    image_column = _one_column(path, header, IMAGE_COLUMNS, "image")
    diagnosis_column = _one_column(path, header, DIAGNOSIS_COLUMNS, "diagnosis")
    lesion_column = _one_column(path, header, (LESION_COLUMN,), "lesion")
    if image_column is None or diagnosis_column is None:
        missing = [what for what, c in (("image", image_column), ("diagnosis", diagnosis_column)) if c is None]
        raise UnknownLabelError(
            f"{path}: no {' and no '.join(missing)} column, got {header}; expected an image "
            f"column named {', '.join(IMAGE_COLUMNS)} and a diagnosis column named {', '.join(DIAGNOSIS_COLUMNS)} (any "
            f"case; e.g. {EXAMPLE}){separator_hint(header)}: rename the column(s)")
    labels: list[LabelRow] = []
    unknown = UnknownValues()
    nameless: list[int] = []
    for line, row in rows:
        if not row[image_column].strip():
            nameless.append(line)
            continue
        label = WORD_TO_INDEX.get(normal_word(row[diagnosis_column]))
        if label is None:
            unknown.add(row[diagnosis_column], line)
            continue
        labels.append(LabelRow(line, row[image_column], label, row[lesion_column] if lesion_column else ""))
    if nameless:
        raise UnknownLabelError(f"{path}: {lines_phrase(nameless)} have no image name in column {image_column!r}; "
                                "expected the image file's name in every row: fill it in or remove the row(s)")
    if unknown:
        raise UnknownLabelError(
            f"{path}: {len(unknown.found())} diagnosis value(s) in {unknown.rows} row(s) in column {diagnosis_column!r} "
            f"name no class of the model: {unknown_values_phrase(unknown.found(), _diagnosis_hint)}; "
            f"expected {accepted_values()}: put the class meant in each row (or remove the rows of images of other "
            "diagnoses), then run again")
    images = list_images(root, any_name=True)
    return labelled_dataset(LAYOUT, root, labels, ImageIndex(images, root), LABELS_CSV, log=logger)
