"""Values tuned on validation after training (numpy only): temperature, referral operating point,
out-of-distribution statistics and image-quality limits. Each is a pure function of arrays."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from preprocess.contract import CLASS_CODES, MELANOMA_INDEX
from preprocess.quality import QualityLimits

from .classifier.schedule import DEFAULT_REFER_SAFETY, OOD_VALIDATION_QUANTILE, REFER_SENSITIVITY
from .errors import TrainingError
from .metrics import Labels, Scores, referral_figures
from .splits import MIN_LESIONS_TO_SPLIT

logger = logging.getLogger(__name__)

MEL = MELANOMA_INDEX


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / temperature."""
    z = np.asarray(logits, np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def before_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """The probabilities softmax(z / T) came from before the temperature: softmax(z) = softmax(T log p), exactly (the
    softmax drops the constant log p loses); a probability of 0 (float32 underflow) counts as the smallest double."""
    log_p = np.log(np.maximum(np.asarray(probabilities, np.float64), np.finfo(np.float64).tiny))
    return softmax(log_p * temperature)


def nll(logits: np.ndarray, labels: Labels, temperature: float) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / temperature)."""
    p = softmax(logits, temperature)
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(p)), np.asarray(labels)], 1e-12))))


def fit_temperature(logits: np.ndarray, labels: Labels, lo: float = 0.05, hi: float = 20.0) -> float:
    """The temperature minimising validation NLL (golden-section search on log T; NLL is unimodal in it)."""
    if len(logits) == 0:
        raise TrainingError(f"cannot fit a temperature on an empty validation set (0 images); the split gives a class "
                            f"validation images only where the data holds at least {MIN_LESIONS_TO_SPLIT} of its lesions: "
                            "add images to the classifier's --data")
    a, b = np.log(lo), np.log(hi)
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    for _ in range(80):
        if nll(logits, labels, float(np.exp(c))) < nll(logits, labels, float(np.exp(d))):
            b = d
        else:
            a = c
        c, d = b - ratio * (b - a), a + ratio * (b - a)
    temperature = float(np.exp((a + b) / 2.0))
    if not lo * 1.01 < temperature < hi / 1.01:
        logger.warning("the fitted temperature %.3f sits at the search bound [%g, %g]: the validation logits are "
                       "degenerate (a model barely trained, or one class only); the calibration is not meaningful",
                       temperature, lo, hi)
    return temperature


@dataclass(frozen=True)
class OperatingPoint:
    """A REFER_SCORE threshold and what it gives on the set it is measured on."""

    threshold: float
    melanoma_sensitivity: float
    malignant_sensitivity: float
    specificity: float
    melanomas: int
    malignant: int
    benign: int

    def as_dict(self) -> dict:
        """JSON-ready fields."""
        return dict(self.__dict__)


def operating_point(labels: Labels, scores: Scores, threshold: float) -> OperatingPoint:
    """Melanoma and malignant sensitivity and benign specificity of ``score >= threshold`` (NaN for an empty group)."""
    r = referral_figures(labels, np.asarray(scores, np.float64) >= threshold)

    def rate(value: float | None) -> float:
        return float("nan") if value is None else value

    return OperatingPoint(float(threshold), rate(r.melanoma_sensitivity), rate(r.malignant_sensitivity),
                          rate(r.specificity), r.melanomas, r.malignant, r.benign)


def choose_threshold(labels: Labels, scores: Scores, sensitivity: float = REFER_SENSITIVITY,
                     safety: float = DEFAULT_REFER_SAFETY) -> OperatingPoint:
    """The highest threshold that keeps melanoma sensitivity >= ``sensitivity`` on the NEXT melanoma, not only on
    these: the k-th lowest validation melanoma score with k = floor((n + 1)(1 - sensitivity)) (split-conformal: a
    new melanoma falls below it with probability k / (n + 1) <= 1 - sensitivity). The plain empirical rule, which
    may miss floor(n (1 - sensitivity)) of the n, gives about (k + 1) / (n + 1) on new melanomas: 0.92 for 24.
    With fewer than 1 / (1 - sensitivity) - 1 melanomas no threshold guarantees it; the lowest score is taken and
    a warning says so. ``safety`` < 1 lowers the threshold further."""
    labels, scores = np.asarray(labels), np.asarray(scores, np.float64)
    mel_scores = np.sort(scores[labels == MEL])
    if mel_scores.size == 0:
        present = {CLASS_CODES[int(c)]: int(n) for c, n in zip(*np.unique(labels, return_counts=True), strict=True)}
        raise TrainingError(
            f"the validation set holds no melanoma (its {labels.size} images by class: {present or 'none'}): the referral "
            f"threshold cannot be chosen; the split gives validation melanomas only where the data holds at least "
            f"{MIN_LESIONS_TO_SPLIT} melanoma lesions: add melanoma (MEL) images to the classifier's --data")
    rank = int(np.floor((mel_scores.size + 1) * (1.0 - sensitivity) + 1e-9))
    if rank < 1:
        logger.warning("%d validation melanomas cannot guarantee a melanoma sensitivity of %.2f on new images "
                       "(at least %d are needed): the threshold is the lowest melanoma score", mel_scores.size,
                       sensitivity, int(np.ceil(1.0 / (1.0 - sensitivity) - 1 - 1e-9)))
    return operating_point(labels, scores, float(mel_scores[max(rank, 1) - 1]) * safety)


@dataclass(frozen=True)
class Mahalanobis:
    """Class means and a shared precision matrix of pooled features (for the OOD score)."""

    means: np.ndarray  # (K, D) float32, one row per class present in training
    precision: np.ndarray  # (D, D) float32

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Distance of each feature row to its nearest class mean, (N,)."""
        diff = np.asarray(features, np.float64)[:, None, :] - self.means[None].astype(np.float64)
        d2 = np.einsum("nkd,de,nke->nk", diff, self.precision.astype(np.float64), diff)
        return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


