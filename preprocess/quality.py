"""Image-quality measures of the ``prepare`` step: sharpness, under- and over-exposure, colour and seam, each >= 1.0
when acceptable.

All are read off the segmenter input (256x256 RGB in [0, 1]) that ``prepare`` makes anyway:
sharpness is the variance of its Laplacian (grey levels 0..255), exposure its mean grey level.
Their limits are fitted on the real training images and travel with the release as an artifact
(``QualityLimits``); the defaults here apply only when no artifact exists.
Colour is the mean spread between a pixel's brightest and darkest channel (levels 0..255): 0 for a greyscale
picture, at most about 2 for one re-saved in colour, and at least 8 on every one of the 1,701 real dermoscopy
images of the shared sets (median 50). Its limit, ``MIN_COLOUR``, says what "no colour" is, not how a model was
tuned, so it is a constant here: the models judge colour photographs, and a greyscale one is not assessable.
A seam is a straight line right across the picture, away from its edges, where it was put together from several
pictures (a mosaic, a contact sheet, a side-by-side comparison): the colour step across that line is several times
the steps across the lines beside it, in every stretch of it whose two sides are both picture: not dark and not
plain (a lens border, a letterbox bar or a frame is a straight band, not a seam). A single picture's strongest line
is about 1 (at most 2.3 on the 1,701 real images); the seams of mosaics of them are mostly 4 to 40. Its limit,
``SEAM_LIMIT``, likewise says what a seam is, not how a model was tuned.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .contract import QUALITY
from .errors import StepSettingsError

_GREY = np.array([0.299, 0.587, 0.114], np.float32) * np.float32(255.0)
MIN_COLOUR = 3.0  # mean channel spread (levels) below which a picture has no colour to judge
# Seam strength (the step across a line over the steps across its neighbours) from which a line is a seam: set at
# 1.5 times the largest on the classifier's 879 training images with the first measure (1.87), rounded up to a tenth,
# and kept when the step became the smaller of the local step and the step between the line's two sides (a thin
# line burned into one picture was a seam): now at most 1.38 on the training images, 2.31 on the 1,701 real ones (a
# ruler's edge) and 2.41 with a crosshair drawn through one; 149 of 180 mosaics of validation images reach it
# (RUNS.md, "Several pictures in one").
SEAM_LIMIT = 2.9
SEAM_ALONG = 2  # a line is read at full resolution across it and at half along it: half the cost, the same steps
SEAM_BANDS = 8  # stretches of a line judged apart (16 rows of 128 each): it is a seam in every lit one or not at all
SEAM_DARK = 40.0  # grey level below which a side of a line is dark: no evidence either way
SEAM_FLAT = 1.0  # levels: a side whose lines 6 to 10 pixels away step less than this is a plain band, not a picture
_SEAM_SIDE = 4  # pixels from a line at which its two sides are read for darkness
_SEAM_NEAR = np.r_[-10:-2, 3:11]  # the neighbouring lines a line's step is compared with
_SEAM_SIDE_NEAR, _SEAM_SIDE_FAR = 3, 12  # the columns each side of a line whose median colour is that side's
_SEAM_FAR = (np.r_[-10:-5], np.r_[6:11])  # the lines each side of a line whose steps say whether that side is plain
_SEAM_STEP_FLOOR = 1.0  # levels: a step over neighbours flatter than this is over this
_CHANNEL_SUM = np.ones((1, 3), np.float32)
_GREY_ROW = (_GREY / np.float32(255.0)).reshape(1, 3)  # grey level of an RGB picture in levels


@dataclass(frozen=True)
class QualityLimits:
    """Lowest acceptable sharpness (Laplacian variance) and the acceptable mean grey-level range."""

    min_sharpness: float = 10.0
    min_brightness: float = 60.0
    max_brightness: float = 225.0

    def __post_init__(self) -> None:
        if not self.min_sharpness > 0:
            raise StepSettingsError(f"min_sharpness must be positive, got {self.min_sharpness}")
        if not 0 < self.min_brightness < self.max_brightness < 255:
            raise StepSettingsError(
                f"brightness limits must satisfy 0 < min < max < 255, got {self.min_brightness}, {self.max_brightness}"
            )

    def as_dict(self) -> dict[str, float]:
        """JSON-ready fields."""
        return asdict(self)


def raw_quality(seg_input: np.ndarray) -> tuple[float, float]:
    """(Laplacian variance, mean grey level) of one segmenter input (H, W, 3) float in [0, 1]."""
    grey = np.ascontiguousarray(seg_input, dtype=np.float32) @ _GREY
    return float(cv2.Laplacian(grey, cv2.CV_32F).var()), float(grey.mean())


def scaled_quality(sharpness: float, brightness: float, limits: QualityLimits) -> tuple[float, float, float]:
    """(sharpness, under-exposure, over-exposure) scores, each >= 1.0 when acceptable.

    sharpness / its minimum; brightness / its minimum (below 1: too dark); (255 - brightness) /
    (255 - its maximum) (below 1: too bright).
    """
    return (sharpness / limits.min_sharpness, brightness / limits.min_brightness,
            (255.0 - brightness) / (255.0 - limits.max_brightness))


def colour_score(seg_input: np.ndarray) -> float:
    """Mean spread between each pixel's brightest and darkest channel (levels 0..255, every second pixel each
    way) over MIN_COLOUR: below 1.0 the picture is greyscale or nearly so."""
    red, green, blue = cv2.split(np.ascontiguousarray(np.asarray(seg_input, dtype=np.float32)[::2, ::2]))
    spread = cv2.subtract(cv2.max(cv2.max(red, green), blue), cv2.min(cv2.min(red, green), blue))
    return float(cv2.mean(spread)[0]) * 255.0 / MIN_COLOUR


def line_steps(levels: np.ndarray) -> np.ndarray:
    """Colour step (levels, summed over the channels) across each vertical line x = 2 .. W-3, row by row, of an
    (H, W, 3) picture in levels: the smaller of the steps over 2 and over 4 pixels, so that a thin line which comes
    back to the level it left (a hair, a ruler mark, a gutter between pictures) is not a step, and a seam is."""
    levels = np.ascontiguousarray(levels, dtype=np.float32)
    over_2 = cv2.transform(cv2.absdiff(levels[:, 3:-1], levels[:, 1:-3]), _CHANNEL_SUM)
    over_4 = cv2.transform(cv2.absdiff(levels[:, 4:], levels[:, :-4]), _CHANNEL_SUM)
    return cv2.min(over_2, over_4).reshape(levels.shape[0], levels.shape[1] - 4)


def median_of_last(values: np.ndarray) -> np.ndarray:
    """``np.median(values, axis=-1)``, the same numbers, by sorting: many short rows sort far faster than
    ``np.median`` partitions them."""
    ordered = np.sort(values, axis=-1)
    middle = values.shape[-1] // 2
    if values.shape[-1] % 2:
        return ordered[..., middle]
    return (ordered[..., middle - 1] + ordered[..., middle]) * np.asarray(0.5, dtype=values.dtype)


def side_steps(levels: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Per band of rows (SEAM_BANDS), the colour step (levels, summed over the channels) between the two sides of
    each vertical line in ``lines``: each side is the median of the band's mean column colours 3 to 12 pixels away,
    so a thin line (a hair, a ruler mark, a crosshair: under 5 of those 10 columns) that comes back to the level it
    left has none, and a seam between two pictures keeps its step. (bands, len(lines)). The medians of every run of
    10 columns are taken once: a line's left side is the run that ends 3 columns before it, its right side the run
    that starts 3 columns after it."""
    profile = levels.reshape(SEAM_BANDS, -1, *levels.shape[1:]).mean(axis=1)  # (bands, W, 3)
    run = _SEAM_SIDE_FAR - _SEAM_SIDE_NEAR + 1
    runs = median_of_last(np.lib.stride_tricks.sliding_window_view(profile, run, axis=1))  # (bands, W - run + 1, 3)
    left, right = runs[:, lines - _SEAM_SIDE_FAR], runs[:, lines + _SEAM_SIDE_NEAR]
    return np.abs(right - left).sum(axis=2)


