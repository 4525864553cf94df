"""Reader label mappings and layout variants on tiny folders written here: what the real samples never exercise
(upper-case codes, empty one-hot cells, the other ISIC years and splits, PH2's variants)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from training.errors import MissingImageError, UnknownLabelError
from training.readers import read_dataset
from training.readers.common import hot_columns
from training.readers.isic2019 import read_isic2019, read_isic2019_labels
from training.readers.ph2 import PH2_DIR, PH2_IMAGES, PH2_XLSX, read_diagnoses, read_ph2

HEADER_2019 = "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK"


def _image(path: Path, size: tuple[int, int] = (8, 6)) -> Path:
    """A tiny grey image (width, height) at ``path``, parents made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((size[1], size[0], 3), 128, np.uint8))
    return path


def _mask(path: Path, size: tuple[int, int] = (8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((size[1], size[0]), np.uint8))
    return path


def test_ham_reads_dx_in_any_case_and_refines_only_akiec_by_the_isic2019_csv_beside_it(tmp_path: Path) -> None:
    for i in (1, 2, 3):
        _image(tmp_path / "HAM10000_images_part_1" / f"ISIC_000000{i}.jpg")
    _image(tmp_path / "thumbnails" / "ISIC_0000001.jpg")  # not a HAM10000_images* folder: not read (no duplicate)
    (tmp_path / "HAM10000_metadata.csv").write_text(
        "lesion_id,image_id,dx,dx_type,age,sex,localization\n"
        "HAM_1,ISIC_0000001,MEL ,histo,50,male,back\n"  # upper case and a stray space: still mel -> MEL
        "HAM_2,ISIC_0000002,akiec,histo,60,female,face\n"  # akiec: the ISIC 2019 row says SCC
        "HAM_3,ISIC_0000003,nv,histo,30,male,back\n")  # nv: an ISIC 2019 row saying MEL must NOT replace it
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_text(
        f"{HEADER_2019}\nISIC_0000002,0,0,0,0,0,0,0,1,0\nISIC_0000003,1,0,0,0,0,0,0,0,0\n")
    ds = read_dataset(tmp_path)  # the HAM metadata decides the layout; the ISIC 2019 CSV only refines akiec
    assert ds.name == "ham10000"
    assert {s.image_id: s.code for s in ds.samples} == {"ISIC_0000001": "MEL", "ISIC_0000002": "SCC",
                                                         "ISIC_0000003": "NV"}


def test_isic2019_empty_cells_count_as_zero_and_lesion_ids_come_from_the_metadata(tmp_path: Path) -> None:
    _image(tmp_path / "ISIC_2019_Training_Input" / "ISIC_0000001.jpg")
    _image(tmp_path / "ISIC_2019_Training_Input" / "ISIC_0000002.jpg")
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_text(
        f"{HEADER_2019}\nISIC_0000001,,1,,,,,,,\nISIC_0000002,0,0,0,0,0,0,0,1,0\n")  # row 1: only NV set
    (tmp_path / "ISIC_2019_Training_Metadata.csv").write_text(
        "image,age_approx,lesion_id\nISIC_0000001,50,BCN_0001\nISIC_0000002,40,\n")
    ds = read_isic2019(tmp_path)
    assert [(s.image_id, s.code, s.lesion_id) for s in ds.samples] == [
        ("ISIC_0000001", "NV", "BCN_0001"), ("ISIC_0000002", "SCC", None)]


def test_hot_columns_set_at_one_half_and_above() -> None:
    row = {"MEL": "0.5", "NV": "0.49", "BCC": ""}
    assert hot_columns(row, ("MEL", "NV", "BCC"), Path("gt.csv"), 2) == ["MEL"]


def test_isic2019_row_with_unk_and_a_class_is_refused_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "gt.csv").write_text(f"{HEADER_2019}\nISIC_0000001,1,0,0,0,0,0,0,0,1\n")
    with pytest.raises(UnknownLabelError, match=r"exactly one class set to 1, got \['MEL', 'UNK'\]"):
        read_isic2019_labels(tmp_path / "gt.csv")


@pytest.mark.parametrize("header", ["image,MEL,NV,FOO", "image,UNK", "name,MEL,NV"],
                         ids=["unknown column", "no class column", "no image column"])
def test_isic2019_columns_outside_the_contract_are_refused(tmp_path: Path, header: str) -> None:
    (tmp_path / "gt.csv").write_text(f"{header}\nISIC_0000001,1,0,0\n")
    with pytest.raises(UnknownLabelError, match="do not match the contract"):
        read_isic2019_labels(tmp_path / "gt.csv")


def test_isic2017_part3_labels_melanoma_first_then_keratosis_else_nevus(tmp_path: Path) -> None:
    ids = [f"ISIC_000000{i}" for i in range(4)]
    for i in ids:
        _image(tmp_path / "ISIC-2017_Training_Data" / f"{i}.jpg")
        _mask(tmp_path / "ISIC-2017_Training_Part1_GroundTruth" / f"{i}_segmentation.png")
    (tmp_path / "ISIC-2017_Training_Part3_GroundTruth.csv").write_text(
        "image_id,melanoma,seborrheic_keratosis\n"
        f"{ids[0]},0.5,0.0\n{ids[1]},0.0,1.0\n{ids[2]},0.0,0.0\n{ids[3]},1.0,1.0\n")
    ds = read_dataset(tmp_path)
    # melanoma (>= 0.5) -> MEL, keratosis -> BKL, neither -> NV; both set: melanoma wins (it is checked first)
    assert ds.name == "isic2017"
    assert [s.code for s in ds.splits["train"]] == ["MEL", "BKL", "NV", "MEL"]


