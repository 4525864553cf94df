"""A whole run with the service stood in for: what is sent, what the report says, what is left out
and why, and what a run that stops leaves."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dermassist.evaluation import EvaluationError
from dermassist.evaluation.markdown import render_markdown
from tests.dermassist.evaluation.stand_ins import (
    GIF,
    HEIC,
    WEBP,
    ham_site,
    read_table,
    stand_in,
)


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
    for k, (image_id, dx) in enumerate(truths.items()):  # four files, not one picture under four names
        (images / f"{image_id}.jpg").write_bytes(ham_jpeg[:2] + b"\xff\xfe\x00\x03" + bytes([k]) + ham_jpeg[2:])
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


def test_a_rerun_removes_the_plots_of_the_earlier_run_and_nothing_else(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist.evaluation import run as evaluation

    stand_in(monkeypatch, {"P1": "MEL"})
    out = tmp_path / "reports"
    config = evaluation.EvaluationConfig(data=ham_site(tmp_path / "a", {"P1": "mel", "P2": "nv"}), out=out, name="site")
    evaluation.evaluate(config)
    assert (out / "site" / "melanoma_roc.png").is_file()
    (out / "site" / "notes.txt").write_text("the site's own notes")
    evaluation.evaluate(evaluation.EvaluationConfig(data=ham_site(tmp_path / "b", {"P3": "nv", "P4": "bkl"}), out=out,
                                                    name="site"))
    assert not (out / "site" / "melanoma_roc.png").exists()  # no melanoma this time: no ROC, and not the old one
    assert (out / "site" / "confusion.png").is_file() and (out / "site" / "notes.txt").read_text() == "the site's own notes"


def test_a_sites_own_images_and_the_ones_without_a_label_row_are_reported(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import csv

    from dermassist.evaluation import run as evaluation

    stand_in(monkeypatch, {})
    data = ham_site(tmp_path / "site", {"P001": "nv", "P002": "bkl"}, extra_files=["P099.jpg"])
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

    data = ham_site(tmp_path / "site", {f"P{i:03d}": "nv" for i in range(10)})
    stand_in(monkeypatch, {})
    evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))  # an earlier, complete report
    stand_in(monkeypatch, {}, stop_after=4, stop=stop)
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


def test_evaluate_says_when_the_ood_folder_gave_no_figure_and_why_there_is_no_diagnosis(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist.evaluation import run as evaluation

    stand_in(monkeypatch, {})
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


def test_the_ham_layout_report_says_akiec_was_counted_as_ak_and_may_hold_scc(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from dermassist.evaluation import run as evaluation

    stand_in(monkeypatch, {"P1": "AK"})
    data = ham_site(tmp_path / "site", {"P1": "akiec", "P2": "akiec", "P3": "nv"})
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

    stand_in(monkeypatch, {})
    root = tmp_path / "i19"
    (root / "ISIC_2019_Training_Input").mkdir(parents=True)
    cv2.imwrite(str(root / "ISIC_2019_Training_Input" / "P1.jpg"), np.full((45, 60, 3), 128, np.uint8))
    (root / "ISIC_2019_Training_GroundTruth.csv").write_text("image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\nP1,0,0,0,0,0,0,0,1,0\n")
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=root, out=tmp_path / "r"))
    assert report["caveats"] == [] and "**Labels:**" not in (tmp_path / "r" / "i19" / "report.md").read_text()


def test_an_image_whose_row_says_unk_is_named_as_such_not_as_an_image_without_a_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """UNK rows' images were reported as "no label row", so each was counted twice among the images left out."""
    from dermassist.evaluation import run as evaluation

    stand_in(monkeypatch, {})
    root = tmp_path / "i19"
    (root / "ISIC_2019_Training_Input").mkdir(parents=True)
    for name in ("P1", "P2", "P3"):
        cv2.imwrite(str(root / "ISIC_2019_Training_Input" / f"{name}.jpg"), np.full((45, 60, 3), 128, np.uint8))
    (root / "ISIC_2019_Training_GroundTruth.csv").write_text(
        "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\nP1,0,1,0,0,0,0,0,0,0\nP2,0,0,0,0,0,0,0,0,1\n")
    evaluation.evaluate(evaluation.EvaluationConfig(data=root, out=tmp_path / "r"))
    text = (tmp_path / "r" / "i19" / "report.md").read_text()
    assert "1 row(s) labelled UNK (unknown diagnosis) were left out (P2.jpg; images.csv lists them)" in text
    assert "1 image(s) on disk have no label row and were left out (P3.jpg;" in text
    rows = read_table(tmp_path / "r" / "i19" / "images.csv")
    assert rows["P2"]["status"] == "not evaluated: its label row says UNK (unknown diagnosis)"
    assert rows["P3"]["status"] == "not evaluated: on disk but no label row names it"
    assert rows["P1"]["status"] == "answered" and len(rows) == 3


