"""The triage rules: referral score and decision, assessability and the note, on cases worked by hand."""
from __future__ import annotations

import numpy as np
import pytest

from preprocess.errors import InvalidTensorError, StepSettingsError
from preprocess.triage import OOD_UNCHECKED, TriageParams, refer_scores
from preprocess.triage import triage_batch as triage_with_other

GOOD = (2.0, 1.5, 1.5, 12.0, 2.9)  # sharpness, under-, over-exposure, colour, seam: all acceptable


def triage_batch(probabilities, ood, quality, fraction, params: TriageParams | None = None, other=None):
    """The triage of rows with no other lesion-like area unless ``other`` says so."""
    other = np.zeros((len(probabilities), 1), np.float32) if other is None else other
    return triage_with_other(probabilities, ood, quality, fraction, other, params or TriageParams())


def _probs(**by_code: float) -> np.ndarray:
    order = ("AK", "BCC", "DF", "MEL", "NV", "BKL", "SCC", "VASC")
    return np.array([[by_code.get(c, 0.0) for c in order]], np.float32)


def test_refer_score_sums_mel_bcc_scc_ak() -> None:
    probs = _probs(AK=0.05, BCC=0.10, MEL=0.20, SCC=0.01, NV=0.64)
    assert refer_scores(probs)[0] == pytest.approx(0.36)


def test_refer_at_or_above_the_threshold_and_routine_below() -> None:
    probs = np.concatenate([_probs(MEL=0.30, NV=0.70), _probs(MEL=0.29, NV=0.71)])
    threshold = float(np.float32(0.30))  # exactly the first score as float32: "at" the threshold refers
    out = triage_batch(probs, [[0.2], [0.2]], [GOOD, GOOD], [[0.1], [0.1]], TriageParams(refer_threshold=threshold))
    assert out.refer[:, 0].tolist() == [True, False]
    assert out.assessable[:, 0].tolist() == [True, True]
    assert out.note[:, 0].tolist() == [b"", b""]
    assert out.refer_score.dtype == np.float32 and out.refer_score.shape == (2, 1)


def test_each_problem_is_named_in_plain_words_with_what_to_do_and_its_measure_and_refers() -> None:
    probs = np.repeat(_probs(NV=1.0), 5, axis=0)
    quality = [(0.4, 1.5, 1.5, 12.0, 2.9), (2.0, 0.62, 1.5, 12.0, 2.9), (2.0, 1.5, 0.45, 12.0, 2.9), GOOD,
               (2.0, 1.5, 1.5, 0.1, 2.9)]
    ood = [[0.3], [0.3], [0.3], [1.8], [0.3]]
    out = triage_batch(probs, ood, quality, [[0.1]] * 5, TriageParams(refer_threshold=0.5))
    notes = [n.decode() for n in out.note[:, 0]]
    referred = " Referred because the picture could not be assessed."  # REFER is true whatever the score: said why
    assert notes[0] == f"Picture too blurred to assess: retake it in focus (sharpness 40% of the lowest accepted).{referred}"
    assert notes[1] == f"Picture too dark to assess: retake it with more light (brightness 62% of the lowest accepted).{referred}"
    assert notes[2] == ("Picture too bright (overexposed) to assess: retake it with less light (its brightest parts are "
                        f"burnt out: headroom below white 45% of the lowest accepted).{referred}")
    assert notes[3].startswith("Picture unlike the dermoscopy images the system was validated on (another dermatoscope")
    assert notes[3].endswith(f"judge the lesion clinically (out-of-distribution score 1.80, limit 1.00).{referred}")
    assert notes[4] == ("Picture has no colour (greyscale): only colour dermoscopy is assessed; send the colour original "
                        f"(colour 10% of the lowest accepted).{referred}")
    assert not out.assessable.any() and out.refer.all()  # not assessable -> referred by default


@pytest.mark.parametrize(("exposure", "said"), [((0.3, 1.5), "Picture too dark"), ((1.5, 0.3), "Picture too bright")],
                         ids=["dark", "overexposed"])
