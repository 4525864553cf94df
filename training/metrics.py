"""Segmentation and classification metrics on numpy arrays (no framework imports)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from preprocess.contract import CLASS_CODES, MELANOMA_INDEX, NUM_CLASSES
from preprocess.triage import REFER_INDEX

from .errors import TrainingError

# Label and score vectors: the functions here take lists or numpy arrays and work on arrays.
Labels = Sequence[int] | np.ndarray
Scores = Sequence[float] | np.ndarray
Flags = Sequence[bool] | np.ndarray

ISIC_JACCARD_FLOOR = 0.65
EPS = 1e-7


class MetricsInputError(TrainingError, ValueError):
    """Arrays handed to a metric do not fit together (shapes, counts); still a ValueError for callers that catch one."""


def _binary(masks: np.ndarray, threshold: float) -> np.ndarray:
    m = np.asarray(masks)
    if m.ndim == 4 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim == 2:
        m = m[None]
    return m >= threshold


def per_image_overlap(truth: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per-image (dice, jaccard) of binarised masks (N, H, W[, 1]); two empty masks score 1.

    Predicting no lesion where the truth has none is right, so it scores 1; but a set of empty truths then rewards
    whatever threshold predicts nothing, so the segmenter refuses a split whose truths are all empty and counts and
    names the empty ones otherwise (``training.segmenter.train.check_lesions``)."""
    t = _binary(truth, 0.5)
    p = _binary(pred, threshold)
    if t.shape != p.shape:
        raise MetricsInputError(f"segmentation truth and prediction shapes differ: {t.shape} vs {p.shape}; expected one "
                                "mask per image at the same size (resize the predictions to the truth's size)")
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


THRESHOLD_CANDIDATES = tuple(float(t) for t in np.round(np.arange(0.1, 0.91, 0.05), 2))


def tune_threshold(
    truth: np.ndarray, prob: np.ndarray, candidates: Sequence[float] = THRESHOLD_CANDIDATES,
    score: Callable[[float], dict[str, float]] | None = None,
) -> tuple[float, dict[float, dict[str, float]]]:
    """The candidate threshold maximising thresholded Jaccard (ties to the higher Dice), and all scores.

    ``score(t)`` replaces the plain binarisation when the masks are post-processed (e.g. as served).
    """
    score = score or (lambda t: segmentation_metrics(truth, prob, t))
    scores = {float(t): score(float(t)) for t in candidates}
    best = max(scores, key=lambda t: (scores[t]["thresholded_jaccard"], scores[t]["dice"]))
    return best, scores


