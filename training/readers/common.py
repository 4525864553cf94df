"""Helpers shared by the readers: image listing, header sizes, mask pairing and one-hot label rows."""
from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import (
    DuplicateImageError,
    LabelEncodingError,
    MaskMismatchError,
    MissingFolderError,
    UnknownLabelError,
    UnreadableImageError,
)

if TYPE_CHECKING:
    from preprocess.decode import Header

logger = logging.getLogger(__name__)

IMAGE_ID = re.compile(r"^(ISIC_\d{7})$")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")  # what the service accepts
#: Encoding of the label CSVs: UTF-8, with or without the byte-order mark spreadsheet programs write.
CSV_ENCODING = "utf-8-sig"


def read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(header, [(line number, row), ...]) of a label CSV in UTF-8 (with or without a byte-order mark); rows with
    every cell empty (a spreadsheet's trailing ``,,,,,,``) are skipped, missing cells read as empty.

    A file in another encoding is a LabelEncodingError rather than a guess: cp1252 would decode nearly any bytes,
    so a Mac Roman or Latin-9 file would be read with wrong names instead of refused.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode(CSV_ENCODING)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise LabelEncodingError(
            f"label file {path} is not UTF-8: byte 0x{data[e.start]:02x} on line {line} is not a UTF-8 character "
            "(it was probably saved by Excel as plain \"CSV\", in the Windows code page); expected UTF-8: open it "
            "and save it again as \"CSV UTF-8 (Comma delimited)\"") from e
    reader = csv.DictReader(io.StringIO(text, newline=""), restval="")
    rows = []
    for row in reader:
        if any((value or "").strip() for key, value in row.items() if key is not None):
            rows.append((reader.line_num, {k: v or "" for k, v in row.items() if k is not None}))
    return list(reader.fieldnames or []), rows


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` when it is a folder, else raise MissingFolderError naming ``what``."""
    if not path.is_dir():
        raise MissingFolderError(f"{what} folder {path} does not exist; expected it in the dataset layout")
    return path


def list_images(*folders: Path, any_name: bool = False) -> dict[str, Path]:
    """Map image ids (file stems) to their image files in one or more folders and their subfolders.

    Only ``ISIC_<7 digits>`` stems count (superpixel and other files are skipped) unless ``any_name``, for layouts
    whose label CSV names the images (a site's own names, e.g. ``P001``). One id naming two files (``x.jpg`` and
    ``x.png``, the same name in two subfolders or two folders) is a DuplicateImageError: which one is labelled
    cannot be known.
    """
    out: dict[str, Path] = {}
    found: list[Path] = []
    for folder in folders:
        found += [p for p in folder.iterdir() if p.is_file()]
        found += sorted(p for p in folder.rglob("*") if p.parent != folder and p.is_file() and not p.name.startswith("."))
    for p in found:
        if p.suffix.lower() in IMAGE_SUFFIXES and (any_name or IMAGE_ID.match(p.stem)):
            if p.stem in out:
                raise DuplicateImageError(
                    f"image id {p.stem} names two files, {out[p.stem]} and {p}; expected one file per id: "
                    "remove or rename one"
                )
            out[p.stem] = p
    return out


def keep_label(labels: dict[str, tuple[int, int]], image_id: str, label: int, line: int, where: str) -> bool:
    """Record ``image_id``'s label from CSV ``line``; False when an earlier row gave it the same label (the repeat is
    to be skipped), DuplicateImageError when it gave another one (which is right cannot be known)."""
    if image_id not in labels:
        labels[image_id] = (label, line)
        return True
    first_label, first_line = labels[image_id]
    if first_label != label:
        raise DuplicateImageError(
            f"{where}: lines {first_line} and {line} both list {image_id}, with different diagnoses; expected one row "
            "per image: keep the row with the right diagnosis and remove the other"
        )
    return False


def list_masks(folder: Path, suffix: str) -> dict[str, Path]:
    """Map image ids to mask files named ``<id><suffix>`` (e.g. ``_segmentation.png``); image files in the folder
    named otherwise (``<id>_mask.png``) are not masks of any image, and a WARNING names the folder, the pattern and one
    of them."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    masks = {p.name[: -len(suffix)]: p for p in files if p.name.endswith(suffix)}
    other = [p.name for p in files if not p.name.endswith(suffix) and p.suffix.lower() in IMAGE_SUFFIXES]
    if other:
        logger.warning("%s: %d of %d image file(s) are not named `<image_id>%s` and were not read as masks, e.g. %s; "
                       "rename them to `<image_id>%s` (the id of their image) for their images to get a mask",
                       folder, len(other), len(other) + len(masks), suffix, other[0], suffix)
    return masks


def find_listed(listed: str, images: Mapping[str, Path]) -> Path | None:
    """The file a label row names, with or without its extension: the file name exactly (``P001.jpg``), else the
    stem (``P001``); None when neither matches. ``images`` maps stems to files, as ``list_images`` returns them."""
    by_name = {p.name: p for p in images.values()}
    return by_name.get(listed) or images.get(listed)


def near_miss(listed: str, images: Mapping[str, Path]) -> str | None:
    """For a listed name that matches no file: the file it differs from only in case (``p004`` for ``P004.jpg``)
    or only in its extension (``P006.jpeg`` for ``P006.jpg``), as a phrase for a message; else None."""
    lowered = listed.lower()
    for p in images.values():
        if lowered in (p.name.lower(), p.stem.lower()):
            return f"on disk as {p.name}: the names differ only in upper/lower case"
    stem = Path(listed).stem if Path(listed).suffix.lower() in IMAGE_SUFFIXES else None
    if stem is not None:
        for p in images.values():
            if p.stem.lower() == stem.lower():
                return f"on disk as {p.name}: the extension differs"
    return None


def image_header(path: Path) -> Header:
    """What ``prepare`` reads from an image file's header (``preprocess.decode.Header``): the size it is shown and
    served at and the EXIF orientation the decoder applies (a JPEG's, or a PNG's eXIf chunk; 1 for a TIFF, which its
    decoder turns, its header size already turned)."""
    from preprocess.decode import parse_header, sniff_format
    from preprocess.errors import InvalidImageError

    try:
        data = Path(path).read_bytes()
        return parse_header(data, sniff_format(data))
    except (OSError, InvalidImageError) as e:
        raise UnreadableImageError(f"dataset file {path} cannot be read as an image ({e}); replace the file or remove "
                                   "it from the dataset") from e


def displayed_mask(mask: np.ndarray, image: Path) -> np.ndarray:
    """A lesion mask in the frame its image is shown and served in (EXIF orientation applied).

    A mask the size of the image's stored pixels is turned the way the image is turned (a square image, or an
    orientation that keeps the sides, has both frames of one size: its mask is taken as drawn on the stored pixels,
    as the file holds them); any other mask is returned as it is, for the caller's size check.
    """
    from preprocess.decode import apply_orientation

    orientation = image_header(image).orientation
    if orientation != 1 and (mask.shape[1], mask.shape[0]) == image_size(image):
        return apply_orientation(mask, orientation)
    return mask


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header."""
    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (OSError, ValueError, Image.DecompressionBombError) as e:  # UnidentifiedImageError is an OSError
        raise UnreadableImageError(f"dataset file {path} cannot be read as an image ({e}); replace the file or remove "
                                   "it from the dataset") from e


def check_mask_size(image: Path, mask: Path) -> None:
    """Raise MaskMismatchError when a mask is the size of neither frame of its image: as stored, or as displayed
    after its EXIF orientation (the two differ for an image stored turned by 90 degrees)."""
    isize, msize = image_size(image), image_size(mask)
    shown = image_header(image).size
    if msize not in (isize, shown):
        turned = f" (shown {shown[0]}x{shown[1]} after its EXIF orientation)" if shown != isize else ""
        raise MaskMismatchError(
            f"mask {mask.name} is {msize[0]}x{msize[1]} but its image {image.name} is {isize[0]}x{isize[1]}{turned}; "
            "masks must have the size of their image: re-export the mask at the image size"
        )


def pair_masks(images: dict[str, Path], masks: dict[str, Path], where: str, strict: bool) -> dict[str, Path]:
    """Pair each image with its mask; with ``strict`` every image needs a mask and every mask an image."""
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise MaskMismatchError(
            f"{where}: {len(orphans)} mask(s) have no image, e.g. {orphans[0]}; expected every mask to "
            "have an image of the same id: add the image or remove the mask"
        )
    if strict:
        lonely = sorted(set(images) - set(masks))
        if lonely:
            raise MaskMismatchError(
                f"{where}: {len(lonely)} image(s) have no mask, e.g. {lonely[0]}; expected one "
                "`<id>_segmentation.png` per image: add the mask or remove the image"
            )
    for image_id, mask in masks.items():
        check_mask_size(images[image_id], mask)
    return masks


def hot_columns(row: Mapping[str, str], columns: Iterable[str], path: Path, line: int) -> list[str]:
    """The class columns of a one-hot ground-truth CSV row that are set (>= 0.5; empty counts as 0); a value
    that is not a number is an UnknownLabelError naming the file, the line and the image."""
    try:
        return [c for c in columns if float(row[c] or 0) >= 0.5]
    except ValueError as e:
        raise UnknownLabelError(f"{path} line {line} ({row.get('image')}): a class value is not a number: {e}; "
                                "fix the row or remove it") from e
