"""Reader label mappings and layout variants on tiny folders written here: what the real samples never exercise
(upper-case codes, empty one-hot cells, the other ISIC years and splits, PH2's variants)."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from preprocess.contract import CLASS_CODES
from training.errors import DuplicateImageError, MissingImageError, UnknownLabelError
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
        "HAM_3,ISIC_0000003,nv,histo,30,male,back\n")  # nv: an ISIC 2019 row agreeing changes nothing
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_text(
        f"{HEADER_2019}\nISIC_0000002,0,0,0,0,0,0,0,1,0\nISIC_0000003,0,1,0,0,0,0,0,0,0\n")
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


def test_hot_columns_read_1_and_0_in_any_spelling_and_refuse_any_other_value() -> None:
    """A soft or percentage value had counted as set from 0.5 up (training input audit, finding 11)."""
    row = {"MEL": "1.0", "NV": "0", "BCC": "", "AK": " 1,0 ", "BKL": "0,0"}
    assert hot_columns(row, tuple(row), Path("gt.csv"), 2) == ["MEL", "AK"]
    for value in ("0.5", "100", "-1", "inf", "nan", "yes"):
        with pytest.raises(UnknownLabelError, match=f"gt.csv line 2 \\(ISIC_1\\): column MEL holds '{value}'; expected 1 or 0"):
            hot_columns({"image": "ISIC_1", "MEL": value}, ("MEL",), Path("gt.csv"), 2)


def test_isic2019_row_with_unk_and_a_class_is_refused_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "gt.csv").write_text(f"{HEADER_2019}\nISIC_0000001,1,0,0,0,0,0,0,0,1\n")
    with pytest.raises(UnknownLabelError, match=r"exactly one class set to 1, got \['MEL', 'UNK'\]"):
        read_isic2019_labels(tmp_path / "gt.csv")


@pytest.mark.parametrize("header", ["image,UNK,notes", "name,MEL,NV"], ids=["no class column", "no image column"])
def test_isic2019_columns_outside_the_contract_are_refused(tmp_path: Path, header: str) -> None:
    (tmp_path / "gt.csv").write_text(f"{header}\nISIC_0000001,1,0,0\n")
    with pytest.raises(UnknownLabelError, match="do not match the contract"):
        read_isic2019_labels(tmp_path / "gt.csv")


def test_isic2019_columns_that_are_not_classes_are_ignored_as_ham_ignores_them(tmp_path: Path) -> None:
    """A site's notes column was refused ("unexpected ['notes']") where the HAM reader reads past its extra columns."""
    (tmp_path / "gt.csv").write_text(f"{HEADER_2019},notes\nISIC_0000001,0,1,0,0,0,0,0,0,0,seen twice\n"
                                     "ISIC_0000002,0,0,0,0,0,0,0,0,0,1\n")
    with pytest.raises(UnknownLabelError, match=r"line 3 \(ISIC_0000002\): expected exactly one class set to 1, got none "
                                                r"\(columns \['notes'\] are not classes and were ignored\)"):
        read_isic2019_labels(tmp_path / "gt.csv")
    (tmp_path / "gt.csv").write_text(f"{HEADER_2019},notes\nISIC_0000001,0,1,0,0,0,0,0,0,0,seen twice\n")
    assert read_isic2019_labels(tmp_path / "gt.csv")[0] == {"ISIC_0000001": CLASS_CODES.index("NV")}


def test_mask_files_named_otherwise_are_named_in_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """HAM masks saved as <id>_mask.png matched no image, and nothing said so."""
    from training.readers.ham import read_ham

    for i in (1, 2):
        _image(tmp_path / "HAM10000_images_part_1" / f"ISIC_000000{i}.jpg")
        _mask(tmp_path / "HAM10000_segmentations_lesion_tschandl" / f"ISIC_000000{i}_mask.png")
    (tmp_path / "HAM10000_segmentations_lesion_tschandl" / "README.txt").write_text("not an image: not named")
    (tmp_path / "HAM10000_metadata.csv").write_text(
        "lesion_id,image_id,dx\nHAM_1,ISIC_0000001,nv\nHAM_2,ISIC_0000002,mel\n")
    with caplog.at_level(logging.WARNING, logger="training.readers.common"):
        ds = read_ham(tmp_path)
    assert not any(s.mask_path for s in ds.samples)
    assert (f"{tmp_path / 'HAM10000_segmentations_lesion_tschandl'}: 2 of 2 image file(s) are not named "
            "`<image_id>_segmentation.png` and were not read as masks, e.g. ISIC_0000001_mask.png") in caplog.text
    caplog.clear()
    for i in (1, 2):
        (tmp_path / "HAM10000_segmentations_lesion_tschandl" / f"ISIC_000000{i}_mask.png").rename(
            tmp_path / "HAM10000_segmentations_lesion_tschandl" / f"ISIC_000000{i}_segmentation.png")
    with caplog.at_level(logging.WARNING, logger="training.readers.common"):
        assert all(s.mask_path for s in read_ham(tmp_path).samples)
    assert not caplog.records


