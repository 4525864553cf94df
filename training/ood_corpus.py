"""A corpus of images that are not dermoscopy, for measuring the out-of-distribution score.

Built from what installs here: scikit-image's bundled photographs (people, a cat, coffee, a rocket,
coins, textures, microscopy, a retina, the night sky...) and random crops of them, rendered text and
document pages, plain colours, gradients and noise, and synthetic dermoscopy renderings (made-up
lesions, not real dermoscopy). Deterministic for a seed; written as PNG files under one folder.
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from dermassist.base.image_files import write_image

from .errors import TrainingError

logger = logging.getLogger(__name__)

SKIMAGE_PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "horse", "moon", "page", "text",
                  "checkerboard", "hubble_deep_field", "immunohistochemistry", "retina", "clock", "grass", "gravel",
                  "brick", "cat", "colorwheel", "logo", "microaneurysms", "cell", "binary_blobs")
KINDS = ("photo", "photo_crop", "document", "plain", "gradient", "noise", "synthetic_dermoscopy")
WORDS = ("patient", "report", "invoice", "total", "date", "clinic", "referral", "the", "of", "and", "skin", "lesion",
         "page", "summary", "result", "dose", "signature", "address", "number", "table")


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.dtype != np.uint8:
        # OpenCV's stubs lack the dst=None form of normalize
        image = cv2.normalize(image.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)  # type: ignore[call-overload]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def skimage_photos() -> dict[str, np.ndarray]:
    """scikit-image's bundled sample images as uint8 RGB (those needing a download are left out)."""
    import skimage.data

    photos = {}
    for name in SKIMAGE_PHOTOS:
        try:
            # binary_blobs draws its blobs at random: seeded, so the corpus (and the OOD AUROC) is the same every build
            made = skimage.data.binary_blobs(rng=0) if name == "binary_blobs" else getattr(skimage.data, name)()
            photos[name] = _rgb(made)
        except (AttributeError, ImportError, OSError, ValueError):
            logger.info("scikit-image sample %s is not bundled here; skipped", name)
    return photos


def document(rng: np.random.Generator, size: tuple[int, int] = (600, 450)) -> np.ndarray:
    """A page of random words in lines and a table, black on off-white."""
    w, h = size
    page = np.full((h, w, 3), int(rng.integers(225, 256)), np.uint8)
    y = 30
    while y < h - 20:
        if rng.random() < 0.15:
            cv2.rectangle(page, (20, y), (w - 20, y + 60), (0, 0, 0), 1)
            for x in range(20, w - 20, 110):
                cv2.line(page, (x, y), (x, y + 60), (0, 0, 0), 1)
            y += 75
            continue
        line = " ".join(rng.choice(WORDS, int(rng.integers(4, 9))))
        cv2.putText(page, line, (20, y), cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.45, 0.8)), (0, 0, 0), 1, cv2.LINE_AA)
        y += int(rng.integers(18, 30))
    return page


def build_ood_corpus(out: Path, seed: int = 0, crops_per_photo: int = 2, documents: int = 20, plain: int = 12,
                     noise: int = 12, synthetic: int = 20) -> dict[str, int]:
    """Write the corpus as PNGs named ``<kind>_<n>.png`` under ``out``; returns the count per kind."""
    from preprocess.contract import CLASS_CODES

    from .synth.render import render

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(KINDS, 0)

    def save(kind: str, image: np.ndarray) -> None:
        write_image(out / f"{kind}_{counts[kind]:03d}.png", image, "OOD corpus image", TrainingError)
        counts[kind] += 1

    for image in skimage_photos().values():
        save("photo", image)
        h, w = image.shape[:2]
        for _ in range(crops_per_photo):
            ch, cw = int(h * rng.uniform(0.4, 0.7)), int(w * rng.uniform(0.4, 0.7))
            if min(ch, cw) >= 64:
                y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
                save("photo_crop", image[y : y + ch, x : x + cw])
    for _ in range(documents):
        save("document", document(rng))
    for _ in range(plain):
        save("plain", np.full((450, 600, 3), rng.integers(0, 256, 3), np.uint8))
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        ramp = np.linspace(0, 1, 600, dtype=np.float32)[None, :, None]
        save("gradient", np.broadcast_to(a + (b - a) * ramp, (450, 600, 3)).astype(np.uint8))
    for _ in range(noise):
        save("noise", rng.integers(0, 256, (450, 600, 3), dtype=np.uint8))
    for i in range(synthetic):
        rendered = render(str(rng.choice(CLASS_CODES)), seed * 1000 + i, seed * 1000 + i + 500)
        save("synthetic_dermoscopy", rendered.image)
    logger.info("out-of-distribution corpus: %s images in %s", counts, out)
    return counts