def confusion_matrix(truth: Labels, pred: Labels, n: int = NUM_CLASSES) -> np.ndarray:
    """n x n counts, rows true class, columns predicted class."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(truth, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return cm


def classification_metrics(truth: Labels, pred: Labels) -> dict:
    """Accuracy, macro precision/recall/F1, balanced accuracy, per-class recall and F1, and the confusion matrix
    (``metrics_from_confusion`` of the labels' confusion matrix)."""
    truth, pred = np.asarray(truth, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    if truth.size == 0 or truth.shape != pred.shape:
        raise MetricsInputError(f"classification metrics need equal, non-empty label arrays (one prediction per true "
                                f"label), got {truth.shape} and {pred.shape}; pass the predictions of the same images")
    return metrics_from_confusion(confusion_matrix(truth, pred))


def metrics_from_confusion(confusion: np.ndarray | Sequence[Sequence[int]]) -> dict:
    """Accuracy, macro precision/recall/F1, balanced accuracy, per-class recall and F1 of a confusion matrix (rows
    true class, columns predicted class), and the matrix itself.

    Macro precision, recall and F1 average over the classes present in the truth OR in the predictions
    (scikit-learn's default labels, the union): a prediction into a class the set lacks gives that class precision,
    recall and F1 0, so it lowers the macro figures (over the truth's classes alone it cost nothing: PH2 test 0.955
    against 0.636). Balanced accuracy is the mean recall over the classes present in the truth only (a class absent
    from the truth has no recall to average). Per-class recall is None for a class absent from the truth; per-class F1
    is None for a class in neither truth nor predictions.
    """
    cm = np.asarray(confusion)
    if cm.shape != (NUM_CLASSES, NUM_CLASSES) or not np.issubdtype(cm.dtype, np.integer) or (cm < 0).any() \
            or cm.sum() == 0:
        raise MetricsInputError(f"a confusion matrix must be {NUM_CLASSES}x{NUM_CLASSES} non-negative counts of at least "
                                f"one image, got shape {cm.shape} of {cm.dtype}; pass confusion_matrix(truth, pred)")
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1).astype(np.float64), cm.sum(axis=0).astype(np.float64)
    present = support > 0
    labelled = present | (predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    return {
        "accuracy": float(tp.sum() / cm.sum()),
        "macro_precision": float(precision[labelled].mean()),
        "macro_recall": float(recall[labelled].mean()),
        "macro_f1": float(f1[labelled].mean()),
        "balanced_accuracy": float(recall[present].mean()),
        "per_class_recall": {CLASS_CODES[i]: (float(recall[i]) if present[i] else None) for i in range(NUM_CLASSES)},
        "per_class_f1": {CLASS_CODES[i]: (float(f1[i]) if labelled[i] else None) for i in range(NUM_CLASSES)},
        "support": {CLASS_CODES[i]: int(support[i]) for i in range(NUM_CLASSES)},
        "confusion_matrix": cm.astype(np.int64).tolist(),
    }


def refreshed_figures(figures: object) -> object:
    """``figures`` (a release's nested record) with every block that holds a ``confusion_matrix`` re-derived from it by
    ``metrics_from_confusion``, its other keys kept: figures a release recorded with an older definition of a metric
    (the macro average) read as today's, without retraining or re-measuring."""
    if isinstance(figures, Mapping):
        refreshed = {key: refreshed_figures(value) for key, value in figures.items()}
        if "confusion_matrix" in figures:
            refreshed.update(metrics_from_confusion(figures["confusion_matrix"]))
        return refreshed
    if isinstance(figures, list):
        return [refreshed_figures(item) for item in figures]
    return figures


def roc_auc(positive: Flags, scores: Scores) -> float | None:
    """Area under the ROC curve (ties count half), or None when only one class occurs."""
    pos, sc = np.asarray(positive, dtype=bool), np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(sc, kind="mergesort")
    ranks = np.empty(len(sc), np.float64)
    sorted_scores = sc[order]
    i = 0
    while i < len(sc):
        j = i
        while j + 1 < len(sc) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@dataclass(frozen=True)
class ReferralFigures:
    """Of the images referred: the share of melanomas and of malignant lesions (REFER_CLASSES) caught and the
    share of benign ones left alone (None for an empty group), and the three group sizes."""

    melanoma_sensitivity: float | None
    malignant_sensitivity: float | None
    specificity: float | None
    melanomas: int
    malignant: int
    benign: int


def referral_figures(truth: Labels, refer: Flags) -> ReferralFigures:
    """Melanoma and malignant sensitivity and benign specificity of the ``refer`` flags against ``truth``."""
    labels, flags = np.asarray(truth), np.asarray(refer, bool)
    mel, malignant = labels == MELANOMA_INDEX, np.isin(labels, REFER_INDEX)

    def share(of: np.ndarray, want: np.ndarray) -> float | None:
        return float(want[of].mean()) if of.any() else None

    return ReferralFigures(share(mel, flags), share(malignant, flags), share(~malignant, ~flags), int(mel.sum()),
                           int(malignant.sum()), int((~malignant).sum()))


def melanoma_auc(truth: Labels, probabilities: np.ndarray) -> float | None:
    """ROC AUC of P(MEL) for melanoma against every other class, or None without both."""
    return roc_auc(np.asarray(truth) == MELANOMA_INDEX, np.asarray(probabilities)[:, MELANOMA_INDEX])


ECE_BINS = 15


def reliability(truth: Labels, probabilities: np.ndarray, bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Per equal-width bin of top-class confidence: count, mean confidence and accuracy (empty bins: 0)."""
    probs = np.asarray(probabilities, dtype=np.float64)
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    correct = (pred == np.asarray(truth)).astype(np.float64)
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)  # (lo, hi] bins, 0 in the first
    count = np.bincount(which, minlength=bins).astype(np.float64)
    mean_conf = np.divide(np.bincount(which, conf, bins), count, out=np.zeros(bins), where=count > 0)
    accuracy = np.divide(np.bincount(which, correct, bins), count, out=np.zeros(bins), where=count > 0)
    return {"count": count.tolist(), "confidence": mean_conf.tolist(), "accuracy": accuracy.tolist()}


def expected_calibration_error(truth: Labels, probabilities: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of the top class: sum over confidence bins of (bin share) x |accuracy - mean confidence|."""
    r = reliability(truth, probabilities, bins)
    count = np.asarray(r["count"])
    gap = np.abs(np.asarray(r["accuracy"]) - np.asarray(r["confidence"]))
    return float((count * gap).sum() / max(1.0, count.sum()))


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (95% at z = 1.96); None for an empty group. Unlike the plain
    p +- z sqrt(p(1-p)/n) it stays inside [0, 1] and is honest at 16 of 18 or at n of n."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise MetricsInputError(f"Wilson interval: successes must lie in [0, {n}] (the group's size), got {successes}; "
                                "count the successes within that group")
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def jeffreys_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """Jeffreys interval of a proportion: the central ``level`` of Beta(k + 1/2, n - k + 1/2), starting at 0 for 0 of
    n and ending at 1 for n of n (Brown, Cai & DasGupta, Stat. Sci. 2001); None for an empty group."""
    if n <= 0:
        return None
    from scipy.stats import beta

    tail = (1.0 - level) / 2.0
    low = 0.0 if successes == 0 else float(beta.ppf(tail, successes + 0.5, n - successes + 0.5))
    high = 1.0 if successes == n else float(beta.ppf(1.0 - tail, successes + 0.5, n - successes + 0.5))
    return low, high


def balanced_accuracy_interval(truth: Labels, pred: Labels, draws: int = 20000, level: float = 0.95,
                               seed: int = 0) -> tuple[float, float] | None:
    """Interval of the balanced accuracy: each class's recall is drawn from its Jeffreys posterior Beta(k + 1/2,
    n - k + 1/2) (k of its n images right), the classes independently, and the central ``level`` of their means is
    returned; None without images.

    Resampling the class's own answers (a bootstrap) draws Binomial(n, k/n), which has no spread at all when a class
    is all right or all wrong, so 10 of 10 gave 1.00-1.00. The Jeffreys posterior keeps the spread the sample size
    leaves (for one class it is the Jeffreys interval, whose coverage stays close to nominal even at small n and at
    0 or n of n: Brown, Cai & DasGupta, Stat. Sci. 2001). As their Jeffreys interval is set to start at 0 for 0 of n
    and to end at 1 for n of n, the interval is widened to hold the observed balanced accuracy, which classes all
    wrong or all right can leave just outside the posterior's central part (0.104 with "0.11-0.37" was reported)."""
    labels, predicted = np.asarray(truth), np.asarray(pred)
    if labels.size == 0:
        return None
    rng = np.random.default_rng(seed)
    recalls, observed = [], []
    for c in np.unique(labels):
        right = predicted[labels == c] == c
        k = int(right.sum())
        recalls.append(rng.beta(k + 0.5, right.size - k + 0.5, size=draws))
        observed.append(k / right.size)
    scores = np.mean(recalls, axis=0)
    tail = (1.0 - level) / 2.0
    estimate = float(np.mean(observed))
    return (min(float(np.quantile(scores, tail)), estimate), max(float(np.quantile(scores, 1.0 - tail)), estimate))


def ece_noise_floor(probabilities: np.ndarray, bins: int = ECE_BINS, draws: int = 1000,
                    seed: int = 0) -> dict[str, float]:
    """The ECE a PERFECTLY calibrated model would score with these same probabilities on this many images: labels
    drawn from the probabilities themselves, ECE measured per draw; its median and 95th percentile. An observed
    ECE below that 95th percentile is within what the sample size alone produces."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.shape[0] == 0:
        return {"median": 0.0, "p95": 0.0}
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(probs, axis=1)
    cumulative[:, -1] = np.inf  # rounding in the last digit never draws past the last class
    eces = [expected_calibration_error((rng.random((len(probs), 1)) >= cumulative).sum(axis=1), probs, bins)
            for _ in range(draws)]
    return {"median": float(np.median(eces)), "p95": float(np.percentile(eces, 95))}


BOOTSTRAP_DRAWS = 2000


def stratified_bootstrap_interval(truth: Labels, statistic: Callable[[np.ndarray], float | None],
                                  draws: int = BOOTSTRAP_DRAWS, level: float = 0.95,
                                  seed: int = 0) -> tuple[float, float] | None:
    """Central ``level`` percentile interval of ``statistic(indices)`` over ``draws`` resamples of the images drawn
    with replacement within each true class (each class keeps its size); None without images or when the statistic
    is undefined on every resample (e.g. an AUC with one class)."""
    labels = np.asarray(truth)
    if labels.size == 0:
        return None
    if not 0 < level < 1 or draws < 1:
        raise MetricsInputError(f"bootstrap interval: expected 0 < level < 1 and draws >= 1, got level {level} and "
                                f"draws {draws}")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    values = []
    for _ in range(draws):
        indices = np.concatenate([rng.choice(g, size=g.size, replace=True) for g in groups])
        value = statistic(indices)
        if value is not None:
            values.append(value)
    if not values:
        return None
    tail = (1.0 - level) / 2.0
    return float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail))


def melanoma_auc_interval(truth: Labels, probabilities: np.ndarray, draws: int = BOOTSTRAP_DRAWS,
                          seed: int = 0) -> tuple[float, float] | None:
    """95% stratified bootstrap interval of the melanoma ROC AUC (resampled within each true class); None without
    both melanomas and other images."""
    labels, probs = np.asarray(truth), np.asarray(probabilities)
    if melanoma_auc(labels, probs) is None:
        return None
    return stratified_bootstrap_interval(labels, lambda i: melanoma_auc(labels[i], probs[i]), draws, seed=seed)


def macro_f1_interval(truth: Labels, pred: Labels, draws: int = BOOTSTRAP_DRAWS,
                      seed: int = 0) -> tuple[float, float] | None:
    """95% stratified bootstrap interval of the macro F1 (over the classes in truth or predictions, as
    ``classification_metrics``), resampled within each true class; None without images."""
    labels, predicted = np.asarray(truth), np.asarray(pred)
    if labels.size != predicted.size:
        raise MetricsInputError(f"macro F1 interval: expected one prediction per true label, got {predicted.size} "
                                f"predictions for {labels.size} labels")
    return stratified_bootstrap_interval(labels, lambda i: classification_metrics(labels[i], predicted[i])["macro_f1"],
                                         draws, seed=seed)