def _part3_folder(root: Path, ids: list[str], rows: str) -> Path:
    for i in ids:
        _image(root / "ISIC-2017_Training_Data" / f"{i}.jpg")
        _mask(root / "ISIC-2017_Training_Part1_GroundTruth" / f"{i}_segmentation.png")
    (root / "ISIC-2017_Training_Part3_GroundTruth.csv").write_text("image_id,melanoma,seborrheic_keratosis\n" + rows)
    return root


def test_isic2017_part3_labels_melanoma_keratosis_else_nevus_and_repeats_and_absent_rows(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Melanoma -> MEL, keratosis -> BKL, neither -> NV; an id with its extension and a repeat with the same label are
    read; a row whose image is absent is counted (it had been dropped without a word: training input audit, 2)."""
    ids = [f"ISIC_000000{i}" for i in range(3)]
    _part3_folder(tmp_path, ids, f"{ids[0]},1.0,0.0\n{ids[1]}.jpg,0.0,1.0\n{ids[2]},,0\n{ids[0]},1,0\n"
                                 "ISIC_0099999,1.0,0.0\n")
    with caplog.at_level(logging.WARNING, logger="training.readers.isic_seg"):
        ds = read_dataset(tmp_path)
    assert ds.name == "isic2017"
    assert [s.code for s in ds.splits["train"]] == ["MEL", "BKL", "NV"]
    assert ("ISIC-2017_Training_Part3_GroundTruth.csv lists 1 image(s) absent from ISIC-2017_Training_Data, left out, "
            "e.g. ISIC_0099999") in caplog.text


@pytest.mark.parametrize(("rows", "message"), [
    ("ISIC_0000000,1.0,1.0\n", r"line 2 \(ISIC_0000000\): both melanoma and seborrheic_keratosis are 1"),
    ("ISIC_0000000,1.0,0.0\nISIC_0000000,0.0,1.0\n", "lines 2 and 3 both list ISIC_0000000, with different diagnoses"),
    ("ISIC_0000000,0.5,0.0\n", r"line 2 \(ISIC_0000000\): column melanoma holds '0.5'; expected 1 or 0"),
    ("ISIC_0000000,0.0,nan\n", "column seborrheic_keratosis holds 'nan'; expected 1 or 0"),
])
def test_isic2017_part3_conflicting_or_soft_labels_are_refused(tmp_path: Path, rows: str, message: str) -> None:
    """Both marked had trained as MEL, the last of two rows had won, and 0.5 had counted as set (training input
    audit, finding 2)."""
    _part3_folder(tmp_path, ["ISIC_0000000"], rows)
    with pytest.raises((UnknownLabelError, DuplicateImageError), match=message):
        read_dataset(tmp_path)


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


def _turned_jpeg(path: Path, stored: tuple[int, int], orientation: int) -> Path:
    """A JPEG of ``stored`` (width, height) pixels with an EXIF orientation, as a camera held upright writes it."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", stored, (128, 100, 90)).save(path, exif=exif)
    return path


def test_a_mask_in_the_stored_or_the_displayed_frame_of_a_turned_image_is_accepted(tmp_path: Path) -> None:
    from training.errors import MaskMismatchError
    from training.readers.common import check_mask_size

    image = _turned_jpeg(tmp_path / "i.jpg", (60, 40), 6)  # stored 60x40, shown 40x60
    check_mask_size(image, _mask(tmp_path / "stored.png", (60, 40)))
    check_mask_size(image, _mask(tmp_path / "shown.png", (40, 60)))
    with pytest.raises(MaskMismatchError, match=r"is 50x40 but its image i.jpg is 60x40 \(shown 40x60 after its EXIF"):
        check_mask_size(image, _mask(tmp_path / "other.png", (50, 40)))
    plain = _image(tmp_path / "p.jpg", (60, 40))  # no orientation: only its own size
    with pytest.raises(MaskMismatchError, match=r"is 40x60 but its image p.jpg is 60x40; masks"):
        check_mask_size(plain, tmp_path / "shown.png")


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_a_stored_frame_mask_is_turned_as_pil_turns_the_image(orientation: int) -> None:
    """A 2-D mask turns with the image through the decoder's own orientation function."""
    from PIL import Image, ImageOps

    from preprocess.decode import apply_orientation as to_displayed

    stored = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20  # every pixel different: any wrong turn shows
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    assert np.array_equal(to_displayed(stored, orientation), np.asarray(ImageOps.exif_transpose(im)))
    assert to_displayed(stored, 1) is stored


