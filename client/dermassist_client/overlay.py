"""Draw a result onto its images: the mask and box over the original, the class activation map over the crop.

Pure numpy and Pillow: the client imports no plotting library.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .errors import ResultError
from .images import TRANSPOSING_ORIENTATIONS, as_srgb, exif_orientation, to_full_size_page, turned
from .result import LesionResult

MASK_COLOUR = (255, 40, 40)
#: The box and the mask's edge are drawn as a black line with a white one inside it: one of the two stands out at
#: 3:1 or more against any skin, light or dark, and for every colour vision (a green box had measured 1.0-1.4:1
#: against the skin beside it, the red tint's edge 1.3-1.6:1; accessibility audit, M3).
OUTLINE_OUTER = (0, 0, 0)
OUTLINE_INNER = (255, 255, 255)
MASK_ALPHA = 0.4
CAM_ALPHA = 0.65  # weight of the heat colour where the map is at its peak; where it is 0 the crop shows as is
#: The CAM's colour map: viridis (matplotlib's), sampled at 0, 1/8, ..., 1 and interpolated linearly. Dark purple (0)
#: through blue and green to yellow (1): its lightness rises all the way, so it reads without colour vision and
#: for red-green colour-blind readers, unlike jet, whose red and green ends have about the same lightness.
VIRIDIS = ((68, 1, 84), (72, 40, 120), (62, 73, 137), (49, 104, 142), (38, 130, 142), (31, 158, 137),
           (53, 183, 121), (110, 206, 88), (253, 231, 37))


def draw_overlay(image: Image.Image, result: LesionResult, max_side: int | None = None) -> Image.Image:
    """A copy of ``image`` as the server analysed it (turned by the server's orientation rule, in sRGB) with the
    mask tinted red and outlined, and the bbox drawn, in black and white; with ``max_side``, drawn on a copy scaled
    down to at most that many pixels a side. ``image`` itself is left as it is (``draw_overlay_file`` decodes a large
    JPEG at a reduced scale instead).

    The server's MASK and BBOX are in the frame of the turned picture, so a phone photo stored sideways with an EXIF
    orientation is turned before they are drawn on it, by the rule the server's decoder follows
    (``exif_orientation``: a PNG turns by its eXIf chunk only). Raises ResultError when the picture's frame is not
    the result's ``original_size`` (or that is unknown): the result is of another picture, or of this one in another
    frame, and would be drawn in the wrong place.
    """
    return _overlay(image, image.size, result, max_side)


def draw_overlay_file(path: str | Path, result: LesionResult, max_side: int | None = None) -> Image.Image:
    """``draw_overlay`` of the picture at ``path``, read as the SDK read it (a TIFF's full-size page); a JPEG larger
    than ``max_side`` is decoded at 1/2, 1/4 or 1/8 of its size, no smaller than needed (a page shows no more, and a
    48-megapixel picture took seconds and gigabytes at full size)."""
    with Image.open(path) as image:
        to_full_size_page(image)
        stored = image.size
        if max_side is not None and max(stored) > max_side and image.format in ("JPEG", "MPO"):  # MPO: a phone's JPEG
            scale = max_side / max(stored)
            image.draft(image.mode, (math.ceil(stored[0] * scale), math.ceil(stored[1] * scale)))
        return _overlay(image, stored, result, max_side)


def _overlay(image: Image.Image, stored: tuple[int, int], result: LesionResult, max_side: int | None) -> Image.Image:
    """The overlay of ``image``, whose stored size is ``stored`` (it may be decoded smaller: a JPEG's draft)."""
    orientation = exif_orientation(image)  # of the picture as opened (loads it): its colours next, then the turn
    frame = (stored[1], stored[0]) if orientation in TRANSPOSING_ORIENTATIONS else stored
    if frame != result.original_size:
        shown = "x".join(map(str, frame))
        if result.original_size is None:
            raise ResultError(
                f"the result's original_size is unknown (the image's header could not be read client-side), so "
                f"whether it fits this {shown} picture cannot be told; expected a result that names its frame: "
                "analyse the picture by its path or as this PIL image"
            )
        analysed = "x".join(map(str, result.original_size))
        raise ResultError(
            f"the result does not fit the picture: expected a picture of {analysed} pixels (the result's "
            f"original_size, the frame its mask and box are in), got one of {shown} as displayed; draw the result "
            "on the very picture that was analysed (the same file, opened unchanged)"
        )
    scale = 1.0 if max_side is None or max(frame) <= max_side else max_side / max(frame)
    size = (max(1, round(frame[0] * scale)), max(1, round(frame[1] * scale)))
    base = turned(as_srgb(image), orientation)
    if base.size != size:
        base = base.resize(size, Image.BILINEAR)  # type: ignore[attr-defined]  # Resampling came in Pillow 9.1
    pixels = np.asarray(base, dtype=np.float32)
    inside = (np.asarray(Image.fromarray(result.mask).resize(size, Image.NEAREST)) > 0)[..., None]  # type: ignore[attr-defined]
    tinted = np.where(inside, pixels * (1 - MASK_ALPHA) + np.array(MASK_COLOUR) * MASK_ALPHA, pixels)
    line = max(1, round(max(size) / 400))
    inner, outer = mask_edges(inside[..., 0], line)
    tinted[outer] = OUTLINE_OUTER
    tinted[inner] = OUTLINE_INNER
    out = Image.fromarray(tinted.astype(np.uint8))
    if result.lesion_found:
        width = max(2, round(max(out.size) / 200))
        x0, y0, x1, y1 = (round(v * scale) for v in result.bbox.as_tuple())
        x1, y1 = max(x0, x1 - 1), max(y0, y1 - 1)
        draw = ImageDraw.Draw(out)
        draw.rectangle([x0, y0, x1, y1], outline=OUTLINE_OUTER, width=width)
        if x1 - x0 > 2 * width and y1 - y0 > 2 * width:
            draw.rectangle([x0 + width, y0 + width, x1 - width, y1 - width], outline=OUTLINE_INNER,
                           width=max(1, width // 2))
    return out


def _grown(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one pixel in the four directions."""
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    return grown


def mask_edges(mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(inner, outer) edge of a boolean mask, each ``width`` pixels: the mask's own border pixels, and those just
    outside it."""
    outside = ~mask
    shrunk = ~_grown(outside)
    grown = mask
    for _ in range(width - 1):
        shrunk = ~_grown(~shrunk)
    for _ in range(width):
        grown = _grown(grown)
    return mask & ~shrunk, grown & outside


def jet_colours(values: np.ndarray) -> np.ndarray:
    """The jet colour map: values in [0, 1] (clipped) to RGB uint8 (..., 3), dark blue (0) via green to dark red (1)."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)[..., None]
    peaks = np.array([0.75, 0.5, 0.25], dtype=np.float32)  # where red, green and blue are brightest
    rgb = np.clip(1.5 - 4.0 * np.abs(v - peaks), 0.0, 1.0)
    return np.round(rgb * 255).astype(np.uint8)


def viridis_colours(values: np.ndarray) -> np.ndarray:
    """The viridis colour map (``VIRIDIS``): values in [0, 1] (clipped) to RGB uint8 (..., 3), dark purple (0) via
    blue and green to yellow (1)."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    anchors = np.array(VIRIDIS, dtype=np.float32)
    at = np.linspace(0.0, 1.0, len(VIRIDIS), dtype=np.float32)
    rgb = np.stack([np.interp(v, at, anchors[:, channel]) for channel in range(3)], axis=-1)
    return np.round(rgb).astype(np.uint8)


def blend_cam(crop: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """The crop (HxWx3 uint8) with its CAM (HxW uint8, 0..255) as a heat map, HxWx3 uint8.

    Each pixel moves toward the viridis colour of its CAM value by ``CAM_ALPHA`` times that value, so
    what the model looked at most is yellow and strongly tinted, and what it ignored keeps its colours.
    """
    crop, cam = np.asarray(crop), np.asarray(cam)
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
        raise ResultError(f"the crop must be an HxWx3 uint8 array, got shape {crop.shape} and dtype {crop.dtype}")
    if cam.shape != crop.shape[:2] or cam.dtype != np.uint8:
        raise ResultError(f"the CAM must be a {crop.shape[0]}x{crop.shape[1]} uint8 array like its crop, "
                          f"got shape {cam.shape} and dtype {cam.dtype}")
    level = cam.astype(np.float32) / 255.0
    weight = (CAM_ALPHA * level)[..., None]
    blended = crop.astype(np.float32) * (1.0 - weight) + viridis_colours(level).astype(np.float32) * weight
    return np.round(blended).astype(np.uint8)


_ROWS, _COLUMNS = ("upper", "middle", "lower"), ("left", "centre", "right")
_PLACES = {("middle", "centre"): "in the middle", ("upper", "centre"): "at the top", ("lower", "centre"): "at the bottom",
           ("middle", "left"): "on the left", ("middle", "right"): "on the right"}


def cam_hotspot(cam: np.ndarray) -> str:
    """Where a class activation map (HxW uint8) is hottest, in words, for those who cannot see its colours: the third
    of the crop, across and down, holding its peak, and the share of the crop at least half as hot, e.g. ``hottest in
    the upper left of the crop; 5% of the crop is at least half as hot`` (read after "the map is"). The peak itself is
    named, not the middle of everything near it: two hot areas apart have a cold middle (review 19, M5)."""
    level = np.asarray(cam, dtype=np.float32)
    peak = float(level.max()) if level.size else 0.0
    if peak <= 0:
        return "empty: nothing in the crop raised the top class"
    ys, xs = np.nonzero(level == peak)
    at = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))  # the peak's pixel nearest their middle
    row = _ROWS[min(int(3 * (ys[at] + 0.5) / level.shape[0]), 2)]
    column = _COLUMNS[min(int(3 * (xs[at] + 0.5) / level.shape[1]), 2)]
    place = _PLACES.get((row, column), f"in the {row} {column}")
    share = float((level >= 0.5 * peak).mean())
    return f"hottest {place} of the crop; {share:.0%} of the crop is at least half as hot"


def draw_cam(result: LesionResult) -> Image.Image | None:
    """The result's crop with its class activation map over it, or None when it came without them."""
    if result.crop is None or result.cam is None:
        return None
    return Image.fromarray(blend_cam(result.crop, result.cam))
