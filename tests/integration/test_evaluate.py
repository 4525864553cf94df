"""``dermassist evaluate`` through the served ensemble (tiny models) on real HAM10000 images with masks."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dermassist.evaluation import EvaluationConfig, evaluate
from preprocess.contract import CLASS_CODES
from tests.conftest import PROJECT_ROOT, SHARED_DATA
from tests.support.ham import ham_rows, write_ham_metadata

pytestmark = pytest.mark.integration
HAM = SHARED_DATA / "ham10000_sample"


@pytest.fixture(scope="module")
def small_ham(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve HAM10000 sample images (the five with masks among them) in the HAM layout."""
    root = tmp_path_factory.mktemp("ham")
    rows = ham_rows(HAM)
    masked = {p.name.split("_segmentation")[0] for p in (HAM / "HAM10000_segmentations_lesion_tschandl").iterdir()}
    write_ham_metadata(root, [r for r in rows if r["image_id"] in masked] + [r for r in rows if r["image_id"] not in masked][:7])
    for folder in ("HAM10000_images_part_1", "HAM10000_segmentations_lesion_tschandl"):
        (root / folder).symlink_to(HAM / folder)
    return root


@pytest.fixture(scope="module")
def ood_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ood")
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "noise_000.png"), rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "plain_000.png"), np.full((300, 400, 3), 90, np.uint8))
    return folder


def test_report_figures_equal_the_answers_a_client_gets(triton_server, small_ham: Path, ood_folder: Path,
                                                        tmp_path: Path) -> None:
    from dermassist_client import DermAssistClient
    from training.readers import read_dataset

    url = triton_server.config.grpc_address
    report = evaluate(EvaluationConfig(data=small_ham, name="small", out=tmp_path, url=url, ood=ood_folder))
    assert report["images"] == report["answered"] == 12 and not report["refused"]
    samples = read_dataset(small_ham).samples
    with DermAssistClient(url) as client:
        answers = client.analyze_batch([s.image_path for s in samples])
    labels = np.array([s.label for s in samples])
    predicted = np.array([CLASS_CODES.index(a.top_class.code) for a in answers])
    assert report["classification"]["accuracy"] == pytest.approx(float((labels == predicted).mean()))
    refer = np.array([a.refer for a in answers])
    mel = labels == CLASS_CODES.index("MEL")
    assert report["triage"]["melanoma_sensitivity"] == pytest.approx(float(refer[mel].mean()))
    assert report["segmentation"]["images"] == 5 and 0 <= report["segmentation"]["jaccard"] <= 1
    assert report["ood"]["images"] == 2 and 0 <= report["ood"]["auroc"] <= 1
    folder = tmp_path / "small"
    for name in ("report.md", "report.json", "confusion.png", "per_class_recall.png", "reliability.png", "ood_scores.png"):
        assert (folder / name).stat().st_size > 100, name
    assert json.loads((folder / "report.json").read_text())["classification"]["images"] == 12
    assert "HAM10000" in (folder / "report.md").read_text()
    with open(folder / "images.csv", newline="") as f:
        listed = list(csv.DictReader(f))
    # the image folder holds all 75 sample images; the 63 no label row of this CSV names are listed as not evaluated
    unlabelled = [r for r in listed if r["status"] == "not evaluated: on disk but no label row names it"]
    assert len(unlabelled) == 75 - 12 and not any(r["truth"] or r["predicted"] for r in unlabelled)
    table = [r for r in listed if r not in unlabelled]
    assert [r["set"] for r in table] == ["evaluated"] * 12 + ["out_of_distribution"] * 2
    by_id = {r["image"]: r for r in table}
    for sample, answer in zip(samples, answers):
        row = by_id[sample.image_id]
        assert row["path"] == str(sample.image_path.relative_to(small_ham))
        assert (row["truth"], row["predicted"], row["refer"]) == (sample.code, answer.top_class.code, str(answer.refer))
        assert float(row["refer_score"]) == pytest.approx(answer.refer_score)
    missed = [s.image_id for s, a in sorted(zip(samples, answers), key=lambda p: p[1].refer_score)
              if s.code == "MEL" and not a.refer]
    assert [e["image"] for e in report["review"]["melanomas_not_referred"]] == missed
    assert f"Melanomas REFER did not refer: {len(missed) or 'none'}." in (folder / "report.md").read_text()


