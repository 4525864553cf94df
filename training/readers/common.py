"""Helpers shared by the readers: image listing, header sizes, mask pairing and one-hot label rows."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from PIL import Image

from ..errors import MaskMismatchError, MissingFolderError, UnknownLabelError

IMAGE_ID = re.compile(r"^(ISIC_\d{7})$")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` when it is a folder, else raise MissingFolderError naming ``what``."""
    if not path.is_dir():
        raise MissingFolderError(f"{what} folder {path} does not exist; expected it in the dataset layout")
    return path


def list_images(folder: Path) -> dict[str, Path]:
    """Map ``ISIC_<7 digits>`` ids to their image files in a folder (superpixel and other files skipped)."""
    out: dict[str, Path] = {}
    for p in folder.iterdir():
        if p.suffix.lower() in IMAGE_SUFFIXES and IMAGE_ID.match(p.stem):
            out[p.stem] = p
    return out


def list_masks(folder: Path, suffix: str) -> dict[str, Path]:
    """Map image ids to mask files named ``<id><suffix>`` (e.g. ``_segmentation.png``)."""
    return {p.name[: -len(suffix)]: p for p in folder.iterdir() if p.name.endswith(suffix)}


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header."""
    with Image.open(path) as im:
        return int(im.size[0]), int(im.size[1])


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