def test_a_badly_exposed_picture_is_told_its_exposure_not_that_it_has_no_colour(
        exposure: tuple[float, float], said: str) -> None:
    """Darkness takes the colour spread with it, and burnt-out parts are white: the retake advice is the light, not a
    colour original (a clinician's audit of the demo page: an overexposed colour photograph was called greyscale)."""
    out = triage_batch(_probs(NV=1.0), [[0.3]], [(2.0, *exposure, 0.5, 2.9)], [[0.1]], TriageParams(refer_threshold=0.5))
    note = out.note[0, 0].decode()
    assert note.startswith(said) and "greyscale" not in note and not out.assessable[0, 0]


@pytest.mark.parametrize(("exposure", "said"), [((0.3, 1.5), "Picture too dark"), ((1.5, 0.3), "Picture too bright")],
                         ids=["dark", "overexposed"])
def test_a_badly_exposed_picture_unlike_dermoscopy_is_told_its_exposure_first(exposure: tuple[float, float],
                                                                              said: str) -> None:
    """A dermoscopy picture taken too dark measures as unlike dermoscopy too: it was told first to retake it 'with a
    dermatoscope', which the clinician had used (a demo page audit); the exposure is what to correct."""
    out = triage_batch(_probs(NV=1.0), [[2.21]], [(2.0, *exposure, 12.0, 2.9)], [[0.1]], TriageParams(refer_threshold=0.5))
    note = out.note[0, 0].decode()
    assert note.startswith(said) and "with a dermatoscope" not in note and not out.assessable[0, 0]
    assert ("Its answer cannot be trusted either (out-of-distribution score 2.21, limit 1.00): correct the exposure "
            "first, and if the retaken picture is again not assessable, judge the lesion clinically.") in note


@pytest.mark.parametrize("exposure", [(0.3, 1.5), (1.5, 0.3)], ids=["dark", "overexposed"])
def test_a_badly_exposed_picture_is_told_its_exposure_not_that_it_is_blurred(exposure: tuple[float, float]) -> None:
    """The Laplacian's variance falls with the light: a sharp picture darkened measured as blurred, and a clinician
    was told to retake it in focus. Only a well-exposed picture is told it is blurred; the bad one stays not
    assessable and referred, by its exposure."""
    quality = [(0.2, *exposure, 12.0, 2.9), (0.2, 1.0, 1.0, 12.0, 2.9)]  # the second: exposure just acceptable
    out = triage_batch(np.repeat(_probs(NV=1.0), 2, axis=0), [[0.3], [0.3]], quality, [[0.1], [0.1]],
                       TriageParams(refer_threshold=0.5))
    badly_exposed, exposed = (n.decode() for n in out.note[:, 0])
    assert "blurred" not in badly_exposed and badly_exposed.startswith(("Picture too dark", "Picture too bright"))
    assert exposed.startswith("Picture too blurred to assess: retake it in focus (sharpness 20%")
    assert not out.assessable.any() and out.refer.all()


@pytest.mark.parametrize("measure,row", [(0, (1.0, 1.5, 1.5, 12.0, 2.9)), (1, (2.0, 1.0, 1.5, 12.0, 2.9)),
                                         (2, (2.0, 1.5, 1.0, 12.0, 2.9)), (3, (2.0, 1.5, 1.5, 1.0, 2.9)),
                                         (4, (2.0, 1.5, 1.5, 12.0, 1.0))])
def test_a_measure_at_exactly_one_is_acceptable(measure: int, row: tuple) -> None:
    """The contract: QUALITY >= 1.0 is acceptable; OOD_SCORE at its limit is out of distribution."""
    out = triage_batch(_probs(NV=1.0), [[0.3]], [row], [[0.1]], TriageParams(refer_threshold=0.5))
    assert out.assessable[0, 0] and out.note[0, 0] == b"", measure
    below = list(row)
    below[measure] = float(np.nextafter(np.float32(1.0), np.float32(0.0)))
    assert not triage_batch(_probs(NV=1.0), [[0.3]], [below], [[0.1]], TriageParams(refer_threshold=0.5)).assessable[0, 0]
    at_limit = triage_batch(_probs(NV=1.0), [[1.0]], [GOOD], [[0.1]], TriageParams(refer_threshold=0.5, ood_limit=1.0))
    assert not at_limit.assessable[0, 0]


