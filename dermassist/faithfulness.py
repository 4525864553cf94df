"""Is the class activation map faithful? Erase the crop patches the served CAM ranks highest and compare the
drop in the top-class probability with erasing as many random patches (a deletion test).

Erasing replaces a patch by the same patch of a heavily blurred copy of the crop: the detail goes and no
new edges appear (a flat fill draws a grid of sharp squares that moves any CNN, wherever it is put).

The crops and maps are the ones the ensemble served (``CROP`` and ``CAM``); the re-scoring uses the same
exported TorchScript, in this process, because the ensemble only takes whole images.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PATCH = 16  # 224 / 16 = 14 x 14 patches
ERASE_SHARE = 0.20
BLUR_SIGMA = 12.0


@dataclass(frozen=True)
class Faithfulness:
    """Per image: top-class probability after erasing the CAM's top patches and after erasing random ones."""

    cam_drop: np.ndarray
    random_drop: np.ndarray

    @property
    def share_cam_wins(self) -> float:
        """Share of images where erasing by the CAM lowered the top class more than erasing at random."""
        return float(np.mean(self.cam_drop > self.random_drop)) if len(self.cam_drop) else 0.0

    def as_dict(self) -> dict:
        """JSON-ready summary."""
        return {"images": int(len(self.cam_drop)), "share_cam_beats_random": self.share_cam_wins,
                "mean_drop_cam": float(np.mean(self.cam_drop)) if len(self.cam_drop) else None,
                "mean_drop_random": float(np.mean(self.random_drop)) if len(self.random_drop) else None,
                "erased_share": ERASE_SHARE, "patch": PATCH, "fill": f"Gaussian blur, sigma {BLUR_SIGMA:g} px"}


def patch_ranks(cam: np.ndarray, patch: int = PATCH) -> np.ndarray:
    """Patch indices (row-major) ordered from the highest mean CAM value to the lowest."""
    h, w = cam.shape
    means = cam[: h - h % patch, : w - w % patch].reshape(h // patch, patch, w // patch, patch).mean(axis=(1, 3))
    return np.argsort(-means.ravel(), kind="stable")


def erase(crop: np.ndarray, patches: Sequence[int] | np.ndarray, patch: int = PATCH) -> np.ndarray:
    """The crop with the given patches replaced by those of its blurred copy."""
    import cv2

    out = crop.copy()
    blurred = cv2.GaussianBlur(crop, (0, 0), BLUR_SIGMA)
    per_row = crop.shape[1] // patch
    for p in patches:
        r, c = divmod(int(p), per_row)
        rows, cols = slice(r * patch, (r + 1) * patch), slice(c * patch, (c + 1) * patch)
        out[rows, cols] = blurred[rows, cols]
    return out


def deletion_test(crops: np.ndarray, cams: np.ndarray, score: Callable[[np.ndarray], np.ndarray],
                  seed: int = 0) -> Faithfulness:
    """``score(crops)`` -> probabilities (N, 8); drops of the original top class for CAM and random erasures."""
    rng = np.random.default_rng(seed)
    base = score(crops)
    top = base.argmax(axis=1)
    n_patches = (crops.shape[1] // PATCH) * (crops.shape[2] // PATCH)
    k = int(round(ERASE_SHARE * n_patches))
    by_cam = np.stack([erase(c, patch_ranks(m)[:k]) for c, m in zip(crops, cams)])
    at_random = np.stack([erase(c, rng.choice(n_patches, k, replace=False)) for c in crops])
    rows = np.arange(len(crops))
    return Faithfulness(base[rows, top] - score(by_cam)[rows, top], base[rows, top] - score(at_random)[rows, top])


def torchscript_scorer(model_path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Probabilities of the exported classifier for uint8 crops (N, 224, 224, 3), normalised as served."""
    from preprocess.crop import normalise

    from .base.frameworks import import_torch, load_torchscript

    torch = import_torch()
    model = load_torchscript(torch, model_path)

    def score(crops: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(crops), 32):
                out.append(model(torch.from_numpy(normalise(crops[i : i + 32])))[0].numpy())
        return np.concatenate(out)

    return score