def test_an_unreachable_or_misspelt_url_leaves_the_earlier_report_as_it_was(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist.evaluation import run as evaluation

    real_service, real_analyse = evaluation.service, evaluation.analyse
    data = ham_site(tmp_path / "site", {"P1": "mel", "P2": "nv"})
    stand_in(monkeypatch, {"P1": "MEL"})
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
    data = ham_site(tmp_path / "site", {"P1": "nv"})
    stand_in(monkeypatch, {})
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

    stand_in(monkeypatch, {})
    whole = ham_site(tmp_path / "whole", {"P1": "nv", "P2": "bkl"}, extra_files=["P9.jpg"])  # P9: no label row
    assert main(["evaluate", "--data", str(whole), "--out", str(tmp_path / "r")]) == 0
    missing = ham_site(tmp_path / "missing", {"P1": "nv", "P2": "bkl"}, listed={"P3": "mel", "P4": "nv"})
    assert main(["evaluate", "--data", str(missing), "--out", str(tmp_path / "r")]) == 3  # EXIT_LABELLED_LEFT_OUT
    other = ham_site(tmp_path / "other", {"P1": "nv"}, listed={"P5.heic": "mel"}, raw={"P5.heic": HEIC})
    assert main(["evaluate", "--data", str(other), "--out", str(tmp_path / "r")]) == 3


def test_every_file_of_the_image_folders_is_evaluated_or_listed_with_its_reason(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from dermassist.evaluation import run as evaluation

    stand_in(monkeypatch, {})
    ok, jpeg = cv2.imencode(".jpg", np.full((45, 60, 3), 128, np.uint8))
    data = ham_site(tmp_path / "site", {"P001": "nv", "P002": "bkl"}, listed={"X_webp.webp": "mel", "X_jfif": "nv"},
                     raw={"IMG_0001.HEIC": HEIC, "X_gif.gif": GIF, "X_webp.webp": WEBP, "X_jfif.jfif": jpeg.tobytes(),
                          "clinic_b/IMG_0002.heic": HEIC, "notes.txt": b"the site's notes", ".DS_Store": b"\0"})
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))
    table = read_table(tmp_path / "r" / "site" / "images.csv")
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

    stand_in(monkeypatch, {"P1": "MEL"})
    data = ham_site(tmp_path / "site", {"P1": "mel", "P2": "nv"}, listed={"P100.jpg": "mel", "P101": "bkl"})
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))
    table = read_table(tmp_path / "r" / "site" / "images.csv")
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

    stand_in(monkeypatch, {"P1": "MEL"})
    data = tmp_path / "site"
    (data / "pictures").mkdir(parents=True)
    for name in ("P1", "P2"):
        Image.new("RGB", (64, 48), (180, 120, 100)).save(data / "pictures" / f"{name}.jpg")
    (data / "labels.csv").write_text("filename,diagnosis\nP1.jpg,melanoma\nP2.jpg,nevus\nP100.jpg,Melanoma\n")
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))
    table = read_table(tmp_path / "r" / "site" / "images.csv")
    assert table["P100.jpg"]["truth"] == "MEL"
    assert report["melanomas_not_evaluated"] == {"absent_on_disk": 1, "not_accepted_format": 0}


