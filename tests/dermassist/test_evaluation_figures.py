"""Site-validation figures on answers worked out by hand (no server)."""
from __future__ import annotations

from collections.abc import Sequence
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
    low, high = c["balanced_accuracy_ci95"]  # MEL recall from Beta(3/2, 3/2), NV from Beta(5/2, 1/2): never certain
    assert 0.25 < low < 0.5 and 0.9 < high < 1.0 and c["ece"] == pytest.approx(0.25)


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
    cv2.imwrite(str(tmp_path / "i.jpg"), np.zeros((450, 600, 3), np.uint8))  # no EXIF orientation
    served = np.zeros((256, 256), np.uint8)
    served[:, :64] = 255  # left quarter on the mask grid: Jaccard 1/2, Dice 2/3
    figures = segmentation_figures([SimpleNamespace(mask_path=tmp_path / "m.png", image_path=tmp_path / "i.jpg"),
                                    SimpleNamespace(mask_path=None, image_path=tmp_path / "i.jpg")],
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
    import trustme

    pem = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(pem))
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
    assert "| 1.000 (0.21-1.00), 1 melanoma | 1.000, 1 |" in text and text.rstrip().endswith("For research and testing only.")
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
    return SimpleNamespace(top_class=SimpleNamespace(code=code), probabilities=probs, refer=refer, refer_score=score,
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
    tops = {"ISIC_0000001": "MEL", "ISIC_0000002": "NV", "ISIC_0000003": "BKL", "ISIC_0000004": "BKL"}
    rows = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    for image_id, dx in truths.items():
        (images / f"{image_id}.jpg").write_bytes(ham_jpeg)
        rows.append(f"HAM_{image_id},{image_id},{dx},histo,50,male,back")
    (folder / "HAM10000_metadata.csv").write_text("\n".join(rows) + "\n")

    def answered(url, paths, timeout_s, with_crop=False, options=None, answers=None):
        results = [dataclasses.replace(synthetic_result((600, 450), top=tops[Path(p).stem], assessable=True),
                                       refer=tops[Path(p).stem] == "MEL") for p in paths]
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


def _turned_jpeg(path: Path, stored: tuple[int, int], orientation: int) -> Path:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", stored, (128, 100, 90)).save(path, exif=exif)
    return path


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_mask_is_compared_in_the_frame_the_service_answers_in(tmp_path: Path, orientation: int) -> None:
    from preprocess.decode import apply_orientation as to_displayed

    image = _turned_jpeg(tmp_path / "i.jpg", (600, 400), orientation)  # the service answers for the turned image
    stored = np.zeros((400, 600), np.uint8)
    stored[:, :150] = 255  # the left quarter of the stored pixels
    shown = to_displayed(stored, orientation)
    cv2.imwrite(str(tmp_path / "stored.png"), stored)
    cv2.imwrite(str(tmp_path / "shown.png"), shown)
    served = (cv2.resize(shown, (256, 256), interpolation=cv2.INTER_AREA) >= 128).astype(np.uint8) * 255
    # a mask in either frame is compared in the displayed one; turned by 180 degrees both frames have one size, and
    # a mask of that size is taken as drawn on the stored pixels
    for mask in ("stored.png", "shown.png") if orientation in (6, 8) else ("stored.png",):
        figures = segmentation_figures([SimpleNamespace(mask_path=tmp_path / mask, image_path=image)],
                                       [SimpleNamespace(mask=served)])
        assert figures["dice"] == 1.0 and figures["jaccard"] == 1.0, mask


def _ham_site(root: Path, dx: dict[str, str], extra_files: Sequence[str] = ()) -> Path:
    images = root / "HAM10000_images_part_1"
    images.mkdir(parents=True)
    for name in [f"{i}.jpg" for i in dx] + list(extra_files):
        cv2.imwrite(str(images / name), np.full((45, 60, 3), 128, np.uint8))
    (root / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\n"
                                                + "".join(f"L{i},{i},{d}\n" for i, d in dx.items()))
    return root


def _stand_in(monkeypatch: pytest.MonkeyPatch, tops: dict[str, str], stop_after: int | None = None,
              stop: BaseException | None = None) -> None:
    """The service stood in for: each image answered with its ``tops`` class (NV when not named), REFER for MEL;
    with ``stop_after``, ``stop`` is raised once that many images of the evaluated set have been answered."""
    import contextlib
    import dataclasses

    from dermassist import evaluation
    from tests.support.dicom_checks import synthetic_result

    def answered(url, paths, timeout_s, with_crop=False, options=None, answers=None):
        answers = evaluation.Answers() if answers is None else answers
        for path in paths:
            if stop_after is not None and len(answers.paths) == stop_after and stop is not None:
                raise stop
            top = tops.get(Path(path).stem, "NV")
            answers.paths.append(path)
            answers.results.append(dataclasses.replace(synthetic_result((60, 45), top=top, assessable=True),
                                                       refer=top == "MEL"))
        return answers

    monkeypatch.setattr(evaluation, "service", lambda config: contextlib.nullcontext("stand-in:1"))
    monkeypatch.setattr(evaluation, "analyse", answered)


def test_a_rerun_removes_the_plots_of_the_earlier_run_and_nothing_else(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist import evaluation

    _stand_in(monkeypatch, {"P1": "MEL"})
    out = tmp_path / "reports"
    config = evaluation.EvaluationConfig(data=_ham_site(tmp_path / "a", {"P1": "mel", "P2": "nv"}), out=out, name="site")
    evaluation.evaluate(config)
    assert (out / "site" / "melanoma_roc.png").is_file()
    (out / "site" / "notes.txt").write_text("the site's own notes")
    evaluation.evaluate(evaluation.EvaluationConfig(data=_ham_site(tmp_path / "b", {"P3": "nv", "P4": "bkl"}), out=out,
                                                    name="site"))
    assert not (out / "site" / "melanoma_roc.png").exists()  # no melanoma this time: no ROC, and not the old one
    assert (out / "site" / "confusion.png").is_file() and (out / "site" / "notes.txt").read_text() == "the site's own notes"


def test_attribution_credits_a_public_set_only_for_its_own_image_names() -> None:
    from dermassist.evaluation import ATTRIBUTION, attribution

    assert attribution("ham10000", ["ISIC_0024311", "ISIC_0027001"]) == ATTRIBUTION["ham10000"]
    assert attribution("ham10000", ["P001", "P002"]) == ""  # a hospital's own images in the HAM10000 layout
    assert attribution("isic2019", ["ISIC_0024311", "P002", "P003"]) == f"1 of 3 images are named as in {ATTRIBUTION['isic2019']}"
    assert attribution("ham10000", ["ISIC_00243"]) == ""  # not 7 digits
    assert attribution("ph2", ["IMD002"]) == ATTRIBUTION["ph2"]


def test_a_sites_own_images_and_the_ones_without_a_label_row_are_reported(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import csv

    from dermassist import evaluation

    _stand_in(monkeypatch, {})
    data = _ham_site(tmp_path / "site", {"P001": "nv", "P002": "bkl"}, extra_files=["P099.jpg"])
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))
    text = (tmp_path / "r" / "site" / "report.md").read_text()
    assert "1 image(s) on disk have no label row and were left out (P099.jpg; images.csv lists them)" in text
    assert report["attribution"] == "" and "HAM10000 (Tschandl" not in text
    with open(tmp_path / "r" / "site" / "images.csv", newline="") as f:
        rows = {r["image"]: r for r in csv.DictReader(f)}
    assert rows["P099"]["status"] == "not evaluated: on disk but no label row names it"
    assert rows["P099"]["path"] == "HAM10000_images_part_1/P099.jpg" and rows["P001"]["status"] == "answered"
    assert "Melanomas REFER did not refer: none, as the answered images hold no melanoma." in text


@pytest.mark.parametrize("stop, reason", [(KeyboardInterrupt(), "interrupted (Ctrl-C)"),
                                          (EvaluationError("the DermAssist at x:1 did not answer"),
                                           "the DermAssist at x:1 did not answer")])
def test_a_run_that_stops_midway_leaves_the_answers_received_marked_partial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: BaseException, reason: str) -> None:
    import csv
    import json

    from dermassist import evaluation

    data = _ham_site(tmp_path / "site", {f"P{i:03d}": "nv" for i in range(10)})
    _stand_in(monkeypatch, {})
    evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))  # an earlier, complete report
    _stand_in(monkeypatch, {}, stop_after=4, stop=stop)
    with pytest.raises(type(stop)):
        evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))
    folder = tmp_path / "r" / "site"
    text = (folder / "report.md").read_text()
    assert text.startswith("# PARTIAL: DermAssist site validation: site")
    assert f"**PARTIAL: this run stopped after 4 of 10 images were answered (0 refused): {reason}.**" in text
    assert json.loads((folder / "report.json").read_text())["partial"] == reason
    assert not (folder / "confusion.png").exists()  # the earlier run's plots do not pass for this one's
    with open(folder / "images.csv", newline="") as f:
        status = [r["status"] for r in csv.DictReader(f)]
    assert status == ["answered"] * 4 + ["not sent: the run stopped before this image"] * 6


