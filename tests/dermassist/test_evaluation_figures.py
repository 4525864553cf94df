"""Site-validation figures on answers worked out by hand (no server)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from dermassist.evaluation import EvaluationConfig, EvaluationError
from dermassist.evaluation.figures import ood_figures, review_lists, segmentation_figures, triage_figures
from dermassist.evaluation.markdown import render_markdown
from dermassist.evaluation.report_files import image_rows, write_image_table
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
    from dermassist.evaluation.figures import classification_figures

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
    from dermassist.evaluation.service import analyse

    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(EvaluationError, match="the DermAssist at 127.0.0.1:1 did not answer the evaluation: .*unavailable"):
        analyse("127.0.0.1:1", [image], 2.0, options={"retries": 0})


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


def test_degradations_blur_darken_and_overexpose() -> None:
    from dermassist.evaluation.service import degrade

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


def test_evaluate_reads_a_folder_sends_it_and_figures_each_answer_against_its_own_truth(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ham_jpeg: bytes) -> None:
    """The plumbing of `dermassist evaluate` with the service stood in for: truths from the CSV, answers by path."""
    import contextlib
    import dataclasses
    import json

    from dermassist.evaluation import run as evaluation
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


def _ham_site(root: Path, dx: dict[str, str], extra_files: Sequence[str] = (), listed: dict[str, str] | None = None,
              raw: dict[str, bytes] | None = None) -> Path:
    """A HAM10000-layout site: a JPEG and a metadata row per ``dx`` entry, ``extra_files`` (images no row names),
    ``listed`` rows whose file is not written as a JPEG, and ``raw`` files (relative path -> bytes) as they are."""
    images = root / "HAM10000_images_part_1"
    images.mkdir(parents=True)
    for name in [f"{i}.jpg" for i in dx] + list(extra_files):
        cv2.imwrite(str(images / name), np.full((45, 60, 3), 128, np.uint8))
    for name, data in (raw or {}).items():
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        (images / name).write_bytes(data)
    rows = {**dx, **(listed or {})}
    (root / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\n"
                                                + "".join(f"L{i},{i},{d}\n" for i, d in rows.items()))
    return root


def _stand_in(monkeypatch: pytest.MonkeyPatch, tops: dict[str, str], stop_after: int | None = None,
              stop: BaseException | None = None) -> None:
    """The service stood in for: each image answered with its ``tops`` class (NV when not named), REFER for MEL;
    with ``stop_after``, ``stop`` is raised once that many images of the evaluated set have been answered."""
    import contextlib
    import dataclasses

    from dermassist.evaluation import run as evaluation
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
    from dermassist.evaluation import run as evaluation

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
    from dermassist.evaluation.provenance import ATTRIBUTION, attribution

    assert attribution("ham10000", ["ISIC_0024311", "ISIC_0027001"]) == ATTRIBUTION["ham10000"]
    assert attribution("ham10000", ["P001", "P002"]) == ""  # a hospital's own images in the HAM10000 layout
    assert attribution("isic2019", ["ISIC_0024311", "P002", "P003"]) == f"1 of 3 images are named as in {ATTRIBUTION['isic2019']}"
    assert attribution("ham10000", ["ISIC_00243"]) == ""  # not 7 digits
    assert attribution("ph2", ["IMD002"]) == ATTRIBUTION["ph2"]


def test_a_sites_own_images_and_the_ones_without_a_label_row_are_reported(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import csv

    from dermassist.evaluation import run as evaluation

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

    from dermassist.evaluation import run as evaluation

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

    from dermassist.evaluation.provenance import seen_in_training

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
    from dermassist.evaluation import run as evaluation

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
    from dermassist.evaluation.figures import truth_mask
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


def _read_table(path: Path) -> dict[str, dict[str, str]]:
    import csv

    with open(path, newline="") as f:
        return {r["image"]: r for r in csv.DictReader(f)}


def test_the_ham_layout_report_says_akiec_was_counted_as_ak_and_may_hold_scc(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from dermassist.evaluation import run as evaluation

    _stand_in(monkeypatch, {"P1": "AK"})
    data = _ham_site(tmp_path / "site", {"P1": "akiec", "P2": "akiec", "P3": "nv"})
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))
    text = (tmp_path / "r" / "site" / "report.md").read_text()
    assert ("**Labels:** The HAM10000 layout was read: its diagnosis `akiec` was counted as AK (actinic keratosis), as the "
            "contract maps it (2 evaluated images). HAM10000's `akiec` also holds intraepithelial carcinoma") in text
    assert "so the AK figures may include SCC" in text and "The ISIC 2019 layout, with its own AK and SCC columns" in text
    assert "| AK (Actinic keratosis; HAM10000 akiec, may include SCC in situ) | 2 |" in text
    assert json.loads((tmp_path / "r" / "site" / "report.json").read_text())["caveats"] == report["caveats"]
    assert "may include SCC" in report["caveats"][0]
    # an ISIC 2019 ground truth beside the metadata gives P2 its SCC: the report counts what it relabelled
    (data / "ISIC_2019_Training_GroundTruth.csv").write_text("image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\nP2,0,0,0,0,0,0,0,1,0\n")
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))
    assert "(1 evaluated image; 1 took the AK or SCC label of ISIC_2019_Training_GroundTruth.csv" in report["caveats"][0]
    assert report["classification"]["support"]["SCC"] == 1


def test_a_layout_with_its_own_scc_column_has_no_akiec_caveat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist.evaluation import run as evaluation

    _stand_in(monkeypatch, {})
    root = tmp_path / "i19"
    (root / "ISIC_2019_Training_Input").mkdir(parents=True)
    cv2.imwrite(str(root / "ISIC_2019_Training_Input" / "P1.jpg"), np.full((45, 60, 3), 128, np.uint8))
    (root / "ISIC_2019_Training_GroundTruth.csv").write_text("image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\nP1,0,0,0,0,0,0,0,1,0\n")
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=root, out=tmp_path / "r"))
    assert report["caveats"] == [] and "**Labels:**" not in (tmp_path / "r" / "i19" / "report.md").read_text()


def test_an_unreachable_or_misspelt_url_leaves_the_earlier_report_as_it_was(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist.evaluation import run as evaluation

    real_service, real_analyse = evaluation.service, evaluation.analyse
    data = _ham_site(tmp_path / "site", {"P1": "mel", "P2": "nv"})
    _stand_in(monkeypatch, {"P1": "MEL"})
    evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))  # a complete, good report
    folder = tmp_path / "r" / "site"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert {"report.md", "images.csv", "confusion.png", "reliability.png"} <= set(before)
    monkeypatch.setattr(evaluation, "service", real_service)
    monkeypatch.setattr(evaluation, "analyse", real_analyse)
    with pytest.raises(EvaluationError, match=r"--url 'http://localhost:8001' is not the address of a DermAssist: .*"
                                              r"without a scheme.*pass --url HOST:PORT"):
        evaluation.EvaluationConfig(data=data, out=tmp_path / "r", url="http://localhost:8001")
    with pytest.raises(EvaluationError, match=r"the DermAssist at 127.0.0.1:1 did not answer the evaluation: .*"
                                              r"unavailable.*No image was sent, and no earlier report was removed"):
        evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r", url="127.0.0.1:1", timeout_s=5))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # not PARTIAL, nothing removed


def test_a_server_that_answers_but_is_not_ready_is_refused_before_anything_is_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist.evaluation import run as evaluation
    from dermassist_client import DermAssistClient

    real_service = evaluation.service
    data = _ham_site(tmp_path / "site", {"P1": "nv"})
    _stand_in(monkeypatch, {})
    evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))
    before = (tmp_path / "r" / "site" / "report.md").read_text()
    monkeypatch.setattr(evaluation, "service", real_service)  # the stand-in still answers every image sent
    monkeypatch.setattr(DermAssistClient, "ready", lambda self: False)
    with pytest.raises(EvaluationError, match="at 127.0.0.1:1 did not answer the evaluation: it answers but says it is "
                                              "not ready .*wait until `dermassist serve` logs that it is ready"):
        evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r", url="127.0.0.1:1"))
    assert (tmp_path / "r" / "site" / "report.md").read_text() == before


def test_the_exit_status_says_when_labelled_images_are_not_in_the_figures(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist.cli import main

    _stand_in(monkeypatch, {})
    whole = _ham_site(tmp_path / "whole", {"P1": "nv", "P2": "bkl"}, extra_files=["P9.jpg"])  # P9: no label row
    assert main(["evaluate", "--data", str(whole), "--out", str(tmp_path / "r")]) == 0
    missing = _ham_site(tmp_path / "missing", {"P1": "nv", "P2": "bkl"}, listed={"P3": "mel", "P4": "nv"})
    assert main(["evaluate", "--data", str(missing), "--out", str(tmp_path / "r")]) == 3  # EXIT_LABELLED_LEFT_OUT
    other = _ham_site(tmp_path / "other", {"P1": "nv"}, listed={"P5.heic": "mel"}, raw={"P5.heic": HEIC})
    assert main(["evaluate", "--data", str(other), "--out", str(tmp_path / "r")]) == 3


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8 "


def test_every_file_of_the_image_folders_is_evaluated_or_listed_with_its_reason(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist.evaluation import run as evaluation

    _stand_in(monkeypatch, {})
    ok, jpeg = cv2.imencode(".jpg", np.full((45, 60, 3), 128, np.uint8))
    data = _ham_site(tmp_path / "site", {"P001": "nv", "P002": "bkl"}, listed={"X_webp.webp": "mel", "X_jfif": "nv"},
                     raw={"IMG_0001.HEIC": HEIC, "X_gif.gif": GIF, "X_webp.webp": WEBP, "X_jfif.jfif": jpeg.tobytes(),
                          "clinic_b/IMG_0002.heic": HEIC, "notes.txt": b"the site's notes", ".DS_Store": b"\0"})
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))
    table = _read_table(tmp_path / "r" / "site" / "images.csv")
    convert = "not evaluated: not an accepted image format ({}); convert it to JPEG or PNG"
    assert (table["X_webp.webp"]["status"], table["X_webp.webp"]["truth"]) == (convert.format(".webp"), "MEL")
    assert table["X_webp.webp"]["path"] == "HAM10000_images_part_1/X_webp.webp"
    assert table["X_jfif"]["status"] == ("not evaluated: not an accepted image format (.jfif, though its content is a "
                                         "JPEG); rename it to X_jfif.jpg") and table["X_jfif"]["truth"] == "NV"
    assert table["IMG_0001"]["status"] == convert.format(".heic") and table["IMG_0001"]["truth"] == ""
    assert table["IMG_0002"]["path"] == "HAM10000_images_part_1/clinic_b/IMG_0002.heic"  # subfolders too
    assert table["X_gif"]["status"] == convert.format(".gif")
    assert "notes" not in table and ".DS_Store" not in table  # a note and the system's own file are no images
    assert report["not_evaluated"]["absent_on_disk"] == []  # they are on disk: not said to be absent
    text = (tmp_path / "r" / "site" / "report.md").read_text()
    assert ("2 image(s) listed in the labels are on disk in a format the service does not accept and were not evaluated "
            "(HAM10000_images_part_1/X_webp.webp: MEL (not an accepted image format (.webp); convert it to JPEG or PNG), "
            "HAM10000_images_part_1/X_jfif.jfif: NV (not an accepted image format (.jfif") in text
    assert ("3 file(s) in the image folders have no label row and are not images the layout reads, so they were not "
            "evaluated (HAM10000_images_part_1/IMG_0001.HEIC (not an accepted image format (.heic); convert it") in text
    assert "1 melanoma in a format not accepted not counted" in text


def test_a_labelled_image_missing_on_disk_keeps_its_truth_and_a_missing_melanoma_is_flagged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist.evaluation import run as evaluation

    _stand_in(monkeypatch, {"P1": "MEL"})
    data = _ham_site(tmp_path / "site", {"P1": "mel", "P2": "nv"}, listed={"P100.jpg": "mel", "P101": "bkl"})
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))
    table = _read_table(tmp_path / "r" / "site" / "images.csv")
    assert (table["P100.jpg"]["truth"], table["P101"]["truth"]) == ("MEL", "BKL")
    assert table["P100.jpg"]["status"] == "not evaluated: listed in the labels but absent on disk"
    assert report["melanomas_not_evaluated"] == {"absent_on_disk": 1, "not_accepted_format": 0}
    text = (tmp_path / "r" / "site" / "report.md").read_text()
    assert "| 1.000 (0.21-1.00), 1 melanoma; 1 missing melanoma not counted |" in text
    assert "2 image(s) listed in the labels are not on disk and were not evaluated (P100.jpg: MEL, P101: BKL;" in text
    triage = {"melanoma_sensitivity": 0.5, "malignant_sensitivity": 0.5, "specificity": 1.0, "not_assessable": 0.0,
              "melanomas": 2, "malignant": 2, "benign": 1, "melanomas_refused": 1}
    both = render_markdown({"name": "x", "data": "d", "dataset": "ham10000", "split": None, "images": 3, "answered": 3,
                            "refused": [], "model": {}, "triage": triage,
                            "melanomas_not_evaluated": {"absent_on_disk": 2, "not_accepted_format": 0}}, [], {})
    assert "2 melanomas; 1 refused melanoma and 2 missing melanomas not counted |" in both


def test_a_missing_melanoma_of_a_labels_csv_folder_keeps_its_truth_and_is_flagged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The readers keep the diagnosis of every row whose image is absent (Dataset.missing_labels), so a site's own
    labels.csv is reported as the public layouts are (evaluation re-read only the HAM10000 and ISIC 2019 label files)."""
    from PIL import Image

    from dermassist.evaluation import run as evaluation

    _stand_in(monkeypatch, {"P1": "MEL"})
    data = tmp_path / "site"
    (data / "pictures").mkdir(parents=True)
    for name in ("P1", "P2"):
        Image.new("RGB", (64, 48), (180, 120, 100)).save(data / "pictures" / f"{name}.jpg")
    (data / "labels.csv").write_text("filename,diagnosis\nP1.jpg,melanoma\nP2.jpg,nevus\nP100.jpg,Melanoma\n")
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))
    table = _read_table(tmp_path / "r" / "site" / "images.csv")
    assert table["P100.jpg"]["truth"] == "MEL"
    assert report["melanomas_not_evaluated"] == {"absent_on_disk": 1, "not_accepted_format": 0}


