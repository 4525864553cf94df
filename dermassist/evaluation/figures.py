"""The figures of a report, from the served answers: segmentation against the ground truth, diagnosis, calibration,
referral, out-of-distribution, and the images to review first."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from preprocess.contract import MELANOMA

from .config import EvaluationError

if TYPE_CHECKING:
    from dermassist_client.result import LesionResult
    from training.records import Sample


def truth_mask(path: Path, image: Path) -> np.ndarray:
    """A ground-truth mask on the served mask grid, in the frame the service answers in: the image as displayed.

    A mask the size of the stored pixels of an image with an EXIF orientation is turned the way the image is turned
    (a square image, or a 180-degree orientation, has both frames of one size: its mask is taken as drawn on the stored
    pixels, as the image file holds them); a mask the size of the displayed image is used as it is.
    """
    from training.errors import TrainingError
    from training.images import load_mask, original_size, seg_mask

    try:
        mask = load_mask(path, image, original_size(image))
    except TrainingError as e:
        raise EvaluationError(f"ground truth of {image.name}: {e}") from e
    return seg_mask(mask).astype(np.uint8)  # the segmenter's training targets: one rule for both


def segmentation_figures(samples: Sequence, results: Sequence) -> dict | None:
    """Served MASK against the ground truth (turned like its image for display, resized to the mask grid): mean
    Dice, Jaccard, thresholded Jaccard."""
    from training.metrics import segmentation_metrics

    pairs = [(s, r) for s, r in zip(samples, results) if s.mask_path is not None]
    if not pairs:
        return None
    truth = np.stack([truth_mask(s.mask_path, s.image_path) for s, _ in pairs])
    served = np.stack([(np.asarray(r.mask) > 0).astype(np.uint8) for _, r in pairs])
    return {**segmentation_metrics(truth, served, 0.5), "images": len(pairs)}


def classification_figures(labels: np.ndarray, probs: np.ndarray, temperature: float | None = None) -> dict:
    """Accuracy, balanced accuracy (with its 95% interval from per-class Jeffreys posteriors), macro F1 (over the
    classes in truth or predictions) and melanoma ROC AUC (each with its 95% stratified bootstrap interval, 2000 seeded
    draws within each true class), per-class recall, and ECE beside the ECE a perfectly calibrated model would score
    on as many images; with the served ``temperature``, the ECE of the same answers before calibration too."""
    from preprocess.contract import CLASS_CODES
    from training.calibration import before_temperature
    from training.metrics import (
        balanced_accuracy_interval,
        classification_metrics,
        ece_noise_floor,
        expected_calibration_error,
        jeffreys_interval,
        macro_f1_interval,
        melanoma_auc,
        melanoma_auc_interval,
        reliability,
    )

    predicted = probs.argmax(axis=1)
    recall_ci95 = {code: jeffreys_interval(int(((labels == c) & (predicted == c)).sum()), int((labels == c).sum()))
                   for c, code in enumerate(CLASS_CODES)}
    return {**classification_metrics(labels, predicted), "per_class_recall_ci95": recall_ci95,
            "balanced_accuracy_ci95": balanced_accuracy_interval(labels, predicted),
            "macro_f1_ci95": macro_f1_interval(labels, predicted),
            "melanoma_auc": melanoma_auc(labels, probs), "melanoma_auc_ci95": melanoma_auc_interval(labels, probs),
            "ece": expected_calibration_error(labels, probs),
            "ece_if_calibrated": ece_noise_floor(probs), "reliability": reliability(labels, probs),
            "ece_before_calibration": None if temperature is None else
            expected_calibration_error(labels, before_temperature(probs, temperature)),
            "images": int(len(labels))}


def refer_score_auc(labels: np.ndarray, scores: Sequence[float | None]) -> float | None:
    """ROC AUC of REFER_SCORE for what REFER decides: the malignant images (the contract's REFER classes) against the
    benign ones; None where it cannot be told (a score missing, or one of the two groups empty)."""
    from preprocess.contract import CLASS_CODES, REFER_CLASSES
    from training.metrics import roc_auc

    if any(s is None for s in scores):
        return None
    malignant = np.isin(np.asarray(labels), [CLASS_CODES.index(c) for c in REFER_CLASSES])
    return roc_auc(malignant, np.asarray(scores, np.float64))


def triage_figures(labels: np.ndarray, refer: np.ndarray, assessable: np.ndarray) -> dict:
    """REFER's melanoma and malignant sensitivity, its benign specificity and the share not assessable, each with its
    95% Wilson interval."""
    from training.metrics import referral_figures, wilson_interval

    figures = asdict(referral_figures(labels, refer))
    for share, count in (("melanoma_sensitivity", "melanomas"), ("malignant_sensitivity", "malignant"),
                         ("specificity", "benign")):
        n = figures[count]
        figures[f"{share}_ci95"] = None if not n else wilson_interval(round(figures[share] * n), n)
    flagged = ~np.asarray(assessable, bool)
    return {**figures, "not_assessable": float(flagged.mean()),
            "not_assessable_ci95": wilson_interval(int(flagged.sum()), len(flagged))}


def ood_figures(inside: np.ndarray, outside: np.ndarray, outside_paths: Sequence[Path],
                outside_assessable: np.ndarray) -> dict:
    """AUROC of OOD_SCORE for the out-of-distribution folder against the evaluated images, and per kind
    (the file-name prefix) the share flagged not assessable."""
    from training.metrics import roc_auc

    kinds: dict[str, list[bool]] = {}
    for path, ok in zip(outside_paths, outside_assessable):
        kinds.setdefault(Path(path).stem.rsplit("_", 1)[0], []).append(not ok)
    return {"auroc": roc_auc(np.r_[np.zeros(len(inside)), np.ones(len(outside))], np.r_[inside, outside]),
            "images": int(len(outside)), "in_distribution_images": int(len(inside)),
            "share_at_or_above_1": float((outside >= 1.0).mean()) if len(outside) else None,
            "in_distribution_share_at_or_above_1": float((inside >= 1.0).mean()) if len(inside) else None,
            "not_assessable_by_kind": {k: float(np.mean(v)) for k, v in sorted(kinds.items())}}


def _review_entry(sample: Sample, result: LesionResult) -> dict:
    return {"image": sample.image_id, "truth": sample.code, "predicted": result.top_class.code,
            "probability": float(max(result.probabilities.values())), "refer_score": result.refer_score,
            "ood_score": result.ood_score, "note": result.note}


def review_lists(samples: Sequence, results: Sequence) -> dict[str, list[dict]]:
    """The images to look at first: melanomas REFER did not refer (lowest REFER score first) and images that
    came back not assessable, each with its truth, top class, scores and note."""
    pairs = list(zip(samples, results))
    missed = [(s, r) for s, r in pairs if s.code == MELANOMA and r.refer is not None and not r.refer]
    missed.sort(key=lambda pair: pair[1].refer_score if pair[1].refer_score is not None else 0.0)
    return {"melanomas_not_referred": [_review_entry(s, r) for s, r in missed],
            "not_assessable": [_review_entry(s, r) for s, r in pairs
                               if r.assessable is not None and not r.assessable]}