def test_the_served_ood_score_is_over_the_limit_in_force_so_one_is_the_limit_whatever_it_is() -> None:
    """A site's ood_limit of 2 (or an imported classifier's unchecked limit): the score a client reads is the
    classifier's over the limit, and >= 1 is exactly when the picture is called unlike the validated dermoscopy."""
    scores = [[1.5], [3.0]]
    out = triage_batch(np.concatenate([_probs(NV=1.0)] * 2), scores, [GOOD, GOOD], [[0.1], [0.1]],
                       TriageParams(refer_threshold=0.5, ood_limit=2.0))
    assert out.ood_score.dtype == np.float32 and out.ood_score[:, 0].tolist() == [0.75, 1.5]
    assert out.assessable[:, 0].tolist() == [True, False]
    assert b"(out-of-distribution score 1.50, limit 1.00)" in out.note[1, 0]
    unchecked = triage_batch(_probs(NV=1.0), [[7.3]], [GOOD], [[0.1]], TriageParams(ood_limit=OOD_UNCHECKED))
    assert unchecked.assessable[0, 0] and 0.0 < unchecked.ood_score[0, 0] < 1e-6
    default = triage_batch(_probs(NV=1.0), [[0.4]], [GOOD], [[0.1]])
    assert default.ood_score[0, 0] == np.float32(0.4)  # the release's limit 1.0: the classifier's score as it is


def test_not_assessable_need_not_refer_when_told() -> None:
    out = triage_batch(_probs(NV=1.0), [[0.1]], [(0.4, 1.5, 1.5, 12.0, 2.9)], [[0.1]],
                       TriageParams(refer_threshold=0.5, refer_when_not_assessable=False))
    assert not out.assessable[0, 0] and not out.refer[0, 0]


def test_no_lesion_found_is_said_and_the_answer_is_not_assessed() -> None:
    """The classifier then saw the whole picture (plain skin, or a lesion the segmenter missed): no diagnosis."""
    out = triage_batch(_probs(NV=1.0), [[0.1]], [GOOD], [[0.0]], TriageParams(refer_threshold=0.5))
    assert not out.assessable[0, 0] and out.refer[0, 0]
    assert out.note[0, 0].decode().startswith("No lesion found, so the whole picture was classified")


def test_bad_shapes_and_values_are_refused() -> None:
    with pytest.raises(InvalidTensorError, match=r"^QUALITY must be \(1, 5\)"):
        triage_batch(_probs(NV=1.0), [[0.1]], [(1.0, 1.0, 1.0, 1.0)], [[0.1]])  # the four measures before the seam
    with pytest.raises(InvalidTensorError, match="^CLS_OOD_SCORE holds a NaN"):
        triage_batch(_probs(NV=1.0), [[np.nan]], [GOOD], [[0.1]])
    nan_probs = _probs(NV=1.0)
    nan_probs[0, 3] = np.nan
    with pytest.raises(InvalidTensorError, match="^CLS_PROBABILITIES holds a NaN"):
        triage_batch(nan_probs, [[0.1]], [GOOD], [[0.1]])
    with pytest.raises(InvalidTensorError, match="^QUALITY holds a NaN"):
        triage_batch(_probs(NV=1.0), [[0.1]], [(np.nan, 1.5, 1.5, 12.0, 2.9)], [[0.1]])
    with pytest.raises(InvalidTensorError, match="^CROP_LESION_FRACTION holds a NaN"):
        triage_batch(_probs(NV=1.0), [[0.1]], [GOOD], [[np.inf]])
    with pytest.raises(StepSettingsError, match="refer_threshold must lie in"):
        TriageParams(refer_threshold=1.5)


def test_a_second_lesion_in_the_picture_is_said_and_the_answer_is_not_assessable() -> None:
    """Only the largest lesion is classified: a melanoma beside a larger nevus must not come back ROUTINE."""
    probs = np.repeat(_probs(NV=1.0), 5, axis=0)
    fraction = [[0.18], [0.05], [0.05], [0.40], [0.18]]  # other: 2% of the picture at least, and a quarter of it
    other = np.array([[0.13], [0.02], [0.0199], [0.09], [0.0]], np.float32)  # 0.09 < 0.25 x 0.40
    out = triage_batch(probs, [[0.2]] * 5, [GOOD] * 5, fraction, TriageParams(refer_threshold=0.5), other=other)
    assert out.assessable[:, 0].tolist() == [False, False, True, True, True]
    assert out.refer[:, 0].tolist() == [True, True, False, False, False]
    assert out.note[0, 0].decode() == ("Another lesion-like area (13% of the picture) was not assessed: only the "
                                       "largest was; photograph each lesion on its own. Referred because the picture "
                                       "could not be assessed.")
    assert out.note[2, 0] == b"" and out.note[3, 0] == b""
    with pytest.raises(InvalidTensorError, match=r"^OTHER_LESION_FRACTION must be \(1,\) for 1 rows, got \(2,\)"):
        triage_with_other(_probs(NV=1.0), np.array([[0.1]]), np.array([GOOD]), np.array([[0.1]]),
                          np.zeros((2, 1), np.float32))


