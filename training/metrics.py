"""Segmentation and classification metrics on numpy arrays (no framework imports)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from preprocess.contract import CLASS_CODES, NUM_CLASSES

ISIC_JACCARD_FLOOR = 0.65
EPS = 1e-7


def _binary(masks: np.ndarray, threshold: float) -> np.ndarray:
    m = np.asarray(masks)
    if m.ndim == 4 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim == 2:
        m = m[None]
    return m >= threshold


def per_image_overlap(truth: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per-image (dice, jaccard) of binarised masks (N, H, W[, 1]); two empty masks score 1."""
    t = _binary(truth, 0.5)
    p = _binary(pred, threshold)
    if t.shape != p.shape:
        raise ValueError(f"truth and prediction shapes differ: {t.shape} vs {p.shape}")
    inter = np.logical_and(t, p).sum(axis=(1, 2)).astype(np.float64)
    tsum, psum = t.sum(axis=(1, 2)).astype(np.float64), p.sum(axis=(1, 2)).astype(np.float64)
    union = tsum + psum - inter
    empty = (tsum + psum) == 0
    dice = np.where(empty, 1.0, 2 * inter / np.maximum(tsum + psum, EPS))
    jacc = np.where(empty, 1.0, inter / np.maximum(union, EPS))
    return dice, jacc


def segmentation_metrics(truth: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Mean Dice, Jaccard and ISIC thresholded Jaccard (per-image Jaccard below 0.65 counts as 0)."""
    dice, jacc = per_image_overlap(truth, prob, threshold)
    return {
        "dice": float(dice.mean()),
        "jaccard": float(jacc.mean()),
        "thresholded_jaccard": float(np.where(jacc < ISIC_JACCARD_FLOOR, 0.0, jacc).mean()),
    }


def tune_threshold(
    truth: np.ndarray, prob: np.ndarray, candidates: Sequence[float] = tuple(np.round(np.arange(0.1, 0.91, 0.05), 2))
) -> tuple[float, dict[float, dict[str, float]]]:
    """The candidate threshold maximising thresholded Jaccard (ties to the lower Dice loss), and all scores."""
    scores = {float(t): segmentation_metrics(truth, prob, float(t)) for t in candidates}
    best = max(scores, key=lambda t: (scores[t]["thresholded_jaccard"], scores[t]["dice"]))
    return best, scores


def confusion_matrix(truth: Sequence[int], pred: Sequence[int], n: int = NUM_CLASSES) -> np.ndarray:
    """n x n counts, rows true class, columns predicted class."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(truth, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return cm


def classification_metrics(truth: Sequence[int], pred: Sequence[int]) -> dict:
    """Accuracy, macro precision/recall/F1, balanced accuracy, per-class recall and the confusion matrix.

    Macro averages run over the classes present in ``truth`` (a class absent from the test set has
    no defined recall); predictions of absent classes still lower precision of nothing and count as errors.
    """
    truth, pred = np.asarray(truth, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    if truth.size == 0 or truth.shape != pred.shape:
        raise ValueError(f"need equal, non-empty label arrays, got {truth.shape} and {pred.shape}")
    cm = confusion_matrix(truth, pred)
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1).astype(np.float64), cm.sum(axis=0).astype(np.float64)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    return {
        "accuracy": float((truth == pred).mean()),
        "macro_precision": float(precision[present].mean()),
        "macro_recall": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "balanced_accuracy": float(recall[present].mean()),
        "per_class_recall": {CLASS_CODES[i]: (float(recall[i]) if present[i] else None) for i in range(NUM_CLASSES)},
        "per_class_f1": {CLASS_CODES[i]: (float(f1[i]) if present[i] else None) for i in range(NUM_CLASSES)},
        "support": {CLASS_CODES[i]: int(support[i]) for i in range(NUM_CLASSES)},
        "confusion_matrix": cm.tolist(),
    }
