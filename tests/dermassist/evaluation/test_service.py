"""The calls to the service and the degraded copies of the quality check."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dermassist.evaluation import EvaluationError


def test_an_unreachable_service_is_an_evaluation_error(tmp_path: Path) -> None:
    from dermassist.evaluation.service import analyse

    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(EvaluationError, match="the DermAssist at 127.0.0.1:1 did not answer the evaluation: .*unavailable"):
        analyse("127.0.0.1:1", [image], 2.0, options={"retries": 0})


def test_degradations_blur_darken_and_overexpose() -> None:
    from dermassist.evaluation.service import degrade

    rng = np.random.default_rng(0)
    image = rng.integers(40, 200, (300, 400, 3), dtype=np.uint8)
    assert cv2.Laplacian(degrade(image, "blurred"), cv2.CV_32F).var() < 0.01 * cv2.Laplacian(image, cv2.CV_32F).var()
    assert degrade(image, "dark").mean() == pytest.approx(image.mean() * 0.25, abs=1.0)
    assert degrade(image, "overexposed").mean() > 230
    with pytest.raises(EvaluationError, match="unknown degradation 'sepia'"):
        degrade(image, "sepia")


def test_the_quality_check_sends_each_degraded_copy_and_counts_by_hand(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The model card's "quality gate on degraded copies" figures: per kind, the share of the copies answered NOT
    ASSESSABLE and the share whose note names the fault, here 2 of 3 and 1 of 3 for each kind."""
    from types import SimpleNamespace

    from dermassist.evaluation import service
    from dermassist.evaluation.config import Answers

    originals = []
    for i in range(3):
        path = tmp_path / f"lesion_{i}.png"
        cv2.imwrite(str(path), np.full((40, 60, 3), 60 + 40 * i, np.uint8))
        originals.append(path)
    sent: list[list[Path]] = []

    def answered(url, paths, timeout_s, with_crop=False, options=None, answers=None):
        sent.append(list(paths))
        kind = Path(paths[0]).name.split("_")[0]
        word = service.NOTE_WORDS[kind]
        answers = Answers()
        for path, (assessable, note) in zip(paths, [(False, f"too {word}"), (False, "other"), (True, "")]):
            answers.paths.append(path)
            answers.results.append(SimpleNamespace(assessable=assessable, note=note))
        return answers

    monkeypatch.setattr(service, "analyse", answered)
    figures = service.quality_check("stand-in:1", originals, tmp_path / "copies", 5.0)
    assert set(figures) == set(service.DEGRADATIONS)
    for kind, values in figures.items():
        assert values["images"] == 3 and values["how"] == service.DEGRADATION_HOW[kind]
        assert values["not_assessable"] == pytest.approx(2 / 3) and values["note_names_it"] == pytest.approx(1 / 3)
    dark = cv2.imread(str(tmp_path / "copies" / "dark_lesion_2.jpg"))
    assert abs(float(dark.mean()) - 140 * service.DARK_GAIN) <= 2  # the copy sent is the degraded original
    assert [len(batch) for batch in sent] == [3, 3, 3]
