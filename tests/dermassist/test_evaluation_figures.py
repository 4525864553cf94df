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
    image_rows,
    ood_figures,
    render_markdown,
    review_lists,
    segmentation_figures,
    triage_figures,
    write_image_table,
)
from preprocess.contract import CLASS_CODES
from training.metrics import wilson_interval

MEL, NV, BCC = 3, 4, 1


def test_triage_figures_by_hand() -> None:
    labels = np.array([MEL, MEL, BCC, NV, NV, NV])
    refer = np.array([True, False, True, True, False, False])
    assessable = np.array([True, True, True, False, True, True])
    t = triage_figures(labels, refer, assessable)
    assert t["melanoma_sensitivity"] == 0.5 and t["malignant_sensitivity"] == pytest.approx(2 / 3)
    assert t["specificity"] == pytest.approx(2 / 3) and t["not_assessable"] == pytest.approx(1 / 6)
    assert (t["melanomas"], t["malignant"], t["benign"]) == (2, 3, 3)
    assert t["melanoma_sensitivity_ci95"] == wilson_interval(1, 2) and t["specificity_ci95"] == wilson_interval(2, 3)
    assert t["malignant_sensitivity_ci95"] == wilson_interval(2, 3)
    assert triage_figures(np.array([NV]), np.array([False]), np.array([True]))["melanoma_sensitivity_ci95"] is None


def test_classification_figures_carry_their_uncertainty() -> None:
    from dermassist.evaluation import classification_figures

    labels = np.array([MEL, MEL, NV, NV])
    probs = np.eye(8)[[MEL, NV, NV, NV]]  # certain answers: a perfectly calibrated model would have ECE 0
    c = classification_figures(labels, probs)
    assert c["balanced_accuracy"] == 0.75 and c["ece_if_calibrated"] == {"median": 0.0, "p95": 0.0}
    low, high = c["balanced_accuracy_ci95"]  # MEL recall 0, 0.5 or 1 in a draw, NV always 1
    assert (low, high) == (0.5, 1.0) and c["ece"] == pytest.approx(0.25)


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


def test_config_refuses_missing_folders_and_names_the_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EvaluationError, match="is not a folder"):
        EvaluationConfig(data=tmp_path / "nope")
    (tmp_path / "split.json").write_text("{}")
    assert EvaluationConfig(data=tmp_path, split_manifest=tmp_path / "split.json").name == f"{tmp_path.name}_test"
    monkeypatch.chdir(tmp_path)
    assert EvaluationConfig(data=Path(".")).name == tmp_path.name  # `--data .` names the report after the folder


