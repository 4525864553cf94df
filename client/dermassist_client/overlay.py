"""Draw a result onto its image: the mask tinted over the lesion and the box around it."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .result import LesionResult

MASK_COLOUR = (255, 40, 40)
BOX_COLOUR = (40, 220, 90)
MASK_ALPHA = 0.4


def draw_overlay(image: Image.Image, result: LesionResult) -> Image.Image:
    """A copy of ``image`` (its original size) with the mask tinted in red and the bbox in green."""
    base = image.convert("RGB")
    if base.size != result.original_size:
        result = _with_size(result, base.size)
    pixels = np.asarray(base, dtype=np.float32)
    inside = (result.mask_at_original_size() > 0)[..., None]
    tinted = np.where(inside, pixels * (1 - MASK_ALPHA) + np.array(MASK_COLOUR) * MASK_ALPHA, pixels)
    out = Image.fromarray(tinted.astype(np.uint8))
    if result.lesion_found:
        width = max(2, round(max(out.size) / 200))
        x0, y0, x1, y1 = result.bbox.as_tuple()
        ImageDraw.Draw(out).rectangle([x0, y0, x1 - 1, y1 - 1], outline=BOX_COLOUR, width=width)
    return out


def _with_size(result: LesionResult, size: tuple[int, int]) -> LesionResult:
    from dataclasses import replace

    return replace(result, original_size=size)
