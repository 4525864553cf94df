"""Site-validation figures on answers worked out by hand (no server)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from dermassist.evaluation import (
    EvaluationConfig,
    EvaluationError,
    ood_figures,
    render_markdown,
    segmentation_figures,
    triage_figures,
)

MEL, NV, BCC = 3, 4, 1


def test_triage_figures_by_hand() -> None:
    labels = np.array([MEL, MEL, BCC, NV, NV, NV])
    refer = np.array([True, False, True, True, False, False])
    assessable = np.array([True, True, True, False, True, True])
    t = triage_figures(labels, refer, assessable)
    assert t["melanoma_sensitivity"] == 0.5 and t["malignant_sensitivity"] == pytest.approx(2 / 3)
    assert t["specificity"] == pytest.approx(2 / 3) and t["not_assessable"] == pytest.approx(1 / 6)
    assert (t["melanomas"], t["malignant"], t["benign"]) == (2, 3, 3)


def test_ood_figures_by_hand(tmp_path: Path) -> None:
    inside, outside = np.array([0.2, 0.5, 1.2]), np.array([0.4, 3.0])
    o = ood_figures(inside, outside, [tmp_path / "photo_000.png", tmp_path / "noise_001.png"], np.array([True, False]))
    # pairs (out > in): 0.4 beats 0.2 only; 3.0 beats all three -> 4 of 6
    assert o["auroc"] == pytest.approx(4 / 6) and o["share_at_or_above_1"] == 0.5
    assert o["in_distribution_share_at_or_above_1"] == pytest.approx(1 / 3)
    assert o["not_assessable_by_kind"] == {"noise": 1.0, "photo": 0.0}


def test_segmentation_figures_compare_the_served_mask_with_the_resized_truth(tmp_path: Path) -> None:
    truth = np.zeros((450, 600), np.uint8)
    truth[:, :300] = 255  # left half of the original
    cv2.imwrite(str(tmp_path / "m.png"), truth)
    served = np.zeros((256, 256), np.uint8)
    served[:, :64] = 255  # left quarter on the mask grid: Jaccard 1/2, Dice 2/3
    figures = segmentation_figures([SimpleNamespace(mask_path=tmp_path / "m.png"), SimpleNamespace(mask_path=None)],
                                   [SimpleNamespace(mask=served), SimpleNamespace(mask=served)])
    assert figures["images"] == 1
    assert figures["jaccard"] == pytest.approx(0.5) and figures["dice"] == pytest.approx(2 / 3)
    assert figures["thresholded_jaccard"] == 0.0


def test_config_refuses_missing_folders_and_names_the_split(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="is not a folder"):
        EvaluationConfig(data=tmp_path / "nope")
    (tmp_path / "split.json").write_text("{}")
    assert EvaluationConfig(data=tmp_path, split_manifest=tmp_path / "split.json").name == f"{tmp_path.name}_test"


def test_markdown_report_carries_figures_and_attribution() -> None:
    report = {"name": "x", "data": "d", "dataset": "ph2", "split": None, "images": 2, "answered": 2, "refused": [],
              "model": {"name": "dermassist", "version": "1"}, "attribution": "PH2 (Mendonca et al.)",
              "segmentation": {"images": 2, "dice": 0.9, "jaccard": 0.8, "thresholded_jaccard": 0.7},
              "triage": {"melanoma_sensitivity": 1.0, "malignant_sensitivity": 1.0, "specificity": 0.5,
                         "not_assessable": 0.0, "melanomas": 1, "malignant": 1, "benign": 1}}
    text = render_markdown(report, [("Confusion matrix", "confusion.png")], {})
    assert "| 2 | 0.900 | 0.800 | 0.700 |" in text and "![Confusion matrix](confusion.png)" in text
    assert "| 1.000 (1 melanomas) |" in text and text.rstrip().endswith("For research and testing only.")


def test_degradations_blur_darken_and_overexpose() -> None:
    from dermassist.evaluation import degrade

    rng = np.random.default_rng(0)
    image = rng.integers(40, 200, (300, 400, 3), dtype=np.uint8)
    assert cv2.Laplacian(degrade(image, "blurred"), cv2.CV_32F).var() < 0.01 * cv2.Laplacian(image, cv2.CV_32F).var()
    assert degrade(image, "dark").mean() == pytest.approx(image.mean() * 0.25, abs=1.0)
    assert degrade(image, "overexposed").mean() > 230
    with pytest.raises(EvaluationError, match="unknown degradation 'sepia'"):
        degrade(image, "sepia")