def fit_mahalanobis(features: np.ndarray, labels: Labels, shrinkage: float = 0.1) -> Mahalanobis:
    """Per-class means and the inverse of the pooled within-class covariance, shrunk towards its mean
    variance (``shrinkage`` in [0, 1]) so a few hundred images give a stable inverse."""
    x, y = np.asarray(features, np.float64), np.asarray(labels)
    classes = np.unique(y)
    means = np.stack([x[y == c].mean(axis=0) for c in classes])
    centred = x - means[np.searchsorted(classes, y)]
    cov = centred.T @ centred / max(1, len(x) - len(classes))
    cov = (1.0 - shrinkage) * cov + shrinkage * np.eye(cov.shape[0]) * np.trace(cov) / cov.shape[0]
    try:
        precision = np.linalg.inv(cov)
    except np.linalg.LinAlgError as e:
        raise TrainingError(f"the pooled feature covariance of {len(x)} images is singular; expected an invertible "
                            f"one: raise the shrinkage (got {shrinkage}) or train on more images") from e
    return Mahalanobis(means.astype(np.float32), precision.astype(np.float32))


def quantile_scale(distances: np.ndarray, q: float = OOD_VALIDATION_QUANTILE) -> float:
    """The ``q`` quantile of validation distances: dividing by it puts that share of them below 1.0."""
    return float(np.quantile(np.asarray(distances, np.float64), q))


def quality_rejections(raw: np.ndarray, limits: QualityLimits) -> dict[str, float]:
    """The share of images (``raw``: (N, 2) sharpness and brightness, as ``preprocess.quality.raw_quality``) each limit
    turns away: too blurred, too dark, too bright, and any of them; the validation figures behind fitted limits."""
    raw = np.asarray(raw, np.float64).reshape(-1, 2)
    if not len(raw):
        return {"blurred": 0.0, "dark": 0.0, "bright": 0.0, "any": 0.0}
    blurred, dark, bright = (raw[:, 0] < limits.min_sharpness, raw[:, 1] < limits.min_brightness,
                             raw[:, 1] > limits.max_brightness)
    return {"blurred": float(blurred.mean()), "dark": float(dark.mean()), "bright": float(bright.mean()),
            "any": float((blurred | dark | bright).mean())}


def fit_quality_limits(sharpness: Scores, brightness: Scores, sharpness_factor: float = 0.5,
                       brightness_margin: float = 0.35) -> QualityLimits:
    """Limits that pass every training image with room: half the 1st-percentile sharpness, and the
    0.5-99.5 percentile brightness range widened by ``brightness_margin`` of the room to black and white."""
    s, b = np.asarray(sharpness, np.float64), np.asarray(brightness, np.float64)
    lo, hi = np.percentile(b, 0.5), np.percentile(b, 99.5)
    return QualityLimits(
        min_sharpness=float(np.percentile(s, 1.0) * sharpness_factor),
        min_brightness=float(lo * (1.0 - brightness_margin)),
        max_brightness=float(hi + (255.0 - hi) * brightness_margin),
    )
