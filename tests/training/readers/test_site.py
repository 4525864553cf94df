"""A hospital's own folders through the readers: names stored in another Unicode form, paths in the label cells,
diagnoses that are no code of the layout, headers from another spreadsheet, and the generic ``labels.csv`` layout."""
from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import pytest

from preprocess.contract import CLASSES
from training.errors import DuplicateImageError, EmptyDatasetError, UnknownLabelError, UnknownLayoutError
from training.readers import read_dataset
from training.readers.common import ImageIndex
from training.readers.ham import read_ham
from training.readers.isic2019 import read_isic2019

HAM_IMAGES = "HAM10000_images_part_1"
PNG = cv2.imencode(".png", np.full((6, 8, 3), 128, np.uint8))[1].tobytes()


def _image(path: Path) -> Path:
    """A tiny grey image at ``path`` (any name, parents made), written as bytes so the name is stored as given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(PNG)
    return path


def _ham(root: Path, rows: list[tuple[str, str]], files: list[str], header: str = "lesion_id,image_id,dx",
         sep: str = ",") -> Path:
    """A HAM10000 folder: ``rows`` of (image cell, dx) under ``header`` (cells joined by ``sep``), ``files`` in its
    image folder."""
    for name in files:
        _image(root / HAM_IMAGES / name)
    lines = [header] + [sep.join(([f"L{i}"] if header.lower().startswith("lesion") else []) + [image, dx])
                        for i, (image, dx) in enumerate(rows)]
    (root / "HAM10000_metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _nfd(name: str) -> str:
    return unicodedata.normalize("NFD", name)


# 1. Unicode forms


def test_a_label_typed_in_nfc_finds_the_file_macos_stored_in_nfd_and_reads_it_by_its_real_name(tmp_path: Path) -> None:
    names = ["Zoë_000.jpg", "Zoë_001.jpg", "Zoë_002.jpg"]
    root = _ham(tmp_path / "ham", [(n, "nv") for n in names], [_nfd(n) for n in names])
    assert _nfd(names[0]) != names[0]  # the two forms are different strings that look the same
    ds = read_ham(root)
    assert ds.missing_images == () and ds.unlabelled_images == () and ds.near_misses == {}
    assert [s.image_id for s in ds.samples] == ["Zoë_000", "Zoë_001", "Zoë_002"]
    assert all(s.image_path.is_file() and s.image_path.name == _nfd(s.image_path.name) for s in ds.samples)
    # the other way round (an NFD label, an NFC file), and in the ISIC 2019 layout
    _image(tmp_path / "i19" / "ISIC_2019_Training_Input" / "Müller_01.jpg")
    (tmp_path / "i19" / "ISIC_2019_Training_GroundTruth.csv").write_text(f"image,MEL,NV\n{_nfd('Müller_01')},1,0\n",
                                                                        encoding="utf-8")
    ds = read_isic2019(tmp_path / "i19")
    assert [(s.image_id, s.code) for s in ds.samples] == [("Müller_01", "MEL")] and ds.unlabelled_images == ()


def test_one_name_stored_in_both_unicode_forms_is_two_files_for_one_id(tmp_path: Path) -> None:
    root = _ham(tmp_path, [("Zoë_000.jpg", "nv")], ["Zoë_000.jpg", _nfd("Zoë_000.jpg")])
    with pytest.raises(DuplicateImageError, match="image id Zoë_000 names two files, .* the same letters stored in two "
                                                  "Unicode forms"):
        read_ham(root)


# 2. paths in the label cells


def test_a_path_from_the_data_folder_names_the_file_and_an_absolute_one_gets_the_name_to_write(tmp_path: Path) -> None:
    rows = [(f"{HAM_IMAGES}/P000.jpg", "nv"), (f"{HAM_IMAGES}\\P001", "mel"), ("C:\\Derm\\Export\\P002.jpg", "nv"),
            ("Export/P003.jpg", "nv"), ("/mnt/export/P004.jpeg", "nv")]
    root = _ham(tmp_path, rows, [f"P00{i}.jpg" for i in range(5)])
    ds = read_ham(root)
    assert [(s.image_id, s.image_path.name, s.code) for s in ds.samples] == [("P000", "P000.jpg", "NV"),
                                                                             ("P001", "P001.jpg", "MEL")]
    assert ds.missing_images == ("C:\\Derm\\Export\\P002.jpg", "Export/P003.jpg", "/mnt/export/P004.jpeg")
    assert ds.near_misses == {
        "C:\\Derm\\Export\\P002.jpg": f"on disk as {HAM_IMAGES}/P002.jpg: the label holds an absolute path; a label "
                                      "names the file (or its path from the data folder): write P002.jpg",
        "Export/P003.jpg": f"on disk as {HAM_IMAGES}/P003.jpg: the label holds a path that does not lead to the file "
                           "from the data folder; a label names the file (or its path from the data folder): write P003.jpg",
        "/mnt/export/P004.jpeg": f"on disk as {HAM_IMAGES}/P004.jpg (the extension differs): the label holds an absolute "
                                 "path; a label names the file (or its path from the data folder): write P004.jpg"}
    assert "extension" not in ds.near_misses["Export/P003.jpg"]  # the old hint for a path


def test_a_folder_whose_every_label_is_a_windows_path_says_which_file_to_name(tmp_path: Path) -> None:
    root = _ham(tmp_path, [("C:\\Derm\\Export\\P000.jpg", "nv")], ["P000.jpg"])
    with pytest.raises(EmptyDatasetError, match=r"C:\\Derm\\Export\\P000.jpg is on disk as HAM10000_images_part_1/P000.jpg"
                                                r": the label holds an absolute path; .*write P000.jpg"):
        read_dataset(root)


# 3. HAM dx values that are no HAM10000 code


def test_ham_scc_is_refused_with_where_scc_is_labelled(tmp_path: Path) -> None:
    root = _ham(tmp_path, [("P000", "scc"), ("P001", "SCC"), ("P002", "nv")], ["P000.jpg", "P001.jpg", "P002.jpg"])
    with pytest.raises(UnknownLabelError) as caught:
        read_ham(root)
    message = str(caught.value)
    assert "'scc' (2 rows: lines 2, 3; likely SCC (Squamous cell carcinoma), not a class of this layout)" in message
    assert "The HAM10000 layout has no SCC (Squamous cell carcinoma): its akiec is counted as AK (Actinic keratosis)" in message
    assert ("SCC is labelled by the ISIC 2019 layout (ISIC_2019_Training_GroundTruth.csv: an image column and one-hot "
            "class columns AK,BCC,DF,MEL,NV,BKL,SCC,VASC") in message


def test_ham_every_unknown_dx_is_listed_with_its_rows_and_the_code_it_likely_means(tmp_path: Path) -> None:
    values = ["melanoma", "nv", "Nevus", "melanoma", "nevus", "melanoma", "nevus", "", "Basal Cell Carcinoma", "xyz",
              "nevus", "nevus", "seborrheic keratosis"]
    root = _ham(tmp_path, [(f"P{i:03d}", v) for i, v in enumerate(values)], [f"P{i:03d}.jpg" for i in range(len(values))])
    with pytest.raises(UnknownLabelError) as caught:
        read_ham(root)
    message = str(caught.value)
    assert message.startswith("HAM10000_metadata.csv: 6 dx value(s) in 12 row(s) are not HAM10000 diagnosis codes: "
                              "'Nevus' (5 rows: lines 4, 6, 8, 12, 13; likely nv (Nevus)), "
                              "'melanoma' (3 rows: lines 2, 5, 7; likely mel (Melanoma)), "
                              "(empty) (1 row: line 9; empty: fill in the diagnosis or remove the row), "
                              "'Basal Cell Carcinoma' (1 row: line 10; likely bcc (Basal cell carcinoma)), "
                              "'xyz' (1 row: line 11; no HAM10000 code found), "
                              "'seborrheic keratosis' (1 row: line 14; could be akiec (Actinic keratosis) or bkl "
                              "(Pigmented benign keratosis)); expected one of akiec, bcc, df, mel, nv, bkl, vasc")
    assert "has no SCC" not in message
    dx_codes = [c.ham_dx for c in CLASSES if c.ham_dx]
    assert all(code in message for code in dx_codes)


def test_ham_unknown_dx_rows_are_counted_past_the_fifth(tmp_path: Path) -> None:
    root = _ham(tmp_path, [(f"P{i:03d}", "melanoma") for i in range(8)], [f"P{i:03d}.jpg" for i in range(8)])
    with pytest.raises(UnknownLabelError, match=r"'melanoma' \(8 rows: lines 2, 3, 4, 5, 6 and 3 more; likely mel"):
        read_ham(root)


# 4. headers from another spreadsheet


def test_ham_header_names_in_another_case_are_read(tmp_path: Path) -> None:
    root = _ham(tmp_path, [("P000.jpg", "NV"), ("P001.jpg", "mel")], ["P000.jpg", "P001.jpg"],
                header="Lesion_ID,Image_ID, DX ")
    ds = read_dataset(root)
    assert [(s.image_id, s.code, s.lesion_id) for s in ds.samples] == [("P000", "NV", "L0"), ("P001", "MEL", "L1")]


def test_ham_semicolon_separated_csv_from_a_european_excel_is_read(tmp_path: Path) -> None:
    root = _ham(tmp_path, [("P000.jpg", "nv"), ("P001.jpg", "bkl")], ["P000.jpg", "P001.jpg"], sep=";",
                header="lesion_id;image_id;dx")
    ds = read_dataset(root)
    assert [(s.image_id, s.code, s.lesion_id) for s in ds.samples] == [("P000", "NV", "L0"), ("P001", "BKL", "L1")]


def test_ham_header_with_semicolons_and_a_comma_says_how_to_save_the_file_again(tmp_path: Path) -> None:
    root = _ham(tmp_path, [], ["P000.jpg"], header="lesion_id;image_id;dx,notes")
    with pytest.raises(UnknownLabelError, match=r"required column\(s\) \['image_id', 'dx'\] are missing.*the file looks "
                                                r"separated by semicolons.*save it again as \"CSV UTF-8 \(Comma delimited\)\""):
        read_dataset(root)


def test_ham_without_lesion_id_is_read_and_the_warning_says_why_training_needs_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _ham(tmp_path, [("P000.jpg", "nv"), ("P001.jpg", "mel")], ["P000.jpg", "P001.jpg"], header="image_id,dx")
    with caplog.at_level(logging.WARNING, logger="training.readers"):
        ds = read_dataset(root)
    assert [(s.image_id, s.group) for s in ds.samples] == [("P000", "P000"), ("P001", "P001")]  # each its own lesion
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "has no lesion_id column: each image counts as its own lesion. Evaluation does not need it" in warned
    assert "pictures of one lesion can land in both training and test" in warned


# 5. the generic labels.csv layout


def _site(root: Path, text: str, files: list[str]) -> Path:
    for name in files:
        _image(root / name)
    (root / "labels.csv").write_text(text, encoding="utf-8")
    return root


def test_labels_csv_reads_codes_ham_codes_and_class_names_in_any_case_with_images_anywhere(tmp_path: Path) -> None:
    codes = [c.code for c in CLASSES]
    rows = [("P000.jpg", codes[3]), ("P001", codes[4].lower()), ("clinic_b/P002.jpg", "Melanoma"),
            ("P003.JPG", "  basal   CELL carcinoma "), ("P004", "akiec"), ("P005", "scc"), ("P006", "Vascular lesion")]
    root = _site(tmp_path, "Filename,Diagnosis,notes\n" + "".join(f"{i},{d},x\n" for i, d in rows),
                 ["P000.jpg", "images/P001.png", "clinic_b/P002.jpg", "P003.JPG", "a/b/P004.tif", "P005.bmp", "P006.jpg",
                  "P099.jpg", "._P000.jpg"])  # macOS's hidden attribute copy: no image, and not read as one
    ds = read_dataset(root)  # what `dermassist evaluate --data FOLDER` calls
    assert ds.name == "labels_csv"
    assert [(s.image_id, s.code) for s in ds.samples] == [("P000", "MEL"), ("P001", "NV"), ("P002", "MEL"),
                                                          ("P003", "BCC"), ("P004", "AK"), ("P005", "SCC"),
                                                          ("P006", "VASC")]
    assert [p.name for p in ds.unlabelled_images] == ["P099.jpg"] and ds.missing_images == ()


@pytest.mark.parametrize(("image", "diagnosis"), [("image", "label"), ("image_id", "class"), ("FILE", "dx")])
def test_labels_csv_accepts_each_column_name(tmp_path: Path, image: str, diagnosis: str) -> None:
    root = _site(tmp_path, f"{image},{diagnosis},lesion_id\nP000,nevus,L7\n", ["P000.jpg"])
    assert [(s.image_id, s.code, s.lesion_id) for s in read_dataset(root).samples] == [("P000", "NV", "L7")]


def test_labels_csv_refuses_every_unknown_or_ambiguous_value_at_once(tmp_path: Path) -> None:
    rows = ["P000,nevus", "P001,seborrheic keratosis", "P002,Seborrheic Keratosis", "P003,melanom", "P004,", "P005,UNK"]
    root = _site(tmp_path, "filename,diagnosis\n" + "\n".join(rows) + "\n", [f"P00{i}.jpg" for i in range(6)])
    with pytest.raises(UnknownLabelError) as caught:
        read_dataset(root)
    message = str(caught.value)
    assert ("4 diagnosis value(s) in 5 row(s) in column 'diagnosis' name no class of the model: "
            "'seborrheic keratosis' (2 rows: lines 3, 4; ambiguous: could be AK (Actinic keratosis) or BKL (Pigmented "
            "benign keratosis)), 'melanom' (1 row: line 5; likely MEL (Melanoma)), (empty) (1 row: line 6; empty: fill "
            "in the diagnosis or remove the row), 'UNK' (1 row: line 7; no class of the model found") in message
    assert all(c.code in message and c.name in message for c in CLASSES)


@pytest.mark.parametrize(("header", "error"), [
    ("image,filename,diagnosis", r"columns \['image', 'filename'\] could each be the image column"),
    ("filename,notes", r"no diagnosis column, got \['filename', 'notes'\]; expected an image column named image, "
                       r"image_id, file, filename and a diagnosis column named diagnosis, label, dx, class"),
])
def test_labels_csv_without_one_image_and_one_diagnosis_column_is_refused(tmp_path: Path, header: str, error: str) -> None:
    root = _site(tmp_path, f"{header}\nP000,P000,nv\n", ["P000.jpg"])
    with pytest.raises(UnknownLabelError, match=error):
        read_dataset(root)


def test_a_public_layout_wins_over_labels_csv_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _ham(tmp_path, [("P000.jpg", "nv")], ["P000.jpg"])
    (root / "labels.csv").write_text("filename,diagnosis\nP000.jpg,melanoma\n")
    with caplog.at_level(logging.WARNING, logger="training.readers"):
        ds = read_dataset(root)
    assert ds.name == "ham10000" and [s.code for s in ds.samples] == ["NV"]
    assert any("labels.csv is not read: the folder is in a public layout (ham)" in r.getMessage() for r in caplog.records)


def test_a_folder_in_no_layout_is_told_about_labels_csv_with_an_example(tmp_path: Path) -> None:
    _image(tmp_path / "P000.jpg")
    with pytest.raises(UnknownLayoutError, match="matches no accepted layout; .*for a site's own images, add a labels.csv "
                                                 "whose first lines are `filename,diagnosis` and `P001.jpg,melanoma`"):
        read_dataset(tmp_path)


def test_an_isic2019_csv_from_a_european_excel_with_decimal_commas_is_read(tmp_path: Path) -> None:
    """Excel in a European locale separates by ';' and writes 1.0 as 1,0: every row was refused as not a number."""
    images = tmp_path / "ISIC_2019_Training_Input"
    images.mkdir()
    for name in ("P000", "P001"):
        _image(images / f"{name}.jpg")
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_text(
        "image;MEL;NV;BCC;AK;BKL;DF;VASC;SCC;UNK\nP000;1,0;0,0;0,0;0,0;0,0;0,0;0,0;0,0;0,0\n"
        "P001;0,0;0,0;0,0;0,0;0,0;0,0;0,0;1,0;0,0\n")
    ds = read_isic2019(tmp_path)
    assert [(s.image_id, s.code) for s in ds.samples] == [("P000", "MEL"), ("P001", "SCC")]


def test_a_label_row_names_a_file_whose_extension_differs_only_in_case(tmp_path: Path) -> None:
    """Files saved as P000.JPG while the CSV says P000.jpg: the same file to Windows and macOS, refused as absent."""
    root = _ham(tmp_path, [("P000.jpg", "nv"), ("P001.jpeg", "bkl")], ["P000.JPG", "P001.JPEG"])
    ds = read_dataset(root)
    assert [(s.image_path.name, s.code) for s in ds.samples] == [("P000.JPG", "NV"), ("P001.JPEG", "BKL")]
    assert ds.missing_images == ()


def test_a_path_cell_finds_a_file_whose_extension_differs_only_in_case(tmp_path: Path) -> None:
    """The bare name found P000.JPG; the same name as a path from the data folder did not."""
    root = _ham(tmp_path, [(f"{HAM_IMAGES}/P000.jpg", "nv")], ["P000.JPG"])
    ds = read_dataset(root)
    assert [(s.image_path.name, s.code) for s in ds.samples] == [("P000.JPG", "NV")] and ds.missing_images == ()



def test_a_cell_two_files_answer_by_the_case_of_their_extension_names_neither(tmp_path: Path) -> None:
    """P000.jpg and P000.JPG (two files on Linux; the readers refuse them as one id, the index holds its own rule):
    the cell P000.Jpg names neither, as a name or a path, rather than one by chance; exact names find their files."""
    lower, upper, other = (tmp_path / "a" / "P000.jpg", tmp_path / "b" / "P000.JPG", tmp_path / "P001.JPG")
    index = ImageIndex({"x": lower, "y": upper, "P001": other}, tmp_path)
    assert index.find("P000.Jpg") is None and index.find("a/P000.Jpg") == lower and index.find("b/P000.jpg") == upper
    assert index.find("P000.jpg") == lower and index.find("P000.JPG") == upper
    assert index.find("P001.jpg") == other == index.find("P001.Jpg") == index.find("P001.JPG")


def test_labelled_files_in_a_format_not_accepted_are_told_apart_from_absent_ones_and_named(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """P970.heic (listed with its extension) and P971.webp (listed as P971) are on disk, in formats the service does
    not take; P990-P996 are nowhere: two warnings, each naming the files (five, then a count)."""
    absent = [f"P99{i}.jpg" for i in range(7)]
    rows = [("P000.jpg", "NV"), ("P970.heic", "MEL"), ("P971", "NV"), *((a, "NV") for a in absent)]
    root = _site(tmp_path, "filename,diagnosis\n" + "".join(f"{i},{d}\n" for i, d in rows), ["P000.jpg"])
    (root / "clinic_b").mkdir()
    (root / "P970.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (root / "clinic_b" / "P971.webp").write_bytes(b"RIFF\x00\x00\x00\x00WEBPVP8 ")
    with caplog.at_level(logging.WARNING, logger="training.readers.labels_csv"):
        ds = read_dataset(root)
    assert ds.missing_images == ("P970.heic", "P971", *absent)  # still listed but not read (evaluate sorts them itself)
    messages = [r.getMessage() for r in caplog.records]
    (formats,) = [m for m in messages if "format not accepted" in m]
    assert ("2 image(s) listed in labels.csv are on disk in a format not accepted and were left out: P970.heic, "
            "clinic_b/P971.webp; expected JPEG, PNG, BMP or TIFF") in formats and "convert them to JPEG or PNG" in formats
    (gone,) = [m for m in messages if "absent on disk" in m]
    assert "7 image(s) listed in labels.csv are absent on disk and were left out: P990.jpg, P991.jpg, P992.jpg, " \
           "P993.jpg, P994.jpg and 2 more" in gone and "P97" not in gone


def test_a_note_beside_an_absent_picture_is_no_picture_in_another_format(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """P005.jpg absent beside a sidecar P005.txt was told 'on disk in a format not accepted' (evaluate said absent)."""
    root = _site(tmp_path, "filename,diagnosis\nP000.jpg,NV\nP005.jpg,MEL\nP006.jpg,NV\n", ["P000.jpg"])
    (root / "P005.txt").write_text("dermoscope settings\n")
    (root / "Thumbs.db").write_bytes(b"\0" * 8)
    (root / "P006.gif").write_bytes(b"GIF89a")
    with caplog.at_level(logging.WARNING, logger="training.readers.labels_csv"):
        read_dataset(root)
    messages = [r.getMessage() for r in caplog.records]
    (formats,) = [m for m in messages if "format not accepted" in m]
    (gone,) = [m for m in messages if "absent on disk" in m]
    assert "P006.gif" in formats and "P005" not in formats and "P005.jpg" in gone


def test_the_readers_and_evaluate_find_a_picture_in_another_format_by_one_rule(tmp_path: Path) -> None:
    """A cell naming P970.jpg beside P970.heic on disk: the readers said 'a format not accepted' and evaluate's own copy
    of the lookup said 'absent' (it matched the cell's name and the files' stems, never the cell's stem)."""
    from dermassist.evaluation.selection import match_listed
    from training.readers.common import NamedFiles

    heic, webp, gif = tmp_path / "P970.heic", tmp_path / "sub" / "p971.WEBP", tmp_path / "P972.gif"
    named = NamedFiles([heic, webp, gif])
    cells = ["P970.jpg", "P970", "P970.heic", "clinic/P971.jpg", "P971.webp", "P972.GIF", "P973.jpg", "P970.txt"]
    found = {cell: named.find(cell) for cell in cells}
    assert found == {"P970.jpg": heic, "P970": heic, "P970.heic": heic, "clinic/P971.jpg": webp, "P971.webp": webp,
                     "P972.GIF": gif, "P973.jpg": None, "P970.txt": None}
    assert match_listed(cells, [heic, webp, gif]) == {c: f for c, f in found.items() if f is not None}
    root = _site(tmp_path / "site", "filename,diagnosis\nP000.jpg,NV\nP970.jpg,MEL\n", ["P000.jpg"])
    (root / "P970.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    assert ImageIndex({}, root).other_format("P970.jpg") == root / "P970.heic"


def test_unlabelled_files_are_named_five_then_a_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = ["P000.jpg", *(f"extra/U{i}.jpg" for i in range(7))]
    root = _site(tmp_path, "filename,diagnosis\nP000.jpg,NV\n", files)
    with caplog.at_level(logging.WARNING, logger="training.readers.labels_csv"):
        read_dataset(root)
    (warned,) = [r.getMessage() for r in caplog.records if "have no row" in r.getMessage()]
    assert "7 image(s) on disk have no row in labels.csv and were left out: extra/U0.jpg, extra/U1.jpg, extra/U2.jpg, " \
           "extra/U3.jpg, extra/U4.jpg and 2 more" in warned


def test_the_isic2019_reader_warns_of_left_out_files_as_the_others_do(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """It said 'absent on disk, e.g. ...' for a HEIC on disk, one example each (review: one warning for all readers)."""
    images = tmp_path / "ISIC_2019_Training_Input"
    images.mkdir()
    _image(images / "P000.jpg")
    _image(images / "P009.jpg")  # no row
    (images / "P001.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_text(
        "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\n" + "".join(f"P00{i},1,0,0,0,0,0,0,0,0\n" for i in range(4)))
    with caplog.at_level(logging.WARNING, logger="training.readers.isic2019"):
        ds = read_isic2019(tmp_path)
    assert [s.image_id for s in ds.samples] == ["P000"] and ds.missing_images == ("P001", "P002", "P003")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert ("1 image(s) listed in ISIC_2019_Training_GroundTruth.csv are on disk in a format not accepted and were left "
            "out: ISIC_2019_Training_Input/P001.heic") in text
    assert "2 image(s) listed in ISIC_2019_Training_GroundTruth.csv are absent on disk and were left out: P002, P003" in text
    assert "1 image(s) on disk have no row in ISIC_2019_Training_GroundTruth.csv and were left out: " \
           "ISIC_2019_Training_Input/P009.jpg" in text