def test_another_area_of_exactly_a_quarter_of_the_lesion_is_a_second_lesion() -> None:
    # lesion 40% of the picture: a quarter of it is 10%; an other area of 10% is said, 9.9% is not (both over 2%)
    probs = np.repeat(_probs(NV=1.0), 2, axis=0)
    other = np.array([[0.10], [0.099]], np.float32)
    out = triage_batch(probs, [[0.2]] * 2, [GOOD] * 2, [[0.40]] * 2, TriageParams(refer_threshold=0.5), other=other)
    assert out.assessable[:, 0].tolist() == [False, True]
    assert out.note[0, 0].decode().startswith("Another lesion-like area (10% of the picture)")


def test_the_second_lesion_limits_are_the_versions_triage_values() -> None:
    """They compare shares of the segmenter's mask, so a release records them beside its threshold: another version's
    limits change the verdict on the same rows, and a limit that is not a share is refused."""
    probs = np.repeat(_probs(NV=1.0), 2, axis=0)
    other = np.array([[0.03], [0.015]], np.float32)  # lesion 10%: a quarter of it is 2.5%
    default = triage_batch(probs, [[0.2]] * 2, [GOOD] * 2, [[0.10]] * 2, TriageParams(refer_threshold=0.5), other=other)
    assert default.assessable[:, 0].tolist() == [False, True]
    looser = TriageParams(refer_threshold=0.5, other_lesion_min_fraction=0.01, other_lesion_min_share=0.1)
    stricter = TriageParams(refer_threshold=0.5, other_lesion_min_fraction=0.05)
    assert triage_batch(probs, [[0.2]] * 2, [GOOD] * 2, [[0.10]] * 2, looser, other=other).assessable[:, 0].tolist() == [
        False, False]
    assert triage_batch(probs, [[0.2]] * 2, [GOOD] * 2, [[0.10]] * 2, stricter, other=other).assessable[:, 0].all()
    for name in ("other_lesion_min_fraction", "other_lesion_min_share"):
        for bad in (0.0, 1.5):
            with pytest.raises(StepSettingsError, match=f"{name} must lie in \\(0, 1\\] \\(a share\\), got {bad}"):
                TriageParams(**{name: bad})


def test_no_colour_is_said_when_the_brightness_is_exactly_acceptable() -> None:
    # under-exposure 1.0 is acceptable: the missing colour is the problem then, not darkness
    out = triage_batch(_probs(NV=1.0), [[0.3]], [(2.0, 1.0, 1.5, 0.5, 2.9)], [[0.1]], TriageParams(refer_threshold=0.5))
    assert out.note[0, 0].decode().startswith("Picture has no colour (greyscale)") and not out.assessable[0, 0]


def test_an_ood_limit_of_zero_is_refused() -> None:
    with pytest.raises(StepSettingsError, match="ood_limit must be positive, got 0.0"):
        TriageParams(ood_limit=0.0)  # every image would be out of distribution


def test_several_pictures_put_together_are_said_and_not_assessable() -> None:
    """A mosaic or side-by-side (QUALITY's seam below 1): the lesion found may run across pictures, and its confident
    diagnosis is of none of them. The audit's 2x2 mosaic came back assessable, no note, BCC p=0.51."""
    probs = np.repeat(_probs(BCC=0.51, NV=0.49), 2, axis=0)
    quality = [(2.0, 1.5, 1.5, 12.0, 0.14), (2.0, 1.5, 1.5, 12.0, 1.0)]
    out = triage_batch(probs, [[0.2]] * 2, quality, [[0.4]] * 2, TriageParams(refer_threshold=0.9))
    assert out.assessable[:, 0].tolist() == [False, True]
    assert out.refer[:, 0].tolist() == [True, False]  # referred as not assessable, not by its score
    assert out.note[0, 0].decode() == ("The picture looks like several pictures put together (a straight seam runs "
                                       "across it): photograph each lesion on its own (seam score 14% of the lowest "
                                       "accepted). Referred because the picture could not be assessed.")
    assert out.note[1, 0] == b""


