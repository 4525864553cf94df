"""Tiny site folders in the generic ``labels.csv`` layout for the split and pooling tests: distinct pictures made from
a seed, byte copies of them, rows with lesion ids."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def picture(seed: int) -> bytes:
    """A distinct 40x40 PNG for each seed (the service takes pictures of at least 32 pixels a side)."""
    rng = np.random.default_rng(seed)
    return cv2.imencode(".png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))[1].tobytes()


def site(root: Path, rows: Sequence[tuple[str, str, str, int]]) -> Path:
    """A labels.csv folder: each row (file name, diagnosis, lesion id, picture seed) gets its file (``picture(seed)``:
    two rows of one seed are byte-identical copies) and its label row."""
    root.mkdir(parents=True, exist_ok=True)
    for name, _, _, seed in rows:
        (root / name).write_bytes(picture(seed))
    lines = ["filename,diagnosis,lesion_id"] + [f"{name},{dx},{lesion}" for name, dx, lesion, _ in rows]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def nevi(prefix: str, count: int, seed: int = 0) -> list[tuple[str, str, str, int]]:
    """``count`` rows of distinct nevus pictures, one lesion each (``<prefix>000.png``...)."""
    return [(f"{prefix}{i:03d}.png", "NV", f"{prefix}L{i}", seed + i) for i in range(count)]


def smooth_picture(seed: int, side: int = 64, suffix: str = ".png") -> bytes:
    """A smooth picture (random 4x4 colours blown up) that keeps its fingerprint when resized or saved as JPEG."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return cv2.imencode(suffix, cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC))[1].tobytes()