def test_the_report_says_when_against_which_server_and_at_which_refer_threshold_it_ran(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    from datetime import UTC, datetime, timedelta

    from dermassist.base.repository import served_build, stage_repository, tuned_file
    from dermassist.evaluation import run as evaluation
    from preprocess.contract import TRIAGE_MODEL

    repository = stage_repository(tmp_path / "repository")
    tuned_file(repository, TRIAGE_MODEL).parent.mkdir(parents=True, exist_ok=True)
    tuned_file(repository, TRIAGE_MODEL).write_text(json.dumps({"values": {"refer_threshold": 0.123}}))
    (repository / ".release-stamp").write_text("0123456789abcdef")
    stand_in(monkeypatch, {"P1": "MEL"})
    data = ham_site(tmp_path / "site", {"P1": "mel", "P2": "nv"})
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r", repository=repository))
    started = datetime.fromisoformat(report["run"]["started_utc"])
    assert started.utcoffset() == timedelta(0) and abs(datetime.now(UTC) - started) < timedelta(minutes=5)
    assert report["run"]["refer_threshold"] == 0.123 and report["run"]["server"].startswith("embedded, repository ")
    text = (tmp_path / "r" / "site" / "report.md").read_text()
    assert (f"Run: {started:%Y-%m-%d %H:%M:%S} UTC, against an embedded DermAssist started for this run, serving "
            f"repository `{repository}` (release 0123456789abcdef, build `{report['run']['build']}`); model dermassist "
            "version 3. REFER threshold in force: **0.123**, as the triage step of that repository resolves it.") in text
    assert report["run"]["build"] == served_build(repository)
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
    # the release's evaluation names the repository the server it started serves: its threshold is then stated
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r", url="10.0.0.5:8001",
                                                             repository=repository))
    assert report["run"]["server"] == "10.0.0.5:8001" and report["run"]["refer_threshold"] == 0.123
    text = (tmp_path / "r" / "site" / "report.md").read_text()
    assert (f"against the DermAssist at `10.0.0.5:8001`, serving release 0123456789abcdef, build "
            f"`{served_build(repository)}`; model dermassist version 3. REFER threshold in force: **0.123**") in text
    from dermassist.base.repository import name_release

    name_release(repository, "site-test", "2")  # a release exported with its name: the report names it so
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r", repository=repository))
    assert "(release site-test version 2, build `" in (tmp_path / "r" / "site" / "report.md").read_text()


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
    stand_in(monkeypatch, {"P1": "MEL", "P2": "BKL"})  # every answer right: one bin at accuracy 1.0
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=ham_site(tmp_path / "site", {"P1": "mel", "P2": "bkl",
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

    data = ham_site(tmp_path / "site", {f"ISIC_00000{i:02d}": "nv" for i in range(10)})
    stand_in(monkeypatch, {}, stop_after=4, stop=stop)
    with pytest.raises(type(stop)):
        evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r", url="10.0.0.5:8001"))
    text = (tmp_path / "r" / "site" / "report.md").read_text()
    assert text.startswith("# PARTIAL: DermAssist site validation: site")
    assert "Run: " in text and "against the DermAssist at `10.0.0.5:8001`" in text
    assert text.rstrip().endswith("---\nData: HAM10000 (Tschandl, Rosendahl, Kittler, Sci. Data 5, 180161, 2018), CC BY-NC-SA "
                                  "4.0; lesion masks Tschandl et al., Nat. Med. 2020. For research and testing only.")


def test_the_report_names_the_release_and_builds_its_answers_came_from() -> None:
    """A report's figures tie to the models that made them only through the answers' build: version 1 is every
    export's, and with --url the repository is not known here."""
    from dataclasses import replace

    from dermassist.evaluation.markdown import run_markdown
    from dermassist.evaluation.report_files import model_of
    from tests.support.dicom_checks import synthetic_result

    bare = synthetic_result((600, 450))
    assert model_of([bare]) == {"name": "dermassist", "version": "3"}  # a server that names none
    one = replace(bare, model_release="dermassist-real-2026.12 version 1", model_build="sha256:00112233aabbccdd")
    other = replace(one, model_build="sha256:ffeeddccbbaa9988")
    assert model_of([one, one])["builds"] == ["sha256:00112233aabbccdd"]
    run = {"started_utc": "2026-12-06T16:00:00+00:00", "server": "10.0.0.5:8001"}
    text = run_markdown({"run": run, "model": model_of([one])})[0]
    assert "model dermassist version 3, release dermassist-real-2026.12 version 1, build `sha256:00112233aabbccdd`." in text
    mixed = run_markdown({"run": run, "model": model_of([one, other])})[0]
    assert ("**answered by 2 builds** (`sha256:00112233aabbccdd`, `sha256:ffeeddccbbaa9988`): the served models changed "
            "during the run") in mixed


def test_a_repository_that_is_not_what_answered_states_no_threshold() -> None:
    """With --url and --repository, the report stated the threshold of the repository on this machine, though the
    server applied another (its own images.csv showed REFER at a score under the stated threshold)."""
    from dataclasses import replace

    from dermassist.evaluation.markdown import run_markdown
    from dermassist.evaluation.service import stated_settings_problem
    from tests.support.dicom_checks import synthetic_result

    bare = synthetic_result((600, 450))
    run = {"started_utc": "2026-12-06T16:00:00+00:00", "server": "10.0.0.5:8001", "repository": "alt",
           "refer_threshold": 0.2, "refer_when_not_assessable": True, "build": "sha256:aaaaaaaaaaaaaaaa"}
    low = replace(bare, refer=True, refer_score=0.098, assessable=True)  # referred under 0.2: another threshold
    high = replace(bare, refer=True, refer_score=0.5, assessable=True)
    unassessable = replace(bare, refer=True, refer_score=0.01, assessable=False)  # referred for being not assessable
    assert stated_settings_problem(run, [high, unassessable]) is None
    assert stated_settings_problem({**run, "refer_when_not_assessable": False}, [unassessable]) is not None
    problem = stated_settings_problem(run, [high, low])
    assert problem == ("1 of 2 answers' REFER disagree with repository `alt`'s threshold 0.200 (e.g. REFER true at score "
                       "0.098): the server applies other triage settings")
    served = replace(high, model_build="sha256:bbbbbbbbbbbbbbbb")
    assert "is build `sha256:aaaaaaaaaaaaaaaa`, but the answers came from `sha256:bbbbbbbbbbbbbbbb`" in \
        stated_settings_problem(run, [served])
    assert stated_settings_problem({**run, "refer_threshold": None}, [low]) is None  # nothing stated, nothing to check
    text = run_markdown({"run": {**run, "repository": None, "refer_threshold": None, "repository_not_served": problem},
                         "model": {}})[0]
    assert f"REFER threshold: **unknown** to this report: {problem}; pass --repository" in text
    assert "0.200" not in text.replace(problem, "")


def test_the_report_gives_the_assessable_images_figures_and_the_referral_scores_ranking(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Accuracy counted the images whose top class the service withholds, unsaid; the melanoma ROC was read as the
    referral's. Here P3 (NV, answered NV) is not assessable: on the two assessable images accuracy is 1/2 (P2, a
    nevus called MEL, is wrong), on all three 2/3; REFER_SCORE ranks the one malignant image (the melanoma) above
    both benign ones: AUC 1."""
    import contextlib
    import dataclasses

    from dermassist.evaluation import run as evaluation
    from tests.support.dicom_checks import synthetic_result

    tops = {"P1": ("MEL", 0.9, True), "P2": ("MEL", 0.6, True), "P3": ("NV", 0.05, False)}

    def answered(url, paths, timeout_s, with_crop=False, options=None, answers=None):
        answers = evaluation.Answers() if answers is None else answers
        for path in paths:
            top, score, assessable = tops[Path(path).stem]
            answers.paths.append(path)
            answers.results.append(dataclasses.replace(synthetic_result((60, 45), top=top, assessable=assessable),
                                                       refer=score >= 0.066 or not assessable, refer_score=score))
        return answers

    monkeypatch.setattr(evaluation, "service", lambda config: contextlib.nullcontext("stand-in:1"))
    monkeypatch.setattr(evaluation, "analyse", answered)
    data = ham_site(tmp_path / "site", {"P1": "mel", "P2": "nv", "P3": "nv"})
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))
    assert report["classification"]["accuracy"] == pytest.approx(2 / 3)
    assert report["classification"]["assessable_only"] == {"images": 2, "accuracy": 0.5, "balanced_accuracy": 0.5}
    assert report["triage"]["refer_score_auc"] == 1.0
    text = (tmp_path / "r" / "site" / "report.md").read_text()
    assert ("the 1 not assessable among them too (the service withholds their top class from a clinician); on the 2 "
            "assessable images alone: accuracy 0.500, balanced accuracy 0.500.") in text
    assert "REFER_SCORE ranks the malignant images above the benign ones with ROC AUC 1.000" in text
    assert "Melanoma ROC of P(MEL) (the ranking, not the referral)" in text


def test_a_picture_stored_under_two_names_is_counted_once_and_the_copy_named(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Byte-identical files under two names counted twice, with nothing said (and the intervals took them as two
    lesions). Under two labels, one label is wrong: neither counts, and the run exits 3 as for any left out."""
    from dermassist.evaluation import run as evaluation

    stand_in(monkeypatch, {"P1": "MEL"})
    data = ham_site(tmp_path / "site", {"P1": "mel", "P2": "nv", "P3": "mel", "P4": "bkl", "P5": "nv"})
    images = data / "HAM10000_images_part_1"
    (images / "P3.jpg").write_bytes((images / "P1.jpg").read_bytes())  # P3 is P1's file, labelled alike
    (images / "P5.jpg").write_bytes((images / "P4.jpg").read_bytes())  # P5 is P4's file, labelled otherwise
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))
    assert report["answered"] == 2 and report["classification"]["images"] == 2  # P1 and P2
    assert report["labelled_not_evaluated"]["conflicting_labels"] == 2 and report["labelled_not_evaluated"]["total"] == 2
    rows = read_table(tmp_path / "r" / "site" / "images.csv")
    assert rows["P3"]["status"] == "not evaluated: the same file as HAM10000_images_part_1/P1.jpg: counted once"
    assert rows["P5"]["status"] == ("not evaluated: the same file as HAM10000_images_part_1/P4.jpg (BKL), labelled "
                                    "otherwise: one label is wrong; fix it and run again")
    assert rows["P4"]["status"].startswith("not evaluated: the same file as HAM10000_images_part_1/P5.jpg (NV)")
    text = (tmp_path / "r" / "site" / "report.md").read_text()
    assert ("1 image(s) are the same file as another evaluated image, byte for byte, and were counted once "
            "(HAM10000_images_part_1/P3.jpg (the same file as HAM10000_images_part_1/P1.jpg: counted once))") in text
    assert "2 image(s) are the same file as another labelled otherwise, so one label is wrong and none of them counts" in text


