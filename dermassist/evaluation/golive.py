"""The report's "Before go-live" section: the site's referral, assessability and calibration figures against the
targets the release was held to (``training.model_card.targets``), each with a verdict its 95% interval supports, and
the terms the released models come with, whatever the images are named."""
from __future__ import annotations

from collections.abc import Sequence

from .markdown import format_interval

#: The targets a site's own figures are held to, by the keys of the report's figures (the model card's TARGETS).
SITE_TARGETS = ("melanoma_sensitivity", "specificity", "not_assessable", "ece")
MODEL_CARD = "training/release/MODEL_CARD.md"


def interval_verdict(value: float, interval: Sequence[float] | None, how: str, target: float) -> str:
    """``met`` when the whole 95% interval lies on the target's side, ``not met`` when it lies wholly on the other,
    else that these images cannot tell (the point estimate's side said)."""
    low, high = (value, value) if interval is None else (float(interval[0]), float(interval[1]))
    if (low >= target) if how == ">=" else (high <= target):
        return "met"
    if (high < target) if how == ">=" else (low > target):
        return f"**not met**: the whole 95% interval lies {'below' if how == '>=' else 'above'} the target"
    side = "meets" if (value >= target if how == ">=" else value <= target) else "misses"
    return f"cannot tell on these images: the point estimate {side} it, and the 95% interval holds the target"


def calibration_verdict(ece: float, floor: dict | None) -> str:
    """Whether the probabilities are over-confident on these images: an ECE above what a perfectly calibrated model
    scores on as many images (the floor's 95th percentile) is more than the sample size explains."""
    if not floor:
        return "no floor to judge by"
    if ece > floor["p95"]:
        return (f"**over-confident here**: above the {floor['p95']:.3f} a perfectly calibrated model scores on as many "
                "images (95th percentile): do not read the percentages as calibrated at this site")
    return (f"cannot be told from perfect calibration on these images (a calibrated model scores up to {floor['p95']:.3f} "
            "here, 95th percentile)")


def golive_markdown(report: dict) -> list[str]:
    """The section: the terms of use always; with referral figures, each against its target and verdict."""
    from training.model_card.shipped import SHIPPED_HEADER
    from training.model_card.targets import TARGETS

    run = report.get("run") or {}
    terms = ("These models were brought with `dermassist import`: their terms of use are their owner's."
             if run.get("release_imported") else " ".join(SHIPPED_HEADER))
    lines = ["## Before go-live", "", f"{terms} Intended use, known limits and the release's own figures: `{MODEL_CARD}`.",
             ""]
    t, c = report.get("triage") or {}, report.get("classification") or {}
    if not t and not c:
        return lines
    # the card's labels, but a site's images are no test split
    targets = {key: (label.removeprefix("test ") if key == "not_assessable" else label, how, target)
               for label, key, how, target in TARGETS}
    rows = []
    for key in SITE_TARGETS:
        label, how, target = targets[key]
        if key == "ece" and c.get("ece") is not None:
            rows.append(f"| {label} | {c['ece']:.3f} | {how} {target:g} | "
                        f"{calibration_verdict(c['ece'], c.get('ece_if_calibrated'))} |")
        elif key != "ece" and t.get(key) is not None:
            interval = t.get(f"{key}_ci95")
            rows.append(f"| {label} | {t[key]:.3f}{format_interval(interval, 3)} | {how} {target:g} | "
                        f"{interval_verdict(t[key], interval, how, target)} |")
    return lines + ["The release was held to these targets on its own test split (the model card's Targets). Here "
                    "they are this site's images; a figure that misses its target, or that these images cannot tell, "
                    "is for the study's protocol to weigh before any answer is acted on.", "",
                    "| figure | here (95% interval) | target | verdict |", "|---|---|---|---|", *rows, ""]
