"""The records every reader returns: one sample per image, and a dataset with its read report."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from preprocess.contract import CLASS_CODES

from .errors import EmptyDatasetError


@dataclass(frozen=True)
class Sample:
    """One image: its file, optional lesion mask, optional contract class index and lesion group.

    ``source`` names the dataset it came from; ``stratum`` refines the class for stratified splits
    (PH2's common and atypical nevi are both NV but are spread over the splits separately).
    """

    image_id: str
    image_path: Path
    mask_path: Path | None = None
    label: int | None = None
    lesion_id: str | None = None
    source: str | None = None
    stratum: str | None = None

    @property
    def group(self) -> str:
        """Split group: the lesion id where known, else the image id."""
        return self.lesion_id or self.image_id

    @property
    def code(self) -> str | None:
        """Contract class code of the label, or None when unlabelled."""
        return None if self.label is None else CLASS_CODES[self.label]


@dataclass(frozen=True)
class Dataset:
    """Samples read from one folder plus what was skipped while reading it."""

    name: str
    root: Path
    samples: tuple[Sample, ...]
    missing_images: tuple[str, ...] = ()
    skipped_unknown: int = 0
    duplicate_rows: tuple[str, ...] = ()  # image ids a label CSV lists again with the same label (read once)
    # image files on disk that no label row names; left out of the samples, or (ISIC 2017 without its Part 3 row)
    # kept unlabelled for the segmentation figures
    unlabelled_images: tuple[Path, ...] = ()
    unknown_images: tuple[Path, ...] = ()  # image files on disk whose label row says UNK (unknown diagnosis): left out
    near_misses: dict[str, str] = field(default_factory=dict)  # absent listed name -> the file it nearly names
    # absent listed name -> the contract class index its row gives (as the reader maps it): an image that is not
    # evaluated keeps its diagnosis in a report
    missing_labels: dict[str, int] = field(default_factory=dict)
    splits: dict[str, tuple[Sample, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.samples:
            fix = "point --data at a folder with images"
            if self.near_misses:
                listed, where = next(iter(self.near_misses.items()))
                fix = f"make the names in the labels match the files (e.g. {listed} is {where})"
            elif self.missing_images:
                fix = (f"copy the listed images into the layout's image folder or fix their names in the labels "
                       f"(e.g. {self.missing_images[0]})")
            raise EmptyDatasetError(
                f"dataset {self.name!r} at {self.root} holds no usable image; "
                f"expected at least one image in the layout, got 0 "
                f"({len(self.missing_images)} listed but absent, {self.skipped_unknown} UNK rows skipped, "
                f"{self.skipped_unlabelled} without a label); {fix}"
            )

    @property
    def skipped_unlabelled(self) -> int:
        """How many image files on disk no label row names (``unlabelled_images``)."""
        return len(self.unlabelled_images)

    @property
    def has_masks(self) -> bool:
        """True when every sample has a lesion mask."""
        return all(s.mask_path is not None for s in self.samples)

    @property
    def has_labels(self) -> bool:
        """True when every sample has a class label."""
        return all(s.label is not None for s in self.samples)

    def class_counts(self) -> dict[str, int]:
        """Images per contract class code (all 8 codes, zeros included)."""
        counts = dict.fromkeys(CLASS_CODES, 0)
        for s in self.samples:
            if s.label is not None:
                counts[CLASS_CODES[s.label]] += 1
        return counts

    def report(self) -> dict:
        """JSON-ready summary of what was read and what was skipped."""
        return {
            "name": self.name,
            "root": str(self.root),
            "images": len(self.samples),
            "with_masks": sum(s.mask_path is not None for s in self.samples),
            "lesions": len({s.group for s in self.samples}),
            "missing_images": len(self.missing_images),
            "skipped_unknown": self.skipped_unknown,
            "skipped_unlabelled": self.skipped_unlabelled,
            "class_counts": self.class_counts() if any(s.label is not None for s in self.samples) else {},
            "splits": {k: len(v) for k, v in self.splits.items()},
        }