def _site_ham(root: Path, rows: list[str], files: list[str]) -> Path:
    for name in files:
        _image(root / "HAM10000_images_part_1" / name)
    (root / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx,dx_type,age,sex,localization\n"
                                                + "".join(f"L{i},{r},nv,histo,50,male,back\n" for i, r in enumerate(rows)))
    return root


def test_ham_rows_name_their_images_with_or_without_the_extension_and_near_misses_are_said(tmp_path: Path) -> None:
    from training.readers.ham import read_ham

    root = _site_ham(tmp_path, ["P001.jpg", "P002", "P003", "p004", "P005.jpeg"],
                     ["P001.jpg", "P002.jpg", "P003.JPG", "P004.jpg", "P005.jpg"])
    ds = read_ham(root)
    assert [(s.image_id, s.image_path.name) for s in ds.samples] == [("P001", "P001.jpg"), ("P002", "P002.jpg"),
                                                                     ("P003", "P003.JPG")]
    assert ds.missing_images == ("p004", "P005.jpeg")
    assert ds.near_misses == {"p004": "on disk as P004.jpg: the names differ only in upper/lower case",
                              "P005.jpeg": "on disk as P005.jpg: the extension differs"}


def test_a_dataset_whose_every_name_differs_in_case_says_so_not_point_at_another_folder(tmp_path: Path) -> None:
    from training.errors import EmptyDatasetError
    from training.readers.ham import read_ham

    with pytest.raises(EmptyDatasetError, match="make the names in the labels match the files .*p001 is on disk as "
                                                 "P001.jpg: the names differ only in upper/lower case"):
        read_ham(_site_ham(tmp_path, ["p001"], ["P001.jpg"]))


def test_isic2019_rows_name_their_images_with_or_without_the_extension(tmp_path: Path) -> None:
    for name in ("P001.jpg", "P002.jpg", "P003.png"):
        _image(tmp_path / "ISIC_2019_Training_Input" / name)
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_text("image,MEL,NV\nP001.jpg,1,0\nP002,0,1\np003,0,1\n")
    ds = read_isic2019(tmp_path)
    assert [(s.image_id, s.code) for s in ds.samples] == [("P001", "MEL"), ("P002", "NV")]
    assert ds.missing_images == ("p003",) and "differ only in upper/lower case" in ds.near_misses["p003"]


def test_images_on_disk_without_a_label_row_are_named_in_every_layout(tmp_path: Path) -> None:
    from training.readers.ham import read_ham

    ds = read_ham(_site_ham(tmp_path / "ham", ["P001"], ["P001.jpg", "P099.jpg"]))
    assert [p.name for p in ds.unlabelled_images] == ["P099.jpg"] and ds.skipped_unlabelled == 1
    for name in ("ISIC_0000001.jpg", "ISIC_0000002.jpg"):
        _image(tmp_path / "i19" / "ISIC_2019_Training_Input" / name)
    (tmp_path / "i19" / "ISIC_2019_Training_GroundTruth.csv").write_text("image,MEL,NV\nISIC_0000001,1,0\n")
    ds = read_isic2019(tmp_path / "i19")
    assert [p.name for p in ds.unlabelled_images] == ["ISIC_0000002.jpg"] and ds.skipped_unlabelled == 1
    root = tmp_path / "i17"
    for i in (1, 2):
        _image(root / "ISIC-2017_Validation_Data" / f"ISIC_000000{i}.jpg")
        _mask(root / "ISIC-2017_Validation_Part1_GroundTruth" / f"ISIC_000000{i}_segmentation.png")
    (root / "ISIC-2017_Validation_Part3_GroundTruth.csv").write_text(
        "image_id,melanoma,seborrheic_keratosis\nISIC_0000001,1,0\n")
    ds = read_dataset(root)  # the unlabelled image stays for the segmentation figures, and is named
    assert [(s.image_id, s.code) for s in ds.samples] == [("ISIC_0000001", "MEL"), ("ISIC_0000002", None)]
    assert [p.name for p in ds.unlabelled_images] == ["ISIC_0000002.jpg"]
    root = tmp_path / "t3"
    for i in (1, 2):
        _image(root / "ISIC2018_Task3_Test_Input" / f"ISIC_000000{i}.jpg")
    (root / "ISIC2018_Task3_Test_GroundTruth.csv").write_text("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\n"
                                                              "ISIC_0000001,1,0,0,0,0,0,0\n")
    assert [p.name for p in read_dataset(root).unlabelled_images] == ["ISIC_0000002.jpg"]


