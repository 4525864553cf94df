"""The card's Targets section: issue 10's acceptance targets against the release's figures on its test split."""
from __future__ import annotations

from ..metrics import wilson_interval
from .text import fixed, percent, wrap

# issue 10's acceptance targets, on the release's test split: (label, figure, comparison, target)
TARGETS = (("ECE after calibration", "ece", "<=", 0.05),
           ("REFER melanoma sensitivity", "melanoma_sensitivity", ">=", 0.95),
           ("REFER benign specificity", "specificity", ">=", 0.50),
           ("OOD_SCORE AUROC, non-dermoscopic images", "auroc", ">=", 0.95),
           ("test images not assessable", "not_assessable", "<=", 0.05),
           ("CAM beats random erasure", "share_cam_beats_random", ">=", 0.80))


def target_interval(figures: dict, key: str) -> tuple[float, float] | None:
    """The 95% interval of a target's figure: the recorded one (referral: Wilson), else Wilson from the count of
    images a share was measured on (CAM check, not assessable); None where there is none (ECE, AUROC)."""
    recorded = figures.get(f"{key}_ci95")
    if recorded is not None:
        return float(recorded[0]), float(recorded[1])
    n = {"share_cam_beats_random": figures.get("images"),
         "not_assessable": (figures.get("malignant") or 0) + (figures.get("benign") or 0)}.get(key)
    value = figures.get(key)
    return wilson_interval(round(value * n), n) if n and value is not None else None


def target_verdict(value: float, how: str, target: float, interval: tuple[float, float] | None) -> str:
    """``met`` or ``**not met**`` by the point estimate, saying so where the 95% interval holds the target (the
    split then cannot tell whether it is met)."""
    met = value <= target if how == "<=" else value >= target
    verdict = "met" if met else "**not met**"
    if interval is None or not interval[0] <= target <= interval[1]:
        return verdict
    return f"{verdict} by the point estimate; its 95% interval includes {target:g}"


def targets_lines(ev: dict, test_label: str) -> list[str]:
    """Issue 10's acceptance targets against the release's figures on its test split, each met or not (and where the
    figure's 95% interval holds the target, that it does); none for a release evaluated without a test split."""
    figures = {**(ev.get("classification_test") or {}), **(ev.get("triage_test") or {}), **(ev.get("ood_test") or {}),
               **(ev.get("cam_faithfulness") or {})}
    if "ece" not in figures:
        return []
    rows = []
    for label, key, how, target in TARGETS:
        value = figures.get(key)
        if value is None:
            continue
        interval = target_interval(ev.get("cam_faithfulness") or {} if key == "share_cam_beats_random" else figures, key)
        shown = "" if interval is None else f" ({interval[0]:.3f}-{interval[1]:.3f})"
        rows.append(f"| {label} {how} {target:g} | {fixed(value)}{shown} | "
                    f"{target_verdict(value, how, target, interval)} |")
    quality = ev.get("quality_check") or {}
    if quality:
        flagged = min(v["not_assessable"] for v in quality.values())
        rows.append(f"| blurred, dark and overexposed copies flagged | {percent(flagged)} at least | "
                    f"{'met' if flagged == 1.0 else '**not met**'} |")
    rows.append("| the new outputs cost <= 10% of the served p50 | `dermassist bench` on the serving host; not a release "
                "figure | - |")
    return ["## Targets (issue 10), on the " + test_label + " split", "", "| target | measured (95% interval) | |",
            "|---|---|---|", *rows,
            "", *wrap("The ECE floor (the diagnosis table's last column) says how far a split this size can tell "
                      "calibration apart; the referral intervals say how far it can tell sensitivity apart. A verdict "
                      "is that of the point estimate; where the 95% interval (Wilson for a share) includes the target, "
                      "the split cannot tell whether it is met.", 115), ""]
