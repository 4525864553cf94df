"""A PNG grid of synthetic samples: one row per class, several lesions per row."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dermassist.base.image_files import write_image
from preprocess.contract import CLASS_CODES, CLASS_NAMES

from ..errors import TrainingConfigError
from .render import render


def sample_grid(path: Path, per_class: int = 6, seed: int = 0, tile: tuple[int, int] = (200, 150)) -> Path:
    """Render ``per_class`` lesions of every class and save them as one labelled PNG grid."""
    rng = np.random.default_rng(seed)
    label_w = 190
    rows = []
    for code, name in zip(CLASS_CODES, CLASS_NAMES):
        tiles = []
        for _ in range(per_class):
            r = render(code, int(rng.integers(2**31)), int(rng.integers(2**31)))
            tiles.append(cv2.resize(r.image, tile, interpolation=cv2.INTER_AREA))
        label = np.full((tile[1], label_w, 3), 255, np.uint8)
        cv2.putText(label, code, (8, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (0, 0, 0), 2, cv2.LINE_AA)
        cv2.putText(label, name[:24], (8, 95), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (40, 40, 40), 1, cv2.LINE_AA)
        rows.append(np.concatenate([label, *tiles], axis=1))
    grid = np.concatenate(rows, axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_image(path, grid, "synthetic sample grid", TrainingConfigError)