def test_a_label_csv_not_in_utf8_is_named_with_the_fix(tmp_path: Path) -> None:
    from training.errors import LabelEncodingError
    from training.readers.ham import read_ham

    root = _site_ham(tmp_path, [], ["Müller_001.jpg"])
    (root / "HAM10000_metadata.csv").write_bytes("lesion_id,image_id,dx\nL1,Müller_001,nv\n".encode("cp1252"))
    with pytest.raises(LabelEncodingError, match=r"HAM10000_metadata.csv is not UTF-8: byte 0xfc on line 2 .*save it "
                                                 r"again as \"CSV UTF-8"):
        read_ham(root)
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_bytes("image,MEL,NV\nMüller_001,1,0\n".encode("cp1252"))
    with pytest.raises(LabelEncodingError, match="ISIC_2019_Training_GroundTruth.csv is not UTF-8"):
        read_isic2019_labels(tmp_path / "ISIC_2019_Training_GroundTruth.csv")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_label_csv_in_utf16_is_called_utf16(tmp_path: Path, encoding: str) -> None:
    """Without a byte-order mark it had been read as UTF-8 with a NUL after every letter ("no image and no diagnosis
    column, got ['f\\x00i\\x00...']"), and with one called the Windows code page (training input audit 12)."""
    from training.errors import LabelEncodingError
    from training.readers.common import read_csv

    (tmp_path / "labels.csv").write_bytes("filename,diagnosis\nP001.jpg,nv\n".encode(encoding))
    with pytest.raises(LabelEncodingError, match=r"labels.csv is in UTF-16 .*save it again as \"CSV UTF-8"):
        read_csv(tmp_path / "labels.csv")
    (tmp_path / "labels.csv").write_bytes(b"filename,diagnosis\nP001.jpg,n\x00v\n")  # one NUL: not UTF-16
    assert read_csv(tmp_path / "labels.csv")[0] == ["filename", "diagnosis"]


def test_a_spreadsheets_trailing_empty_rows_are_skipped(tmp_path: Path) -> None:
    from training.readers.ham import read_ham

    root = _site_ham(tmp_path, ["P001"], ["P001.jpg"])
    with (root / "HAM10000_metadata.csv").open("a") as f:
        f.write(",,,,,,\n, ,,,,,\n")
    assert [s.image_id for s in read_ham(root).samples] == ["P001"]


def test_isic2017_part3_with_a_renamed_column_or_a_word_for_a_number_is_named(tmp_path: Path) -> None:
    root = tmp_path
    _image(root / "ISIC-2017_Validation_Data" / "ISIC_0000001.jpg")
    _mask(root / "ISIC-2017_Validation_Part1_GroundTruth" / "ISIC_0000001_segmentation.png")
    part3 = root / "ISIC-2017_Validation_Part3_GroundTruth.csv"
    part3.write_text("image_id,melanoma,sk\nISIC_0000001,1,0\n")
    with pytest.raises(UnknownLabelError, match=r"Part3_GroundTruth.csv: columns \['seborrheic_keratosis'\] are missing; "
                                                r"expected image_id,melanoma,seborrheic_keratosis .*got \['image_id', "
                                                r"'melanoma', 'sk'\]: restore"):
        read_dataset(root)
    part3.write_text("image_id,melanoma,seborrheic_keratosis\nISIC_0000001,yes,0\n")
    with pytest.raises(UnknownLabelError, match=r"line 2 \(ISIC_0000001\): column melanoma holds 'yes'; expected 1 "
                                                "or 0"):
        read_dataset(root)