def vertical_seam_strength(levels: np.ndarray) -> float:
    """The strongest vertical line at least W/16 from the edges of an (H, W, 3) picture in levels: per band of rows
    (SEAM_BANDS of them; rows past the last whole band are left out), the median step across the line over the
    median of those across its neighbours. The weakest band counts, among those whose two sides are both picture:
    lit (grey >= SEAM_DARK 4 pixels away, on half its rows or more) and not plain (steps of SEAM_FLAT or more 6 to
    10 pixels away). A line with picture both sides in fewer than half the bands is no seam (0)."""
    height, width = levels.shape[:2]
    margin = width // 16
    if height < SEAM_BANDS or margin < -_SEAM_NEAR[0] + 2:
        return 0.0  # too small a picture to hold a line away from its edges
    levels = np.ascontiguousarray(levels[: height - height % SEAM_BANDS])
    steps = line_steps(levels).reshape(SEAM_BANDS, -1, width - 4)  # column j is the line x = j + 2
    band_steps = median_of_last(steps.transpose(0, 2, 1))  # (bands, W - 4)
    lines = np.arange(margin, width - margin)
    grey = cv2.transform(levels, _GREY_ROW).reshape(SEAM_BANDS, -1, width)
    first, last = lines[0], lines[-1] + 1  # the lines are one run of columns: their neighbours are slices
    lit = (np.minimum(grey[..., first - _SEAM_SIDE:last - _SEAM_SIDE], grey[..., first + _SEAM_SIDE:last + _SEAM_SIDE])
           >= SEAM_DARK).mean(axis=1) >= 0.5
    def around(offsets: np.ndarray) -> np.ndarray:  # (bands, lines, offsets): the steps of each line's neighbours
        return np.stack([band_steps[:, first - 2 + o:last - 2 + o] for o in offsets], axis=-1)

    for far in _SEAM_FAR:  # a plain side (a frame or bar in any colour) is no evidence either, like a dark one
        lit &= median_of_last(around(far)) >= SEAM_FLAT
    near = median_of_last(around(_SEAM_NEAR))  # (bands, lines)
    across = np.minimum(band_steps[:, lines - 2], side_steps(levels, lines))  # a thin line between equal sides: none
    ratio = np.where(lit, across / np.maximum(near, _SEAM_STEP_FLOOR), np.inf)
    strength = np.where(lit.mean(axis=0) >= 0.5, ratio.min(axis=0), 0.0)
    return float(strength.max())


