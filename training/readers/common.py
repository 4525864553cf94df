"""Helpers shared by the readers: image listing, header sizes, mask pairing and one-hot label rows."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from PIL import Image

from ..errors import (
    DuplicateImageError,
    MaskMismatchError,
    MissingFolderError,
    UnknownLabelError,
    UnreadableImageError,
)

IMAGE_ID = re.compile(r"^(ISIC_\d{7})$")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")  # what the service accepts
#: Encoding of the label CSVs: UTF-8, with or without the byte-order mark spreadsheet programs write.
CSV_ENCODING = "utf-8-sig"


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
    """Map image ids to mask files named ``<id><suffix>`` (e.g. ``_segmentation.png``)."""
    return {p.name[: -len(suffix)]: p for p in folder.iterdir() if p.name.endswith(suffix)}


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header."""
    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (OSError, ValueError, Image.DecompressionBombError) as e:  # UnidentifiedImageError is an OSError
        raise UnreadableImageError(f"dataset file {path} cannot be read as an image ({e}); replace the file or remove "
                                   "it from the dataset") from e


def check_mask_size(image: Path, mask: Path) -> None:
    """Raise MaskMismatchError when a mask is not the size of its image."""
    isize, msize = image_size(image), image_size(mask)
    if isize != msize:
        raise MaskMismatchError(
            f"mask {mask.name} is {msize[0]}x{msize[1]} but its image {image.name} is {isize[0]}x{isize[1]}; "
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
