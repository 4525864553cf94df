"""Load dataset images and masks through ``preprocess`` so training sees exactly what serving sees."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from preprocess.contract import SEG_SIZE
from preprocess.errors import PreprocessError
from preprocess.prepare import PreparedImage, prepare_image

from .errors import MaskMismatchError, UnreadableImageError
from .readers.common import displayed_mask, image_header
from .records import Sample

logger = logging.getLogger(__name__)


def load_prepared(path: Path) -> PreparedImage:
    """Decode and prepare an image file with the served ``prepare`` step's own function; a file it refuses is an
    UnreadableImageError naming the file."""
    try:
        return prepare_image(Path(path).read_bytes())
    except PreprocessError as e:
        raise UnreadableImageError(f"dataset image {path} cannot be used: {e}; replace the file or remove it from "
                                   "the dataset (and its CSV row)") from e


def seg_input_uint8(prepared: PreparedImage) -> np.ndarray:
    """The prepared segmenter input stored losslessly as uint8 (its values are exact multiples of 1/255)."""
    return np.round(prepared.seg_input * np.float32(255.0)).astype(np.uint8)


def as_0_255(mask: np.ndarray) -> np.ndarray:
    """A binary mask stored as 0/1 (as many tools export them) scaled to 0/255; any other mask (0/255, grey levels,
    all black) is returned as it is, for the >= 128 rule of ``seg_mask``."""
    return mask * np.uint8(255) if mask.size and int(mask.max()) == 1 else mask


def load_mask(path: Path, image: Path, size: tuple[int, int]) -> np.ndarray:
    """Read a lesion mask as 0/255 (a 0/1 mask is scaled, ``as_0_255``) in the frame its ``image`` is served in
    (``displayed_mask``: a mask drawn on the stored pixels of an image with an EXIF orientation is turned with it) and
    check it matches the image's (height, width) there."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
    if mask is None:
        try:
            why = "is empty (0 bytes)" if Path(path).stat().st_size == 0 else "cannot be decoded (truncated, or no image)"
        except OSError as e:
            why = f"cannot be read ({e.strerror or e})"
        raise MaskMismatchError(f"mask {path} {why}; expected a 0/255 (or 0/1) PNG: export it again")
    mask = displayed_mask(as_0_255(mask), image)
    if mask.shape != tuple(size):
        raise MaskMismatchError(
            f"mask {Path(path).name} is {mask.shape[1]}x{mask.shape[0]} but its image is {size[1]}x{size[0]}; "
            "masks must have the size of their image"
        )
    return mask


def seg_mask(mask: np.ndarray) -> np.ndarray:
    """A full-size 0/255 mask resized to the segmenter grid, as float 0/1 (SEG_SIZE, SEG_SIZE)."""
    small = cv2.resize(mask, (SEG_SIZE, SEG_SIZE), interpolation=cv2.INTER_AREA)
    return (small >= 128).astype(np.float32)


def load_segmentation_arrays(samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N,256,256,3) = to_seg_input*255, masks uint8 (N,256,256) 0/1) for samples with masks."""
    xs = np.empty((len(samples), SEG_SIZE, SEG_SIZE, 3), np.uint8)
    ys = np.empty((len(samples), SEG_SIZE, SEG_SIZE), np.uint8)
    bad: list[str] = []  # every mask that cannot be used, named at once (the first alone had been)
    levelled: list[str] = []  # masks of more than two levels (anti-aliased, or a 0/1 mask with a stray 255)
    for i, s in enumerate(samples):
        if s.mask_path is None:
            raise MaskMismatchError(f"{s.image_path} has no lesion mask; the segmenter trains and validates on "
                                    "masked images only")
        prepared = load_prepared(s.image_path)
        try:
            mask = load_mask(s.mask_path, s.image_path, prepared.original_size)
        except MaskMismatchError as e:
            bad.append(str(e))
            continue
        if mask.size and np.any((mask != 0) & (mask != mask.max())):
            levelled.append(f"{s.mask_path.name} ({', '.join(map(str, np.unique(mask)[:4]))}...)")
        xs[i] = seg_input_uint8(prepared)
        ys[i] = seg_mask(mask).astype(np.uint8)
    if levelled:  # each of the 555 real masks of the shared sets has two
        logger.warning("%d of %d lesion masks hold more than two levels, e.g. %s: a pixel is lesion where it is >= 128 "
                       "(a 0/1 mask is scaled only when 1 is its largest value, so a stray 255 turns its lesion into "
                       "background); check that these are the binary masks meant", len(levelled), len(samples),
                       ", ".join(levelled[:3]))
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise MaskMismatchError(f"{len(bad)} of {len(samples)} lesion masks cannot be used: {shown}")
    return xs, ys


def empty_masks(ys: np.ndarray, samples: Sequence[Sample]) -> list[Sample]:
    """The samples whose segmenter-grid mask in ``ys`` (N, H, W), as ``load_segmentation_arrays`` returns them, holds
    no lesion pixel."""
    return [s for s, y in zip(samples, ys) if not np.any(y)]


#: The share of a mask's border that, marked lesion, makes it look inverted (lesion and background swapped) or blank
#: white: of the 550 real ISIC 2017 and PH2 masks, none reaches 0.81.
INVERTED_BORDER_SHARE = 0.95


def inverted_masks(ys: np.ndarray, samples: Sequence[Sample]) -> list[Sample]:
    """The samples whose segmenter-grid mask in ``ys`` (N, H, W) marks at least INVERTED_BORDER_SHARE of its border as
    lesion: a lesion and its background swapped, or an all-white export."""
    def border_share(y: np.ndarray) -> float:
        ring = np.concatenate([y[0], y[-1], y[1:-1, 0], y[1:-1, -1]])
        return float(np.count_nonzero(ring)) / ring.size

    return [s for s, y in zip(samples, ys) if y.size and border_share(y) >= INVERTED_BORDER_SHARE]


def original_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file as it is shown and served (EXIF orientation applied), from its header."""
    w, h = image_header(path).size
    return h, w