def test_the_images_the_release_was_fitted_on_are_flagged_at_the_top(tmp_path: Path) -> None:
    import json

    from dermassist.evaluation import seen_in_training

    release = tmp_path / "release"
    (release / "splits").mkdir(parents=True)
    (release / "release.json").write_text(json.dumps({"data": {"splits": {"classifier": "splits/c.json"}}}))
    (release / "splits" / "c.json").write_text(json.dumps({
        "train": [{"image_id": "A"}, {"image_id": "B"}], "val": [{"image_id": "C"}], "test": [{"image_id": "D"}]}))
    seen = seen_in_training(["A", "C", "D", "E"], release)
    assert seen == [{"model": "classifier", "manifest": str(release / "splits" / "c.json"), "splits": {"train": 1, "val": 1},
                     "images": ["A", "C"], "unseen_splits": ["test"]}]
    assert seen_in_training(["D", "E"], release) == [] and seen_in_training(["A"], tmp_path / "none") == []
    report = {"name": "x", "data": "d", "dataset": "isic2019", "split": None, "images": 4, "answered": 4, "refused": [],
              "model": {}, "seen_in_training": seen}
    text = render_markdown(report, [], {})
    assert ("**Optimistic figures:** 2 of the evaluated images (1 in train and 1 in val; e.g. A, C) are in the training "
            "or validation split of the released classifier") in text
    assert "so the diagnosis, calibration and referral figures on them are optimistic. Evaluate only images it never " \
           f"saw with `--split-manifest {release / 'splits' / 'c.json'} --split test`." in text
    assert text.splitlines()[4].startswith("**Optimistic figures:**")  # at the top, under the data line
    only_fitted = seen_in_training(["A", "C"], release)  # none of them in the held-out split: none to suggest
    assert only_fitted[0]["unseen_splits"] == []
    text = render_markdown({**report, "seen_in_training": only_fitted}, [], {})
    assert "None of the evaluated images is in its held-out splits." in text and "--split test" not in text


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


