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
from preprocess.contract import CLASS_CODES, CLS_SIZE, SEG_SIZE
from preprocess.crop import CropParams, crop_batch, crop_box, lesion_mask, mask_box
from preprocess.quality import raw_quality

from ..errors import EmptyDatasetError, MaskMismatchError, MissingFolderError
from ..images import load_mask, load_prepared, original_size, seg_mask
from ..progress import ProgressLog
from ..records import Sample
from .augment import CONTEXT_FACTOR, context_crop

logger = logging.getLogger(__name__)

CONTEXT_SIZE = int(round(CLS_SIZE * CONTEXT_FACTOR))
PREDICTED_NAMES = (f"one `<image_id>.png` per image at {SEG_SIZE}x{SEG_SIZE} (the segmenter's probability x 255, as "
                   "`dermassist train segmenter --predict-masks DATA` writes them to OUT/predicted_masks)")


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


def check_predicted_masks(folder: Path, samples: Sequence[Sample]) -> int:
    """How many of ``samples`` have their ``<image_id>.png`` in the --predicted-masks ``folder``. A folder that does
    not exist is a MissingFolderError; one with no mask for any of them is a MaskMismatchError when some of them have
    no ground-truth mask (they would be classified on the whole image), else a WARNING (their ground truth is cut)."""
    folder = Path(folder)
    if not folder.is_dir():
        state = "is a file" if folder.exists() else "does not exist"
        raise MissingFolderError(f"--predicted-masks folder {folder} {state}; expected a folder of {PREDICTED_NAMES}: "
                                 "pass that folder")
    names = sorted(p.name for p in folder.iterdir() if p.name.lower().endswith(".png"))
    found = len({f"{s.image_id}.png" for s in samples} & set(names))
    if found or not samples:
        return found
    holds = f"it holds {len(names)} PNG file(s), e.g. {names[0]}" if names else "it holds no PNG file"
    message = (f"--predicted-masks folder {folder} has no mask for any of the {len(samples)} images ({holds}); "
               f"expected {PREDICTED_NAMES}, e.g. {samples[0].image_id}.png")
    if any(s.mask_path is None for s in samples):
        raise MaskMismatchError(f"{message}: pass the folder the segmenter wrote for this data")
    logger.warning("%s; their ground-truth masks are cut instead", message)
    return 0


def classes_without_images(labels: Sequence[int] | np.ndarray) -> tuple[str, ...]:
    """The contract class codes that no label of ``labels`` (class indices) names."""
    present = set(np.asarray(labels, dtype=np.int64).tolist())
    return tuple(code for i, code in enumerate(CLASS_CODES) if i not in present)


def warn_classes_without_images(labels: Sequence[int] | np.ndarray, split: str) -> tuple[str, ...]:
    """Log a WARNING naming the classes a split (``train``, ``val``, ``test``) has no image of; returns them."""
    absent = classes_without_images(labels)
    if absent:
        effect = ("the classifier cannot learn them and will not predict them" if split == "train" else
                  "their recall is not measured there and nothing tuned on it covers them")
        logger.warning("the %s split (%d images) has no image of class(es) %s: %s; add labelled images of these classes "
                       "(the dataset report lists each class's count)", split, len(labels), ", ".join(absent), effect)
    return absent


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
    params: CropParams = CropParams(), context: bool = False, split: str = "",
) -> CropSet:
    """Crops for labelled samples cut as ``lesion_crop`` serves them with ``params`` (threshold, colour balance);
    samples with no mask use the whole image. ``progress``: a bar; without it, a log line each tenth done (naming
    ``split``), as a stage's log shows it."""
    labelled = [s for s in samples if s.label is not None]
    if not labelled:
        raise EmptyDatasetError("classifier needs labelled images; got none with a class label")
    crops = np.empty((len(labelled), CLS_SIZE, CLS_SIZE, 3), np.uint8)
    contexts = np.empty((len(labelled), CONTEXT_SIZE, CONTEXT_SIZE, 3), np.uint8) if context else None
    quality = np.empty((len(labelled), 2), np.float32)
    if predicted_masks is not None and not full_image:
        check_predicted_masks(predicted_masks, labelled)
    with_mask = 0
    bare: list[str] = []
    kind = "crops" if not full_image else "full images"
    logged = None if progress else ProgressLog(logger, f"cutting the {split + ' ' if split else ''}{kind}", len(labelled))
    for i, s in enumerate(tqdm(labelled, desc=kind, unit="img", disable=not progress)):
        prob = None if full_image else mask_prob(s, predicted_masks)
        with_mask += prob is not None
        if prob is None:
            bare.append(s.image_id)
        crops[i], ctx, quality[i] = sample_crop(s, prob, params, context)
        if contexts is not None:
            contexts[i] = ctx
        if logged is not None:
            logged.advance()
    if not full_image and with_mask < len(labelled):
        where = f" and no <image_id>.png in {predicted_masks}" if predicted_masks is not None else ""
        logger.warning("%d of %d images had no mask (no ground-truth mask%s, e.g. %s): classified on the whole image",
                       len(bare), len(labelled), where, bare[0])
    return CropSet(crops, np.array([s.label for s in labelled], np.int64), with_mask, contexts,
                   tuple(s.source or "" for s in labelled), tuple(s.image_id for s in labelled), quality)
