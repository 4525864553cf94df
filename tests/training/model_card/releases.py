"""Releases the model card tests render: the shipped one as a site's own data would record it, and the card's tables."""
from __future__ import annotations

import copy

from training.pipeline import SYNTHETIC_RECIPE
from training.release import RELEASE_DIR, read_release

SKIPPED = {"ham10000_sample": "--data /site holds no ham10000_sample/ (an evaluation-only sample of the shared data)"}
SITE_COUNTS = {"AK": 0, "BCC": 30, "DF": 0, "MEL": 90, "NV": 180, "BKL": 0, "SCC": 0, "VASC": 0}
VAL = {"AK": 0, "BCC": 4, "DF": 0, "MEL": 14, "NV": 27, "BKL": 0, "SCC": 0, "VASC": 0}
TEST = {"AK": 0, "BCC": 5, "DF": 0, "MEL": 13, "NV": 27, "BKL": 0, "SCC": 0, "VASC": 0}


def _dataset(name: str, root: str, counts: dict[str, int]) -> dict:
    return {"name": name, "root": root, "images": sum(counts.values()), "with_masks": 0, "lesions": sum(counts.values()),
            "missing_images": 0, "skipped_unknown": 0, "skipped_unlabelled": 0, "class_counts": counts, "splits": {}}


def site_release() -> dict:
    """The shipped release.json with a site's recipe, data and figures: one folder site_a (HAM10000 layout, 300
    images of NV, MEL and BCC) for both stages, evaluated on its own test split only."""
    release = copy.deepcopy(read_release(RELEASE_DIR))
    release["recipe"].update(seg_data="site_a", seg_extra=[], cls_data=["site_a"])
    release["data"] = {"root": "/data/hospital", "splits": {"segmenter": "splits/segmenter_split.json",
                                                            "classifier": "splits/classifier_split.json"}}
    site = _dataset("ham10000", "/data/hospital/site_a", SITE_COUNTS)
    release["segmenter"]["figures"]["dataset"] = {"ham10000": site, "train_images": 255, "val_images": 45,
                                                  "val_source": "ham10000"}
    figures = release["classifier"]["figures"]
    figures["dataset"] = {"ham10000": site}
    figures["splits"] = {"train": 210, "val": 45, "test": 45}
    figures["test"]["support"] = TEST
    figures["val_by_source"] = {"ham10000": {**figures["val_by_source"]["ph2"], "support": VAL, "images": 45}}
    figures["test_by_source"] = {"ham10000": {**figures["test_by_source"]["ph2"], "support": TEST, "images": 45}}
    evaluation = release["evaluation"]
    test = evaluation["reports"]["isic2018_task3_test"]
    evaluation.update(segmentation_val_report="site_a_validation", test_report="site_a_test",
                      reports={"site_a_test": test}, skipped={"site_a_validation": "no segmentation masks"})
    return release


def synthetic_recipe_release() -> dict:
    """The shipped release's manifest as a release of a site's own data would record it: the synthetic recipe
    (segmenter on isic2018, classifier on ham10000), reports isic2018_validation and ham10000_test, one sample skipped."""
    release = copy.deepcopy(read_release(RELEASE_DIR))
    shipped = release["evaluation"]["reports"]
    validation = shipped["isic2017_validation"]
    test = {**shipped["isic2018_task3_test"], "segmentation": shipped["ph2_test"]["segmentation"]}
    release["recipe"] = {k: list(v) if isinstance(v, tuple) else v for k, v in SYNTHETIC_RECIPE.__dict__.items()}
    release["evaluation"] = {
        "segmentation_val_report": "isic2018_validation", "test_report": "ham10000_test",
        "segmentation_val": validation["segmentation"], "classification_test": test["classification"],
        "triage_test": test["triage"], "ood_test": test["ood"],
        "cam_faithfulness": release["evaluation"]["cam_faithfulness"],
        "quality_check": release["evaluation"]["quality_check"],
        "reports": {"isic2018_validation": validation, "ham10000_test": test},
        "skipped": SKIPPED,
    }
    return release


def table_rows(card: str, header: str) -> list[str]:
    """The rows of the card's table whose header row begins with ``header``."""
    lines = card.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |")) + 2
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]
