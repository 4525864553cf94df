"""After training: fit the temperature, the OOD statistics, the referral operating point and the quality
limits on the right splits, and measure what they give (PyTorch process; the maths is ``training.calibration``)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from preprocess.contract import MELANOMA_INDEX
from preprocess.quality import QualityLimits
from preprocess.triage import TriageParams, refer_scores

from ..calibration import (
    choose_threshold,
    fit_mahalanobis,
    fit_quality_limits,
    fit_temperature,
    operating_point,
    quality_rejections,
    quantile_scale,
    softmax,
)
from ..export.classifier import ClassifierCalibration
from ..metrics import expected_calibration_error, reliability
from ..plots import plot_reliability
from ..progress import ProgressLog
from .data import CropSet
from .schedule import DEFAULT_REFER_SAFETY, OOD_VALIDATION_QUANTILE, REFER_SENSITIVITY
from .train import pooled_features, to_tensor

logger = logging.getLogger(__name__)
LOWEST_MELANOMA_SCORES = 5  # validation melanoma scores release.json keeps, lowest first


def lowest_melanoma_scores(labels: Any, scores: np.ndarray, count: int = LOWEST_MELANOMA_SCORES) -> list[float]:
    """The ``count`` lowest REFER scores of the melanomas among ``labels``, ascending (the REFER threshold is one of
    them: the finite-sample rule takes the k-th lowest)."""
    melanoma = np.asarray(labels) == MELANOMA_INDEX
    return [float(s) for s in np.sort(np.asarray(scores, dtype=np.float64)[melanoma])[:count]]


@dataclass(frozen=True)
class Tuned:
    """Everything tuned after training, with the figures behind each value."""

    calibration: ClassifierCalibration
    triage: TriageParams
    quality: QualityLimits
    figures: dict


def logits_and_features(model: torch.nn.Module, crops: np.ndarray, batch_size: int = 64,
                        what: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, 8), pooled layer4 features (N, 512)) of served 224 px crops, float32 as served; with ``what``
    (e.g. "features of the train crops") a log line each tenth done."""
    model.eval()
    logits, features = [], []
    progress = ProgressLog(logger, what, len(crops), "crops") if what else None
    with torch.inference_mode():
        for i in range(0, len(crops), batch_size):
            x = to_tensor(crops[i : i + batch_size])
            pooled = pooled_features(model, x)
            features.append(pooled.numpy())
            head: Any = model.fc  # torchvision's ResNet: its layers are untyped attributes
            logits.append(head(pooled).numpy())
            if progress is not None:
                progress.advance(len(x))
    return np.concatenate(logits), np.concatenate(features)


def run_name(out_dir: Path, name: str | None = None) -> str:
    """The ``--name`` of the run writing into ``out_dir``: ``name`` when given, else the one its staging folder
    ``.<name>.staging`` (``training.run_folder``) spells, else ``classifier`` (the flag's default)."""
    if name:
        return name
    folder = Path(out_dir).name
    if folder.startswith(".") and folder.endswith(".staging") and len(folder) > len("..staging"):
        return folder[1 : -len(".staging")]
    return "classifier"


def reliability_path(out_dir: Path, name: str | None = None) -> Path:
    """Where a run's test reliability diagram goes: ``<name>_reliability.png``, prefixed like its other outputs so a
    second run with another ``--name`` in the same ``--out`` keeps the first one's."""
    return Path(out_dir) / f"{run_name(out_dir, name)}_reliability.png"


def tune(model: torch.nn.Module, train: CropSet, val: CropSet, test: CropSet, out_dir: Path,
         refer_safety: float = DEFAULT_REFER_SAFETY, name: str | None = None) -> Tuned:
    """Temperature on validation NLL; Mahalanobis statistics on training features, scaled by the validation
    OOD_VALIDATION_QUANTILE; the REFER threshold on calibrated validation scores; quality limits from the training
    images. Test figures (ECE before/after, operating point) are measured, never tuned on. The reliability diagram
    goes to :func:`reliability_path` (``name``: the run's --name)."""
    sets = {"train": train, "val": val, "test": test}
    outputs = {name: logits_and_features(model, crops.crops, what=f"tuning step {i} of 4: features of the {name} crops")
               for i, (name, crops) in enumerate(sets.items(), 1)}
    (train_logits, train_features), (val_logits, val_features), (test_logits, test_features) = outputs.values()
    logger.info("tuning step 4 of 4: temperature on validation, OOD statistics, REFER threshold, quality limits")
    temperature = fit_temperature(val_logits, val.labels)
    maha = fit_mahalanobis(train_features, train.labels)
    scale = quantile_scale(maha.distances(val_features), OOD_VALIDATION_QUANTILE)
    val_probs, test_probs = softmax(val_logits, temperature), softmax(test_logits, temperature)
    point = choose_threshold(val.labels, refer_scores(val_probs), REFER_SENSITIVITY, refer_safety)
    test_point = operating_point(test.labels, refer_scores(test_probs), point.threshold)
    raw = np.asarray(train.quality)
    limits = fit_quality_limits(raw[:, 0], raw[:, 1])
    figures: dict[str, Any] = {
        "temperature": temperature,
        "val": {"ece_before": expected_calibration_error(val.labels, softmax(val_logits)),
                "ece_after": expected_calibration_error(val.labels, val_probs),
                "operating_point": point.as_dict(),
                # how far one image moves the threshold (the model card's fragility line): the lowest few scores
                "lowest_melanoma_scores": lowest_melanoma_scores(val.labels, refer_scores(val_probs)),
                "refer_sensitivity": REFER_SENSITIVITY, "refer_safety": refer_safety,
                "ood_limit_quantile": OOD_VALIDATION_QUANTILE},
        "test": {"ece_before": expected_calibration_error(test.labels, softmax(test_logits)),
                 "ece_after": expected_calibration_error(test.labels, test_probs),
                 "reliability_before": reliability(test.labels, softmax(test_logits)),
                 "reliability_after": reliability(test.labels, test_probs),
                 "operating_point": test_point.as_dict(),
                 "ood_share_at_or_above_1": float(np.mean(maha.distances(test_features) / scale >= 1.0))},
        "ood": {"classes": int(len(maha.means)), "train_images": int(len(train.labels)), "scale": scale},
        "quality": {**limits.as_dict(), "train_images": int(len(raw)),
                    # the validation figures behind the limits: the share of validation images each turns away
                    "val_images": int(len(val.labels)),
                    "val_rejected": quality_rejections(np.zeros((0, 2)) if val.quality is None else val.quality,
                                                       limits)},
    }
    plot_reliability({"before calibration": figures["test"]["reliability_before"],
                      f"after (T = {temperature:.2f})": figures["test"]["reliability_after"]},
                     reliability_path(out_dir, name), f"test reliability (T = {temperature:.2f})")
    logger.info("temperature %.3f: test ECE %.3f -> %.3f; REFER threshold %.3f (val melanoma sensitivity %.3f); "
                "test melanoma sensitivity %.3f, malignant %.3f, benign specificity %.3f", temperature,
                figures["test"]["ece_before"], figures["test"]["ece_after"], point.threshold,
                point.melanoma_sensitivity, test_point.melanoma_sensitivity, test_point.malignant_sensitivity,
                test_point.specificity)
    calibration = ClassifierCalibration(temperature, maha.means, maha.precision, scale,
                                        {"val": figures["val"], "ood": figures["ood"]})
    return Tuned(calibration, TriageParams(refer_threshold=point.threshold), limits, figures)