def test_a_value_that_is_not_finite_is_named_with_its_rows_and_value() -> None:
    probs = np.repeat(_probs(NV=1.0), 3, axis=0)
    probs[1, 3], probs[2, 0] = np.nan, np.inf
    with pytest.raises(InvalidTensorError, match=r"^CLS_PROBABILITIES holds a NaN or infinite value in row\(s\) 1, 2 "
                                                 r"\(row 1: nan\); every value must be finite: check the step "
                                                 r"that computes CLS_PROBABILITIES"):
        triage_batch(probs, [[0.1]] * 3, [GOOD] * 3, [[0.1]] * 3)
    with pytest.raises(InvalidTensorError, match=r"^CLS_OOD_SCORE holds a NaN or infinite value in row\(s\) 0 \(row 0: inf\)"):
        triage_batch(_probs(NV=1.0), [[np.inf]], [GOOD], [[0.1]])


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_a_refer_threshold_at_either_end_of_its_range_is_refused(threshold: float) -> None:
    """0 would refer every image, 1 none: the threshold lies in (0, 1)."""
    with pytest.raises(StepSettingsError, match=f"refer_threshold must lie in \\(0, 1\\), got {threshold}"):
        TriageParams(refer_threshold=threshold)
    inside = float(np.nextafter(threshold, 0.5))
    assert TriageParams(refer_threshold=inside).refer_threshold == inside


def test_the_note_of_a_row_with_two_problems_is_their_sentences_joined_by_one_space() -> None:
    blurred = (0.4, 1.5, 1.5, 12.0, 2.9)
    probs = np.repeat(_probs(NV=1.0), 3, axis=0)
    other = np.array([[0.0], [0.13], [0.13]], np.float32)  # a second lesion-like area in rows 1 and 2
    out = triage_batch(probs, [[0.2]] * 3, [blurred, GOOD, blurred], [[0.18]] * 3, TriageParams(refer_threshold=0.5),
                       other=other)
    blur, second, both = (n.decode().removesuffix(" Referred because the picture could not be assessed.")
                          for n in out.note[:, 0])
    assert blur and second and both == f"{blur} {second}"


def test_the_note_says_a_referral_is_for_not_being_assessable_only_when_that_refers() -> None:
    """REFER is true for a picture not assessable whatever its score; the note read alone said "retake" and not why
    REFER was true. With refer_when_not_assessable off nothing is referred for it, and the note does not say so."""
    blurred = (0.4, 1.5, 1.5, 12.0, 2.9)
    for refer_when, said in ((True, True), (False, False)):
        out = triage_batch(_probs(NV=1.0), [[0.2]], [blurred], [[0.2]],
                           TriageParams(refer_threshold=0.5, refer_when_not_assessable=refer_when))
        note = out.note[0, 0].decode()
        assert note.endswith("Referred because the picture could not be assessed.") is said and bool(out.refer[0, 0]) is said
    assert triage_batch(_probs(NV=1.0), [[0.2]], [GOOD], [[0.2]], TriageParams(refer_threshold=0.5)).note[0, 0] == b""


def test_no_lesion_and_a_picture_unlike_dermoscopy_are_said_before_the_quality_measures() -> None:
    """A plain-skin picture measures as blurred and a photograph of a face as a mosaic: what the picture IS comes first,
    as its other measures are then no guide."""
    mosaic_blurred = (0.4, 1.5, 1.5, 12.0, 0.2)
    out = triage_batch(np.repeat(_probs(NV=1.0), 2, axis=0), [[0.2], [2.5]], [mosaic_blurred] * 2, [[0.0], [0.3]],
                       TriageParams(refer_threshold=0.5))
    no_lesion, unlike = (n.decode() for n in out.note[:, 0])
    assert no_lesion.startswith("No lesion found") and "too blurred" in no_lesion
    assert unlike.startswith("Picture unlike the dermoscopy images") and "several pictures" in unlike