def test_a_training_picture_under_another_name_is_found_by_its_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       shared_data: Path) -> None:
    """The name check missed ten training pictures renamed P001...: the report gave balanced accuracy 0.93 without a
    word. A release picture the classifier trained on, renamed and saved again at another size, is told as such."""
    import json

    from dermassist.base.paths import PROJECT_ROOT
    from dermassist.evaluation import run as evaluation
    from training.release import RELEASE_DIR

    trained = json.loads((RELEASE_DIR / "splits" / "classifier_split.json").read_text())["train"][0]
    picture = cv2.imread(str(PROJECT_ROOT / trained["image"]))
    stand_in(monkeypatch, {})
    data = ham_site(tmp_path / "site", {"P001": "nv", "P002": "mel"})
    cv2.imwrite(str(data / "HAM10000_images_part_1" / "P002.jpg"), cv2.resize(picture, None, fx=1.5, fy=1.5),
                [cv2.IMWRITE_JPEG_QUALITY, 85])
    report = evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r"))
    (found,) = report["seen_by_content"]
    assert (found["image"], found["model"], found["split"], found["as"]) == ("P002", "classifier", "train",
                                                                             trained["image_id"])
    assert found["bits"] <= 12 and report["seen_in_training"] == []  # by name, nothing: P002 is no training name
    text = (tmp_path / "r" / "site" / "report.md").read_text()
    assert ("**Optimistic figures:** 1 of the evaluated pictures are pictures the released classifier was fitted or "
            f"tuned on, under other names (the same picture by its content, resized or saved again or not: "
            f"HAM10000_images_part_1/P002.jpg is {trained['image_id']} of its train split)") in text