def test_config_takes_tls_options_only_for_a_running_service(tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(EvaluationError, match="need --url"):
        EvaluationConfig(data=tmp_path, ssl=True)
    with pytest.raises(EvaluationError, match="root_certificates was given but ssl is off"):
        EvaluationConfig(data=tmp_path, url="10.0.0.5:8001", root_certificates=pem)
    with pytest.raises(EvaluationError, match="file .*missing.pem does not exist"):
        EvaluationConfig(data=tmp_path, url="10.0.0.5:8001", ssl=True, root_certificates=tmp_path / "missing.pem")
    with pytest.raises(EvaluationError, match="private_key and certificate_chain go together"):
        EvaluationConfig(data=tmp_path, url="10.0.0.5:8001", ssl=True, private_key=pem)
    config = EvaluationConfig.resolve({"data": tmp_path, "url": "10.0.0.5:8001"},
                                      {"DERMASSIST_EVALUATE_SSL": "true", "DERMASSIST_EVALUATE_ROOT_CERTIFICATES": str(pem)})
    assert config.client_options() == {"ssl": True, "root_certificates": pem, "private_key": None,
                                       "certificate_chain": None}
    assert EvaluationConfig(data=tmp_path).client_options()["ssl"] is False


def test_an_unreachable_service_is_an_evaluation_error(tmp_path: Path) -> None:
    from dermassist.evaluation import analyse

    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(EvaluationError, match="the DermAssist at 127.0.0.1:1 did not answer the evaluation: .*unavailable"):
        analyse("127.0.0.1:1", [image], 2.0, options={"retries": 0})


def test_a_report_folder_that_cannot_be_written_is_refused_before_any_image_is_sent(tmp_path: Path) -> None:
    from dermassist.evaluation import report_folder

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
    assert "| 1.000 (0.21-1.00), 1 melanomas | 1.000, 1 |" in text and text.rstrip().endswith("For research and testing only.")
    assert "| 2 | 0.500 | 0.500 (0.50-0.50) | 0.250 |" in text
    assert "median 0.300 (95th percentile 0.450), so an ECE under 0.450 is within" in text


def test_degradations_blur_darken_and_overexpose() -> None:
    from dermassist.evaluation import degrade

    rng = np.random.default_rng(0)
    image = rng.integers(40, 200, (300, 400, 3), dtype=np.uint8)
    assert cv2.Laplacian(degrade(image, "blurred"), cv2.CV_32F).var() < 0.01 * cv2.Laplacian(image, cv2.CV_32F).var()
    assert degrade(image, "dark").mean() == pytest.approx(image.mean() * 0.25, abs=1.0)
    assert degrade(image, "overexposed").mean() > 230
    with pytest.raises(EvaluationError, match="unknown degradation 'sepia'"):
        degrade(image, "sepia")


def _answer(code: str, refer: bool | None, score: float | None, assessable: bool | None = True,
            note: str = "") -> SimpleNamespace:
    probs = {c: 0.0 for c in CLASS_CODES}
    probs[code] = 0.7
    probs["NV" if code != "NV" else "BKL"] = 0.3
    return SimpleNamespace(label=SimpleNamespace(code=code), probabilities=probs, refer=refer, refer_score=score,
                           assessable=assessable, ood_score=0.5, lesion_fraction=0.25,
                           bbox=SimpleNamespace(x_min=1, y_min=2, x_max=30, y_max=40), note=note)


def _sample(image_id: str, code: str | None) -> SimpleNamespace:
    return SimpleNamespace(image_id=image_id, code=code, image_path=Path(f"/data/{image_id}.jpg"))


def test_review_lists_name_the_missed_melanomas_lowest_score_first_and_the_unassessable() -> None:
    samples = [_sample("a", "MEL"), _sample("b", "MEL"), _sample("c", "MEL"), _sample("d", "NV"), _sample("e", "BKL"),
               _sample("f", "MEL")]
    results = [_answer("NV", False, 0.04), _answer("MEL", True, 0.9), _answer("BKL", False, 0.01),
               _answer("NV", False, 0.02, assessable=False, note="Image too blurred."), _answer("BKL", True, 0.3),
               _answer("NV", None, None)]  # an answer without triage outputs is not counted as a miss
    review = review_lists(samples, results)
    assert [e["image"] for e in review["melanomas_not_referred"]] == ["c", "a"]
    assert review["melanomas_not_referred"][0] == {"image": "c", "truth": "MEL", "predicted": "BKL", "probability": 0.7,
                                                   "refer_score": 0.01, "ood_score": 0.5, "note": ""}
    assert [(e["image"], e["truth"], e["note"]) for e in review["not_assessable"]] == [("d", "NV", "Image too blurred.")]


def test_image_table_has_every_image_answered_or_refused(tmp_path: Path) -> None:
    import csv

    from dermassist.evaluation import Answers

    samples = [_sample("a", "MEL"), _sample("b", None), _sample("c", "BKL")]
    answers = Answers(paths=[s.image_path for s in samples[:2]],
                      results=[_answer("NV", False, 0.04, note="Routine."), _answer("BKL", True, 0.3)],
                      refused=[("/data/c.jpg", "cannot be decoded")])
    outside = Answers(paths=[Path("/ood/noise_000.png")], results=[_answer("DF", True, 3.1, assessable=False)],
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

    sample = _sample("=HYPERLINK(\"http://x\")", "NV")
    answers = Answers(paths=[sample.image_path], results=[_answer("NV", False, 0.04, note="@note")])
    path = write_image_table(image_rows([sample], answers, Answers()), tmp_path / "images.csv")
    with open(path, newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["image"] == "'=HYPERLINK(\"http://x\")" and row["note"] == "'@note"
    assert row["truth"] == "NV" and float(row["refer_score"]) == 0.04  # plain text and numbers untouched


def test_markdown_lists_the_images_to_review_and_points_to_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    import dermassist.evaluation as evaluation

    monkeypatch.setattr(evaluation, "REVIEW_ROWS", 2)
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


def test_evaluate_reads_a_folder_sends_it_and_figures_each_answer_against_its_own_truth(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ham_jpeg: bytes) -> None:
    """The plumbing of `dermassist evaluate` with the service stood in for: truths from the CSV, answers by path."""
    import contextlib
    import dataclasses
    import json

    from dermassist import evaluation
    from tests.support.dicom_checks import synthetic_result

    folder = tmp_path / "site"
    images = folder / "HAM10000_images_part_1"
    images.mkdir(parents=True)
    truths = {"ISIC_0000001": "mel", "ISIC_0000002": "nv", "ISIC_0000003": "nv", "ISIC_0000004": "bkl"}
    answers = {"ISIC_0000001": "MEL", "ISIC_0000002": "NV", "ISIC_0000003": "BKL", "ISIC_0000004": "BKL"}
    rows = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    for image_id, dx in truths.items():
        (images / f"{image_id}.jpg").write_bytes(ham_jpeg)
        rows.append(f"HAM_{image_id},{image_id},{dx},histo,50,male,back")
    (folder / "HAM10000_metadata.csv").write_text("\n".join(rows) + "\n")

    def answered(url, paths, timeout_s, with_crop=False, options=None):
        results = [dataclasses.replace(synthetic_result((600, 450), top=answers[Path(p).stem], assessable=True),
                                       refer=answers[Path(p).stem] == "MEL") for p in paths]
        return evaluation.Answers(paths=list(paths), results=results)

    monkeypatch.setattr(evaluation, "service", lambda config: contextlib.nullcontext("stand-in:1"))
    monkeypatch.setattr(evaluation, "analyse", answered)
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=folder, out=tmp_path / "reports",
                                                             url="stand-in:1"))
    cls = report["classification"]
    assert (report["images"], report["answered"]) == (4, 4)
    assert cls["accuracy"] == pytest.approx(3 / 4)  # by hand: only ISIC_0000003 (NV) answered BKL
    assert cls["per_class_recall"]["MEL"] == 1.0 and cls["per_class_recall"]["NV"] == 0.5
    assert cls["per_class_recall"]["BKL"] == 1.0
    assert report["triage"]["melanoma_sensitivity"] == 1.0 and report["triage"]["specificity"] == 1.0
    written = json.loads((tmp_path / "reports" / "site" / "report.json").read_text())
    assert written["classification"]["accuracy"] == pytest.approx(3 / 4)
