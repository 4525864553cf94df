"""The triage rules: referral score and decision, assessability and the note, on cases worked by hand."""
from __future__ import annotations

import numpy as np
import pytest

from preprocess.errors import InvalidTensorError
from preprocess.triage import TriageParams, refer_scores, triage_batch

GOOD = (2.0, 1.5, 1.5, 12.0)  # sharpness, under-, over-exposure, colour: all acceptable


def _probs(**by_code: float) -> np.ndarray:
    order = ("AK", "BCC", "DF", "MEL", "NV", "BKL", "SCC", "VASC")
    return np.array([[by_code.get(c, 0.0) for c in order]], np.float32)


def test_refer_score_sums_mel_bcc_scc_ak() -> None:
    probs = _probs(AK=0.05, BCC=0.10, MEL=0.20, SCC=0.01, NV=0.64)
    assert refer_scores(probs)[0] == pytest.approx(0.36)


def test_refer_at_or_above_the_threshold_and_routine_below() -> None:
    probs = np.concatenate([_probs(MEL=0.30, NV=0.70), _probs(MEL=0.29, NV=0.71)])
    out = triage_batch(probs, [[0.2], [0.2]], [GOOD, GOOD], [[0.1], [0.1]], TriageParams(refer_threshold=0.30))
    assert out.refer[:, 0].tolist() == [True, False]
    assert out.assessable[:, 0].tolist() == [True, True]
    assert out.note[:, 0].tolist() == [b"", b""]
    assert out.refer_score.dtype == np.float32 and out.refer_score.shape == (2, 1)


def test_each_problem_is_named_with_its_measure_and_refers() -> None:
    probs = np.repeat(_probs(NV=1.0), 5, axis=0)
    quality = [(0.4, 1.5, 1.5, 12.0), (2.0, 0.62, 1.5, 12.0), (2.0, 1.5, 0.45, 12.0), GOOD, (2.0, 1.5, 1.5, 0.1)]
    ood = [[0.3], [0.3], [0.3], [1.8], [0.3]]
    out = triage_batch(probs, ood, quality, [[0.1]] * 5, TriageParams(refer_threshold=0.5))
    notes = [n.decode() for n in out.note[:, 0]]
    assert notes[0] == "Image too blurred: sharpness 0.40 of the minimum."
    assert notes[1] == "Image too dark: brightness 0.62 of the minimum."
    assert notes[2].startswith("Image too bright") and "0.45" in notes[2]
    assert "out-of-distribution score 1.80 (limit 1.00)" in notes[3]
    assert notes[4] == ("Image has no colour (greyscale): the models judge colour photographs; colour 0.10 of the "
                        "minimum.")
    assert not out.assessable.any() and out.refer.all()  # not assessable -> referred by default


def test_not_assessable_need_not_refer_when_told() -> None:
    out = triage_batch(_probs(NV=1.0), [[0.1]], [(0.4, 1.5, 1.5, 12.0)], [[0.1]],
                       TriageParams(refer_threshold=0.5, refer_when_not_assessable=False))
    assert not out.assessable[0, 0] and not out.refer[0, 0]


def test_no_lesion_found_is_said_but_is_not_a_quality_problem() -> None:
    out = triage_batch(_probs(NV=1.0), [[0.1]], [GOOD], [[0.0]], TriageParams(refer_threshold=0.5))
    assert out.assessable[0, 0] and not out.refer[0, 0]
    assert out.note[0, 0] == b"No lesion found: the whole image was classified."


def test_bad_shapes_and_values_are_refused() -> None:
    with pytest.raises(InvalidTensorError, match=r"QUALITY must be \(1, 4\)"):
        triage_batch(_probs(NV=1.0), [[0.1]], [(1.0, 1.0, 1.0)], [[0.1]])
    with pytest.raises(InvalidTensorError, match="OOD_SCORE holds a NaN"):
        triage_batch(_probs(NV=1.0), [[np.nan]], [GOOD], [[0.1]])
    with pytest.raises(InvalidTensorError, match="refer_threshold must lie in"):
        TriageParams(refer_threshold=1.5)
