"""Colour constancy: remove the cast of the dermoscope's light and camera before the classifier sees a crop.

Dermatoscopes and cameras differ in illuminant and white balance, so the same lesion photographed on
two devices differs by a gain per colour channel. Shades of grey (Finlayson and Trezzi, 2004) estimates
that gain as the Minkowski p-norm mean of each channel over the whole image (p = 6 in the ISIC
challenge entries that used it) and divides it out, so a crop comes to the classifier as it would
under a neutral light: the answer follows the lesion, not the device. The estimate is taken over the
whole work image (skin and lesion), never over the crop alone, which is mostly lesion.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import InvalidTensorError

MAX_GAIN = 4.0  # no channel is scaled by more than this (or less than its inverse): a one-colour image stays one
MIN_LEVEL = 1e-3  # a channel this dark (of 1.0) everywhere has no colour to balance: the image is left as it is
SAMPLE_PIXELS = 16384  # the estimate reads about this many pixels, evenly strided (0.5 ms at 1024x768)


def _check_rgb(rgb: np.ndarray, what: str) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 1:
        raise InvalidTensorError(f"{what} needs an RGB uint8 image (H, W, 3), got {rgb.dtype} {rgb.shape}")


def shades_of_grey_gains(rgb: np.ndarray, p: float) -> np.ndarray:
    """Per-channel gains (3,) float32 that make the image's Minkowski p-norm mean colour grey.

    The grey is the geometric mean of the three channel estimates, so the gains multiply to 1: they change
    the colour of the light, not the exposure (a cast that scales all channels alike is left alone).
    """
    _check_rgb(rgb, "shades_of_grey_gains")
    if not p >= 1:
        raise InvalidTensorError(f"shades-of-grey norm p must be at least 1, got {p}")
    step = max(1, int(math.sqrt(rgb.shape[0] * rgb.shape[1] / SAMPLE_PIXELS)))
    sample = rgb[::step, ::step].reshape(-1, 3)
    powers = np.power(np.arange(256, dtype=np.float64) / 255.0, p)  # each level's p-th power, looked up by count
    counts = [np.bincount(sample[:, c], minlength=256) for c in range(3)]
    light = np.power(np.array([powers @ n for n in counts]) / len(sample), 1.0 / p)
    if light.min() < MIN_LEVEL:
        return np.ones(3, np.float32)
    return np.clip(np.exp(np.log(light).mean()) / light, 1.0 / MAX_GAIN, MAX_GAIN).astype(np.float32)


def apply_gains(rgb: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """An RGB uint8 image with each channel multiplied by its gain, rounded and clipped to 0..255."""
    _check_rgb(rgb, "apply_gains")
    gains = np.asarray(gains, np.float32)
    if gains.shape != (3,) or not np.all(np.isfinite(gains)) or np.any(gains <= 0):
        raise InvalidTensorError(f"colour gains must be three positive finite numbers, got {gains.tolist()}")
    return np.clip(rgb * gains + np.float32(0.5), 0, 255).astype(np.uint8)


def balance_part(part: np.ndarray, whole: np.ndarray, p: float) -> np.ndarray:
    """``part`` (a crop of ``whole``) with its colours balanced by the shades-of-grey gains of ``whole``; as it is
    when ``p`` is 0 (balancing off)."""
    if not p:
        return part
    return apply_gains(part, shades_of_grey_gains(whole, p))
