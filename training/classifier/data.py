"""Classifier inputs: the 224x224 crops ``preprocess.crop`` serves, from ground-truth or predicted masks,
plus a wider context around each for training-time augmentation."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from preprocess.colour import balance_part
from preprocess.contract import CLASS_CODES, CLS_SIZE, SEG_SIZE
from preprocess.crop import CropParams, crop_batch, crop_box, lesion_mask, mask_box
from preprocess.quality import raw_quality

from ..errors import EmptyDatasetError, MaskMismatchError, MissingFolderError, UnreadableImageError
from ..images import load_mask, load_prepared, original_size, seg_mask
from ..masks_record import warn_masks_disagree
from ..progress import ProgressLog
from ..records import Sample
from .augment import CONTEXT_FACTOR, context_crop

logger = logging.getLogger(__name__)

CONTEXT_SIZE = int(round(CLS_SIZE * CONTEXT_FACTOR))
#: How many unusable images an error names before it counts the rest.
SHOWN_BAD_IMAGES = 5
#: A class with fewer training images than this is warned about: too few to learn it from.
MIN_TRAIN_IMAGES_PER_CLASS = 5
#: What to do about unusable images (the fix ``dermassist evaluate`` names for them).
BAD_IMAGE_FIX = ("replace each with a readable copy of its picture (JPEG, PNG, BMP or TIFF that decodes whole), or remove "
                 "it from the data folder together with its row in the labels CSV (and its mask, if any); then rerun")
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


def image_problem(path: Path) -> str | None:
    """Why a dataset image cannot be used as the service uses it (None when it can): the file cannot be read, its header
    (read first, cheaply: format, size, EXIF orientation) is not an image's, or the whole file does not decode with the
    served ``prepare`` step's own decoder (``preprocess.prepare.prepare_image``, as ``training.images.load_prepared``
    and the crops use it: a truncated JPEG fails here)."""
    from preprocess.decode import parse_header, sniff_format
    from preprocess.errors import PreprocessError
    from preprocess.prepare import prepare_image

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return f"the file cannot be read ({e.strerror or e})"
    try:
        parse_header(data, sniff_format(data))
        prepare_image(data)
    except PreprocessError as e:
        return " ".join(str(e).split())
    return None


def unreadable_images_error(bad: Sequence[tuple[Path, str]], total: int, what: str) -> UnreadableImageError:
    """One error for every unusable image of ``what`` (e.g. "--data site"; ``bad``: (path, why) pairs of ``total``
    images): the first SHOWN_BAD_IMAGES with their reasons, then how many more, then the fix."""
    shown = " ".join(f"({i}) {path}: {why.rstrip('.')}." for i, (path, why) in enumerate(bad[:SHOWN_BAD_IMAGES], 1))
    more = f" And {len(bad) - SHOWN_BAD_IMAGES} more." if len(bad) > SHOWN_BAD_IMAGES else ""
    return UnreadableImageError(f"{len(bad)} of the {total} images of {what} cannot be used (each was decoded as the "
                                f"service decodes it): {shown}{more} Expected images that decode whole: {BAD_IMAGE_FIX}")


def check_images(paths: Iterable[Path], what: str) -> int:
    """Decode every image of ``paths`` (each once) before any training or prediction reads them, and raise one
    UnreadableImageError naming every unusable one with its reason (:func:`image_problem`) and the fix, instead of
    stopping at the first one after the work before it is done; returns how many were checked (an INFO line says how
    long it took: about 2 s for ISIC 2018 Task 3's 1,058 JPEGs on two CPU cores)."""
    unique = list(dict.fromkeys(Path(p) for p in paths))
    start = time.perf_counter()
    bad = [(path, why) for path in unique if (why := image_problem(path)) is not None]
    if bad:
        raise unreadable_images_error(bad, len(unique), what)
    logger.info("checked the %d images of %s: each decodes (%.1f s)", len(unique), what, time.perf_counter() - start)
    return len(unique)


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


def warn_classes_too_few(labels: Sequence[int] | np.ndarray, least: int = MIN_TRAIN_IMAGES_PER_CLASS) -> dict[str, int]:
    """Log a WARNING naming the classes the training split holds some, but fewer than ``least``, images of (a class
    with none is :func:`warn_classes_without_images`'); returns {class code: count}."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(CLASS_CODES))
    few = {code: int(counts[i]) for i, code in enumerate(CLASS_CODES) if 0 < counts[i] < least}
    if few:
        logger.warning("the train split has too few images to learn class(es) %s (expected at least %d each): the "
                       "classifier will hardly predict them and their validation and test figures say little; add "
                       "labelled images of these classes (the dataset report lists each class's count)",
                       ", ".join(f"{code} ({n} image{'s' if n != 1 else ''})" for code, n in few.items()), least)
    return few


def mask_prob(sample: Sample, predicted_masks: Path | None) -> np.ndarray | None:
    """(256, 256) float map: the segmenter's ``<predicted_masks>/<id>.png`` when there is one (as served),
    else the ground-truth mask, else None (the whole image is classified)."""
    if predicted_masks is not None:
        path = Path(predicted_masks) / f"{sample.image_id}.png"
        if path.is_file():
            pred = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if pred is None or pred.shape != (SEG_SIZE, SEG_SIZE):
                got = "cannot be read" if pred is None else f"is {pred.shape[1]}x{pred.shape[0]}"
                raise MaskMismatchError(f"predicted mask {path} {got}; expected a {SEG_SIZE}x{SEG_SIZE} PNG as the "
                                        "segmenter writes them (`dermassist train segmenter --predict-masks`): predict "
                                        "the masks again")
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
    ``split``), as a stage's log shows it; the ``train`` split's classes with too few images are warned about
    (:func:`warn_classes_too_few`). Images that cannot be decoded are all named in one UnreadableImageError
    once the others are cut (a caller holding every split names them all before any is cut: :func:`check_images`)."""
    labelled = [s for s in samples if s.label is not None]
    if not labelled:
        raise EmptyDatasetError("classifier needs labelled images; got none with a class label")
    crops = np.empty((len(labelled), CLS_SIZE, CLS_SIZE, 3), np.uint8)
    contexts = np.empty((len(labelled), CONTEXT_SIZE, CONTEXT_SIZE, 3), np.uint8) if context else None
    quality = np.empty((len(labelled), 2), np.float32)
    if predicted_masks is not None and not full_image:
        check_predicted_masks(predicted_masks, labelled)
        warn_masks_disagree(predicted_masks, params.threshold)
    with_mask = 0
    bare: list[str] = []
    kind = "crops" if not full_image else "full images"
    logged = None if progress else ProgressLog(logger, f"cutting the {split + ' ' if split else ''}{kind}", len(labelled))
    unusable: list[tuple[Path, str]] = []
    for i, s in enumerate(tqdm(labelled, desc=kind, unit="img", disable=not progress)):
        try:
            prob = None if full_image else mask_prob(s, predicted_masks)
            crops[i], ctx, quality[i] = sample_crop(s, prob, params, context)
        except UnreadableImageError as e:  # every one is named at the end, not only the first
            unusable.append((Path(s.image_path), " ".join(str(e.__cause__ or e).split())))
        else:
            with_mask += prob is not None
            if prob is None:
                bare.append(s.image_id)
            if contexts is not None:
                contexts[i] = ctx
        if logged is not None:
            logged.advance()
    if unusable:
        raise unreadable_images_error(unusable, len(labelled), f"the {split} split" if split else "these samples")
    if not full_image and with_mask < len(labelled):
        where = f" and no <image_id>.png in {predicted_masks}" if predicted_masks is not None else ""
        logger.warning("%d of %d images had no mask (no ground-truth mask%s, e.g. %s): classified on the whole image",
                       len(bare), len(labelled), where, bare[0])
    labels = np.array([s.label for s in labelled], np.int64)
    if split == "train":
        warn_classes_too_few(labels)
    return CropSet(crops, labels, with_mask, contexts,
                   tuple(s.source or "" for s in labelled), tuple(s.image_id for s in labelled), quality)
