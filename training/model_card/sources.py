"""The data sources of a release as the model card names them: the public sets it knows by their folder names, what
each folder was used for, and the figures the stages recorded of it."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from preprocess.contract import CLASS_CODES

# The line a site adds its data's terms on, for a source the card does not know.
NOT_RECORDED = "not recorded in release.json; add your data's terms here"


@dataclass(frozen=True)
class KnownSource:
    """What the card says of a public data set it knows by its folder name: its row's name, the short name of the
    prose, where its images come from, its licence, what the shipped recipe used it for (with the roles that text
    describes), its attribution, and a note on its split."""

    label: str
    short: str
    origin: str
    licence: str
    roles: tuple[str, ...]
    use: str
    attribution: str
    note: str = ""


SEGMENTER, SEGMENTER_EXTRA, CLASSIFIER, EVALUATION = "segmenter", "segmenter extra", "classifier", "evaluation"
KNOWN_SOURCES = {
    "isic2017_seg_256": KnownSource(
        "ISIC 2017 Part 1 (256x256 copies)", "ISIC 2017", "ISIC 2017", "CC-0", (SEGMENTER,),
        "segmenter training (Training), validation and threshold (Validation)",
        "ISIC 2017: Codella et al., ISBI 2018 (CC-0)."),
    "isic2018_task3": KnownSource(
        "ISIC 2018 Task 3 (HAM10000 test set)", "ISIC 2018 Task 3", "Vienna/Queensland HAM10000", "CC BY-NC 4.0",
        (CLASSIFIER,), "classifier training, validation and test (70/15/15 by class)",
        "ISIC 2018 Task 3: Codella et al., arXiv:1902.03368; Tschandl P., Rosendahl C., Kittler H., The HAM10000 dataset, "
        "Sci. Data 5, 180161 (2018) (CC BY-NC 4.0).",
        "No lesion ids are published for ISIC 2018 Task 3, so its split is by image:\na lesion photographed more than once "
        "may have images in two splits, and the test figures may then be optimistic.\nThe evaluation-only samples share no "
        "image with any split (a test holds it)."),
    "ph2": KnownSource(
        "PH2", "PH2", "Porto PH2", "research use with citation", (SEGMENTER_EXTRA, CLASSIFIER),
        "segmenter training and test, classifier training, validation and test (70/15/15 by clinical diagnosis)",
        "PH2: Mendonca T., Ferreira P.M., Marques J.S., Marcal A.R.S., Rozeira J., PH2 - A dermoscopic image database for "
        "research and benchmarking, IEEE EMBC 2013."),
    "ham10000_sample": KnownSource(
        "HAM10000 sample", "HAM10000 sample", "Vienna/Queensland HAM10000", "CC BY-NC-SA 4.0", (EVALUATION,),
        "evaluation only, never trained on", "HAM10000 masks: Tschandl et al., Nat. Med. 2020."),
    "isic2019_sample": KnownSource(
        "ISIC 2019 sample", "ISIC 2019 sample", "ISIC 2019", "CC BY-NC", (EVALUATION,),
        "evaluation only, never trained on", "ISIC 2019: BCN20000 (Combalia et al. 2019) and HAM10000 (CC BY-NC).",
        "The ISIC 2019 sample's images are all HAM10000 images that the HAM10000 sample holds too, relabelled with ISIC\n"
        "2019's AK and SCC: its figures are not independent of that sample's."),
}


def source_roles(release: dict) -> dict[str, tuple[str, ...]]:
    """Each data folder the release used (its recipe's, then the evaluation-only samples it was evaluated on) with
    what for, in the order the recipe names them."""
    recipe = release.get("recipe") or {}
    roles: dict[str, tuple[str, ...]] = {}
    for role, folders in ((SEGMENTER, [recipe.get("seg_data")]), (SEGMENTER_EXTRA, recipe.get("seg_extra", [])),
                          (CLASSIFIER, recipe.get("cls_data", []))):
        for folder in (f for f in folders if f):
            roles[folder] = (*roles.get(folder, ()), role)
    reports = release.get("evaluation", {}).get("reports", {})
    for folder, known in KNOWN_SOURCES.items():
        if known.roles == (EVALUATION,) and folder in reports and folder not in roles:
            roles[folder] = (EVALUATION,)
    return roles


def source_figures(datasets: dict, folder: str, data_root: str | None) -> dict | None:
    """The dataset report (of a stage's figures) read from the data folder ``folder``: the one whose root is that
    folder or lies under it (figures name a dataset by its layout, not its folder); None if none."""
    base = Path(data_root or "") / folder
    for report in (r for r in datasets.values() if isinstance(r, dict) and "root" in r):
        root = Path(report["root"])
        if root == base or base in root.parents or (data_root is None and folder in root.parts):
            return report
    return None


def training_class_counts(figures: dict) -> dict[str, int] | None:
    """The classifier's training images per class: each class's images in its sources less its validation and test
    images (every image of a source lands in one split); None where the figures lack one of them."""
    sources = [r for r in figures.get("dataset", {}).values() if isinstance(r, dict) and "class_counts" in r]
    test = (figures.get("test") or {}).get("support")
    val = [r.get("support") for r in (figures.get("val_by_source") or {}).values()]
    if not sources or test is None or not val or None in val:
        return None
    total = Counter({c: sum(r["class_counts"].get(c, 0) for r in sources) for c in CLASS_CODES})
    held_out = Counter({c: test.get(c, 0) + sum(v.get(c, 0) for v in val) for c in CLASS_CODES})
    return {c: total[c] - held_out[c] for c in CLASS_CODES}


def source_split_counts(figures: dict, report: dict) -> str | None:
    """A source's classifier images per split (train/val/test), from its figures by source; None if not recorded."""
    val = (figures.get("val_by_source") or {}).get(report["name"], {}).get("images")
    test = (figures.get("test_by_source") or {}).get(report["name"], {}).get("images")
    return None if val is None or test is None else f"{report['images'] - val - test}/{val}/{test} images"