def test_evaluate_says_when_the_ood_folder_gave_no_figure_and_why_there_is_no_diagnosis(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist import evaluation

    _stand_in(monkeypatch, {})
    root = tmp_path / "i17"
    for folder in ("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth", "ood"):
        (root / folder).mkdir(parents=True)
    cv2.imwrite(str(root / "ISIC-2017_Validation_Data" / "ISIC_0000001.jpg"), np.full((45, 60, 3), 128, np.uint8))
    cv2.imwrite(str(root / "ISIC-2017_Validation_Part1_GroundTruth" / "ISIC_0000001_segmentation.png"),
                np.zeros((45, 60), np.uint8))
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=root, out=tmp_path / "r", ood=root / "ood"))
    text = (tmp_path / "r" / "i17" / "report.md").read_text()
    assert "classification" not in report and "No diagnosis figures: no ISIC-2017_<Split>_Part3_GroundTruth.csv" in text
    assert f"No OOD figure: --ood {root / 'ood'} holds no image file" in text


@pytest.mark.parametrize("name", ["../escaped", "a/b", "..", ".", "a\\b"])
def test_a_report_name_that_is_not_a_plain_folder_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(EvaluationError, match="is not a plain folder name"):
        EvaluationConfig(data=tmp_path, name=name)
    assert EvaluationConfig(data=tmp_path, name="site_a.v2").name == "site_a.v2"


def test_the_ground_truth_is_put_on_the_mask_grid_as_the_segmenter_was_trained_on_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One rule (``training.images.seg_mask``) for the segmenter's training targets and the evaluation's truth."""
    import training.images
    from dermassist.evaluation import truth_mask
    from training.images import seg_mask

    rng = np.random.default_rng(3)
    mask = np.zeros((450, 600), np.uint8)
    mask[100:330, 150:480] = 255
    mask[rng.random(mask.shape) < 0.3] = 0  # ragged edges: grid cells near the >= 128 cut
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    cv2.imwrite(str(tmp_path / "i.jpg"), np.zeros((450, 600, 3), np.uint8))
    truth = truth_mask(tmp_path / "m.png", tmp_path / "i.jpg")
    assert truth.dtype == np.uint8 and np.array_equal(truth, seg_mask(mask).astype(np.uint8))
    assert 0 < truth.sum() < truth.size
    monkeypatch.setattr(training.images, "seg_mask", lambda m: np.full((2, 2), 1.0, np.float32))  # the one rule used
    assert truth_mask(tmp_path / "m.png", tmp_path / "i.jpg").tolist() == [[1, 1], [1, 1]]
