"""Classifier inputs: the 224x224 crops ``preprocess.crop`` serves, from ground-truth or predicted masks,
plus a wider context around each for training-time augmentation."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from preprocess.colour import balance_part
from preprocess.contract import CLS_SIZE, SEG_SIZE
from preprocess.crop import CropParams, crop_batch, crop_box, lesion_mask, mask_box
from preprocess.quality import raw_quality

from ..errors import EmptyDatasetError, MaskMismatchError
from ..images import load_mask, load_prepared, original_size, seg_mask
from ..records import Sample
from .augment import CONTEXT_FACTOR, context_crop

logger = logging.getLogger(__name__)

CONTEXT_SIZE = int(round(CLS_SIZE * CONTEXT_FACTOR))


@dataclass(frozen=True)
class CropSet:
    """uint8 RGB crops (N, 224, 224, 3) exactly as served, their labels, sources and contexts.

    ``contexts`` (N, CONTEXT_SIZE, CONTEXT_SIZE, 3) show the served crop box grown CONTEXT_FACTOR times
    about its centre, so augmentation can rotate, shift and zoom without running out of image.
    """

    crops: np.ndarray
    labels: np.ndarray
    with_mask: int
    contexts: np.ndarray | None = None
    sources: tuple[str, ...] = ()
    image_ids: tuple[str, ...] = ()
    quality: np.ndarray | None = None  # (N, 2) raw sharpness and brightness of each image (preprocess.quality)


def mask_prob(sample: Sample, predicted_masks: Path | None) -> np.ndarray | None:
    """(256, 256) float map: the segmenter's ``<predicted_masks>/<id>.png`` when there is one (as served),
    else the ground-truth mask, else None (the whole image is classified)."""
    if predicted_masks is not None:
        path = Path(predicted_masks) / f"{sample.image_id}.png"
        if path.is_file():
            pred = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if pred is None or pred.shape != (SEG_SIZE, SEG_SIZE):
                raise MaskMismatchError(f"predicted mask {path} must be a {SEG_SIZE}x{SEG_SIZE} PNG")
            return pred.astype(np.float32) / np.float32(255.0)
    if sample.mask_path is not None:
        return seg_mask(load_mask(sample.mask_path, sample.image_path, original_size(sample.image_path)))
    return None


def sample_crop(sample: Sample, prob: np.ndarray | None, params: CropParams,
                context: bool) -> tuple[np.ndarray, np.ndarray | None, tuple[float, float]]:
    """(served 224x224 crop, context or None, raw quality) of one sample; ``prob`` None classifies the whole image.
    The context gets the crop's colour balance (the whole image's gains) when ``params.colour_constancy``."""
    prepared = load_prepared(sample.image_path)
    quality = raw_quality(prepared.seg_input)
    work = prepared.work_image
    grid = np.zeros((1, SEG_SIZE, SEG_SIZE, 1), np.float32)
    if prob is not None:
        grid[0, ..., 0] = prob
    crop = crop_batch(grid, [work], np.array([prepared.scale], np.float32), params).crop[0]
    if not context:
        return crop, None, quality
    box = None if prob is None else mask_box(lesion_mask(prob, params.threshold))
    region = crop_box(box, work.shape[1], work.shape[0], params.margin)
    return crop, balance_part(context_crop(work, region, CONTEXT_FACTOR, CONTEXT_SIZE), work, params.colour_constancy), quality


def build_crops(
    samples: Sequence[Sample], full_image: bool = False, predicted_masks: Path | None = None, progress: bool = True,
    params: CropParams = CropParams(), context: bool = False,
) -> CropSet:
    """Crops for labelled samples cut as ``lesion_crop`` serves them with ``params`` (threshold, colour balance);
    samples with no mask use the whole image."""
    labelled = [s for s in samples if s.label is not None]
    if not labelled:
        raise EmptyDatasetError("classifier needs labelled images; got none with a class label")
    crops = np.empty((len(labelled), CLS_SIZE, CLS_SIZE, 3), np.uint8)
    contexts = np.empty((len(labelled), CONTEXT_SIZE, CONTEXT_SIZE, 3), np.uint8) if context else None
    quality = np.empty((len(labelled), 2), np.float32)
    with_mask = 0
    for i, s in enumerate(tqdm(labelled, desc="crops" if not full_image else "full images", unit="img", disable=not progress)):
        prob = None if full_image else mask_prob(s, predicted_masks)
        with_mask += prob is not None
        crops[i], ctx, quality[i] = sample_crop(s, prob, params, context)
        if contexts is not None:
            contexts[i] = ctx
    if not full_image and with_mask < len(labelled):
        logger.warning("%d of %d images had no mask: classified on the whole image", len(labelled) - with_mask, len(labelled))
    return CropSet(crops, np.array([s.label for s in labelled], np.int64), with_mask, contexts,
                   tuple(s.source or "" for s in labelled), tuple(s.image_id for s in labelled), quality)