def test_a_partial_report_states_no_threshold_its_answers_contradict(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the complete report checked the repository against the answers: a PARTIAL one said "in force"."""
    import json

    from dermassist.base.repository import stage_repository, tuned_file
    from dermassist.evaluation import run as evaluation
    from preprocess.contract import TRIAGE_MODEL

    repository = stage_repository(tmp_path / "repository")
    tuned_file(repository, TRIAGE_MODEL).parent.mkdir(parents=True, exist_ok=True)
    tuned_file(repository, TRIAGE_MODEL).write_text(json.dumps({"values": {"refer_threshold": 0.95}}))
    stand_in(monkeypatch, {"P1": "MEL"}, stop_after=1, stop=KeyboardInterrupt())  # P1 referred at 0.9 < 0.95
    data = ham_site(tmp_path / "site", {"P1": "mel", "P2": "nv"})
    with pytest.raises(KeyboardInterrupt):
        evaluation.evaluate(evaluation.EvaluationConfig(data=data, out=tmp_path / "r", url="10.0.0.5:8001",
                                                        repository=repository))
    text = (tmp_path / "r" / "site" / "report.md").read_text()
    assert text.startswith("# PARTIAL") and "REFER threshold: **unknown** to this report: 1 of 1 answers' REFER" in text
    assert "0.950" not in text.split("REFER threshold")[0] and "in force" not in text


def test_a_split_the_manifest_lacks_is_refused_naming_the_splits_it_holds(tmp_path: Path) -> None:
    """--split tset was told "has no split 'tset' of image ids ('tset')", not which splits there are."""
    import json

    from dermassist.evaluation import EvaluationConfig
    from dermassist.evaluation.selection import read_selection

    manifest = tmp_path / "classifier_split.json"
    manifest.write_text(json.dumps({"train": [{"image_id": "P1"}], "val": [], "test": [{"image_id": "P2"}], "seed": 0}))
    data = ham_site(tmp_path / "site", {"P1": "mel", "P2": "nv"})
    with pytest.raises(EvaluationError, match=r"has no split 'tset'; it holds 'test', 'train', 'val': pass --split with "
                                              "one of them"):
        read_selection(EvaluationConfig(data=data, out=tmp_path / "out", split_manifest=manifest, split="tset"))
    _, samples, _, _ = read_selection(EvaluationConfig(data=data, out=tmp_path / "out", split_manifest=manifest,
                                                       split="test"))
    assert [s.image_id for s in samples] == ["P2"]


def test_an_edited_manifest_is_refused_or_its_mismatches_counted_and_said(tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    """An image in two splits had been scored as test, a row naming no image dropped without a count, and a label
    that differs from the folder's used without comment (training input audit, finding 8). Rows of a pooled manifest's
    other source (their paths outside this folder) are not this folder's to count."""
    import json
    import logging

    from dermassist.evaluation import EvaluationConfig
    from dermassist.evaluation.selection import read_selection

    data = ham_site(tmp_path / "site", {"P1": "mel", "P2": "nv", "P3": "bcc"})
    manifest = tmp_path / "classifier_split.json"

    def selection(splits: dict) -> tuple[list, dict]:
        manifest.write_text(json.dumps(splits))
        _, samples, not_evaluated, _ = read_selection(EvaluationConfig(data=data, out=tmp_path / "out",
                                                                       split_manifest=manifest, split="test"))
        return samples, not_evaluated

    with pytest.raises(EvaluationError, match=r"1 image\(s\) of split 'test' are in split 'train' too \(e.g. P1\), so "
                                              "the test figures would include pictures the models were trained on"):
        selection({"train": [{"image_id": "P1"}], "test": [{"image_id": "P1"}, {"image_id": "P2"}]})
    with caplog.at_level(logging.WARNING):
        samples, not_evaluated = selection({"train": [{"image_id": "P3"}], "test": [
            {"image_id": "P1", "label": "NV", "image": str(data / "P1.jpg")},
            {"image_id": "P2", "label": "NV"},
            {"image_id": "P9", "image": str(data / "P9.jpg")},  # edited in: no such image
            {"image_id": "IMD002", "image": "../shared/data/ph2/PH2Dataset/IMD002.jpg"}]})  # a pooled source's
    assert [s.image_id for s in samples] == ["P1", "P2"]
    assert not_evaluated["manifest_rows_not_found"] == ["P9"]
    assert not_evaluated["manifest_label_differs"] == [{"image": "P1", "manifest": "NV", "data": "MEL"}]
    assert "1 image id(s) of the split manifest name no image read from" in caplog.text
    text = " ".join(_not_evaluated_text(not_evaluated).split())
    assert "1 image id(s) of the split manifest name no image read from this folder (P9)" in text
    assert "1 image(s) are labelled otherwise in the split manifest; the figures use the folder's labels (P1: NV there, " \
           "MEL here)" in text


def _not_evaluated_text(not_evaluated: dict) -> str:
    from dermassist.evaluation.markdown import _not_evaluated_markdown

    return "\n".join(_not_evaluated_markdown(not_evaluated))


@pytest.mark.parametrize("name", ["data", "elsewhere"])
def test_a_pooled_manifests_other_source_is_never_counted_wherever_or_however_named_the_folder_lies(
        shared_data: Path, tmp_path: Path, name: str) -> None:
    """The rows' owner had been told by the folder's name: a PH2 folder reached as `data` counted the 159 ISIC 2018
    rows of the released manifest as not found (review 16, finding 6)."""
    from dermassist.evaluation import EvaluationConfig
    from dermassist.evaluation.selection import read_selection
    from training.release import RELEASE_DIR

    (tmp_path / name).symlink_to((shared_data / "ph2").resolve())
    _, samples, not_evaluated, _ = read_selection(EvaluationConfig(
        data=tmp_path / name, out=tmp_path / "out", split_manifest=RELEASE_DIR / "splits" / "classifier_split.json",
        split="test"))
    assert len(samples) == 30 and not_evaluated["manifest_rows_not_found"] == []
    assert not_evaluated["manifest_label_differs"] == []


def test_the_rows_of_a_missing_sub_folder_are_still_the_folders_own(tmp_path: Path) -> None:
    """The folder had been told by the common parent of the rows read: with every image read from one sub-folder,
    the rows of a missing sibling (an unfinished download) were not counted (review 17, finding 4)."""
    from types import SimpleNamespace

    from dermassist.evaluation.selection import manifest_mismatches

    data = tmp_path / "ham10000"
    (data / "HAM10000_images_part_1").mkdir(parents=True)
    rows, samples = {}, []
    for i in range(6):
        part = 1 if i < 3 else 2
        rows[f"ISIC_{i}"] = {"image": f"../shared/data/ham10000/HAM10000_images_part_{part}/ISIC_{i}.jpg", "label": "NV"}
        if part == 1:
            (data / "HAM10000_images_part_1" / f"ISIC_{i}.jpg").write_bytes(b"")
            samples.append(SimpleNamespace(image_id=f"ISIC_{i}", code="NV",
                                           image_path=data / "HAM10000_images_part_1" / f"ISIC_{i}.jpg"))
    rows["IMD002"] = {"image": "../shared/data/ph2/PH2Dataset/IMD002.jpg", "label": "NV"}  # another source's
    found = manifest_mismatches(rows, samples, data, [], {})
    assert found["manifest_rows_not_found"] == ["ISIC_3", "ISIC_4", "ISIC_5"]
