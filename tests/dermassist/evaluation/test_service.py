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