def seam_strength(seg_input: np.ndarray) -> float:
    """The strongest straight vertical or horizontal line across one segmenter input (H, W, 3) float in [0, 1]:
    around 1 on a single picture, several times more on a seam between pictures."""
    levels = np.asarray(seg_input, dtype=np.float32) * np.float32(255.0)
    height, width = levels.shape[:2]
    along = height // SEAM_ALONG, width // SEAM_ALONG  # each line read at full resolution across, halved along it
    vertical = cv2.resize(levels, (width, along[0]), interpolation=cv2.INTER_AREA)
    horizontal = cv2.resize(levels, (along[1], height), interpolation=cv2.INTER_AREA).transpose(1, 0, 2)
    return max(vertical_seam_strength(vertical), vertical_seam_strength(np.ascontiguousarray(horizontal)))


def seam_score(seg_input: np.ndarray) -> float:
    """SEAM_LIMIT over the seam strength (a strength below 1, no line standing out, counts as 1): below 1.0 the
    picture is several pictures put together."""
    return SEAM_LIMIT / max(seam_strength(seg_input), 1.0)


def quality_batch(seg_inputs: np.ndarray, limits: QualityLimits) -> np.ndarray:
    """QUALITY (N, 5) float32 for a batch of segmenter inputs (N, H, W, 3): sharpness, under-exposure,
    over-exposure, colour, seam."""
    out = np.empty((len(seg_inputs), *QUALITY.dims), np.float32)
    for row, seg in enumerate(seg_inputs):
        out[row] = (*scaled_quality(*raw_quality(seg), limits), colour_score(seg), seam_score(seg))
    return out