def test_evaluate_command_with_a_split_manifest(triton_server, small_ham: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "split.json"
    manifest.write_text(json.dumps({"test": [{"image_id": "ISIC_0024311"}, {"image_id": "ISIC_0024354"}]}))
    done = subprocess.run(
        [sys.executable, "-m", "dermassist.cli", "evaluate", "--data", str(small_ham), "--url",
         triton_server.config.grpc_address, "--split-manifest", str(manifest), "--out", str(tmp_path / "reports")],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "reports" / f"{small_ham.name}_test" / "report.json").read_text())
    assert report["images"] == 2 and report["split"] == "test"
    assert report["run"]["server"] == triton_server.config.grpc_address and report["run"]["refer_threshold"] is None
    bad = subprocess.run([sys.executable, "-m", "dermassist.cli", "evaluate", "--data", str(tmp_path / "none")],
                         capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert bad.returncode == 2 and "is not a folder" in bad.stderr


def test_a_file_that_is_no_image_is_refused_and_listed_with_its_label(triton_server, tmp_path: Path) -> None:
    rows = ham_rows(HAM)[:3]
    write_ham_metadata(tmp_path / "ham", rows)
    images = tmp_path / "ham" / "HAM10000_images_part_1"
    images.mkdir()
    for row in rows[:2]:
        (images / f"{row['image_id']}.jpg").symlink_to(HAM / "HAM10000_images_part_1" / f"{row['image_id']}.jpg")
    (images / f"{rows[2]['image_id']}.jpg").write_bytes(b"not a jpeg")
    report = evaluate(EvaluationConfig(data=tmp_path / "ham", name="bad", out=tmp_path / "out",
                                       url=triton_server.config.grpc_address))
    assert report["images"] == 3 and report["answered"] == 2 and len(report["refused"]) == 1
    assert report["labelled_not_evaluated"] == {"absent_on_disk": 0, "not_accepted_format": 0, "refused": 1,
                                                "conflicting_labels": 0, "total": 1}
    text = (tmp_path / "out" / "bad" / "report.md").read_text()
    assert f"{rows[2]['image_id']}.jpg` (truth {report['refused_truth'][report['refused'][0][0]]}): " in text
    with open(tmp_path / "out" / "bad" / "images.csv", newline="") as f:
        table = list(csv.DictReader(f))
    refused = [r for r in table if r["status"] != "answered"]
    assert len(table) == 3 and [r["image"] for r in refused] == [rows[2]["image_id"]]
    assert refused[0]["status"].startswith("refused: ") and "is not an image" in refused[0]["status"]
    from training.readers import read_dataset

    label = {s.image_id: s.code for s in read_dataset(tmp_path / "ham").samples}[rows[2]["image_id"]]
    assert refused[0]["truth"] == label and label


def test_what_the_labels_name_but_the_figures_do_not_cover_is_said_at_the_top(triton_server, tmp_path: Path) -> None:
    """A site's CSV (saved by a spreadsheet, with its byte-order mark) lists an image it forgot to copy and one twice."""
    rows = ham_rows(HAM)[:3]
    absent = {**rows[0], "image_id": "ISIC_0099999"}
    path = write_ham_metadata(tmp_path / "site", [*rows, rows[1], absent])
    path.write_text("\ufeff" + path.read_text(), encoding="utf-8")
    images = tmp_path / "site" / "HAM10000_images_part_1"
    (images / "clinic_b").mkdir(parents=True)
    for row, where in zip(rows, (images, images, images / "clinic_b")):  # one in a subfolder
        (where / f"{row['image_id']}.jpg").symlink_to(HAM / "HAM10000_images_part_1" / f"{row['image_id']}.jpg")
    report = evaluate(EvaluationConfig(data=tmp_path / "site", out=tmp_path / "out",
                                       url=triton_server.config.grpc_address))
    assert report["images"] == report["answered"] == 3  # each image once, the subfolder's too
    assert report["not_evaluated"]["absent_on_disk"] == ["ISIC_0099999"]
    assert report["not_evaluated"]["listed_again"] == [rows[1]["image_id"]]
    text = (tmp_path / "out" / "site" / "report.md").read_text()
    assert "**Not in these figures:** 1 image(s) listed in the labels are not on disk and were not evaluated " \
           "(ISIC_0099999" in text and "1 image(s) listed twice with the same label were evaluated once" in text
    with open(tmp_path / "out" / "site" / "images.csv", newline="") as f:
        table = {r["image"]: r for r in csv.DictReader(f)}
    assert table["ISIC_0099999"]["status"] == "not evaluated: listed in the labels but absent on disk"
    assert table["ISIC_0099999"]["truth"] == table[rows[0]["image_id"]]["truth"] != ""  # its row's diagnosis kept
    assert len(table) == 4