def test_the_report_says_when_against_which_server_and_at_which_refer_threshold_it_ran(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    from datetime import UTC, datetime, timedelta

    from dermassist.base.repository import stage_repository, tuned_file
    from dermassist.evaluation import run as evaluation
    from preprocess.contract import TRIAGE_MODEL

    repository = stage_repository(tmp_path / "repository")
    tuned_file(repository, TRIAGE_MODEL).parent.mkdir(parents=True, exist_ok=True)
    tuned_file(repository, TRIAGE_MODEL).write_text(json.dumps({"values": {"refer_threshold": 0.123}}))
    (repository / ".release-stamp").write_text("0123456789abcdef")
    _stand_in(monkeypatch, {"P1": "MEL"})
    data = _ham_site(tmp_path / "site", {"P1": "mel", "P2": "nv"})
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r", repository=repository))
    started = datetime.fromisoformat(report["run"]["started_utc"])
    assert started.utcoffset() == timedelta(0) and abs(datetime.now(UTC) - started) < timedelta(minutes=5)
    assert report["run"]["refer_threshold"] == 0.123 and report["run"]["server"].startswith("embedded, repository ")
    text = (tmp_path / "r" / "site" / "report.md").read_text()
    assert (f"Run: {started:%Y-%m-%d %H:%M:%S} UTC, against an embedded DermAssist started for this run, serving "
            f"repository `{repository}` (release 0123456789abcdef); model dermassist version 3. REFER threshold in force: "
            "**0.123**, as the triage step of that repository resolves it.") in text
    assert ("Malignant: MEL (Melanoma), BCC (Basal cell carcinoma), SCC (Squamous cell carcinoma), AK (Actinic keratosis)"
            ", the classes whose probabilities REFER_SCORE sums") in text
    assert "benign: the others (DF, NV, BKL, VASC)" in text
    assert ("An image not assessable is referred whatever its score, as this repository's triage is set "
            "(refer_when_not_assessable), and counts as referred here: a benign one lowers specificity (0 of the 1 benign "
            "images here were not assessable)") in text
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r", url="10.0.0.5:8001"))
    assert report["run"]["server"] == "10.0.0.5:8001" and report["run"]["refer_threshold"] is None
    text = (tmp_path / "r" / "site" / "report.md").read_text()
    assert "against the DermAssist at `10.0.0.5:8001`; model dermassist version 3. REFER threshold: **unknown**" in text


def test_an_over_long_report_name_is_refused_with_the_advice_of_a_shorter_name(tmp_path: Path) -> None:
    from dermassist.evaluation.report_files import report_folder

    with pytest.raises(EvaluationError, match=r"the report name Dermatologie_Klinik.* is 300 bytes long, and the file "
                                              r"system .* allows 255 for a folder name .*: pass a shorter --name"):
        report_folder(tmp_path / ("Dermatologie_Klinik_" * 15))
    with pytest.raises(EvaluationError, match="its path is too long for the file system .* pass a shorter --out or --name"):
        report_folder(tmp_path.joinpath(*["a" * 200] * 25) / "site")


def test_the_plots_say_what_their_colours_and_numbers_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The confusion matrix's colour bar is named; each reliability bin's count lies inside the frame, and the ECE floor
    the report gives is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from dermassist.evaluation import run as evaluation

    saved: dict[str, Figure] = {}
    real_savefig = Figure.savefig

    def keep(fig: Figure, path, *args, **kwargs):
        saved[Path(path).name] = fig
        fig.canvas.draw()
        return real_savefig(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    _stand_in(monkeypatch, {"P1": "MEL", "P2": "BKL"})  # every answer right: one bin at accuracy 1.0
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=_ham_site(tmp_path / "site", {"P1": "mel", "P2": "bkl",
                                                                                                "P3": "nv"}),
                                                             out=tmp_path / "r"))
    colour_bar = saved["confusion.png"].axes[1]
    assert "share of the true class's images" in colour_bar.get_ylabel()
    reliability = saved["reliability.png"]
    ax = reliability.axes[0]
    frame = ax.get_window_extent()
    counts = [t for t in ax.texts if t.get_text().isdigit()]
    assert [t.get_text() for t in counts] == ["3"]
    for t in counts:
        box = t.get_window_extent()
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, box
    p95 = report["classification"]["ece_if_calibrated"]["p95"]
    assert any(f"{p95:.3f}: ECE floor" in t.get_text() for t in ax.get_legend().get_texts())


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), EvaluationError("the DermAssist at x:1 did not answer")])
def test_a_partial_report_of_public_images_credits_them_and_says_when_and_where_it_ran(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: BaseException) -> None:
    from dermassist.evaluation import run as evaluation

    data = _ham_site(tmp_path / "site", {f"ISIC_00000{i:02d}": "nv" for i in range(10)})
    _stand_in(monkeypatch, {}, stop_after=4, stop=stop)
    with pytest.raises(type(stop)):
        evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r", url="10.0.0.5:8001"))
    text = (tmp_path / "r" / "site" / "report.md").read_text()
    assert text.startswith("# PARTIAL: DermAssist site validation: site")
    assert "Run: " in text and "against the DermAssist at `10.0.0.5:8001`" in text
    assert text.rstrip().endswith("---\nData: HAM10000 (Tschandl, Rosendahl, Kittler, Sci. Data 5, 180161, 2018), CC BY-NC-SA "
                                  "4.0; lesion masks Tschandl et al., Nat. Med. 2020. For research and testing only.")
