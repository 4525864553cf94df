"""The card's Data section: each source's use, images and licence, and the split manifests."""
from __future__ import annotations

from .sources import (
    CLASSIFIER,
    EVALUATION,
    KNOWN_SOURCES,
    NOT_RECORDED,
    SEGMENTER,
    SEGMENTER_EXTRA,
    source_figures,
    source_split_counts,
)

# How the Data section names the classifier's splits.
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}


def generic_use(roles: tuple[str, ...], cls_figures: dict, report: dict | None) -> str:
    """What the Data table says a source the card does not know was used for, with its images per split."""
    uses = {SEGMENTER: "segmenter training and validation", SEGMENTER_EXTRA: "segmenter training"}
    parts = [uses[r] for r in roles if r in uses]
    if CLASSIFIER in roles:
        counts = source_split_counts(cls_figures, report) if report else None
        split = f" ({counts}, train/val/test)" if counts else ""
        parts.append(f"classifier training, validation and test{split}")
    return "; ".join(parts) or "evaluation only, never trained on"


def data_rows(release: dict, roles: dict[str, tuple[str, ...]]) -> list[str]:
    """The Data table's rows: a known source's name, use and licence as the card knows them (its use only where this
    recipe used it as the shipped one did), any other source's name and use from the recipe and its figures, with
    the line its data's terms go on; the evaluation-only samples in one row."""
    data_root = release.get("data", {}).get("root")
    seg_sets = release["segmenter"]["figures"].get("dataset", {})
    cls_figures = release["classifier"]["figures"]
    rows, samples = [], []
    for folder, used in roles.items():
        known = KNOWN_SOURCES.get(folder)
        datasets = cls_figures.get("dataset", {}) if CLASSIFIER in used else seg_sets
        report = source_figures(datasets, folder, data_root) if used != (EVALUATION,) else None
        if used == (EVALUATION,) and known:
            samples.append((known, release["evaluation"]["reports"][folder].get("images", "n/a")))
            continue
        images = report.get("images", "n/a") if report else "n/a"
        use = known.use if known and known.roles == used else generic_use(used, cls_figures, report)
        rows.append(f"| {known.label if known else folder} | {use} | {images} | {known.licence if known else NOT_RECORDED} |")
    if samples:
        rows.append(f"| {', '.join(k.label for k, _ in samples)} | evaluation only, never trained on | "
                    f"{', '.join(str(n) for _, n in samples)} | {', '.join(k.licence for k, _ in samples)} |")
    return rows


def data_lines(release: dict, roles: dict[str, tuple[str, ...]]) -> list[str]:
    """The Data section: the table of sources, then the split manifests and the classifier's images per split, with
    the notes of the known sources on their splits."""
    classifier_folders = list((release.get("recipe") or {}).get("cls_data", []))
    notes = "".join(f" {KNOWN_SOURCES[f].note}" for f in classifier_folders if f in KNOWN_SOURCES and KNOWN_SOURCES[f].note)
    splits = release["classifier"]["figures"].get("splits") or {}
    split_text = ", ".join(f"{n} {SPLIT_NAMES.get(k, k)}" for k, n in splits.items()) or "not recorded"
    notes += "".join(f" {KNOWN_SOURCES[f].note}" for f, used in roles.items()
                     if used == (EVALUATION,) and f in KNOWN_SOURCES and KNOWN_SOURCES[f].note)
    return [
        "## Data",
        "",
        "| set | use | images | licence |",
        "|---|---|---|---|",
        *data_rows(release, roles),
        "",
        *(f"Split manifests: `splits/` ({', '.join(release.get('data', {}).get('splits', {}).values())}). Classifier "
          f"splits: {split_text}.{notes}").splitlines(),
        "",
    ]
