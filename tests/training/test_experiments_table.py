"""The seed's experiment table: flag overrides and the markdown beside the seed's figures."""
from __future__ import annotations

from training.experiments import SEED_FIGURES, _override, render_markdown


def test_override_replaces_flag_values_and_keeps_the_rest() -> None:
    args = ("--depth", "18", "--epochs", "100", "--mixed-precision")
    assert _override(args, epochs="30") == ["--depth", "18", "--mixed-precision", "--epochs", "30"]
    assert _override(args, low_res_epochs="5")[-2:] == ["--low-res-epochs", "5"]


def test_table_shows_our_rows_beside_the_seeds() -> None:
    cls = {"accuracy": 0.7, "macro_precision": 0.5, "macro_recall": 0.6, "macro_f1": 0.55, "balanced_accuracy": 0.6}
    rows = {"baseline": {"segmentation_val": {"jaccard": 0.74}, "classification": cls},
            "brightness": {"segmentation_val": {"jaccard": 0.75}, "classification": {**cls, "accuracy": 0.72}},
            "full_image": {"classification": {**cls, "macro_f1": 0.4}}}
    text = render_markdown({"schedule": {"seg_epochs": 30, "cls_epochs": 40, "cls_low_res_epochs": 34}, "rows": rows})
    assert "| Baseline (this project) | 0.740 | 70.00% | 0.500 | 0.600 | 0.550 | 0.600 |" in text
    assert "| Brightness-augmented (this project) | 0.750 | 72.00% |" in text
    seed_accuracy = 100 * SEED_FIGURES["Baseline"]["accuracy"]
    assert f"| Baseline (seed project) | n/a | {seed_accuracy:.2f}% | 0.700 | 0.590 | 0.610 | n/a |" in text
    assert "| Full image | n/a | 70.00% | 0.500 | 0.600 | 0.400 | 0.600 |" in text
    assert "10,000 HAM10000 images" in text
