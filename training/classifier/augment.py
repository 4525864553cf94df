"""Training-time augmentation of classifier crops (numpy + OpenCV geometry, torch colour; PyTorch process).

Each training view is warped out of the sample's context (the served crop box grown CONTEXT_FACTOR
times): any rotation, flips, zoom, a little stretch and shift. Colour jitter (brightness, contrast,
saturation, gamma, optionally per-channel white balance) runs on the batch tensor; the seed project's
brightness idea adds a stronger per-image gain and shift on top.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

from preprocess.crop import Box
from preprocess.resize import resize_antialiased

if TYPE_CHECKING:  # torch is imported where the jitter runs (training processes only)
    import torch

CONTEXT_FACTOR = 1.6
ZOOM = (1 / 1.25, 1.25)
STRETCH = 0.1
SHIFT = 0.08


def context_crop(image: np.ndarray, box: Box, factor: float, size: int) -> np.ndarray:
    """The box grown ``factor`` times about its centre (mirrored past the image edge), resized to size x size."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    hw, hh = (x1 - x0) * factor / 2.0, (y1 - y0) * factor / 2.0
    gx0, gy0, gx1, gy1 = math.floor(cx - hw), math.floor(cy - hh), math.ceil(cx + hw), math.ceil(cy + hh)
    h, w = image.shape[:2]
    pad = max(0, -gx0, -gy0, gx1 - w, gy1 - h)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    region = image[gy0 + pad : gy1 + pad, gx0 + pad : gx1 + pad]
    return resize_antialiased(np.ascontiguousarray(region), size, size)


def random_view(context: np.ndarray, out: int, rng: np.random.Generator, factor: float = CONTEXT_FACTOR) -> np.ndarray:
    """One augmented out x out view of the served crop region at the centre of ``context``."""
    side = context.shape[0] / factor  # the served crop's side in context pixels
    angle = rng.uniform(0.0, 2 * math.pi)
    zoom = math.exp(rng.uniform(math.log(ZOOM[0]), math.log(ZOOM[1])))
    stretch = math.exp(rng.uniform(-STRETCH, STRETCH))
    sx, sy = side / out / zoom * stretch, side / out / zoom / stretch
    flip = -1.0 if rng.random() < 0.5 else 1.0
    cos, sin = math.cos(angle), math.sin(angle)
    # output pixel (u, v) -> context pixel: centre + R @ diag(flip*sx, sy) @ ((u, v) - out centre)
    a = np.array([[cos * flip * sx, -sin * sy], [sin * flip * sx, cos * sy]])
    centre = (context.shape[0] - 1) / 2.0 + rng.uniform(-SHIFT, SHIFT, 2) * side
    c_out = (out - 1) / 2.0
    m = np.hstack([a, (centre - a @ np.array([c_out, c_out]))[:, None]])
    return cv2.warpAffine(context, m, (out, out), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT_101)


def white_balance_gains(rng: np.random.Generator, n: int, spread: float) -> np.ndarray:
    """(n, 3) float32 per-channel gains, each drawn in exp(+-spread), then divided by the image's mean gain."""
    gains = np.exp(rng.uniform(-spread, spread, (n, 3)))
    return (gains / gains.mean(axis=1, keepdims=True)).astype(np.float32)


def colour_jitter(x: torch.Tensor, rng: np.random.Generator, brightness: bool, white_balance: float = 0.0) -> torch.Tensor:
    """Per-image brightness, contrast, saturation and gamma on a float batch (N, 3, H, W) in [0, 1] (torch);
    ``white_balance`` > 0 also scales each colour channel by its own factor in exp(+-white_balance), the
    illuminant and sensor differences between dermoscopes (mean gain 1, so the overall level is unchanged)."""
    import torch

    n = x.shape[0]

    def draw(lo: float, hi: float) -> torch.Tensor:
        return torch.from_numpy(rng.uniform(lo, hi, (n, 1, 1, 1)).astype(np.float32))

    if white_balance > 0:
        x = x * torch.from_numpy(white_balance_gains(rng, n, white_balance))[:, :, None, None]

    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = gray + (x - gray) * draw(0.75, 1.3)
    mean = gray.mean(dim=(2, 3), keepdim=True)
    x = mean + (x - mean) * draw(0.8, 1.25)
    x = x * draw(0.85, 1.15)
    if brightness:
        x = x * draw(0.7, 1.3) + draw(-0.08, 0.08)
    x = x.clamp(0.0, 1.0)
    return x ** torch.exp(draw(-0.2, 0.2))
