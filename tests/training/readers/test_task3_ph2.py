"""ISIC 2018 Task 3 and PH2 readers on the real shared folders and on broken copies of them."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from training.errors import DuplicateImageError, MissingFolderError, MissingImageError, SplitError, UnknownLabelError
from training.readers import read_dataset
from training.readers.isic_task3 import read_isic_task3, read_task3_labels
from training.readers.ph2 import PH2_DIR, PH2_IMAGES, PH2_XLSX, read_diagnoses, read_ph2
from training.splits import SplitConfig, split_samples

TASK3_CSV = "ISIC2018_Task3_Test_GroundTruth.csv"
TASK3_INPUT = "ISIC2018_Task3_Test_Input"


def test_task3_real_folder_maps_akiec_to_ak_and_reads_every_image(shared_data: Path) -> None:
    ds = read_dataset(shared_data / "isic2018_task3")
    assert ds.name == "isic2018_task3" and len(ds.samples) == 1058 and ds.skipped_unlabelled == 0
    assert ds.class_counts() == {"AK": 30, "BCC": 65, "DF": 31, "MEL": 120, "NV": 635, "BKL": 152, "SCC": 0, "VASC": 25}
    assert all(s.source == "isic2018_task3" and s.mask_path is None and s.image_path.is_file() for s in ds.samples)


def test_task3_split_is_stratified_70_15_15_and_seeded(shared_data: Path) -> None:
    ds = read_dataset(shared_data / "isic2018_task3")
    splits = split_samples(ds.samples, SplitConfig(val=0.15, test=0.15, seed=0))
    sizes = {k: len(v) for k, v in splits.items()}
    assert sum(sizes.values()) == 1058 and abs(sizes["train"] / 1058 - 0.70) < 0.02
    for split in ("val", "test"):
        counts = Counter(s.code for s in splits[split])
        assert set(counts) == {"AK", "BCC", "DF", "MEL", "NV", "BKL", "VASC"}  # every class in every split
        assert abs(counts["MEL"] - 18) <= 1
    ids = [{s.image_id for s in v} for v in splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    again = split_samples(ds.samples, SplitConfig(val=0.15, test=0.15, seed=0))
    assert [s.image_id for s in again["test"]] == [s.image_id for s in splits["test"]]


def _task3_copy(shared_data: Path, tmp_path: Path, rows: list[str] | None = None, header: str | None = None) -> Path:
    src = shared_data / "isic2018_task3"
    (tmp_path / TASK3_INPUT).symlink_to(src / TASK3_INPUT)
    lines = (src / TASK3_CSV).read_text().splitlines()
    head, body = lines[0], lines[1:]
    (tmp_path / TASK3_CSV).write_text("\n".join([header or head, *(rows if rows is not None else body)]) + "\n")
    return tmp_path


def test_task3_missing_column_names_the_file_and_the_expected_columns(shared_data: Path, tmp_path: Path) -> None:
    root = _task3_copy(shared_data, tmp_path, header="image,MEL,NV,BCC,BKL,DF,VASC")
    with pytest.raises(UnknownLabelError, match=r"columns \['AKIEC'\] are missing.*expected image,MEL,NV,BCC,AKIEC"):
        read_isic_task3(root)


def test_task3_listed_image_that_is_not_there_is_an_error_with_the_fix(shared_data: Path, tmp_path: Path) -> None:
    body = (shared_data / "isic2018_task3" / TASK3_CSV).read_text().splitlines()[1:6]
    root = _task3_copy(shared_data, tmp_path, rows=[*body, "ISIC_0099999,1.0,0.0,0.0,0.0,0.0,0.0,0.0"])
    with pytest.raises(MissingImageError, match=r"lists 1 image\(s\) absent.*ISIC_0099999.jpg.*copy the missing images"):
        read_isic_task3(root)


def test_task3_row_without_a_diagnosis_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "gt.csv"
    path.write_text("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_0000001,0,0,0,0,0,0,0\n")
    with pytest.raises(UnknownLabelError, match=r"line 2 \(ISIC_0000001\): expected exactly one.*got none"):
        read_task3_labels(path)


def test_task3_images_without_a_row_are_counted_not_silently_dropped(shared_data: Path, tmp_path: Path) -> None:
    body = (shared_data / "isic2018_task3" / TASK3_CSV).read_text().splitlines()[1:11]
    ds = read_isic_task3(_task3_copy(shared_data, tmp_path, rows=body))
    assert len(ds.samples) == 10 and ds.skipped_unlabelled == 1048
    assert ds.report()["skipped_unlabelled"] == 1048


def test_task3_input_without_ground_truth_is_an_error(shared_data: Path, tmp_path: Path) -> None:
    (tmp_path / TASK3_INPUT).symlink_to(shared_data / "isic2018_task3" / TASK3_INPUT)
    with pytest.raises(MissingFolderError, match="has no ground truth; expected ISIC2018_Task3_Test_GroundTruth"):
        read_isic_task3(tmp_path)


def test_ph2_real_folder_reads_clinical_diagnosis_masks_and_strata(shared_data: Path) -> None:
    ds = read_dataset(shared_data / "ph2")
    strata = Counter(s.stratum for s in ds.samples)
    # The official xlsx has 199 rows: IMD146's folder has no diagnosis and is counted, not used.
    assert strata == {"common_nevus": 79, "atypical_nevus": 80, "melanoma": 40} and ds.skipped_unlabelled == 1
    assert ds.class_counts()["MEL"] == 40 and ds.class_counts()["NV"] == 159 and ds.has_masks
    assert all(s.image_path.suffix == ".jpg" and s.mask_path.suffix == ".bmp" for s in ds.samples)
    splits = split_samples(ds.samples, SplitConfig(seed=0))
    for split in ("val", "test"):
        assert set(Counter(s.stratum for s in splits[split])) == {"common_nevus", "atypical_nevus", "melanoma"}


def _ph2_copy(shared_data: Path, tmp_path: Path, cases: list[str]) -> Path:
    src = shared_data / "ph2" / PH2_DIR
    folder = tmp_path / PH2_DIR / PH2_IMAGES
    folder.mkdir(parents=True)
    for case in cases:
        (folder / case).symlink_to(src / PH2_IMAGES / case)
    return tmp_path / PH2_DIR


def _write_xlsx(path: Path, header: list[str], rows: list[list[str | None]]) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Legends"])
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    book.save(path)


def test_ph2_xlsx_without_the_diagnosis_columns_is_an_error(shared_data: Path, tmp_path: Path) -> None:
    folder = _ph2_copy(shared_data, tmp_path, ["IMD002"])
    _write_xlsx(folder / PH2_XLSX, ["Image Name", "Histological Diagnosis", "Asymmetry"], [["IMD002", None, "1"]])
    missing = r"diagnosis columns \['Common Nevus', 'Atypical Nevus', 'Melanoma'\] are missing"
    with pytest.raises(UnknownLabelError, match=missing):
        read_ph2(tmp_path)


def test_ph2_row_with_no_diagnosis_marked_is_an_error(shared_data: Path, tmp_path: Path) -> None:
    folder = _ph2_copy(shared_data, tmp_path, ["IMD002"])
    _write_xlsx(folder / PH2_XLSX, ["Image Name", "Common Nevus", "Atypical Nevus", "Melanoma"], [["IMD002", None, None, None]])
    with pytest.raises(UnknownLabelError, match=r"row 3 \(IMD002\): expected exactly one clinical diagnosis marked X"):
        read_ph2(tmp_path)


def test_ph2_listed_image_that_is_not_there_is_an_error(shared_data: Path, tmp_path: Path) -> None:
    folder = _ph2_copy(shared_data, tmp_path, ["IMD002"])
    header = ["Image Name", "Common Nevus", "Atypical Nevus", "Melanoma"]
    _write_xlsx(folder / PH2_XLSX, header, [["IMD002", None, "X", None], ["IMD003", "X", None, None]])
    with pytest.raises(MissingImageError, match="lists IMD003 but its image is absent.*restore the files or remove the row"):
        read_ph2(tmp_path)


def test_ph2_an_image_listed_twice_with_different_diagnoses_is_refused_and_a_same_repeat_read(
        shared_data: Path, tmp_path: Path) -> None:
    """The last of two rows had silently won: an atypical nevus listed again as melanoma trained as MEL (training
    input audit, finding 5)."""
    folder = _ph2_copy(shared_data, tmp_path, ["IMD002", "IMD003"])
    header = ["Image Name", "Common Nevus", "Atypical Nevus", "Melanoma"]
    _write_xlsx(folder / PH2_XLSX, header, [["IMD002", None, "X", None], ["IMD003", "X", None, None],
                                             ["IMD002", None, "X", None]])
    assert read_diagnoses(folder)[1] == {"IMD002": "Atypical Nevus", "IMD003": "Common Nevus"}
    _write_xlsx(folder / PH2_XLSX, header, [["IMD002", None, "X", None], ["IMD003", "X", None, None],
                                             ["IMD002", None, None, "X"]])
    with pytest.raises(DuplicateImageError, match="lines 3 and 5 both list IMD002, with different diagnoses"):
        read_ph2(tmp_path)
    (folder / PH2_XLSX).unlink()
    (folder / "PH2_dataset.txt").write_text("||  Name  ||  Clinical Diagnosis  ||\n||  IMD002  ||  1  ||\n"
                                            "||  IMD003  ||  0  ||\n||  IMD002  ||  2  ||\n")
    with pytest.raises(DuplicateImageError, match="lines 2 and 4 both list IMD002"):
        read_diagnoses(folder)


@pytest.mark.parametrize("content", [b"", b"Image Name;Melanoma\nIMD002;X\n", b"PK\x03\x04truncated"])
def test_ph2_an_xlsx_that_is_no_workbook_is_named_not_a_traceback(shared_data: Path, tmp_path: Path,
                                                                    content: bytes) -> None:
    """An empty, truncated or renamed file had ended in zipfile.BadZipFile (training input audit, finding 6)."""
    folder = _ph2_copy(shared_data, tmp_path, ["IMD002"])
    (folder / PH2_XLSX).write_bytes(content)
    with pytest.raises(UnknownLabelError, match="cannot be read as an xlsx workbook .*expected the official"):
        read_ph2(tmp_path)


def test_ph2_official_text_file_is_read_like_the_xlsx(shared_data: Path, tmp_path: Path) -> None:
    folder = _ph2_copy(shared_data, tmp_path, ["IMD002", "IMD003", "IMD058"])
    lines = [
        "||   Name   ||  Histological Diagnosis  ||  Clinical Diagnosis  ||  Asymmetry  ||",
        "||  IMD002  ||                          ||          1           ||      1      ||",
        "||  IMD003  ||                          ||          0           ||      0      ||",
        "||  IMD058  ||        Melanoma          ||          2           ||      2      ||",
    ]
    (folder / "PH2_dataset.txt").write_text("\n".join(lines) + "\n")
    ds = read_ph2(tmp_path)
    assert {s.image_id: (s.code, s.stratum) for s in ds.samples} == {
        "IMD002": ("NV", "atypical_nevus"), "IMD003": ("NV", "common_nevus"), "IMD058": ("MEL", "melanoma")}
    (folder / "PH2_dataset.txt").write_text("\n".join([*lines[:2], "||  IMD003  ||   ||   5   ||  0  ||"]) + "\n")
    with pytest.raises(UnknownLabelError, match=r"clinical diagnosis '5' is unknown; expected 0 \(common nevus\)"):
        read_diagnoses(folder)


def test_ph2_without_a_diagnosis_file_is_an_error(shared_data: Path, tmp_path: Path) -> None:
    _ph2_copy(shared_data, tmp_path, ["IMD002"])
    with pytest.raises(MissingFolderError, match="has no PH2_dataset.xlsx or PH2_dataset.txt"):
        read_ph2(tmp_path)


def test_ph2_bmp_images_are_accepted_like_the_official_copy(shared_data: Path, tmp_path: Path) -> None:
    import cv2

    src = shared_data / "ph2" / PH2_DIR / PH2_IMAGES / "IMD002"
    case = tmp_path / PH2_DIR / PH2_IMAGES / "IMD002"
    shutil.copytree(src, case)
    jpg = case / "IMD002_Dermoscopic_Image" / "IMD002.jpg"
    cv2.imwrite(str(jpg.with_suffix(".bmp")), cv2.imread(str(jpg)))
    jpg.unlink()
    _write_xlsx(tmp_path / PH2_DIR / PH2_XLSX, ["Image Name", "Common Nevus", "Atypical Nevus", "Melanoma"],
                [["IMD002", None, "X", None]])
    (sample,) = read_ph2(tmp_path).samples
    assert sample.image_path.suffix == ".bmp" and sample.code == "NV"


def test_released_split_manifest_matches_the_data_wherever_it_lies(shared_data: Path) -> None:
    import json

    from training.classifier.run import classification_splits
    from training.release import RELEASE_DIR
    from training.splits import SPLITS, manifest, same_splits

    recorded = json.loads((RELEASE_DIR / "splits" / "classifier_split.json").read_text())
    pooled: dict[str, list] = {k: [] for k in SPLITS}
    for name in ("isic2018_task3", "ph2"):  # read from the absolute path; the release recorded ../shared/data
        for split, samples in classification_splits(read_dataset(shared_data.resolve() / name), seed=0).items():
            pooled[split].extend(samples)
    current = json.loads(json.dumps(manifest(pooled)))
    assert current != recorded and same_splits(current, recorded)
    assert not same_splits(current, {**recorded, "val": recorded["val"][1:]})
    moved = dict(recorded, test=[dict(recorded["test"][0], image_id="ISIC_0000000"), *recorded["test"][1:]])
    assert not same_splits(current, moved)


@pytest.mark.parametrize("val,test", [(0.6, 0.6), (0.5, 0.5), (-0.1, 0.2), (1.0, 0.0)])
def test_split_fractions_that_leave_no_training_set_are_refused(val: float, test: float) -> None:
    with pytest.raises(SplitError, match="sum below 1"):
        SplitConfig(val=val, test=test)
