"""Which reports of a release's evaluation the model card's tables and prose name, how, and in which order."""
from __future__ import annotations

# How the card's prose names a report of the shared data; any other report (a site's own data) goes by its name.
SET_LABELS = {"isic2017_validation": "ISIC 2017 validation", "isic2018_task3_test": "ISIC 2018 Task 3 test"}
# The report of the ISIC 2017 segmentation images with their Part 3 labels, whose diagnosis figures the card explains.
ISIC2017_VALIDATION = "isic2017_validation"


def set_label(name: str | None, unknown: str) -> str:
    """How the card's prose names an evaluated set: the shared data's by their names, any other by its report's
    (``unknown`` where the release names none)."""
    return unknown if name is None else SET_LABELS.get(name, name)


def evaluated_set(evaluation: dict, recorded: str, kind: str, figures: dict | None) -> str | None:
    """The report ``figures`` (the release's segmentation_val or classification_test) were measured on: the one
    ``evaluation[recorded]`` names; for a release evaluated before that was recorded (the shipped one), the report
    whose ``kind`` figures they are; None if none."""
    if recorded in evaluation:
        return evaluation[recorded]
    return next((name for name, report in evaluation.get("reports", {}).items()
                 if figures is not None and report.get(kind) == figures), None)


def diagnosis_order(reports: dict, segmentation_set: str | None) -> list[str]:
    """The reports of the diagnosis and referral tables: each in the release's order, the segmenter's validation
    set (a shift the classifier never trained on) last."""
    names = [name for name in reports if name != segmentation_set]
    return names + ([segmentation_set] if segmentation_set in reports else [])


def segmentation_set(evaluation: dict) -> str | None:
    """The report the release's segmentation_val figures were measured on (None if none)."""
    return evaluated_set(evaluation, "segmentation_val_report", "segmentation", evaluation.get("segmentation_val"))


def test_label(evaluation: dict) -> str:
    """How the card's prose names the set of the release's test figures (``test`` where none is named)."""
    return set_label(evaluated_set(evaluation, "test_report", "classification", evaluation.get("classification_test")),
                     "test")