def test_isic2016_layout_reads_its_splits_and_capitalised_masks_and_skips_other_files(tmp_path: Path) -> None:
    for split, ids in (("Training", ["ISIC_0000001", "ISIC_0000002"]), ("Test", ["ISIC_0000009"])):
        for i in ids:
            _image(tmp_path / f"ISBI2016_ISIC_Part1_{split}_Data" / f"{i}.jpg")
            _mask(tmp_path / f"ISBI2016_ISIC_Part1_{split}_GroundTruth" / f"{i}_Segmentation.png")
    _image(tmp_path / "ISBI2016_ISIC_Part1_Training_Data" / "ISIC_0000001_superpixels.png")  # not an image id
    (tmp_path / "ISBI2016_ISIC_Part1_Validation_Data").mkdir()  # an empty split is no split
    (tmp_path / "ISBI2016_ISIC_Part1_Validation_GroundTruth").mkdir()
    ds = read_dataset(tmp_path)
    assert ds.name == "isic2016"
    assert {k: [s.image_id for s in v] for k, v in ds.splits.items()} == {
        "train": ["ISIC_0000001", "ISIC_0000002"], "test": ["ISIC_0000009"]}
    assert all(s.mask_path is not None and s.mask_path.name == f"{s.image_id}_Segmentation.png" for s in ds.samples)


def test_task3_pools_every_split_with_its_ground_truth_in_or_beside_its_folder(tmp_path: Path) -> None:
    header = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"
    _image(tmp_path / "ISIC2018_Task3_Training_Input" / "ISIC_0000001.jpg")
    _image(tmp_path / "ISIC2018_Task3_Training_Input" / "ISIC_0000002.jpg")  # no row: counted, left out
    gt = tmp_path / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv"
    gt.parent.mkdir()
    gt.write_text(f"{header}\nISIC_0000001,0,0,0,1,0,0,0\n")  # inside its GroundTruth folder
    _image(tmp_path / "ISIC2018_Task3_Validation_Input" / "ISIC_0000003.jpg")
    _image(tmp_path / "ISIC2018_Task3_Validation_Input" / "ISIC_0000004.jpg")  # no row either
    (tmp_path / "ISIC2018_Task3_Validation_GroundTruth.csv").write_text(f"{header}\nISIC_0000003,1,0,0,0,0,0,0\n")
    ds = read_dataset(tmp_path)
    # both splits pooled (the project splits itself): AKIEC -> AK and MEL; 1 + 1 unlabelled images
    assert ds.name == "isic2018_task3" and ds.skipped_unlabelled == 2
    assert [(s.image_id, s.code) for s in ds.samples] == [("ISIC_0000001", "AK"), ("ISIC_0000003", "MEL")]


def _ph2_case(folder: Path, name: str, suffix: str = ".bmp", mask: bool = True) -> None:
    _image(folder / PH2_IMAGES / name / f"{name}_Dermoscopic_Image" / f"{name}{suffix}")
    if mask:
        _mask(folder / PH2_IMAGES / name / f"{name}_lesion" / f"{name}_lesion.bmp")


def _ph2_xlsx(path: Path, rows: list[list[str | None]]) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Image Name", "Histological Diagnosis", "Common Nevus", "Atypical Nevus", "Melanoma"])
    for row in rows:
        sheet.append(row)
    book.save(path)


def test_ph2_read_from_its_own_folder_with_a_png_image_lower_case_marks_and_a_blank_row(tmp_path: Path) -> None:
    folder = tmp_path / PH2_DIR
    _ph2_case(folder, "IMD002", ".png")
    _ph2_case(folder, "IMD003")
    _ph2_xlsx(folder / PH2_XLSX, [["IMD002", None, None, "x", None], [None, None, None, None, None],
                                  ["IMD003", "Melanoma", None, None, "X"]])
    ds = read_ph2(folder)  # the PH2Dataset folder itself, not its parent
    assert [(s.image_id, s.code, s.stratum, s.image_path.suffix) for s in ds.samples] == [
        ("IMD002", "NV", "atypical_nevus", ".png"), ("IMD003", "MEL", "melanoma", ".bmp")]


def test_ph2_case_without_its_lesion_mask_names_the_mask(tmp_path: Path) -> None:
    folder = tmp_path / PH2_DIR
    _ph2_case(folder, "IMD002", mask=False)
    _ph2_xlsx(folder / PH2_XLSX, [["IMD002", None, "X", None, None]])
    with pytest.raises(MissingImageError, match="lists IMD002 but its lesion mask is absent"):
        read_ph2(tmp_path)


def test_ph2_text_file_skips_rows_that_name_no_image(tmp_path: Path) -> None:
    (tmp_path / "PH2_dataset.txt").write_text("\n".join([
        "||   Name   ||  Colours  ||",  # a table without the diagnosis column is not the header
        "||   Name   ||  Histological Diagnosis  ||  Clinical Diagnosis  ||",
        "||  IMD002  ||                          ||          1           ||",
        "||  Legend  ||                          ||                      ||",  # not IMD + 3 digits: not a case
    ]) + "\n")
    assert read_diagnoses(tmp_path)[1] == {"IMD002": "Atypical Nevus"}


def test_list_images_skips_hidden_files_in_subfolders(tmp_path: Path) -> None:
    from training.readers.common import list_images

    _image(tmp_path / "clinic_b" / "P002.png")
    (tmp_path / "clinic_b" / "._P002.png").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork beside it
    assert list_images(tmp_path, any_name=True) == {"P002": tmp_path / "clinic_b" / "P002.png"}
