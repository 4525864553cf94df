"""The report's files: its folder, images.csv and report.md, from answers made by hand."""
from __future__ import annotations

from pathlib import Path

import pytest

from dermassist.evaluation import EvaluationError
from dermassist.evaluation.markdown import render_markdown
from dermassist.evaluation.report_files import image_rows, write_image_table
from preprocess.contract import CLASS_CODES
from tests.dermassist.evaluation.stand_ins import (
    hand_answer,
    hand_sample,
)


def test_a_report_folder_that_cannot_be_written_is_refused_before_any_image_is_sent(tmp_path: Path) -> None:
    from dermassist.evaluation.report_files import report_folder

    assert report_folder(tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(EvaluationError, match="report folder .*file/x cannot be written .*pass --out a writable"):
        report_folder(tmp_path / "file" / "x")


def test_markdown_report_carries_figures_and_attribution() -> None:
    report = {"name": "x", "data": "d", "dataset": "ph2", "split": None, "images": 2, "answered": 2, "refused": [],
              "model": {"name": "dermassist", "version": "1"}, "attribution": "PH2 (Mendonca et al.)",
              "segmentation": {"images": 2, "dice": 0.9, "jaccard": 0.8, "thresholded_jaccard": 0.7},
              "triage": {"melanoma_sensitivity": 1.0, "malignant_sensitivity": 1.0, "specificity": 0.5,
                         "not_assessable": 0.0, "melanomas": 1, "malignant": 1, "benign": 1,
                         "melanoma_sensitivity_ci95": (0.2065, 1.0)},
              "classification": {"images": 2, "accuracy": 0.5, "balanced_accuracy": 0.5, "macro_precision": 0.25,
                                 "macro_recall": 0.5, "macro_f1": 0.33, "melanoma_auc": None, "ece": 0.4,
                                 "balanced_accuracy_ci95": (0.5, 0.5), "ece_if_calibrated": {"median": 0.3, "p95": 0.45},
                                 "per_class_recall": {}, "per_class_f1": {}, "support": {}}}
    text = render_markdown(report, [("Confusion matrix", "confusion.png")], {})
    assert "| 2 | 0.900 | 0.800 | 0.700 |" in text and "![Confusion matrix](confusion.png)" in text
    assert "| 1.000 (0.21-1.00), 1 melanoma | 1.000, 1 |" in text and text.rstrip().endswith("For research and testing only.")
    assert "| 2 | 0.500 | 0.500 (0.50-0.50) | 0.250 |" in text
    assert "median 0.300 (95th percentile 0.450), so an ECE under 0.450 is within" in text
    assert "over the classes present in the truth or the predictions" in text  # what macro F1 averages over
    report["classification"] = {**report["classification"], "macro_f1_ci95": (0.1, 0.6), "melanoma_auc": 0.75,
                                "melanoma_auc_ci95": (0.5, 1.0)}
    text = render_markdown(report, [], {})
    assert "| 0.500 | 0.330 (0.10-0.60) | 0.750 (0.50-1.00) | 0.400 |" in text and "stratified bootstrap" in text


def test_image_table_has_every_image_answered_or_refused(tmp_path: Path) -> None:
    import csv

    from dermassist.evaluation import Answers

    samples = [hand_sample("a", "MEL"), hand_sample("b", None), hand_sample("c", "BKL")]
    answers = Answers(paths=[s.image_path for s in samples[:2]],
                      results=[hand_answer("NV", False, 0.04, note="Routine."), hand_answer("BKL", True, 0.3)],
                      refused=[("/data/c.jpg", "cannot be decoded")])
    outside = Answers(paths=[Path("/ood/noise_000.png")], results=[hand_answer("DF", True, 3.1, assessable=False)],
                      refused=[("/ood/empty.png", "not an image")])
    rows = image_rows(samples, answers, outside, data=Path("/data"), ood=Path("/elsewhere"))
    with open(write_image_table(rows, tmp_path / "images.csv"), newline="") as f:
        table = list(csv.DictReader(f))
    assert [(r["set"], r["image"], r["status"]) for r in table] == [
        ("evaluated", "a", "answered"), ("evaluated", "b", "answered"), ("out_of_distribution", "noise_000", "answered"),
        ("evaluated", "c", "refused: cannot be decoded"), ("out_of_distribution", "empty", "refused: not an image")]
    first = table[0]
    assert (first["truth"], first["predicted"], first["refer"], first["assessable"]) == ("MEL", "NV", "False", "True")
    assert float(first["refer_score"]) == 0.04 and float(first["p_NV"]) == 0.7 and float(first["p_MEL"]) == 0.0
    assert first["bbox"] == "1 2 30 40" and first["note"] == "Routine." and first["path"] == "a.jpg"
    assert table[2]["path"] == "/ood/noise_000.png"  # not below the folder given: as it came
    assert table[1]["truth"] == "" and table[3]["predicted"] == "" and table[3]["p_MEL"] == ""
    assert table[3]["truth"] == "BKL"  # a refused image keeps its label: the reviewer sees what was lost
    assert list(table[0])[-1] == "note" and sum(k.startswith("p_") for k in table[0]) == len(CLASS_CODES)


def test_image_table_cells_cannot_run_as_spreadsheet_formulas(tmp_path: Path) -> None:
    import csv

    from dermassist.evaluation import Answers

    sample = hand_sample("=HYPERLINK(\"http://x\")", "NV")
    answers = Answers(paths=[sample.image_path], results=[hand_answer("NV", False, 0.04, note="@note")])
    path = write_image_table(image_rows([sample], answers, Answers()), tmp_path / "images.csv")
    with open(path, newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["image"] == "'=HYPERLINK(\"http://x\")" and row["note"] == "'@note"
    assert row["truth"] == "NV" and float(row["refer_score"]) == 0.04  # plain text and numbers untouched


def test_markdown_lists_the_images_to_review_and_points_to_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist.evaluation import markdown

    monkeypatch.setattr(markdown, "REVIEW_ROWS", 2)
    entry = {"truth": "MEL", "predicted": "NV", "probability": 0.53, "refer_score": 0.014, "ood_score": 0.81,
             "note": "Routine | no referral."}
    review = {"melanomas_not_referred": [{**entry, "image": f"m{i}"} for i in range(3)], "not_assessable": []}
    report = {"name": "x", "data": "d", "dataset": "ph2", "split": None, "images": 3, "answered": 3, "refused": [],
              "model": {}, "review": review}
    text = render_markdown(report, [], {})
    assert "Melanomas REFER did not refer: 3." in text and "Not assessable: none." in text
    assert "| m0 | MEL | NV 0.530 | 0.014 | 0.810 | Routine / no referral. |" in text and "| m2 |" not in text
    assert "| and 1 more: see images.csv |" in text and "`images.csv`" in text
    assert "Images to review" not in render_markdown({k: v for k, v in report.items() if k != "review"}, [], {})


def test_the_report_says_why_a_section_is_missing_and_counts_refused_melanomas_beside_the_figure() -> None:
    base = {"name": "x", "data": "d", "dataset": "isic2017", "split": None, "images": 3, "answered": 3, "refused": [],
            "model": {}}
    text = render_markdown({**base, "no_diagnosis": "no ISIC-2017_<Split>_Part3_GroundTruth.csv lies beside"}, [], {})
    assert "## Diagnosis\n\nNo diagnosis figures: no ISIC-2017_<Split>_Part3_GroundTruth.csv lies beside." in text
    text = render_markdown({**base, "ood_note": "--ood /x holds no image file"}, [], {})
    assert "## Out-of-distribution images\n\nNo OOD figure: --ood /x holds no image file." in text
    triage = {"melanoma_sensitivity": 0.5, "malignant_sensitivity": 0.5, "specificity": 1.0, "not_assessable": 0.0,
              "melanomas": 2, "malignant": 2, "benign": 1, "melanomas_refused": 1}
    text = render_markdown({**base, "triage": triage}, [], {})
    assert "| 0.500, 2 melanomas; 1 refused melanoma not counted | 0.500, 2 |" in text


def test_an_over_long_report_name_is_refused_with_the_advice_of_a_shorter_name(tmp_path: Path) -> None:
    from dermassist.evaluation.report_files import report_folder

    with pytest.raises(EvaluationError, match=r"the report name Dermatologie_Klinik.* is 300 bytes long, and the file "
                                              r"system .* allows 255 for a folder name .*: pass a shorter --name"):
        report_folder(tmp_path / ("Dermatologie_Klinik_" * 15))
    with pytest.raises(EvaluationError, match="its path is too long for the file system .* pass a shorter --out or --name"):
        report_folder(tmp_path.joinpath(*["a" * 200] * 25) / "site")


def test_a_report_folder_is_readable_by_its_user_alone(tmp_path: Path) -> None:
    """Its images.csv holds each image's truth and answer by file name: it had been written with the umask's mode
    (0755 folders), readable by every user of the machine (privacy audit, L6)."""
    import stat

    from dermassist.evaluation.report_files import report_folder

    folder = report_folder(tmp_path / "reports" / "ward7")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
