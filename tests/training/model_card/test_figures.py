"""The card's Figures section: the diagnosis table's intervals and what they mean, and the checks' paragraphs."""
from __future__ import annotations

import copy

from training.model_card.render import render_model_card
from training.release import RELEASE_DIR, read_release

from .releases import table_rows


def test_the_diagnosis_table_gives_macro_f1_and_auc_intervals_and_says_what_macro_averages_over() -> None:
    release = copy.deepcopy(read_release(RELEASE_DIR))
    test = release["evaluation"]["reports"]["isic2018_task3_test"]["classification"]
    test["macro_f1_ci95"], test["melanoma_auc_ci95"] = [0.41, 0.63], [0.77, 0.95]
    card = render_model_card(release)
    row = next(r for r in table_rows(card, "diagnosis") if r.startswith("| isic2018_task3_test |"))
    assert "| 0.527 (0.41-0.63) | 0.868 (0.77-0.95) |" in row
    assert "over the classes present in the truth or the predictions (scikit-learn's default)" in " ".join(card.split())


def test_the_quality_gate_line_says_how_strong_each_degradation_was() -> None:
    release = copy.deepcopy(read_release(RELEASE_DIR))
    release["evaluation"]["quality_check"]["dark"]["how"] = "brightness x0.25"
    assert "dark (brightness x0.25): " in render_model_card(release)


def test_an_auc_interval_of_no_width_is_said_not_to_be_certainty() -> None:
    """The ISIC 2019 sample's AUC 1.000 rests on 2 melanomas: every stratified resample gives 1.00-1.00."""
    release = copy.deepcopy(read_release(RELEASE_DIR))
    release["evaluation"]["reports"]["isic2019_sample"]["classification"]["melanoma_auc_ci95"] = [1.0, 1.0]
    card = " ".join(render_model_card(release).split())
    assert "| 1.000 (1.00-1.00) |" in card
    assert "not that the figure is certain: isic2019_sample's 1.00 rests on 2 melanomas." in card
    release["evaluation"]["reports"]["isic2019_sample"]["classification"]["melanoma_auc_ci95"] = [0.8, 1.0]
    assert "An AUC interval of no width" not in " ".join(render_model_card(release).split())


def test_the_card_says_its_diagnosis_rows_count_the_images_not_assessable_too() -> None:
    """The rows score every answered image; the card gives the first set's figures on the assessable ones alone
    (figures audit, finding 6), and says nothing of it where every image was assessable."""
    release = copy.deepcopy(read_release(RELEASE_DIR))
    test = release["evaluation"]["reports"]["isic2018_task3_test"]["classification"]
    test["assessable_only"] = {"images": test["images"] - 4, "accuracy": 0.75, "balanced_accuracy": 0.5678}
    card = " ".join(render_model_card(release).split())
    assert ("The diagnosis rows count every answered image, those not assessable too; on the assessable ones alone "
            f"isic2018_task3_test has accuracy 75.0% and balanced accuracy 0.568 ({test['images'] - 4} images") in card
    for report in release["evaluation"]["reports"].values():
        c = report.get("classification") or {}
        if c.get("assessable_only"):
            c["assessable_only"]["images"] = c["images"]
    assert "those not assessable too" not in " ".join(render_model_card(release).split())
