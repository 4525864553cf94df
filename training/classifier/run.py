"""One classifier run end to end: read, split by lesion, crop, train, report, optionally export (PyTorch only)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import EmptyDatasetError
from ..readers import read_dataset
from ..records import Dataset, Sample
from ..splits import SplitConfig, split_samples, write_manifest
from .data import CropSet, build_crops
from .train import ClassifierConfig, train_classifier, write_classifier_report

logger = logging.getLogger(__name__)

STATE_DICT = "resnet18.pt"


@dataclass(frozen=True)
class ClassifierData:
    """A dataset split by lesion and turned into crop sets."""

    dataset: Dataset
    splits: dict[str, tuple[Sample, ...]]
    sets: dict[str, CropSet]


def classification_splits(dataset: Dataset, seed: int) -> dict[str, tuple[Sample, ...]]:
    """Labelled samples split train/val/test by lesion id, stratified by class."""
    labelled = tuple(s for s in dataset.samples if s.label is not None)
    if not labelled:
        raise EmptyDatasetError(
            f"dataset {dataset.name!r} at {dataset.root} has no class labels; the classifier needs the HAM10000 "
            "metadata, the ISIC 2019 ground truth or the ISIC 2017 Part 3 CSVs"
        )
    return split_samples(labelled, SplitConfig(seed=seed))


def prepare_data(data: Path, seed: int, full_image: bool = False, predicted_masks: Path | None = None,
                 progress: bool = True) -> ClassifierData:
    """Read, split and crop a classification dataset."""
    dataset = read_dataset(data)
    splits = classification_splits(dataset, seed)
    sets = {k: build_crops(v, full_image, predicted_masks, progress) for k, v in splits.items() if v}
    for needed in ("train", "val", "test"):
        if needed not in sets:
            raise EmptyDatasetError(f"split {needed!r} of {data} is empty; the dataset is too small to split by lesion")
    return ClassifierData(dataset, splits, sets)


def run_classifier(data: ClassifierData, out_dir: Path, name: str, config: ClassifierConfig) -> tuple[torch.nn.Module, dict]:
    """Train on prepared data and write ``<name>_metrics.json``, confusion + curve PNGs and the state_dict."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    write_manifest(data.splits, out_dir / f"{name}_split.json")
    model, info = train_classifier(data.sets["train"], data.sets["val"], config)
    torch.save(model.state_dict(), out_dir / f"{name}_{STATE_DICT}")
    extra = {
        **info,
        "dataset": {**data.dataset.report(), "crops_with_mask": {k: v.with_mask for k, v in data.sets.items()}},
        "splits": {k: len(v) for k, v in data.splits.items()},
        "seconds": round(time.perf_counter() - start, 1),
    }
    report = write_classifier_report(out_dir, name, model, data.sets["test"], extra, config)
    t = report["test"]
    logger.info("%s test: accuracy %.3f macro P %.3f R %.3f F1 %.3f balanced acc %.3f", name, t["accuracy"],
                t["macro_precision"], t["macro_recall"], t["macro_f1"], t["balanced_accuracy"])
    return model, report
