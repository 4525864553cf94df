"""Seeded splits grouped by lesion (no lesion in two splits), stratified by class, and their manifest."""
from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EmptyDatasetError, SplitError
from .records import Sample

#: Lesion groups one class needs before a split by lesion gives it a validation (and a test) lesion.
MIN_LESIONS_TO_SPLIT = 3

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of lesions per split and the seed; validated on construction."""

    val: float = 0.15
    test: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0.0 <= self.val < 1.0 and 0.0 <= self.test < 1.0 and self.val + self.test < 1.0):
            raise SplitError(
                f"split fractions val={self.val}, test={self.test} must be >= 0 and sum below 1; "
                "e.g. --val 0.15 --test 0.15"
            )


def _group_stratum(samples: Sequence[Sample]) -> tuple[int, int | str]:
    """The stratum of a lesion group: its majority ``stratum`` where samples carry one, else its majority class."""
    strata = [s.stratum for s in samples if s.stratum is not None]
    if strata:
        return 1, Counter(strata).most_common(1)[0][0]
    labels = [s.label for s in samples if s.label is not None]
    return 0, Counter(labels).most_common(1)[0][0] if labels else -1


def split_samples(samples: Sequence[Sample], config: SplitConfig = SplitConfig()) -> dict[str, tuple[Sample, ...]]:
    """Split samples into train/val/test by lesion group, stratified by each group's majority class (or stratum).

    Within each class, groups are shuffled with the seed and cut by the fractions; a class with at
    least three groups gets at least one group in every non-empty split.
    """
    if not samples:
        raise EmptyDatasetError("cannot split an empty dataset; expected at least one sample, got 0")
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.group].append(s)
    by_class: dict[tuple[int, int | str], list[str]] = defaultdict(list)
    for name in sorted(groups):
        by_class[_group_stratum(groups[name])].append(name)
    rng = np.random.default_rng(config.seed)
    assigned: dict[str, list[Sample]] = {k: [] for k in SPLITS}
    for label in sorted(by_class):
        names = list(by_class[label])
        rng.shuffle(names)
        n = len(names)
        n_test = int(round(n * config.test))
        n_val = int(round(n * config.val))
        if n >= MIN_LESIONS_TO_SPLIT:
            n_test = max(n_test, 1 if config.test > 0 else 0)
            n_val = max(n_val, 1 if config.val > 0 else 0)
        for i, name in enumerate(names):
            split = "test" if i < n_test else "val" if i < n_test + n_val else "train"
            assigned[split].extend(groups[name])
    out = {k: tuple(sorted(v, key=lambda s: s.image_id)) for k, v in assigned.items()}
    logger.info("split %d images / %d lesions into %s", len(samples), len(groups), {k: len(v) for k, v in out.items()})
    return out


def manifest(splits: Mapping[str, Sequence[Sample]]) -> dict:
    """JSON-ready manifest: per split, the image id, lesion id, class code and file of every sample."""
    return {
        split: [
            {"image_id": s.image_id, "lesion_id": s.lesion_id, "label": s.code, "image": str(s.image_path)}
            for s in items
        ]
        for split, items in splits.items()
    }


def same_splits(a: Mapping[str, Sequence[Mapping]], b: Mapping[str, Sequence[Mapping]]) -> bool:
    """Whether two split manifests put the same images (id, lesion, class, file name) in the same splits, wherever
    the data folder lies (a manifest records the paths as the run spelled them)."""
    def key(m: Mapping[str, Sequence[Mapping]]) -> dict[str, list[tuple]]:
        return {split: [(r["image_id"], r["lesion_id"], r["label"], Path(r["image"]).name) for r in rows]
                for split, rows in m.items()}
    return key(a) == key(b)


def write_manifest(splits: Mapping[str, Sequence[Sample]], path: Path) -> Path:
    """Write the split manifest as JSON (beside the model it was used for)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest(splits), indent=1))
    return path
