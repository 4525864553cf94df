"""Classifier inputs: 224x224 crops made by ``preprocess.crop`` from ground-truth or predicted masks."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from preprocess.contract import CLS_SIZE, SEG_SIZE

from ..errors import EmptyDatasetError, MaskMismatchError
from ..images import classifier_crop, load_mask, original_size, seg_mask
from ..records import Sample

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CropSet:
    """uint8 RGB crops (N, 224, 224, 3), their labels, and how many had a mask to crop with."""

    crops: np.ndarray
    labels: np.ndarray
    with_mask: int


def mask_prob(sample: Sample, predicted_masks: Path | None) -> np.ndarray | None:
    """(256, 256) float map from the ground-truth mask, else from ``<predicted_masks>/<id>.png``, else None."""
    if sample.mask_path is not None:
        return seg_mask(load_mask(sample.mask_path, original_size(sample.image_path)))
    if predicted_masks is not None:
        path = Path(predicted_masks) / f"{sample.image_id}.png"
        if path.is_file():
            pred = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if pred is None or pred.shape != (SEG_SIZE, SEG_SIZE):
                raise MaskMismatchError(f"predicted mask {path} must be a {SEG_SIZE}x{SEG_SIZE} PNG")
            return pred.astype(np.float32) / np.float32(255.0)
    return None


def build_crops(
    samples: Sequence[Sample], full_image: bool = False, predicted_masks: Path | None = None, progress: bool = True
) -> CropSet:
    """Crops for labelled samples; samples with no mask (and no predicted one) use the whole image."""
    labelled = [s for s in samples if s.label is not None]
    if not labelled:
        raise EmptyDatasetError("classifier needs labelled images; got none with a class label")
    crops = np.empty((len(labelled), CLS_SIZE, CLS_SIZE, 3), np.uint8)
    with_mask = 0
    for i, s in enumerate(tqdm(labelled, desc="crops" if not full_image else "full images", unit="img", disable=not progress)):
        prob = None if full_image else mask_prob(s, predicted_masks)
        with_mask += prob is not None
        crops[i] = classifier_crop(s, prob, full_image=full_image)
    if not full_image and with_mask < len(labelled):
        logger.warning("%d of %d images had no mask: classified on the whole image", len(labelled) - with_mask, len(labelled))
    return CropSet(crops, np.array([s.label for s in labelled], np.int64), with_mask)
