"""The ``triage`` step's rules: referral score and decision, assessability and the note a clinician reads.

Pure numpy, batch in, batch out. The operating threshold and the out-of-distribution limit are
tuned on validation and travel with the release; the contract defaults apply only without them.
The public OOD_SCORE is the classifier's score over the limit in force, so 1.0 is the limit whatever it is (a site's
``ood_limit`` parameter, or the unchecked limit of an imported classifier, whose score is then about 0).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .contract import (
    CLASS_CODES,
    DEFAULT_OOD_LIMIT,
    DEFAULT_REFER_THRESHOLD,
    REFER_CLASSES,
    STEP_SIGNATURES,
    TRIAGE_MODEL,
)
from .errors import InvalidTensorError, StepSettingsError

REFER_INDEX = tuple(CLASS_CODES.index(code) for code in REFER_CLASSES)
# The OOD limit of a classifier served without OOD statistics (one brought with ``dermassist import``): no score
# reaches it, so the check is off rather than every image out of distribution.
OOD_UNCHECKED = 1e9


@dataclass(frozen=True)
class TriageParams:
    """Referral threshold on REFER_SCORE, the OOD_SCORE limit, and whether a non-assessable image is referred."""

    refer_threshold: float = DEFAULT_REFER_THRESHOLD
    ood_limit: float = DEFAULT_OOD_LIMIT
    refer_when_not_assessable: bool = True
    # Another lesion-like area counts as a second lesion when it covers at least ``other_lesion_min_fraction`` of the
    # picture and at least ``other_lesion_min_share`` of the classified lesion's area. Both compare shares of the
    # segmenter's mask, so they belong to its version: set on the release's classifier training images (879), they
    # hold for 7, each a picture of two separate lesions, and for none of the 189 validation images (RUNS.md, "Two
    # lesions"); a release records them with its other triage values.
    other_lesion_min_fraction: float = 0.02
    other_lesion_min_share: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 < self.refer_threshold < 1.0:
            raise StepSettingsError(f"refer_threshold must lie in (0, 1), got {self.refer_threshold}")
        if not self.ood_limit > 0:
            raise StepSettingsError(f"ood_limit must be positive, got {self.ood_limit}")
        for name in ("other_lesion_min_fraction", "other_lesion_min_share"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise StepSettingsError(f"{name} must lie in (0, 1] (a share), got {getattr(self, name)}")

    def as_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True)
class TriageBatch:
    """The ``triage`` outputs for N rows."""

    refer: np.ndarray  # bool (N, 1)
    refer_score: np.ndarray  # float32 (N, 1)
    assessable: np.ndarray  # bool (N, 1)
    note: np.ndarray  # object (N, 1) of UTF-8 bytes, b"" when all is well
    ood_score: np.ndarray  # float32 (N, 1): the classifier's OOD score over the limit, >= 1 out of distribution


def refer_scores(probabilities: np.ndarray) -> np.ndarray:
    """P(MEL) + P(BCC) + P(SCC) + P(AK) per row, float32 (N,)."""
    return np.asarray(probabilities, np.float32)[:, REFER_INDEX].sum(axis=1)


NO_LESION = ("No lesion found, so the whole picture was classified and the answer is not a diagnosis: check that "
             "the lesion is in the picture and retake it.")
REFERRED_NOT_ASSESSABLE = "Referred because the picture could not be assessed."


def row_problems(quality: np.ndarray, ood: float) -> list[str]:
    """The plain sentences naming each reason one image cannot be assessed and what to do, each with its measure
    (a share of the lowest value accepted, or the out-of-distribution score ``ood``, over its limit: >= 1 is out) for
    the record; an
    image unlike the validated dermoscopy is said first, as its other measures are then no guide, unless it is too
    dark or too bright: its exposure is then said first, and its out-of-distribution score after it."""
    sharpness, dark, bright, colour, seam = (float(v) for v in quality)
    problems = []
    # sharpness (the Laplacian's variance) falls with the light: a sharp picture taken too dark or too bright measures
    # as blurred, so only a well-exposed picture is told to be retaken in focus (its exposure is said either way)
    if sharpness < 1.0 and dark >= 1.0 and bright >= 1.0:
        problems.append(f"Picture too blurred to assess: retake it in focus (sharpness {sharpness:.0%} of the lowest "
                        "accepted).")
    if dark < 1.0:
        problems.append(f"Picture too dark to assess: retake it with more light (brightness {dark:.0%} of the lowest "
                        "accepted).")
    if bright < 1.0:
        problems.append(f"Picture too bright (overexposed) to assess: retake it with less light (its brightest "
                        f"parts are burnt out: headroom below white {bright:.0%} of the lowest accepted).")
    # a very dark picture has little colour left, and an overexposed one's burnt-out parts are white: its exposure is
    # the problem, and a clinician sending a colour photograph was told it was greyscale
    if colour < 1.0 and dark >= 1.0 and bright >= 1.0:
        problems.append(f"Picture has no colour (greyscale): only colour dermoscopy is assessed; send the colour "
                        f"original (colour {colour:.0%} of the lowest accepted).")
    if seam < 1.0:  # a mosaic or side-by-side: the lesion found may run across several pictures
        problems.append(f"The picture looks like several pictures put together (a straight seam runs across it): "
                        f"photograph each lesion on its own (seam score {seam:.0%} of the lowest accepted).")
    if ood >= 1.0 and (dark < 1.0 or bright < 1.0):
        # a dermoscopy picture only too dark or too bright also measures as unlike dermoscopy: its exposure, said
        # first, is what to correct, not the device
        problems.append(f"Its answer cannot be trusted either (out-of-distribution score {ood:.2f}, limit 1.00): "
                        "correct the exposure first, and if the retaken picture is again not "
                        "assessable, judge the lesion clinically.")
    elif ood >= 1.0:
        problems.insert(0, f"Picture unlike the dermoscopy images the system was validated on (another dermatoscope, "
                           f"light or magnification, a clinical photograph, or not skin), so its answer cannot be trusted: "
                           f"retake it with a dermatoscope, and if it is again not assessable, judge the lesion clinically "
                           f"(out-of-distribution score {ood:.2f}, limit 1.00).")
    return problems


def second_lesion(fraction: float, other: float, params: TriageParams) -> str | None:
    """The sentence for a picture whose segmentation holds another lesion-like area beside the classified one
    (``other`` and ``fraction``: shares of the picture), or None."""
    share = np.float32(other)  # compared as the float32 the crop step sends: 0.02 there is 0.02 here
    if share >= np.float32(params.other_lesion_min_fraction) and share >= np.float32(params.other_lesion_min_share
                                                                                      * fraction):
        return (f"Another lesion-like area ({other:.0%} of the picture) was not assessed: only the largest was; "
                "photograph each lesion on its own.")
    return None


def _check(probabilities: np.ndarray, ood: np.ndarray, quality: np.ndarray, fraction: np.ndarray,
           other: np.ndarray) -> int:
    """The rows' count, after checking each input (named as the triage step receives it) has one finite row per
    image."""
    n = len(probabilities)
    arrays = (probabilities, ood, quality, fraction, other)
    for spec, array in zip(STEP_SIGNATURES[TRIAGE_MODEL][0], arrays, strict=True):
        want = (n,) if spec.dims == (1,) else (n, *spec.dims)  # one value a row: flattened by triage_batch
        if array.shape != want:
            raise InvalidTensorError(f"{spec.name} must be {want} for {n} rows, got {array.shape}")
        finite = np.isfinite(array).all(axis=tuple(range(1, array.ndim)))  # per row
        if not finite.all():
            rows = np.flatnonzero(~finite)
            first = np.ravel(array[rows[0]])
            value = first[~np.isfinite(first)][0]
            listed = ", ".join(map(str, rows[:10])) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
            raise InvalidTensorError(f"{spec.name} holds a NaN or infinite value in row(s) {listed} (row {rows[0]}: "
                                     f"{value}); every value must be finite: check the step that computes {spec.name} "
                                     "(its model and its inputs) on those rows")
    return n


def triage_batch(probabilities: np.ndarray, ood_score: np.ndarray, quality: np.ndarray, lesion_fraction: np.ndarray,
                 other_lesion_fraction: np.ndarray, params: TriageParams = TriageParams()) -> TriageBatch:
    """Refer, its score, assessability and the note for every row."""
    probabilities = np.asarray(probabilities, np.float32)
    ood = np.asarray(ood_score, np.float32).reshape(-1)
    quality = np.asarray(quality, np.float32)
    fraction = np.asarray(lesion_fraction, np.float32).reshape(-1)
    other = np.asarray(other_lesion_fraction, np.float32).reshape(-1)
    n = _check(probabilities, ood, quality, fraction, other)
    ood = ood / np.float32(params.ood_limit)
    score = refer_scores(probabilities)
    refer = np.zeros((n, 1), bool)
    assessable = np.zeros((n, 1), bool)
    notes = np.empty((n, 1), object)
    for row in range(n):
        problems = row_problems(quality[row], float(ood[row]))
        if fraction[row] <= 0.0:  # the classifier saw the whole picture, not a lesion: nothing it says is assessed
            problems.insert(0, NO_LESION)
        second = second_lesion(float(fraction[row]), float(other[row]), params)
        if second is not None:  # the answer is about one of two lesions: the other must not go unseen
            problems.append(second)
        assessable[row, 0] = not problems
        refer[row, 0] = bool(score[row] >= params.refer_threshold) or (bool(problems) and params.refer_when_not_assessable)
        if problems and params.refer_when_not_assessable:  # the note says why REFER is true whatever the score
            problems.append(REFERRED_NOT_ASSESSABLE)
        notes[row, 0] = " ".join(problems).encode("utf-8")
    return TriageBatch(refer, score.reshape(n, 1), assessable, notes, ood.reshape(n, 1))
