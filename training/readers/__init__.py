"""Readers for the accepted dataset layouts; ``read_dataset`` picks the right one for a folder."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ..errors import MissingFolderError, UnknownLayoutError
from ..records import Dataset
from .ham import HAM_METADATA, read_ham
from .isic2019 import ISIC2019_GROUND_TRUTH, read_isic2019
from .isic_seg import detect_segmentation_layout, read_isic_segmentation
from .isic_task3 import TASK3_INPUT, detect_task3, read_isic_task3
from .labels_csv import EXAMPLE, LABELS_CSV, detect_labels_csv, read_labels_csv
from .ph2 import PH2_DIR, PH2_IMAGES, ph2_root, read_ph2

logger = logging.getLogger(__name__)

__all__ = ["read_dataset", "read_ham", "read_isic2019", "read_isic_segmentation", "read_isic_task3", "read_labels_csv",
           "read_ph2"]


def _public_reader(root: Path) -> Callable[[Path], Dataset] | None:
    """The reader of the public layout ``root`` is in, or None."""
    if detect_segmentation_layout(root) is not None:
        return read_isic_segmentation
    if detect_task3(root):
        return read_isic_task3
    if ph2_root(root) is not None:
        return read_ph2
    if (root / HAM_METADATA).is_file():
        return read_ham
    if (root / ISIC2019_GROUND_TRUTH).is_file():
        return read_isic2019
    return None


def read_dataset(root: Path) -> Dataset:
    """Read any accepted layout under ``root``: a public one (ISIC 2016/2017/2018 segmentation, ISIC 2018 Task 3,
    PH2, HAM10000, ISIC 2019) where it matches, else a site's own folder with a ``labels.csv`` (``labels_csv``)."""
    root = Path(root)
    if not root.is_dir():
        state = "is a file" if root.exists() else "does not exist"
        raise MissingFolderError(
            f"dataset folder {root} {state}; expected a folder in an ISIC or HAM10000 layout "
            "(run `dermassist synth OUT` to make one)"
        )
    reader = _public_reader(root)
    if reader is not None:
        if detect_labels_csv(root):
            logger.warning("%s: %s is not read: the folder is in a public layout (%s), whose own label files are read; "
                           "move %s and its images to a folder of their own to read them", root, LABELS_CSV,
                           reader.__name__.removeprefix("read_"), LABELS_CSV)
        return reader(root)
    if detect_labels_csv(root):
        return read_labels_csv(root)
    entries = sorted(p.name for p in root.iterdir())[:10]
    raise UnknownLayoutError(
        f"dataset folder {root} matches no accepted layout; expected ISIC2018_Task1-2_Training_Input/, "
        f"ISIC-2017_Training_Data/, ISBI2016_ISIC_Part1_Training_Data/, {TASK3_INPUT.format('Test')}/, "
        f"{PH2_DIR}/{PH2_IMAGES}/, {HAM_METADATA} or "
        f"{ISIC2019_GROUND_TRUTH}; found {entries}; for a site's own images, add {EXAMPLE} (images anywhere in the "
        "folder; training/README.md, Data)"
    )
