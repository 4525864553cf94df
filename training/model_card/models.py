"""The card's What it is section: the segmenter, the classifier, the referral rule and the limits of assessability
the release serves."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .referral import ReferralRule, referral_lines, threshold_fragility_lines
from .text import percentile, short_number

if TYPE_CHECKING:
    from preprocess.triage import TriageParams


def ood_limit_words(limit: float) -> str:
    """What the served OOD_SCORE's 1.0 is when the release's limit is not the classifier's 1.0: triage serves the
    classifier's score over the limit."""
    return "" if limit == 1.0 else f" (served as the classifier's score over the limit {short_number(limit)})"


def what_it_is_lines(release: dict, rule: ReferralRule, triage_values: TriageParams) -> list[str]:
    """The What it is section: each model with its served values, the referral rule and what is assessable."""
    seg, cls, triage, quality = release["segmenter"], release["classifier"], release["triage"], release["quality"]
    calibration = cls["figures"].get("calibration") or {}
    validation_melanomas = ((calibration.get("val") or {}).get("operating_point") or {}).get("melanomas")
    return [
        "## What it is",
        "",
        f"- Segmenter: Keras ResNet{seg['unet']['depth']}-UNet, width {seg['unet']['width']} "
        f"({seg['figures'].get('params', 0) / 1e6:.1f} M parameters), 256x256 input, BCE + Dice, trained from scratch;",
        f"  served mask threshold {seg['threshold']:.2f} on its lesion probability (tuned on validation), crop margin "
        f"{seg['margin']:.2f}.",
        "- Classifier: torchvision ResNet18 (11.2 M parameters) trained from scratch on the served 224 px lesion crops, with",
        f"  temperature {cls['temperature']:.3f} (fitted on validation), an out-of-distribution score (Mahalanobis distance",
        f"  of the pooled features to the training class means, 1.0 = the validation {percentile(rule.ood_quantile)} "
        "percentile) and the class",
        "  activation map of the top class (Grad-CAM of its calibrated log-probability), all inside one TorchScript.",
        *referral_lines(triage["values"]["refer_threshold"], rule, validation_melanomas),
        *threshold_fragility_lines(release, rule, validation_melanomas),
        f"- Assessability: sharpness >= {quality['values']['min_sharpness']:.1f} (Laplacian variance), brightness in "
        f"[{quality['values']['min_brightness']:.0f}, {quality['values']['max_brightness']:.0f}] (grey level), fitted on the",
        f"  training images; OOD_SCORE < 1.0{ood_limit_words(rule.ood_limit)}; colour (a greyscale picture is not assessable); "
        "no seam "
        "(several pictures put",
        f"  together are not); no second lesion-like area of {triage_values.other_lesion_min_fraction:.0%} of the picture "
        f"and {triage_values.other_lesion_min_share:.0%} of the",
        "  lesion's area or more (it would go unassessed).",
        "- Weights are stored in float16 (`segmenter.npz`, `classifier.npz`); every figure below was measured on them.",
        "",
    ]