def test_training_reads_a_stored_frame_mask_in_the_frame_its_image_is_served_in(tmp_path: Path) -> None:
    """The segmenter and the classifier's crops learn from the turned picture: its mask must turn with it."""
    from PIL import Image

    from preprocess.decode import decode
    from training.images import load_mask, original_size

    image = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (60, 40), (128, 100, 90)).save(image, exif=exif)  # stored 60 wide, shown 40 wide
    stored = np.zeros((40, 60), np.uint8)
    stored[:, :15] = 255  # the left quarter of the stored pixels: the top quarter once shown
    cv2.imwrite(str(tmp_path / "mask.png"), stored)
    assert original_size(image) == decode(image.read_bytes()).original_size == (60, 40)
    mask = load_mask(tmp_path / "mask.png", image, original_size(image))
    assert mask.shape == (60, 40) and mask[:15].min() == 255 and mask[15:].max() == 0


def test_task3_and_part3_headers_are_read_in_any_case_as_hams_are(tmp_path: Path) -> None:
    """A Task 3 or ISIC 2017 Part 3 header saved in lower case or with spaces had been refused while HAM10000's was
    read (training input audit, finding 12); two columns spelling one name are still refused."""
    from training.readers.isic_task3 import read_task3_labels

    (tmp_path / "gt.csv").write_text("Image, mel ,nv,bcc,akiec,bkl,df,vasc\nISIC_0000001,0,1,0,0,0,0,0\n"
                                     "ISIC_0000002,1,0,0,0,0,0,0\n")
    assert read_task3_labels(tmp_path / "gt.csv") == {"ISIC_0000001": CLASS_CODES.index("NV"),
                                                      "ISIC_0000002": CLASS_CODES.index("MEL")}
    (tmp_path / "gt.csv").write_text("image,MEL,mel,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_0000001,0,0,1,0,0,0,0,0\n")
    with pytest.raises(UnknownLabelError, match="columns 'MEL' and 'mel' both name 'MEL'"):
        read_task3_labels(tmp_path / "gt.csv")
    _part3_folder(tmp_path / "isic2017", ["ISIC_0000000"], "")
    (tmp_path / "isic2017" / "ISIC-2017_Training_Part3_GroundTruth.csv").write_text(
        "Image_ID,Melanoma,Seborrheic_Keratosis\nISIC_0000000,1,0\n")
    assert [s.code for s in read_dataset(tmp_path / "isic2017").samples] == ["MEL"]


def test_isic2019_headers_are_read_in_any_case_as_the_other_readers_read_theirs(tmp_path: Path) -> None:
    """ISIC 2019's ground truth and metadata headers had been read as spelt alone: ``Image`` or `` mel`` refused the
    CSV, and a ``Lesion_ID`` column was read as no lesion ids at all (left by stop 43)."""
    _image(tmp_path / "ISIC_2019_Training_Input" / "ISIC_0000001.jpg")
    _image(tmp_path / "ISIC_2019_Training_Input" / "ISIC_0000002.jpg")
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_text(
        "Image, mel ,nv,bcc,ak,bkl,df,vasc,scc,unk\nISIC_0000001,1,0,0,0,0,0,0,0,0\nISIC_0000002,0,0,0,0,0,0,0,1,0\n")
    (tmp_path / "ISIC_2019_Training_Metadata.csv").write_text("IMAGE,Lesion_ID\nISIC_0000001, BCN_0001 \nISIC_0000002,\n")
    ds = read_isic2019(tmp_path)
    assert [(s.image_id, s.code, s.lesion_id) for s in ds.samples] == [
        ("ISIC_0000001", "MEL", "BCN_0001"), ("ISIC_0000002", "SCC", None)]
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_text(f"{HEADER_2019},Mel\nISIC_0000001,1,0,0,0,0,0,0,0,0,0\n")
    with pytest.raises(UnknownLabelError, match="columns 'MEL' and 'Mel' both name 'MEL'"):
        read_isic2019_labels(tmp_path / "ISIC_2019_Training_GroundTruth.csv")


def test_an_isic2019_metadata_file_without_its_image_or_lesion_id_column_is_said(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A metadata file whose image column has another name (``isic_id``) dropped every lesion id without a word
    (review 18, L5): pictures of one lesion could then be split apart."""
    _image(tmp_path / "ISIC_2019_Training_Input" / "ISIC_0000001.jpg")
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_text(f"{HEADER_2019}\nISIC_0000001,1,0,0,0,0,0,0,0,0\n")
    (tmp_path / "ISIC_2019_Training_Metadata.csv").write_text("isic_id,lesion_id\nISIC_0000001,BCN_0001\n")
    with caplog.at_level(logging.WARNING, logger="training.readers"):
        ds = read_isic2019(tmp_path)
    assert [s.lesion_id for s in ds.samples] == [None]
    assert "ISIC_2019_Training_Metadata.csv: no image column (columns ['isic_id', 'lesion_id'])" in caplog.text
