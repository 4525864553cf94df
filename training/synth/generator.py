"""Write a synthetic dermoscopy set in the ISIC 2018 Task 1 layout and the HAM10000 layout.

One call renders every image once; the ISIC 2018 folders hard-link the HAM10000 files. HAM10000
has no SCC ``dx``, so SCC lesions are ``akiec`` in the metadata, and an ISIC 2019 ground truth
CSV beside it tells AK from SCC, as with the real data.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dermassist.base.image_files import write_image
from dermassist.base.settings import Settings, env_name
from preprocess.contract import CLASS_CODES, CLASSES

from ..errors import TrainingConfigError
from ..readers.ham import HAM_IMAGE_PREFIX, HAM_MASK_SUFFIX, HAM_MASKS, HAM_METADATA
from ..readers.isic2019 import ISIC2019_GROUND_TRUTH
from ..readers.isic_seg import LAYOUTS
from ..records import Sample
from ..splits import SplitConfig, split_samples
from .classes import PRIORS
from .render import render

logger = logging.getLogger(__name__)

HAM_DIR = "ham10000"
ISIC2018_DIR = "isic2018"
MANIFEST = "synth_manifest.json"
VIEWS_PER_LESION = (0.55, 0.30, 0.15)
ISIC2018_WORDS = {"train": "Training", "val": "Validation", "test": "Test"}
ISIC2018 = next(layout for layout in LAYOUTS if layout.name == "isic2018")  # the folder names its reader expects
HAM_PARTS = (f"{HAM_IMAGE_PREFIX}_part_1", f"{HAM_IMAGE_PREFIX}_part_2")
LOCALIZATIONS = ("back", "lower extremity", "trunk", "upper extremity", "abdomen", "face", "chest", "scalp")
IMAGE_ID_OFFSET = 9_000_000


@dataclass(frozen=True)
class SynthConfig(Settings):
    """How many images, the seed and the image size; validated on construction (``resolve``: flags >
    DERMASSIST_SYNTH_* > defaults)."""

    env_prefix = "DERMASSIST_SYNTH_"
    config_error = TrainingConfigError

    count: int = 1600
    seed: int = field(default=0, metadata=env_name("DERMASSIST_SEED"))
    width: int = 600
    height: int = 450

    def __post_init__(self) -> None:
        if self.count < 1:
            raise TrainingConfigError(f"synthetic image count must be >= 1, got {self.count}")
        if not (64 <= self.width <= 1000 and 64 <= self.height <= 1000):
            raise TrainingConfigError(
                f"synthetic image size must be 64..1000 px a side, got {self.width}x{self.height}"
            )


@dataclass(frozen=True)
class PlannedImage:
    """One image to render: ids, class, split and the two seeds."""

    image_id: str
    lesion_id: str
    label: int
    split: str
    lesion_seed: int
    view_seed: int


@dataclass(frozen=True)
class SynthResult:
    """Where the set was written and how fast."""

    root: Path
    ham_root: Path
    isic2018_root: Path
    images: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        """Render + encode + write throughput."""
        return self.images / max(self.seconds, 1e-9)


def plan(config: SynthConfig) -> list[PlannedImage]:
    """Draw lesions (class by HAM-like prior, 1-3 views each) until ``count`` images, then split by lesion."""
    rng = np.random.default_rng(config.seed)
    rows: list[tuple[str, str, int, int, int]] = []
    lesion = 0
    while len(rows) < config.count:
        label = int(rng.choice(len(PRIORS), p=PRIORS))
        views = 1 + int(rng.choice(len(VIEWS_PER_LESION), p=VIEWS_PER_LESION))
        lesion_seed = int(rng.integers(2**31))
        lesion_id = f"HAM_{IMAGE_ID_OFFSET + lesion:07d}"
        for _ in range(views):
            if len(rows) == config.count:
                break
            rows.append((f"ISIC_{IMAGE_ID_OFFSET + len(rows):07d}", lesion_id, label, lesion_seed, int(rng.integers(2**31))))
        lesion += 1
    fake = [Sample(r[0], Path(r[0]), None, r[2], r[1]) for r in rows]
    where = {s.image_id: split for split, items in split_samples(fake, SplitConfig(seed=config.seed)).items() for s in items}
    return [PlannedImage(r[0], r[1], r[2], where[r[0]], r[3], r[4]) for r in rows]


def _link(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        dst.write_bytes(src.read_bytes())


def _metadata_row(item: PlannedImage, rng: np.random.Generator) -> dict[str, str]:
    code = CLASS_CODES[item.label]
    dx = CLASSES[item.label].ham_dx or "akiec"
    dx_type = "histo" if code in ("MEL", "BCC", "AK", "SCC") else "follow_up" if code == "NV" else "consensus"
    return {
        "lesion_id": item.lesion_id,
        "image_id": item.image_id,
        "dx": dx,
        "dx_type": dx_type,
        "age": str(int(rng.integers(4, 18)) * 5),
        "sex": str(rng.choice(["male", "female"])),
        "localization": str(rng.choice(LOCALIZATIONS)),
    }


def generate(out: Path, config: SynthConfig = SynthConfig(), progress: bool = True) -> SynthResult:
    """Render the planned images and write both layouts under ``out`` (deterministic per seed)."""
    out = Path(out)
    ham, isic = out / HAM_DIR, out / ISIC2018_DIR
    items = plan(config)
    half = (len(items) + 1) // 2
    for d in (*HAM_PARTS, HAM_MASKS):
        (ham / d).mkdir(parents=True, exist_ok=True)
    for word in ISIC2018_WORDS.values():
        (isic / ISIC2018.images.format(word)).mkdir(parents=True, exist_ok=True)
        (isic / ISIC2018.masks.format(word)).mkdir(parents=True, exist_ok=True)
    meta_rng = np.random.default_rng(config.seed + 1)
    rows = []
    start = time.perf_counter()
    for i, item in enumerate(tqdm(items, desc="synth", unit="img", disable=not progress)):
        r = render(CLASS_CODES[item.label], item.lesion_seed, item.view_seed, config.width, config.height)
        part = HAM_PARTS[0] if i < half else HAM_PARTS[1]
        image_path = ham / part / f"{item.image_id}.jpg"
        mask_path = ham / HAM_MASKS / f"{item.image_id}{HAM_MASK_SUFFIX}"
        write_image(image_path, r.image, "synthetic image", TrainingConfigError, [cv2.IMWRITE_JPEG_QUALITY, 92])
        write_image(mask_path, r.mask, "synthetic mask", TrainingConfigError, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        word = ISIC2018_WORDS[item.split]
        _link(image_path, isic / ISIC2018.images.format(word) / image_path.name)
        _link(mask_path, isic / ISIC2018.masks.format(word) / f"{item.image_id}{ISIC2018.mask_suffix}")
        rows.append(_metadata_row(item, meta_rng))
    seconds = time.perf_counter() - start
    with (ham / HAM_METADATA).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _write_isic2019(ham / ISIC2019_GROUND_TRUTH, items)
    result = SynthResult(out, ham, isic, len(items), seconds)
    (out / MANIFEST).write_text(json.dumps({
        "config": asdict(config),
        "images": len(items),
        "lesions": len({p.lesion_id for p in items}),
        "class_counts": {c: sum(p.label == i for p in items) for i, c in enumerate(CLASS_CODES)},
        "split_counts": {s: sum(p.split == s for p in items) for s in ISIC2018_WORDS},
        "images_per_second": round(result.images_per_second, 1),
    }, indent=1))
    logger.info("synthetic set: %d images in %.1f s (%.1f images/s) under %s", len(items), seconds,
                result.images_per_second, out)
    return result


def _write_isic2019(path: Path, items: list[PlannedImage]) -> None:
    columns = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", *columns])
        for item in items:
            code = CLASSES[item.label].isic2019_column
            writer.writerow([item.image_id, *("1.0" if c == code else "0.0" for c in columns)])


def read_manifest(out: Path) -> dict | None:
    """The manifest of a synthetic set written earlier, or None."""
    path = Path(out) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None
