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


def calibration_verdict(ece: float, target: float, floor: dict | None) -> str:
    """ECE against its target, told apart from what the sample size alone produces: a perfectly calibrated model scores
    up to the floor's 95th percentile on as many images, so an ECE at or under it cannot be told from perfect
    calibration, and an ECE above both it and the target is over-confidence the images show."""
    met = ece <= target
    if not floor:
        return "met" if met else "**not met**"
    p95 = floor["p95"]
    model = "a perfectly calibrated model"
    calibrated = f"{model} scores up to {p95:.3f} on as many images (95th percentile)"
    if ece > max(target, p95):
        return (f"**not met, over-confident here**: above the target and above what {calibrated}: do not read the "
                "percentages as calibrated at this site")
    if met and p95 <= target:
        return "met" + (f" (though above the {p95:.3f} {model} scores: slightly over-confident)" if ece > p95 else "")
    side = "meets" if met else "misses"
    return f"cannot tell on these images: the point estimate {side} it, and {calibrated}"


def melanomas_left_out(report: dict) -> int:
    """The labelled melanomas the referral figures do not count: refused by the service, absent on disk, or in a
    format it does not accept."""
    missing = report.get("melanomas_not_evaluated") or {}
    return int(((report.get("triage") or {}).get("melanomas_refused") or 0) + (missing.get("absent_on_disk") or 0)
               + (missing.get("not_accepted_format") or 0))


def models_imported(report: dict) -> bool:
    """Whether the answers came from models brought with ``dermassist import``: as the answers name their release,
    else as the repository the report read says."""
    from ..base.repository import IMPORTED

    release = (report.get("model") or {}).get("release")
    if release:
        return str(release).startswith(IMPORTED)
    return bool((report.get("run") or {}).get("release_imported"))


def golive_markdown(report: dict) -> list[str]:
    """The section: the terms of use always; with referral figures, each against its target and verdict."""
    from training.model_card.shipped import SHIPPED_HEADER
    from training.model_card.targets import TARGETS

    if models_imported(report):
        kept = (report.get("run") or {}).get("release_models") or []
        terms = ("These models were brought with `dermassist import`: their terms of use are their owner's. "
                 + (f"The {' and '.join(kept)} {'is' if len(kept) == 1 else 'are'} the release's: "
                    + " ".join(SHIPPED_HEADER) + " " if kept else "")
                 + f"The release's model card (`{MODEL_CARD}`) describes the release's models, not these: what is known "
                 "of them here is this report and their training runs' records.")
    else:
        terms = (" ".join(SHIPPED_HEADER) + f" Intended use, known limits and the release's own figures: "
                 f"`{MODEL_CARD}`.")
    lines = ["## Before go-live", "", terms, ""]
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
                        f"{calibration_verdict(c['ece'], target, c.get('ece_if_calibrated'))} |")
        elif key != "ece" and t.get(key) is not None:
            interval = t.get(f"{key}_ci95")
            verdict = interval_verdict(t[key], interval, how, target)
            left_out = melanomas_left_out(report) if key == "melanoma_sensitivity" else 0
            if left_out:  # the service failed on them, or never saw them: the figure cannot vouch for them
                verdict = (f"{'cannot tell' if verdict == 'met' else verdict}: {left_out} melanoma(s) refused or "
                           "missing are not in this figure (see below)")
            rows.append(f"| {label} | {t[key]:.3f}{format_interval(interval, 3)} | {how} {target:g} | {verdict} |")
    if report.get("seen_in_training") or report.get("seen_by_content"):
        rows.append("| (all) | | | **optimistic**: some pictures here are ones the models learnt from (above): leave "
                    "them out before judging |")
    if report.get("seen_unchecked"):
        rows.append(f"| (all) | | | **cannot tell** whether the imported {' and '.join(report['seen_unchecked'])} learnt "
                    "from pictures here (above): judge only on pictures its run never saw |")
    return lines + ["The release was held to these targets on its own test split (the model card's Targets). Here "
                    "they are this site's images; a figure that misses its target, or that these images cannot tell, "
                    "is for the study's protocol to weigh before any answer is acted on.", "",
                    "| figure | here (95% interval) | target | verdict |", "|---|---|---|---|", *rows, ""]
