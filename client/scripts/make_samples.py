"""Write the demo page's bundled sample images (small synthetic dermoscopy-like JPEGs), deterministically.

Run from the repository root: ``.venv/bin/python client/scripts/make_samples.py``. Placeholders until
the project's synthetic generator (``dermassist synth``) provides the samples.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

OUT = Path(__file__).resolve().parents[1] / "dermassist_client" / "samples"
SIZE = (320, 240)


@dataclass(frozen=True)
class Lesion:
    """One synthetic lesion: file name, colour, radius (fraction of the short side) and irregularity."""

    name: str
    colour: tuple[int, int, int] | None
    radius: float
    irregularity: float
    seed: int


SAMPLES = (
    Lesion("synthetic_pigmented_irregular.jpg", (92, 56, 38), 0.30, 0.30, 1),
    Lesion("synthetic_pigmented_round.jpg", (120, 78, 52), 0.22, 0.08, 2),
    Lesion("synthetic_reddish.jpg", (150, 50, 60), 0.18, 0.15, 3),
    Lesion("synthetic_plain_skin.jpg", None, 0.0, 0.0, 4),
)


def render(lesion: Lesion) -> Image.Image:
    """Skin tone with texture, an irregular blob (unless colour is None) and a dark vignette."""
    rng = np.random.default_rng(lesion.seed)
    w, h = SIZE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    skin = np.array([224, 176, 150], np.float32) + rng.normal(0, 6, (h, w, 3)).astype(np.float32)
    image = skin
    if lesion.colour is not None:
        cx, cy = w / 2 + rng.uniform(-20, 20), h / 2 + rng.uniform(-15, 15)
        angle = np.arctan2(yy - cy, xx - cx)
        wobble = sum(rng.uniform(0, lesion.irregularity) * np.cos(k * angle + rng.uniform(0, 6.28)) for k in (2, 3, 5))
        radius = lesion.radius * min(w, h) * (1 + wobble)
        dist = np.hypot(xx - cx, yy - cy)
        inside = np.clip((radius - dist) / 6.0, 0, 1)[..., None]
        core = np.array(lesion.colour, np.float32) * (0.8 + 0.4 * rng.random((h, w, 1)).astype(np.float32))
        image = skin * (1 - inside) + core * inside
    vignette = np.clip(1.15 - 0.9 * np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)) ** 3, 0.6, 1)[..., None]
    pixels = np.clip(image * vignette, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(1.2))


def main() -> None:
    """Write every sample to the package's samples folder (or --out)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for lesion in SAMPLES:
        render(lesion).save(args.out / lesion.name, format="JPEG", quality=85, optimize=True)


if __name__ == "__main__":
    main()
