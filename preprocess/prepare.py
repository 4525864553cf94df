"""The ``prepare`` step: encoded bytes -> segmenter input, work image and scale, batch in, batch out."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .contract import SEG_SIZE, WORK_MAX_SIDE
from .decode import decode
from .errors import InvalidImageError, InvalidTensorError
from .field import fill_dark_border
from .resize import resize_antialiased


@dataclass(frozen=True)
class PreparedImage:
    """One decoded image ready for the pipeline."""

    seg_input: np.ndarray  # float32 (SEG_SIZE, SEG_SIZE, 3) RGB in [0, 1]
    work_image: np.ndarray  # uint8 (h, w, 3), long side <= WORK_MAX_SIDE
    scale: float  # original pixels per work pixel
    original_size: tuple[int, int]  # (height, width) of the decoded original


@dataclass(frozen=True)
class PreparedBatch:
    """The ``prepare`` outputs of one request, stacked along the batch axis."""

    seg_input: np.ndarray  # float32 (N, SEG_SIZE, SEG_SIZE, 3)
    work_image: np.ndarray  # uint8 (N, Hmax, Wmax, 3), each row zero-padded past its WORK_SIZE
    work_size: np.ndarray  # int32 (N, 2): valid (height, width) of each row
    scale: np.ndarray  # float32 (N, 1)
    original_size: np.ndarray  # int32 (N, 2): (height, width) of each original, as displayed


def work_geometry(height: int, width: int) -> tuple[int, int, float]:
    """Return (work_height, work_width, scale) for an original of the given size.

    The long side becomes at most WORK_MAX_SIDE; each work side is floored so that
    ``work_side * scale`` never exceeds the original side, which keeps mapped boxes inside it.
    """
    long_side = max(height, width)
    if long_side <= WORK_MAX_SIDE:
        return height, width, 1.0
    scale = long_side / WORK_MAX_SIDE
    return max(1, int(height / scale)), max(1, int(width / scale)), scale


def to_work_image(rgb: np.ndarray, original_size: tuple[int, int], reduction: int = 1) -> tuple[np.ndarray, float]:
    """Bring a decoded image (``reduction`` original pixels per pixel) to the work resolution.

    An image already within WORK_MAX_SIDE is used as it is (scale = reduction); a larger one is
    resized to ``work_geometry`` of the original, anti-aliased.
    """
    if max(rgb.shape[:2]) <= WORK_MAX_SIDE:
        return np.ascontiguousarray(rgb), float(reduction)
    work_h, work_w, scale = work_geometry(*original_size)
    return resize_antialiased(rgb, work_w, work_h), scale


def to_seg_input(work_image: np.ndarray) -> np.ndarray:
    """Resize a work image to the segmenter's square input, float32 RGB in [0, 1]."""
    small = resize_antialiased(work_image, SEG_SIZE, SEG_SIZE)
    return small.astype(np.float32) * np.float32(1.0 / 255.0)


def prepare_image(data: bytes) -> PreparedImage:
    """Decode, validate and resize one encoded image, its dark field-of-view border filled (raises InvalidImageError)."""
    decoded = decode(data, allow_reduced=True)
    work, scale = to_work_image(decoded.rgb, decoded.original_size, decoded.reduction)
    work = fill_dark_border(work)
    return PreparedImage(to_seg_input(work), work, scale, decoded.original_size)


def prepare_images(blobs: Sequence[bytes]) -> list[PreparedImage | InvalidImageError]:
    """Prepare every blob; a bad one yields its InvalidImageError in place, the rest still succeed."""
    out: list[PreparedImage | InvalidImageError] = []
    for blob in blobs:
        try:
            out.append(prepare_image(blob))
        except InvalidImageError as e:
            out.append(e)
    return out


def stack_prepared(images: Sequence[PreparedImage]) -> PreparedBatch:
    """Stack prepared images into one batch, zero-padding work images to a common size."""
    if not images:
        raise InvalidTensorError("stack_prepared needs at least one prepared image, got none")
    sizes = np.array([im.work_image.shape[:2] for im in images], dtype=np.int32)
    if len(images) == 1:
        work = images[0].work_image[np.newaxis]  # the common one-image request: no copy
    else:
        max_h, max_w = (int(v) for v in sizes.max(axis=0))
        work = np.zeros((len(images), max_h, max_w, 3), dtype=np.uint8)
        for row, im in enumerate(images):
            h, w = im.work_image.shape[:2]
            work[row, :h, :w] = im.work_image
    return PreparedBatch(
        seg_input=np.stack([im.seg_input for im in images]).astype(np.float32, copy=False),
        work_image=work,
        work_size=sizes,
        scale=np.array([[im.scale] for im in images], dtype=np.float32),
        original_size=np.array([im.original_size for im in images], dtype=np.int32),
    )


def unpad_work_images(work: np.ndarray, size: np.ndarray) -> list[np.ndarray]:
    """Each row's work image out of a batch ``stack_prepared`` padded: ``work[i, :h, :w]`` for (h, w) = ``size[i]``
    (views, no copy). Refuses row counts that differ, and a size that is empty or exceeds the padded images."""
    work, size = np.asarray(work), np.asarray(size)
    if work.ndim != 4 or size.ndim != 2 or size.shape[1] != 2:
        raise InvalidTensorError(f"WORK_IMAGE must be (N, H, W, 3) and WORK_SIZE (N, 2), got {work.shape} and "
                                 f"{size.shape}; send the tensors prepare outputs")
    if len(work) != len(size):
        raise InvalidTensorError(f"batch sizes differ: WORK_IMAGE {len(work)}, WORK_SIZE {len(size)}; send one "
                                 "(height, width) per work image")
    if np.any(size < 1) or np.any(size[:, 0] > work.shape[1]) or np.any(size[:, 1] > work.shape[2]):
        raise InvalidTensorError(f"WORK_SIZE {size.tolist()} exceeds WORK_IMAGE {list(work.shape[1:3])} or is empty; "
                                 "each row must be its work image's own (height, width), at least 1, as prepare sends")
    return [work[i, :h, :w] for i, (h, w) in enumerate(size.tolist())]
